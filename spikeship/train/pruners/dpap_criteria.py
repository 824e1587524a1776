"""DPAP's pruning criteria as pure tensor functions (paper Eq 5-19).

Notation (one prunable layer, ``B`` samples of a batch, ``N_pre`` inputs,
``N_post`` units): a *trace* is a ``(B, N)`` tensor; conv layers are reduced to
channel populations first, so ``N`` is a channel count there.

- Eq 5 / 6 (spiking trace, per time step): ``S[t+1] = tau * S[t] + o[t+1]``, where
  for a conv layer ``o`` is the spike count of a channel summed over H, W
  (:func:`population`). For an ANN (Eq 18 / 19) there is one step: ``S = ReLU(...)``
  (summed over H, W for conv), which is the same recursion run once from zero.
- Eq 7 (trace-based BCM of one batch, summed over its samples)::

      BCM_ij = sum_b  S_pre[b, j] * S_post[b, i] * (S_post[b, i] - theta_i)

  one value per synapse for FC (``N_post x N_pre``, the weight's shape), one per
  channel pair for conv (``C_out x C_in``).
- Eq 8-9 (sliding threshold): ``theta_i`` is the mean post-synaptic trace over
  every sample seen so far, i.e. ``sum S_post / n_samples``. With equal batch sizes
  this is exactly Eq 8 with ``Num`` batches; unlike the authors' script it has one
  value per neuron (not per position in the batch) and does not depend on the
  batch size. As in the paper's procedure (Eq 7, then Eq 8), a batch's BCM uses the
  threshold of the batches *before* it (theta = 0 on the very first batch).
- Eq 10: ``BCM^e`` is the sum of Eq 7 over the batches of epoch ``e``.
- Eq 11 (dendritic spine importance of unit i): ``D_i = sum_b S_post[b, i] *
  sum_j BCM^e_ij``. ``spine="minmax-product"`` (the paper's path, as the authors'
  script) min-max normalises both factors before multiplying, so a very active unit
  whose BCM sum is negative is not ranked below a silent one; ``"raw-product"`` is
  Eq 11 as printed; ``"synaptic"`` is the synaptic sum alone, ``sum_j BCM^e_ij``
  (the chip default, where the criterion is weighted by ``|w_ij|``: see
  :mod:`.dpap`). The sum over j runs over the synapses that still exist.
- Eq 12-13: ``delta = 2 * Normalized(I) - eps``. ``Normalized`` is ``"minmax"``
  (the paper's "linear normalisation": ``(x - min) / (max - min)``) or ``"p75"``
  (the script's ``unit()``: ``(x - min) / (p75 - min)`` clipped to [0, 1], p75 the
  75th percentile with linear interpolation, as numpy). Both are taken over the
  entries that still exist; a constant input maps to 0.5.
- Eq 14-15: ``dF = delta + C`` where ``delta >= 0``, else ``delta`` (protection C).
- Eq 16-17: ``F <- gamma * F + w(e) * dF`` with ``w(e) = exp(-e / eta)`` (``"exp"``,
  the paper) or ``exp(-floor((e - warmup) / eta))`` (``"staircase"``, the script);
  ``e`` is the 0-based epoch, and nothing is updated before ``warmup``.
- Ablation (paper Fig 4H): ``hebb`` uses ``sum_b S_post[b, i] * S_pre[b, j]`` in place
  of Eq 7; ``stdp`` a pair-based trace STDP over the time steps (see :func:`stdp`).
"""

from __future__ import annotations

import functools
import math

import torch

NORMALISATIONS = ("minmax", "p75")
DECAYS = ("exp", "staircase")
SPINES = ("minmax-product", "raw-product", "synaptic")


# ---- traces (Eq 5, 6, 18, 19) -----------------------------------------------------------
def population(x: torch.Tensor) -> torch.Tensor:
    """Activity per unit, ``(B, N)``: conv maps ``(B, C, H, W)`` are summed over H, W
    (a channel is one population, Eq 6 / 19); ``(B, N)`` is returned as it is."""
    if x.dim() == 2:
        return x
    return x.flatten(2).sum(-1)


def trace_step(trace: torch.Tensor | None, activity: torch.Tensor, tau: float) -> torch.Tensor:
    """One step of Eq 5 / 6: ``S <- tau * S + o`` (``trace=None`` is S = 0)."""
    if trace is None:
        return activity.clone()
    return tau * trace + activity


def decay_matrix(steps: int, tau: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """``D[t, k] = tau**(t - k)`` for ``k <= t`` else 0: ``D @ o`` is Eq 5 at every step."""
    t = torch.arange(steps, device=device)
    diff = (t[:, None] - t[None, :]).to(dtype)
    return torch.where(diff >= 0, torch.tensor(tau, dtype=dtype, device=device) ** diff,
                       torch.zeros((), dtype=dtype, device=device))


def traces_over_time(activity: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq 5 / 6 at every step at once: ``(T, B, N)`` activity -> ``(T, B, N)`` traces."""
    d = decay_matrix(activity.shape[0], tau, activity.dtype, activity.device)
    return torch.einsum("tk,kbn->tbn", d, activity)


def final_trace(activity: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq 5 / 6 after the last of T steps: ``sum_t tau**(T-1-t) * o[t]``, ``(B, N)``."""
    steps = activity.shape[0]
    w = _trace_weights(steps, float(tau), activity.dtype, activity.device)
    return (w @ activity.reshape(steps, -1)).reshape(activity.shape[1:])


@functools.lru_cache(maxsize=32)
def _trace_weights(steps: int, tau: float, dtype: torch.dtype, device: torch.device):
    return tau ** torch.arange(steps - 1, -1, -1, dtype=dtype, device=device)


# ---- synaptic criteria (Eq 7-10, Fig 4H) ------------------------------------------------
def theta_from_sums(post_sum: torch.Tensor, n_samples: float | torch.Tensor) -> torch.Tensor:
    """Eq 8-9: the sliding threshold, mean post trace over all samples seen (0 if none)."""
    n = float(n_samples)
    return post_sum / n if n > 0 else torch.zeros_like(post_sum)


def bcm_batch(pre: torch.Tensor, post: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Eq 7 summed over the batch: ``(post * (post - theta))^T @ pre``, ``(N_post, N_pre)``."""
    return (post * (post - theta)).T @ pre


def hebb_batch(pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """Hebbian ablation: ``post^T @ pre`` summed over the batch, ``(N_post, N_pre)``."""
    return post.T @ pre


def stdp(pre: torch.Tensor, post: torch.Tensor, tau: float) -> torch.Tensor:
    """Pair-based trace STDP over T steps, summed over the batch, ``(N_post, N_pre)``.

    ``pre`` is ``(T, B, N_pre)``, ``post`` ``(T, B, N_post)`` activity per step.
    Potentiation where a post spike meets the pre trace (pre before or with post):
    ``sum_t post[t]^T @ x_pre[t]``; depression where a pre spike meets the post trace
    of the earlier steps (post strictly before pre): ``sum_t x_post[t-1]^T @ pre[t]``;
    ``x`` are the traces of Eq 5. With one step (ANN) only potentiation remains,
    i.e. Hebb.
    """
    x_pre = traces_over_time(pre, tau)
    x_post = traces_over_time(post, tau)
    ltp = torch.einsum("tbn,tbm->nm", post, x_pre)
    ltd = torch.einsum("tbn,tbm->nm", x_post[:-1], pre[1:])
    return ltp - ltd


# ---- normalisation and importance (Eq 11-13) --------------------------------------------
def percentile(x: torch.Tensor, q: float) -> torch.Tensor:
    """The q-th percentile of a 1-D tensor with linear interpolation (numpy's default)."""
    n = x.numel()
    pos = q / 100.0 * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    v_lo = torch.kthvalue(x, lo + 1).values
    if hi == lo:
        return v_lo
    v_hi = torch.kthvalue(x, hi + 1).values
    return v_lo + (pos - lo) * (v_hi - v_lo)


def normalise(x: torch.Tensor, mode: str, alive: torch.Tensor | None = None) -> torch.Tensor:
    """``Normalized`` of Eq 12-13 (``"minmax"`` or ``"p75"``), statistics over ``alive``.

    Returns a tensor of ``x``'s shape; entries outside ``alive`` get 0. A layer whose
    alive values are all equal maps to 0.5 (as the authors' ``unit()``).
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {mode!r}")
    vals = x[alive] if alive is not None else x.reshape(-1)
    out = torch.zeros_like(x)
    if vals.numel() == 0:
        return out
    lo = vals.min()
    hi = vals.max() if mode == "minmax" else percentile(vals.reshape(-1), 75.0)
    span = hi - lo
    if float(span) <= 0:
        res = torch.full_like(x, 0.5)
    else:
        res = ((x - lo) / span).clamp_(0.0, 1.0)
    return res if alive is None else torch.where(alive, res, out)


def spine_importance(synaptic: torch.Tensor, trace_sum: torch.Tensor, mode: str,
                     alive_pairs: torch.Tensor | None = None,
                     alive_units: torch.Tensor | None = None) -> torch.Tensor:
    """Eq 11: dendritic spine importance per unit from the epoch's synaptic criterion.

    ``synaptic`` is ``(N_post, N_pre)`` (BCM^e or its ablation), ``trace_sum`` the
    epoch's summed post trace ``(N_post,)``, ``alive_pairs`` which synapses still
    exist (those outside do not count in ``sum_j``).
    """
    if mode not in SPINES:
        raise ValueError(f"spine must be one of {SPINES}, got {mode!r}")
    s = synaptic if alive_pairs is None else synaptic * alive_pairs
    row = s.sum(1)
    if mode == "raw-product":
        return trace_sum * row
    if mode == "synaptic":
        return row
    return normalise(row, "minmax", alive_units) * normalise(trace_sum, "minmax", alive_units)


# ---- survival functions (Eq 12-17) ------------------------------------------------------
def survival_delta(normalised: torch.Tensor, eps: float, protection: float) -> torch.Tensor:
    """Eq 12-15: ``delta = 2 * norm - eps``; ``dF = delta + C`` where ``delta >= 0``."""
    delta = 2.0 * normalised - eps
    return torch.where(delta >= 0, delta + protection, delta)


def decay_weight(epoch0: float, eta: float, warmup: float, mode: str) -> float:
    """``w(e)`` of Eq 16-17 at 0-based epoch ``epoch0`` (0 before ``warmup``)."""
    if mode not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {mode!r}")
    if epoch0 < warmup:
        return 0.0
    if mode == "exp":
        return math.exp(-epoch0 / eta)
    return math.exp(-math.floor((epoch0 - warmup) / eta))


def survival_update(survival: torch.Tensor, d_survival: torch.Tensor, gamma: float,
                    weight: float) -> torch.Tensor:
    """Eq 16-17: ``F <- gamma * F + weight * dF`` (a new tensor)."""
    return gamma * survival + weight * d_survival

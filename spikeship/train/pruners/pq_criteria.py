"""The PQ-index pruner's pure functions (the algorithm: :mod:`.pq`).

The PQ index and the SAP counts are Diao et al., "Pruning deep neural networks from a
sparsity perspective" (ICLR 2023), Definition 1 and Algorithm 1; the regrow fraction is
RigL's cosine decay (Evci et al. 2020, Eq 1). Every function works on numbers or tensors.
"""

from __future__ import annotations

import math

import torch

from spikeship.errors import ConfigError

_EPS = 1e-9  # slack for ceil() of values that are integers up to rounding



def check_pq(p: float, q: float) -> None:
    if not (0 < p < q):
        raise ConfigError(f"the PQ index needs 0 < p < q, got p={p}, q={q}")


def pq_index(w: torch.Tensor, p: float = 0.5, q: float = 1.0, *,
             mask: torch.Tensor | None = None, dim: int | None = None) -> torch.Tensor:
    """PQ index ``I(w) = 1 - d**(1/q - 1/p) * ||w||_p / ||w||_q`` (Diao et al. 2023, Def. 1).

    Computed over the entries of ``w`` where ``mask`` is True (all entries when
    ``mask`` is None), ``d`` being their number; reduced over ``dim`` (over
    everything when None), so ``dim=1`` on an (out, in) matrix gives one index per
    output neuron. By the power-mean inequality ``0 <= I < 1``; ``I = 0`` when all
    active weights have equal magnitude. Conventions where the formula is 0/0:
    ``d = 0`` and all-zero active weights give ``I = 0`` (nothing to compress).
    Computed in float64.
    """
    check_pq(p, q)
    a = torch.as_tensor(w).detach().to(torch.float64).abs()
    m = torch.ones_like(a, dtype=torch.bool) if mask is None else mask.to(torch.bool)
    a = torch.where(m, a, torch.zeros_like(a))
    if dim is None:
        a, m = a.reshape(-1), m.reshape(-1)
        dim = 0
    d = m.sum(dim).to(torch.float64)
    norm_p = a.pow(p).sum(dim).pow(1.0 / p)
    norm_q = a.pow(q).sum(dim).pow(1.0 / q)
    ok = (d > 0) & (norm_q > 0)
    ratio = torch.where(ok, norm_p / torch.where(ok, norm_q, torch.ones_like(norm_q)),
                        torch.zeros_like(norm_q))
    scale = torch.where(ok, d, torch.ones_like(d)).pow(1.0 / q - 1.0 / p)
    index = torch.where(ok, 1.0 - scale * ratio, torch.zeros_like(d))
    return index.clamp(min=0.0, max=1.0)


def sap_keep(d, index, p: float = 0.5, q: float = 1.0, eta_r: float = 0.0):
    """Weights worth keeping: ``r = ceil(d * (1+eta_r)**(-q/(q-p)) * (1-I)**(q*p/(q-p)))``.

    Diao et al. 2023, Algorithm 1 (SAP). ``d`` and ``index`` are numbers or tensors
    of equal shape; returns an int (for numbers) or an int64 tensor, clamped to
    ``[0, d]``. With the defaults ``p = 0.5, q = 1, eta_r = 0`` this is
    ``ceil(d * (1 - I))``. A tiny slack (1e-9) keeps an exact integer from rounding up.
    """
    check_pq(p, q)
    if eta_r < 0:
        raise ConfigError(f"eta_r must be >= 0, got {eta_r}")
    scalar = not torch.is_tensor(d) and not torch.is_tensor(index)
    dd = torch.as_tensor(d, dtype=torch.float64)
    ii = torch.as_tensor(index, dtype=torch.float64)
    x = dd * (1.0 + eta_r) ** (-q / (q - p)) * (1.0 - ii).clamp(min=0.0) ** (q * p / (q - p))
    r = torch.ceil(x - _EPS).clamp(min=0)
    r = torch.minimum(r, dd).to(torch.int64)
    return int(r) if scalar else r


def sap_prune_count(d, r, gamma: float = 1.0, beta: float = 0.9):
    """Connections to rewire: ``c = floor(d * clamp(gamma * (1 - r/d), 0, beta))`` (SAP).

    ``d = 0`` gives ``c = 0``. Numbers in, int out; tensors in, int64 tensor out.
    """
    scalar = not torch.is_tensor(d) and not torch.is_tensor(r)
    dd = torch.as_tensor(d, dtype=torch.float64)
    rr = torch.as_tensor(r, dtype=torch.float64)
    frac = torch.where(dd > 0, gamma * (1.0 - rr / dd.clamp(min=1.0)), torch.zeros_like(dd))
    c = torch.floor(dd * frac.clamp(min=0.0, max=beta) + _EPS).to(torch.int64)
    return int(c) if scalar else c


def regrow_fraction(tau: float, start: float, end: float, initial: float) -> float:
    """Cosine decay of the regrow fraction (RigL Eq 1): ``f_0/2 * (1 + cos(pi*x))``,
    ``x = (tau - start)/(end - start)`` clipped to [0, 1]; 0 when ``end == start``."""
    if end <= start:
        return 0.0
    x = min(max((tau - start) / (end - start), 0.0), 1.0)
    return initial * 0.5 * (1.0 + math.cos(math.pi * x))


def structurally_allowed(masks, name: str) -> torch.Tensor:
    """Bool mask of ``name``'s weight shape: False where a removed unit forbids a synapse
    (its own row, or the input columns fed by a removed unit of the producer layer)."""
    li = masks.layers[name]
    w = masks.weight[name]
    rows = masks.units[name].view(-1, *([1] * (w.dim() - 1)))
    allowed = rows.expand_as(w)
    if li.producer is not None:
        cols = masks.units[li.producer].repeat_interleave(li.in_block)
        allowed = allowed & cols.view(1, -1, *([1] * (w.dim() - 2)))
    return allowed.clone()

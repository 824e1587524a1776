"""Training losses on the output of :func:`spikeship.train.models.forward_sequence`.

Every loss takes ``out`` of shape ``(T, B, K)`` (output spikes per step for an SNN,
``(1, B, K)`` logits for an ANN, or the output membrane for ``ce_mem``) and integer
labels ``y`` ``(B,)``, and returns the batch mean.

- ``mse_rate`` (SNN default, DPAP Eq 3): ``L = || Y_label - (1/T) sum_t o^{t,N} ||_2^2``,
  the squared distance between the output firing rate and the one-hot label,
  summed over classes, averaged over the batch.
- ``ce_rate``: cross-entropy with the spike counts ``sum_t o^{t,N}`` as logits.
- ``ce_mem``: cross-entropy with the output layer's mean membrane potential
  ``(1/T) sum_t u^{t,N}`` as logits (``out`` must hold the membrane, see the trainer).
- ``ce``: cross-entropy on ANN logits (the ANN twin's loss).

``predict(out)`` is the class with the highest rate / logit (ties go to the lowest
index, as ``argmax`` does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeship.errors import ConfigError


def mse_rate(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DPAP Eq 3: ``|| onehot(y) - mean_t out ||^2`` per sample, batch mean."""
    rate = out.mean(0)
    target = F.one_hot(y, rate.shape[-1]).to(rate.dtype)
    return ((target - rate) ** 2).sum(-1).mean()


def ce_rate(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the output spike counts as logits."""
    return F.cross_entropy(out.sum(0), y)


def ce_mem(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the mean output membrane potential as logits."""
    return F.cross_entropy(out.mean(0), y)


def ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on logits (ANN: ``out`` is ``(1, B, K)``)."""
    return F.cross_entropy(out.mean(0), y)


LOSSES = {"mse_rate": mse_rate, "ce_rate": ce_rate, "ce_mem": ce_mem, "ce": ce}
SNN_LOSSES = ("mse_rate", "ce_rate", "ce_mem")
ANN_LOSSES = ("ce",)


def default_loss(ann: bool) -> str:
    """``ce`` for an ANN twin, ``mse_rate`` (Eq 3) for an SNN."""
    return "ce" if ann else "mse_rate"


def get_loss(name: str, ann: bool):
    """The loss function ``name``; raise :class:`ConfigError` if it does not fit the mode."""
    allowed = ANN_LOSSES if ann else SNN_LOSSES
    if name not in allowed:
        kind = "an ANN" if ann else "an SNN"
        raise ConfigError(f"field 'loss': '{name}' is not a loss for {kind}; choose one of "
                          f"{list(allowed)}")
    return LOSSES[name]


def predict(out: torch.Tensor) -> torch.Tensor:
    """Predicted class per sample from ``(T, B, K)`` outputs (rate or logits)."""
    return out.sum(0).argmax(-1)

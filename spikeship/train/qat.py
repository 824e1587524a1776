"""Quantisation-aware training for the Loihi fixed-point deployment (``--qat``).

The Loihi quantiser (:mod:`spikeship.targets.loihi.quantize`) gives every on-chip
population one state scale ``S = 128 * 127 / max|w|`` over the synapses into it and
stores each weight as the 8-bit mantissa ``m = rint(w S / 128)``: in float units, the
weights of a layer become ``grid(w) = rint(127 w / max|w|) * max|w| / 127``. The first
layer of a direct-encoded input is not on the chip (the host computes its current in
float and injects it), so it keeps its float weights.

With ``qat`` the trainer runs every forward pass (training and test) with the
on-chip layers' weights on their grid and keeps the float weights as the master copy
the optimiser updates (the straight-through estimator: the gradient computed at the
rounded weights is applied to the float ones, Jacob et al. 2018 / Courbariaux et al.
2015). After the last epoch the weights are put on the grid for good, so the
checkpoint, every export and the float simulators hold exactly the values the chip
gets (re-quantising a grid weight gives it back: its layer's max stays the max).

The default (``qat_epochs``): an SNN trains in float and spends only its last
``DEFAULT_QAT_EPOCHS`` = 5 epochs on the grid (``--qat-epochs N`` sets N, ``--qat`` is
every epoch, ``--no-qat`` none; an ANN twin never), so a pruner's trajectory before
those epochs (DPAP's cut included) is the float run's, bit for bit. Why:
``docs/pruning-decisions.md``.

Not modelled: a population whose scale the quantiser lowers so that its threshold fits
(``max|w| < vth * 254 / 2**16``: fewer mantissa bits), the 13-bit bias and 12-bit decay
mantissas, and BatchNorm (folded into the weights at export; a model with BatchNorm is
refused).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from spikeship.errors import ConfigError
from spikeship.train.structure import LayerInfo

WEIGHT_MANT_MAX = 127      # spikeship.targets.loihi.deployment.FORMAT.weight_mant_max


@torch.no_grad()
def on_grid(w: torch.Tensor) -> torch.Tensor:
    """``rint(127 w / max|w|) * max|w| / 127`` (half to even, as numpy's ``rint``)."""
    m = w.abs().max()
    if float(m) == 0.0:
        return w.clone()
    return torch.round(w * (WEIGHT_MANT_MAX / m)) * (m / WEIGHT_MANT_MAX)


def chip_layers(model: nn.Sequential, layers: list[LayerInfo], encoding: str) -> list[nn.Module]:
    """The synaptic layers whose weights the chip holds (all but a direct-encoded first
    layer, which the host computes). Raises ConfigError for a model with BatchNorm."""
    if any(li.bn is not None for li in layers):
        raise ConfigError("field 'qat': the model has BatchNorm, which export folds into "
                          "the weights; quantisation-aware training does not model that")
    mods = [model[int(li.name)] for li in layers]
    return mods[1:] if encoding == "direct" else mods


@contextlib.contextmanager
def weights_on_grid(modules: list[nn.Module]) -> Iterator[None]:
    """Within the block the modules' weights hold their grid values; the float values
    come back after it (gradients computed inside stay in ``.grad``)."""
    saved = [m.weight.data.clone() for m in modules]
    try:
        for m in modules:
            m.weight.data.copy_(on_grid(m.weight.data))
        yield
    finally:
        for m, w in zip(modules, saved):
            m.weight.data.copy_(w)


@torch.no_grad()
def put_on_grid(modules: list[nn.Module]) -> None:
    """Replace the float weights by their grid values (after the last epoch)."""
    for m in modules:
        m.weight.data.copy_(on_grid(m.weight.data))

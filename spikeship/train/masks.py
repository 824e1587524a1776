"""Pruning masks as state: enforced in forward, gradients, optimizer state and checkpoints.

Per prunable layer (see :mod:`spikeship.train.structure`):

- ``weight[name]``: bool, the weight's shape; False = synapse pruned.
- ``units[name]``: bool, one per output unit (FC neuron / conv channel); False = the
  unit is removed: its incoming weights, its bias, its BatchNorm channel and its
  *outgoing* weights (the consumer layer's input columns) are all zero, so it can
  never fire again. Output-layer units (the classes) are never removed.

The *effective* mask of a layer combines the three::

    eff[o, i, ...] = weight[o, i, ...] & units[o] & units_producer[i // in_block]

:meth:`MaskSet.apply` writes zeros wherever the effective mask is False (weights,
biases, BN affine parameters, and the optimizer's moment buffers for those
entries); :meth:`MaskSet.mask_grads` zeroes their gradients. The trainer calls
``mask_grads`` before and ``apply`` after every optimizer step, so a pruned
weight is zero at every moment, including after AdamW's decoupled weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeship.errors import MaskError
from spikeship.train.structure import LayerInfo


@dataclass
class LayerCounts:
    """Remaining / total synapses and units of one prunable layer."""

    name: str
    kind: str
    synapses_total: int
    synapses_remaining: int
    units_total: int
    units_remaining: int


class MaskSet:
    """The masks of every prunable layer of one model."""

    def __init__(self, model: nn.Sequential, layers: list[LayerInfo]):
        self.model = model
        self.layers = {li.name: li for li in layers}
        self.weight: dict[str, torch.Tensor] = {}
        self.units: dict[str, torch.Tensor] = {}
        for li in layers:
            w = model[int(li.name)].weight
            self.weight[li.name] = torch.ones_like(w, dtype=torch.bool)
            self.units[li.name] = torch.ones(li.out_units, dtype=torch.bool, device=w.device)

    # ---- structure -----------------------------------------------------------------
    def consumer(self, name: str) -> str | None:
        """The prunable layer fed by ``name``'s units, if any."""
        return next((n for n, li in self.layers.items() if li.producer == name), None)

    def effective(self, name: str) -> torch.Tensor:
        """The effective bool mask of ``name``'s weight (see module docstring)."""
        li = self.layers[name]
        eff = self.weight[name] & _expand_rows(self.units[name], self.weight[name])
        if li.producer is not None:
            cols = self.units[li.producer].repeat_interleave(li.in_block)
            eff = eff & _expand_cols(cols, eff)
        return eff

    # ---- pruning --------------------------------------------------------------------
    def prune_units(self, name: str, remove: torch.Tensor) -> None:
        """Remove the units where ``remove`` is True (never for the output layer)."""
        li = self.layers[name]
        if li.is_output and bool(remove.any()):
            raise MaskError(f"layer {name} is the output layer: its units cannot be pruned")
        self.units[name] &= ~remove.to(self.units[name].device)

    def prune_weights(self, name: str, remove: torch.Tensor) -> None:
        """Prune the synapses where ``remove`` is True."""
        self.weight[name] &= ~remove.to(self.weight[name].device)

    # ---- enforcement ----------------------------------------------------------------
    @torch.no_grad()
    def apply(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero every masked weight, removed unit's bias/BN, and their optimizer moments."""
        for name, li in self.layers.items():
            layer = self.model[int(name)]
            eff = self.effective(name)
            layer.weight.mul_(eff)
            unit = self.units[name]
            tensors = [(layer.weight, eff)]
            if layer.bias is not None:
                layer.bias.mul_(unit)
                tensors.append((layer.bias, unit))
            if li.bn is not None:
                bn = self.model[int(li.bn)]
                bn.weight.mul_(unit)
                bn.bias.mul_(unit)
                tensors += [(bn.weight, unit), (bn.bias, unit)]
            if optimizer is not None:
                for p, m in tensors:
                    for v in optimizer.state.get(p, {}).values():
                        if torch.is_tensor(v) and v.shape == p.shape:
                            v.mul_(m)

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of every masked parameter entry."""
        for name, li in self.layers.items():
            layer = self.model[int(name)]
            unit = self.units[name]
            pairs = [(layer.weight, self.effective(name)), (layer.bias, unit)]
            if li.bn is not None:
                bn = self.model[int(li.bn)]
                pairs += [(bn.weight, unit), (bn.bias, unit)]
            for p, m in pairs:
                if p is not None and p.grad is not None:
                    p.grad.mul_(m)

    # ---- reporting ------------------------------------------------------------------
    def counts(self) -> list[LayerCounts]:
        """Per-layer remaining/total synapses (effective) and units."""
        out = []
        for name, li in self.layers.items():
            eff = self.effective(name)
            out.append(LayerCounts(name, li.kind, eff.numel(), int(eff.sum()),
                                   li.out_units, int(self.units[name].sum())))
        return out

    def pruning_rate(self) -> float:
        """1 - remaining / total over the weights of all prunable layers."""
        c = self.counts()
        total = sum(x.synapses_total for x in c)
        return 1.0 - sum(x.synapses_remaining for x in c) / total

    # ---- persistence ----------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Tensors for safetensors: ``weight.<name>`` and ``units.<name>`` (uint8)."""
        d = {f"weight.{n}": m.to(torch.uint8).cpu().contiguous() for n, m in self.weight.items()}
        d.update({f"units.{n}": m.to(torch.uint8).cpu().contiguous() for n, m in self.units.items()})
        return d

    def load_state(self, d: dict[str, torch.Tensor]) -> None:
        """Restore masks saved by :meth:`state`; raise :class:`MaskError` if they do not fit."""
        expected = set(self.state())
        if set(d) != expected:
            missing, extra = sorted(expected - set(d)), sorted(set(d) - expected)
            raise MaskError(f"masks do not match the model: missing {missing}, unexpected {extra}")
        for key, t in d.items():
            kind, name = key.split(".", 1)
            target = self.weight if kind == "weight" else self.units
            if tuple(t.shape) != tuple(target[name].shape):
                raise MaskError(f"mask {key} has shape {tuple(t.shape)}, "
                                f"the model needs {tuple(target[name].shape)}")
            if self.layers[name].is_output and kind == "units" and not bool(t.all()):
                raise MaskError(f"mask {key} removes output units (classes)")
            target[name] = t.to(torch.bool).to(target[name].device)


def units_hex(units: torch.Tensor) -> str:
    """A unit mask as the hex string ``metrics.jsonl`` records per layer and epoch
    (``units_kept_hex``): ``numpy.packbits(units, bitorder="little")`` as hex, so unit
    ``i`` is bit ``i % 8`` of byte ``i // 8`` (1 = kept); padding bits are 0. Decoded by
    :func:`spikeship.report.plots.units_from_hex` with the layer's ``units_total``."""
    return np.packbits(units.detach().cpu().numpy().astype(bool), bitorder="little").tobytes().hex()


def _expand_rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _expand_cols(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (like.dim() - 2)))

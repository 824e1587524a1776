"""Structured baseline: L1-norm filter pruning (Li, Kadav, Durdanovic, Samet, Graf,
"Pruning Filters for Efficient ConvNets", ICLR 2017).

For every layer, the filters (conv output channels; here also hidden FC neurons when
asked) are ranked by the L1 norm of their weights ``s_j = sum |W_j|`` (Li et al.,
Sec. 3.1) and the ``ratio`` share with the smallest norms is removed, together with
the feature map it produces and the kernels that read it in the next layer (the
:class:`~spikeship.train.masks.MaskSet` removes a unit's outgoing weights). Li et
al. prune a trained network once and retrain it; inside one training run that is:
train until epoch ``start``, prune, keep training (the remaining epochs are the
retraining). With ``end > start`` the share rises along Zhu & Gupta's cubic instead
(gradual). The norms are those of the current weights, so a later step sees the
kernels an earlier one removed (Li et al.'s "greedy" variant). The output layer's
units (the classes) are never removed.

Options: ``conv`` (share of filters removed in every conv layer, default 0.5),
``fc`` (share of neurons of every hidden FC layer, default 0), ``layers`` (per-layer
shares by Sequential index, ``"0:0.4,3:0.6"``, overriding the two), ``start`` /
``end`` (epochs, default 5 and 5), ``interval``.

``weights="7:0.9"``: besides whole units, remove the smallest-magnitude single weights
of the listed *fully connected* layers (Sequential index: share), on the same schedule:
the share of the weights that the unit pruning left in that layer (so removed rows and
columns are not counted twice). A synapse of an FC layer is physically absent from
every deployed format (NIR, ONNX, netx sparse, the Loihi mapper), so its operations go
with it; inside a conv kernel a zero would stay stored (Lava's Conv has no sparse
form), which is why conv layers are refused here (prune their channels instead). A
neuron left without any incoming synapse is kept: its bias alone makes it fire a
fixed spike train, a bias input of the next layer.

Li et al.'s own protocol, a trained network pruned once and retrained, is
``spikeship train --init-from DENSE_RUN --prune l1-filter --prune-opt start=1
--prune-opt end=1 ...``: the trained dense run's weights, one epoch at the restarted
learning rate, the cut, then fine-tuning for the remaining epochs. How the recipe was
chosen: ``docs/pruning-decisions.md``.
"""

from __future__ import annotations

from typing import Any

import torch

from spikeship.errors import ConfigError
from spikeship.train.pruners.magnitude import (
    SCHEDULE_OPTIONS,
    ScheduledPruner,
    in_range,
    select_extreme,
    zhu_gupta_sparsity,
)


def _per_layer(v: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    text = str(v).strip()
    if not text:
        return out
    for part in text.split(","):
        name, sep, share = part.partition(":")
        if not sep:
            raise ValueError(f"expected index:share, got {part!r}")
        x = float(share)
        if not 0.0 <= x < 1.0:
            raise ValueError(f"share {x} of layer {name} must be in [0, 1)")
        out[name.strip()] = x
    return out


def l1_filter_scores(weight: torch.Tensor) -> torch.Tensor:
    """``s_j = sum |W_j|`` per output unit (Li et al. 2017, Sec. 3.1)."""
    return weight.detach().abs().reshape(weight.shape[0], -1).sum(1)


class L1FilterPruner(ScheduledPruner):
    """``--prune l1-filter``: see the module docstring."""

    name = "l1-filter"
    OPTIONS = {
        **SCHEDULE_OPTIONS,
        "start": (in_range(float, 0, 1e9), 5.0, "epoch (completed) of the pruning step"),
        "end": (in_range(float, 0, 1e9), 5.0, "epoch of the last step (= start: one shot)"),
        "conv": (in_range(float, 0.0, 1.0, hi_open=True), 0.5, "share of conv filters removed"),
        "fc": (in_range(float, 0.0, 1.0, hi_open=True), 0.0,
               "share of hidden FC neurons removed"),
        "layers": (_per_layer, {}, "per-layer shares 'index:share,...' (override conv / fc)"),
        "weights": (_per_layer, {}, "per-FC-layer share of single weights removed by "
                                    "magnitude 'index:share,...'"),
    }

    def attach(self, model, masks, layers, ann=False):
        super().attach(model, masks, layers, ann)
        for key in ("layers", "weights"):
            for name in self.opts[key]:
                if name not in self.masks.layers:
                    raise ConfigError(f"pruner 'l1-filter': {key}= names layer {name}, which is "
                                      f"not a prunable layer (those are "
                                      f"{', '.join(self.masks.layers)})")
        for name in self.opts["weights"]:
            li = self.masks.layers[name]
            if li.kind != "fc":
                raise ConfigError(f"pruner 'l1-filter': weights= names layer {name}, a "
                                  f"{li.kind} layer; single weights are removed only in fully "
                                  f"connected layers (a conv kernel keeps its zeros on Lava: "
                                  f"prune its channels with layers= instead)")

    def share(self, name: str) -> float:
        li = self.masks.layers[name]
        if name in self.opts["layers"]:
            return self.opts["layers"][name]
        return self.opts["conv"] if li.kind == "conv" else self.opts["fc"]

    def update(self, tau: float) -> None:
        o = self.opts
        progress = zhu_gupta_sparsity(tau, 0.0, 1.0, o["start"], o["end"])
        for name, li in self.masks.layers.items():
            if li.is_output:
                continue
            remove = round(self.share(name) * progress * li.out_units)
            alive = self.masks.units[name]
            excess = int(alive.sum()) - (li.out_units - remove)
            if excess > 0:
                sel = select_extreme(l1_filter_scores(self.weight(name)).unsqueeze(0),
                                     alive.unsqueeze(0), torch.tensor([excess]))[0]
                self.masks.prune_units(name, sel)
        for name, share in self.opts["weights"].items():
            eff = self.masks.effective(name)
            structural = self._structural_count(name)
            keep = round((1.0 - share * progress) * structural)
            excess = int(eff.sum()) - keep
            if excess > 0:
                score = self.weight(name).detach().abs()
                sel = select_extreme(score.reshape(1, -1), eff.reshape(1, -1),
                                     torch.tensor([excess]))
                self.masks.prune_weights(name, sel.view_as(eff))

    def _structural_count(self, name: str) -> int:
        """Weights of ``name`` between units that are still alive (rows x columns)."""
        li = self.masks.layers[name]
        rows = int(self.masks.units[name].sum())
        per_row = self.masks.weight[name][0].numel()
        if li.producer is not None:
            per_row = int(self.masks.units[li.producer].sum()) * li.in_block
        return rows * per_row

    def epoch_metrics(self, epoch: int) -> dict[str, Any]:
        m = super().epoch_metrics(epoch)
        for c in self.masks.counts():
            m["layers"][c.name].update(units_remaining=c.units_remaining,
                                       units_total=c.units_total)
        return m

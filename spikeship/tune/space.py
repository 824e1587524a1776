"""The search space: DPAP's per-layer budgets at one cut of a trained dense run.

A point is, per prunable layer of the dense run, the share of its units removed at
the cut (conv layers: channels, ranked by filter L1 norm, ``unit_budgets``) or the
share of its synapses removed (hidden FC layers, lowest F_BCM first,
``synapse_budgets``), and the length of the pruned run (``epochs``: the cut at the end
of epoch 1 at the restarted learning rate, then fine-tuning). Every other option is
DPAP's default (``preset=chip``), so a point is exactly ``--prune dpap`` with the
options of :meth:`Budgets.prune_options` and ``--init-from`` the dense run. Shares
move in steps of 0.05 (a budget finer than that is below digits' noise and only makes
TPE's densities flatter). The output layer keeps its units and synapses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spikeship.errors import ConfigError
from spikeship.train.pruners.dpap_config import PRESETS

STEP = 0.05
MAX_UNIT_SHARE = 0.9       # a conv layer keeps at least a tenth of its channels
MAX_SYNAPSE_SHARE = 0.95   # a hidden FC layer keeps at least 5 % of its synapses
CUT_EPOCH = 1              # the cut after one epoch of statistics from the trained run


@dataclass(frozen=True)
class Layer:
    """A prunable layer of the dense run: its Sequential index and kind."""

    name: str
    kind: str          # "conv" | "fc"
    first: bool
    output: bool


@dataclass(frozen=True)
class Budgets:
    """One point: ``units`` {conv layer: share of channels removed}, ``synapses``
    {hidden FC layer: share of synapses removed}, ``epochs`` of the pruned run."""

    units: Mapping[str, float]
    synapses: Mapping[str, float]
    epochs: int

    def prune_options(self) -> dict[str, object]:
        """The DPAP options of this point (``--prune-opt KEY=VALUE``)."""
        opts: dict[str, object] = {"preset": "chip", "cut_epoch": CUT_EPOCH}
        if self.units:
            opts["unit_budgets"] = _shares(self.units)
        if self.synapses:
            opts["synapse_budgets"] = _shares(self.synapses)
        return opts

    def prune_opt_string(self) -> str:
        """The command-line form: ``--prune dpap --epochs E --prune-opt ...``."""
        opts = " ".join(f"--prune-opt {k}={v}" for k, v in self.prune_options().items())
        return f"--prune dpap --epochs {self.epochs} {opts}"

    def to_json(self) -> dict[str, object]:
        return {"units": dict(self.units), "synapses": dict(self.synapses),
                "epochs": self.epochs}

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Budgets:
        return cls(dict(d["units"]), dict(d["synapses"]), int(d["epochs"]))


def _shares(d: Mapping[str, float]) -> str:
    return ",".join(f"{k}:{round(v, 4):g}" for k, v in d.items())


def searched_layers(layers: Sequence[Layer]) -> tuple[list[Layer], list[Layer]]:
    """(conv layers whose channels are budgeted, hidden FC layers whose synapses are)."""
    convs = [la for la in layers if la.kind == "conv"]
    fcs = [la for la in layers if la.kind == "fc" and not la.output]
    if not convs and not fcs:
        raise ConfigError("the dense run has no conv or hidden FC layer to prune")
    return convs, fcs


def suggest(trial, layers: Sequence[Layer], epochs: tuple[int, int]) -> Budgets:
    """The point Optuna's sampler proposes for ``trial`` (parameter names ``units_<i>``,
    ``synapses_<i>``, ``epochs``)."""
    convs, fcs = searched_layers(layers)
    units = {la.name: trial.suggest_float(f"units_{la.name}", 0.0, MAX_UNIT_SHARE, step=STEP)
             for la in convs}
    synapses = {la.name: trial.suggest_float(f"synapses_{la.name}", 0.0, MAX_SYNAPSE_SHARE,
                                             step=STEP) for la in fcs}
    return Budgets(units, synapses, trial.suggest_int("epochs", *epochs))


def from_params(params: Mapping[str, float], layers: Sequence[Layer]) -> Budgets:
    """The point of a finished trial's ``params``."""
    convs, fcs = searched_layers(layers)
    return Budgets({la.name: float(params[f"units_{la.name}"]) for la in convs},
                   {la.name: float(params[f"synapses_{la.name}"]) for la in fcs},
                   int(params["epochs"]))


def preset_budgets(name: str, layers: Sequence[Layer], epochs: int) -> Budgets:
    """DPAP's preset ``name`` (``chip``, ``deep``) in this space: its first-layer, conv
    and FC shares per layer, with ``epochs`` for the pruned run."""
    p = PRESETS[name]
    convs, fcs = searched_layers(layers)
    units = {la.name: float(p["unit_budget_first"] if la.first and p["unit_budget_first"] < 1
                            else p["unit_budget_conv"]) for la in convs}
    return Budgets(units, {la.name: float(p["synapse_budget_fc"]) for la in fcs}, epochs)


def params_of(b: Budgets) -> dict[str, float]:
    """``b`` as trial parameters (for ``study.enqueue_trial``)."""
    return {**{f"units_{k}": v for k, v in b.units.items()},
            **{f"synapses_{k}": v for k, v in b.synapses.items()}, "epochs": b.epochs}

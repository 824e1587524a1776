"""Baselines: gradual magnitude pruning (Zhu & Gupta 2017) and random pruning.

Zhu & Gupta, "To prune, or not to prune" (2017), Eq 1: the sparsity at time ``t``
rises from ``s_i`` to ``s_f`` along a cubic that prunes fast early and slowly late::

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0))**3,   t_0 <= t <= t_end
    s(t) = s_i before t_0,  s_f after t_end

Time ``t`` counts training epochs completed (fractional when the masks are updated
every K batches). At every update the smallest-magnitude active weights are
pruned until the sparsity of the prunable weights reaches ``s(t)``: over all
prunable layers at once (``scope=global``, one threshold) or in every layer
(``scope=layer``). Pruned weights never come back. ``random`` prunes uniformly
random active weights instead, on the same schedule: the sanity floor.

This module also holds what every scheduled pruner shares (:class:`ScheduledPruner`):
option parsing (``--prune-opt key=value`` strings, unknown key -> ``ConfigError``),
the training clock, and the update interval (every epoch or every K batches).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from spikeship.errors import ConfigError
from spikeship.train.pruners.base import Pruner
from spikeship.train.pruners.cost import SynopsMeter, first_input_shape
from spikeship.train.pruners.schedule import zhu_gupta_sparsity


# ---- pure functions --------------------------------------------------------------
def select_extreme(scores: torch.Tensor, candidates: torch.Tensor, counts: torch.Tensor,
                   largest: bool = False) -> torch.Tensor:
    """Per row of ``scores`` (R, K), mark the ``counts[r]`` smallest (or largest) candidates.

    Non-candidates are never selected; a row with fewer candidates than asked
    gets all of them. Ties go to the lower index (stable sort), so the choice is
    deterministic. Returns a bool (R, K) mask.
    """
    s = scores.to(torch.float64).clone()
    s = -s if largest else s
    s[~candidates] = math.inf
    order = torch.sort(s, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
    n = torch.minimum(counts.to(torch.int64), candidates.sum(1))
    return (rank < n.unsqueeze(1)) & candidates


# ---- options ---------------------------------------------------------------------
def _interval(v: Any) -> str | int:
    if v == "epoch":
        return "epoch"
    k = int(v)
    if k < 1:
        raise ValueError("must be 'epoch' or a number of batches >= 1")
    return k


def choice(*allowed: str) -> Callable[[Any], str]:
    """An option parser accepting one of ``allowed`` strings."""
    def parse(v: Any) -> str:
        if str(v) not in allowed:
            raise ValueError(f"must be one of {list(allowed)}")
        return str(v)
    return parse


def in_range(kind: type, lo: float, hi: float, lo_open: bool = False,
             hi_open: bool = False) -> Callable[[Any], Any]:
    """An option parser converting to ``kind`` and checking ``lo <= v <= hi``."""
    def parse(v: Any) -> Any:
        x = kind(v)
        if x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi):
            lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
            raise ValueError(f"must be in {lb}{lo}, {hi}{rb}")
        return x
    return parse


def parse_options(pruner: str, spec: dict[str, tuple[Callable[[Any], Any], Any, str]],
                  given: dict[str, Any]) -> dict[str, Any]:
    """Validate ``given`` against ``spec`` (name -> (parser, default, help)).

    Values may be strings (from ``--prune-opt key=value``) or already typed.
    Raises :class:`ConfigError` naming an unknown key or a bad value.
    """
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(f"pruner '{pruner}': unknown option(s) {unknown}; "
                          f"known: {sorted(spec)}")
    out = {}
    for key, (parse, default, _help) in spec.items():
        if key not in given:
            out[key] = default
            continue
        try:
            out[key] = parse(given[key])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"pruner '{pruner}': option {key}={given[key]!r} is invalid: "
                              f"{e}") from e
    return out


SCHEDULE_OPTIONS = {
    "start": (in_range(float, 0, 1e9), 1.0, "epoch (completed) of the first mask update"),
    "end": (in_range(float, 0, 1e9), 10.0, "epoch (completed) of the last schedule step"),
    "interval": (_interval, "epoch", "'epoch' or K: update masks every K batches"),
}


# ---- the shared shell ------------------------------------------------------------
class ScheduledPruner(Pruner):
    """A pruner that updates masks on a clock: every epoch, or every ``interval`` batches.

    Time ``tau`` is in epochs completed: after epoch ``e`` it is ``e``; after batch
    ``k`` of epoch ``e`` it is ``e - 1 + k / n_batches`` (during the very first
    epoch the batch count is not known yet, so ``tau = 0`` there). Subclasses
    implement :meth:`update` and :meth:`epoch_metrics`.
    """

    OPTIONS: dict[str, tuple[Callable[[Any], Any], Any, str]] = dict(SCHEDULE_OPTIONS)

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.opts = parse_options(self.name, self.OPTIONS, self.options)
        if self.opts["end"] < self.opts["start"]:
            raise ConfigError(f"pruner '{self.name}': end={self.opts['end']} is before "
                              f"start={self.opts['start']}")
        self._epochs_done = 0
        self._batch = 0           # batches seen in the current epoch
        self._step = 0            # batches seen in total
        self._batches_per_epoch: int | None = None
        self._pending: tuple | None = None  # state loaded before attach()

    # -- hooks ---------------------------------------------------------------------
    def after_batch(self) -> None:
        self._batch += 1
        self._step += 1
        k = self.opts["interval"]
        if k != "epoch" and self._step % k == 0:
            bpe = self._batches_per_epoch
            tau = self._epochs_done + (self._batch / bpe if bpe else 0.0)
            self._maybe_update(tau)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        if self._batch:
            self._batches_per_epoch = self._batch
        self._epochs_done, self._batch = epoch, 0
        if self.opts["interval"] == "epoch":
            self._maybe_update(float(epoch))
        return self.epoch_metrics(epoch)

    def _maybe_update(self, tau: float) -> None:
        if tau + 1e-9 >= self.opts["start"]:
            self.update(tau)
            self.masks.apply()  # zero at once; the trainer zeroes optimizer moments next

    # -- subclass API --------------------------------------------------------------
    def update(self, tau: float) -> None:
        """Change the masks at time ``tau`` (epochs)."""
        raise NotImplementedError

    def epoch_metrics(self, epoch: int) -> dict[str, Any]:
        """JSON-able metrics of the epoch just finished."""
        return {"connectivity_pct": 100.0 * (1.0 - self.masks.pruning_rate()),
                "layers": {c.name: {"connectivity_pct": 100.0 * c.synapses_remaining
                                    / c.synapses_total,
                                    "synapses_remaining": c.synapses_remaining}
                           for c in self.masks.counts()}}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"epochs_done": self._epochs_done, "batch": self._batch,
                    "step": self._step, "batches_per_epoch": self._batches_per_epoch}

    def attach(self, model, masks, layers, ann=False):
        super().attach(model, masks, layers, ann)
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None:
            self.load_state(*pending)

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore :meth:`state`; before :meth:`attach` it is kept and applied on attach."""
        if self.masks is None:
            self._pending = (tensors, meta)
            return
        self._epochs_done = int(meta.get("epochs_done", 0))
        self._batch = int(meta.get("batch", 0))
        self._step = int(meta.get("step", 0))
        self._batches_per_epoch = meta.get("batches_per_epoch")

    # -- helpers -------------------------------------------------------------------
    def weight(self, name: str) -> torch.Tensor:
        """The weight tensor of prunable layer ``name``."""
        return self.model[int(name)].weight


class MagnitudePruner(ScheduledPruner):
    """``--prune magnitude``: gradual magnitude pruning to ``target`` sparsity.

    Options: ``target`` (final sparsity s_f, default 0.7), ``initial`` (s_i, 0),
    ``scope`` (``global`` | ``layer``), ``start``/``end`` (epochs, defaults 1 and
    10), ``interval`` (``epoch`` or K batches).

    ``granularity=channel``: prune whole units (conv channels, hidden FC neurons; never
    the classes) instead of weights: in every non-output layer the ``s(t)`` share of
    its units with the smallest L2 norm of incoming weights (scaled by
    ``1/sqrt(fan-in)``) is removed, with their outgoing weights.

    ``objective=synops``: decisions weighted by the on-chip cost of each entry,
    measured from the spikes of training (:class:`~spikeship.train.pruners.cost.SynopsMeter`,
    counted as the energy estimator counts): a weight's (unit's) score is its magnitude
    divided by ``(cost / mean cost in its layer) ** cost_power`` (ratio clipped to
    [1/4, 4]), so of two equally small weights
    the one that performs more operations goes first. ``target`` stays a share of
    weights (units), so the objective changes *which* entries go, not how many.
    """

    name = "magnitude"
    OPTIONS = {
        **SCHEDULE_OPTIONS,
        "target": (in_range(float, 0.0, 1.0, hi_open=True), 0.7, "final sparsity s_f"),
        "initial": (in_range(float, 0.0, 1.0, hi_open=True), 0.0, "initial sparsity s_i"),
        "scope": (choice("global", "layer"), "global", "one threshold for all layers, or per layer"),
        "granularity": (choice("weight", "channel"), "weight",
                        "prune single weights, or whole units (conv channels / FC neurons)"),
        "objective": (choice("params", "synops"), "params",
                      "rank by magnitude, or by magnitude per measured synaptic operation"),
        "cost_power": (in_range(float, 0.0, 10.0), 1.0, "exponent of the cost weighting"),
    }

    def attach(self, model, masks, layers, ann=False):
        self.meter = None
        if self.opts.get("objective") == "synops":
            self.meter = SynopsMeter()
            self.meter.attach(model, layers, first_input_shape(model, layers))
        super().attach(model, masks, layers, ann)

    def detach(self) -> None:
        if getattr(self, "meter", None) is not None:
            self.meter.detach()

    def reducible_stats(self) -> dict[str, torch.Tensor]:
        return self.meter.reducible_stats() if getattr(self, "meter", None) else {}

    def _maybe_update(self, tau: float) -> None:
        super()._maybe_update(tau)
        if getattr(self, "meter", None) is not None and tau + 1e-9 >= self.opts["start"]:
            self.meter.reset()            # costs of the next interval: the network changed

    def state(self):
        tensors, meta = super().state()
        if getattr(self, "meter", None) is not None:
            tensors.update(self.meter.state())
        return tensors, meta

    def load_state(self, tensors, meta):
        super().load_state(tensors, meta)
        if self.masks is not None and getattr(self, "meter", None) is not None:
            self.meter.load_state(tensors)

    def _cost_weight(self, cost: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """``(mean cost / cost) ** power`` over ``alive`` (the keep-score multiplier),
        the ratio clipped to ``[1/4, 4]`` (an entry that costs nothing is kept 4x
        more readily, not infinitely)."""
        vals = cost[alive]
        m = float(vals.mean()) if vals.numel() else 0.0
        if m <= 0:
            return torch.ones_like(cost, dtype=torch.float64)
        rel = (cost.to(torch.float64) / m).clamp(0.25, 4.0)
        return rel ** (-self.opts["cost_power"])

    def scores(self, name: str) -> torch.Tensor:
        """Keep-scores of layer ``name``'s weights: the smallest are pruned first."""
        score = self.weight(name).detach().abs()
        if getattr(self, "meter", None) is not None:
            cost = self.meter.synapse_cost(name).to(score.device)
            if float(cost.sum()) > 0:
                eff = self.masks.effective(name)
                score = score.to(torch.float64) * self._cost_weight(cost, eff)
        return score

    def unit_scores(self, name: str, costs=None) -> torch.Tensor:
        """Keep-scores of layer ``name``'s units (channel granularity)."""
        w = self.weight(name).detach()
        fan_in = w[0].numel()
        score = w.reshape(w.shape[0], -1).norm(dim=1).to(torch.float64) / math.sqrt(fan_in)
        if costs is not None:
            score = score * self._cost_weight(costs[name]["unit"].to(score.device),
                                              self.masks.units[name])
        return score

    def update(self, tau: float) -> None:
        o = self.opts
        s = zhu_gupta_sparsity(tau, o["initial"], o["target"], o["start"], o["end"])
        if o["granularity"] == "channel":
            self._update_units(s)
            return
        names = list(self.masks.layers)
        effs = {n: self.masks.effective(n) for n in names}
        if o["scope"] == "layer":
            for n in names:
                keep = round((1.0 - s) * effs[n].numel())
                self._prune_to(n, effs[n], self.scores(n), keep)
            return
        # global: concatenate every layer, select once, split back
        total = sum(e.numel() for e in effs.values())
        keep = round((1.0 - s) * total)
        active = torch.cat([effs[n].reshape(-1) for n in names])
        excess = int(active.sum()) - keep
        if excess <= 0:
            return
        score = torch.cat([self.scores(n).reshape(-1).to(torch.float64) for n in names])
        sel = select_extreme(score.unsqueeze(0), active.unsqueeze(0),
                             torch.tensor([excess]))[0]
        offset = 0
        for n in names:
            k = effs[n].numel()
            self.masks.prune_weights(n, sel[offset:offset + k].view_as(effs[n]))
            offset += k

    def _update_units(self, s: float) -> None:
        costs = None
        if getattr(self, "meter", None) is not None and float(
                sum(v.sum() for v in self.meter.t.values())) > 0:
            costs = self.meter.layer_costs(self.masks)
        for name, li in self.masks.layers.items():
            if li.is_output:
                continue
            alive = self.masks.units[name]
            keep = max(1, round((1.0 - s) * li.out_units))
            excess = int(alive.sum()) - keep
            if excess > 0:
                sel = select_extreme(self.unit_scores(name, costs).unsqueeze(0),
                                     alive.unsqueeze(0), torch.tensor([excess]))[0]
                self.masks.prune_units(name, sel)

    def _prune_to(self, name: str, eff: torch.Tensor, score: torch.Tensor, keep: int) -> None:
        excess = int(eff.sum()) - keep
        if excess > 0:
            sel = select_extreme(score.reshape(1, -1), eff.reshape(1, -1),
                                 torch.tensor([excess]))
            self.masks.prune_weights(name, sel.view_as(eff))

    def epoch_metrics(self, epoch: int) -> dict[str, Any]:
        o = self.opts
        m = super().epoch_metrics(epoch)
        m["target_sparsity"] = zhu_gupta_sparsity(float(epoch), o["initial"], o["target"],
                                                  o["start"], o["end"])
        return m


class RandomPruner(MagnitudePruner):
    """``--prune random``: prune uniformly random active weights on the Zhu & Gupta schedule.

    Same options as ``magnitude`` plus ``seed`` (its own RNG, saved for resume).
    """

    name = "random"
    OPTIONS = {**MagnitudePruner.OPTIONS,
               "seed": (int, 0, "seed of the pruner's own random generator")}

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.generator = torch.Generator().manual_seed(self.opts["seed"])

    def scores(self, name: str) -> torch.Tensor:
        w = self.weight(name)
        return torch.rand(w.shape, generator=self.generator, dtype=torch.float64)

    def state(self):
        tensors, meta = super().state()
        tensors["rng"] = self.generator.get_state()
        return tensors, meta

    def load_state(self, tensors, meta):
        super().load_state(tensors, meta)
        if self.masks is not None and "rng" in tensors:
            self.generator.set_state(tensors["rng"].to(torch.uint8))

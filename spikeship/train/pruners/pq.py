"""PQ-index dynamic structure learning: prune and regrow while training.

Two stages at every mask update (Shen, Xu, Pan, Chen, "Improving the sparse
structure learning of SNNs from the view of compression efficiency"; the
formulas are those of Diao et al., "Pruning deep neural networks from a sparsity
perspective", ICLR 2023):

Stage 1, how many connections to rewire. Over the ``d`` active weights ``w`` of
a layer (``pq-layer``) or of one output neuron / channel (``pq-neuron``), the PQ
index (Diao et al., Definition 1), ``0 < p < q``::

    I(w) = 1 - d**(1/q - 1/p) * ||w||_p / ||w||_q          in [0, 1), larger = sparser

bounds the number of weights worth keeping (Diao et al., Sec. 3, Algorithm 1 "SAP")::

    r = ceil(d * (1 + eta_r)**(-q/(q-p)) * (1 - I(w))**(q*p/(q-p)))

and the rewiring count is ``c = floor(d * clamp(gamma * (1 - r/d), 0, beta))``.

Stage 2, rewire: prune the ``c`` active weights of smallest magnitude, then regrow
``g = round(c * f(tau))`` inactive connections: those with the largest accumulated
dense gradient ``|sum_batches dL/dw|`` since the last update (RigL, Evci et al.
2020, default) or uniformly random ones (SET, Mocanu et al. 2018). The regrow
fraction decays with a cosine (RigL Eq 1)::

    f(tau) = f_0 / 2 * (1 + cos(pi * (tau - start) / (end - start)))

so early updates mostly rewire and later ones mostly prune; after ``end`` the
masks are frozen and connectivity has settled. Regrown weights start at zero
(and with zero optimizer moments). A just-pruned connection is not a regrowth
candidate in the same update, nor is any connection of a structurally removed
unit (``masks.units``: its row, or its outgoing columns in the consumer layer).
So the first update of a dense layer only prunes (nothing inactive to regrow yet).
No rewinding and no separate retraining: all of it happens inside training.

``objective=synops`` (aim at what the chip pays for): a
:class:`~spikeship.train.pruners.cost.SynopsMeter` measures, from the training batches'
spikes since the last update, the operations ``k_e`` every synapse ``e`` performs on
the chip (presynaptic spikes x the positions the weight entry is used at, counted as the
energy estimator counts; for an inactive entry, what it would perform).
Let ``kbar`` be the mean of ``k_e`` over the active synapses of all prunable layers, and
for a group ``G`` (the layer for ``pq-layer``, one output neuron / channel's row for
``pq-neuron``) ``kbar_G`` the mean over its active synapses. ``clip`` bounds a ratio to
``[1/cost_cap, cost_cap]``; ``a = cost_power``. Then::

    rho_G = clip(kbar_G / kbar) ** a          the group's share of operations divided
                                              by its share of active weights
    c_G   = floor(d * clamp(gamma * rho_G * (1 - r/d), 0, beta))       (stage 1)
    rho_e = clip(k_e / kbar_G) ** a
    prune the c_G active e with the smallest |w_e| / rho_e             (stage 2)
    regrow (gradient) the g_G inactive e with the largest |dL/dw_e| / rho_e

``I(w)`` and ``r`` are unchanged; the cost scales ``gamma`` per group and reweights the
within-group ranking, so regrowth prefers connections that reduce the loss more per
operation. ``objective=params`` (default) is ``rho = 1`` everywhere, as is a group not
measured yet. PQ removes weights, not units, so unit costs are not used. Data-parallel
runs sum the costs across workers at epoch ends (``reducible_stats``). Why ``cost_cap``
defaults to 2: ``docs/pruning-decisions.md``.
"""

from __future__ import annotations

from typing import Any

import torch

from spikeship.errors import CheckpointError
from spikeship.train.pruners.cost import SynopsMeter, first_input_shape
from spikeship.train.pruners.pq_criteria import (
    check_pq,
    pq_index,
    regrow_fraction,
    sap_keep,
    sap_prune_count,
    structurally_allowed,
)
from spikeship.train.pruners.magnitude import (
    SCHEDULE_OPTIONS,
    ScheduledPruner,
    choice,
    in_range,
    select_extreme,
)


# ---- the pruners -----------------------------------------------------------------
class PQPruner(ScheduledPruner):
    """PQ-index prune + regrow; ``granularity`` is ``"layer"`` or ``"neuron"``.

    Options (``--prune-opt key=value``): ``p`` (0.5), ``q`` (1.0), ``eta_r`` (0.0),
    ``gamma`` (1.0), ``beta`` (0.9) of SAP; ``regrow`` (``gradient`` = RigL |
    ``random`` = SET); ``regrow_fraction`` (f_0, 1.0); ``start``/``end`` (epochs,
    1 and 10: updates happen for ``start <= tau <= end``); ``interval`` (``epoch``
    or K batches); ``seed`` (RNG of ``random`` regrowth).
    """

    name = "pq"
    granularity = "layer"
    OPTIONS = {
        **SCHEDULE_OPTIONS,
        "p": (float, 0.5, "PQ index p (0 < p < q)"),
        "q": (float, 1.0, "PQ index q"),
        "eta_r": (in_range(float, 0.0, 1e9), 0.0, "SAP eta_r"),
        "gamma": (in_range(float, 0.0, 1e9), 1.0, "SAP gamma"),
        "beta": (in_range(float, 0.0, 1.0), 0.9, "SAP beta: max share rewired per update"),
        "regrow": (choice("gradient", "random"), "gradient", "RigL (gradient) or SET (random)"),
        "regrow_fraction": (in_range(float, 0.0, 1.0), 1.0, "f_0: share of c regrown at start"),
        "seed": (int, 0, "seed of the random regrowth generator"),
        "objective": (choice("params", "synops"), "params",
                      "PQ on weights as they are, or weighted by measured synaptic operations"),
        "cost_power": (in_range(float, 0.0, 10.0), 1.0, "exponent a of the cost ratios"),
        "cost_cap": (in_range(float, 1.0, 1e3), 2.0, "cost ratios clipped to [1/cap, cap]"),
    }

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        check_pq(self.opts["p"], self.opts["q"])
        self.generator = torch.Generator().manual_seed(self.opts["seed"])
        self._grad: dict[str, torch.Tensor] = {}
        self._epoch_log: dict[str, dict[str, float]] = {}
        self._last_fraction: float | None = None
        self._updates = 0
        self.meter = None                 # a SynopsMeter with objective=synops (attach)
        self._rho_log: dict[str, float] = {}

    def attach(self, model, masks, layers, ann=False):
        self.model, self.masks = model, masks
        self.meter = None
        self._rho_log: dict[str, float] = {}
        if self.opts["objective"] == "synops":
            self.meter = SynopsMeter()
            self.meter.attach(model, layers, first_input_shape(model, layers))
        if self.opts["regrow"] == "gradient":
            self._grad = {n: torch.zeros_like(self.weight(n), dtype=torch.float32)
                          for n in masks.layers}
        self._reset_log()
        super().attach(model, masks, layers, ann)  # applies a state loaded before attach

    def _reset_log(self) -> None:
        self._epoch_log = {n: {"pruned": 0, "regrown": 0} for n in self.masks.layers}
        self._updates = 0

    # -- hooks ---------------------------------------------------------------------
    def after_backward(self) -> None:
        for n, acc in self._grad.items():
            g = self.weight(n).grad
            if g is not None:
                acc.add_(g.detach())

    def detach(self) -> None:
        if getattr(self, "meter", None) is not None:
            self.meter.detach()

    def reducible_stats(self) -> dict[str, torch.Tensor]:
        """The cost meter's sums (``objective=synops``), else nothing: the accumulated
        gradient is summed from gradients the trainer has already all-reduced across
        data-parallel workers before ``after_backward`` (:mod:`spikeship.train.distributed`),
        so it is the same on every worker."""
        return self.meter.reducible_stats() if getattr(self, "meter", None) else {}

    def _maybe_update(self, tau: float) -> None:
        if tau + 1e-9 >= self.opts["start"] and tau <= self.opts["end"] + 1e-9:
            self.update(tau)
            self.masks.apply()
            if self.meter is not None:
                self.meter.reset()        # the next update prices the network it leaves

    # -- on-chip cost (objective=synops) -------------------------------------------
    def synapse_costs(self) -> dict[str, torch.Tensor] | None:
        """``k_e`` of every layer (weight shape, float64), or None without a measurement."""
        if self.meter is None or float(sum(v.sum() for k, v in self.meter.t.items()
                                           if "_act." in k)) <= 0:
            return None
        return {n: self.meter.synapse_cost(n).to(torch.float64).cpu() for n in self.masks.layers}

    def _ratio(self, x: torch.Tensor) -> torch.Tensor:
        cap, a = self.opts["cost_cap"], self.opts["cost_power"]
        return x.clamp(1.0 / cap, cap) ** a

    def cost_weights(self, k: torch.Tensor, active: torch.Tensor,
                     kbar: float) -> tuple[torch.Tensor, torch.Tensor]:
        """On rows ``(R, K)`` of costs ``k``: (``rho_G`` per row, ``rho_e`` per entry)."""
        n = active.sum(1).to(torch.float64)
        kg = (k * active).sum(1) / n.clamp(min=1.0)
        rho_g = torch.where(n > 0, self._ratio(kg / kbar), torch.ones_like(kg))
        ok = kg > 0
        rho_e = torch.where(ok[:, None], self._ratio(k / torch.where(ok, kg, 1.0)[:, None]),
                            torch.ones_like(k))
        return rho_g, rho_e

    # -- the two stages ------------------------------------------------------------
    def rewire_counts(self, w: torch.Tensor, active: torch.Tensor,
                      rho: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1 on rows of ``w`` (R, K): (PQ index per row, rewire count c per row);
        ``rho`` (R,) scales gamma per row (``objective=synops``)."""
        o = self.opts
        index = pq_index(w, o["p"], o["q"], mask=active, dim=1)
        d = active.sum(1)
        r = sap_keep(d, index, o["p"], o["q"], o["eta_r"])
        gamma = o["gamma"] if rho is None else o["gamma"] * rho
        return index, sap_prune_count(d, r, gamma, o["beta"])

    @torch.no_grad()
    def update(self, tau: float) -> None:
        o = self.opts
        f = regrow_fraction(tau, o["start"], o["end"], o["regrow_fraction"])
        self._last_fraction = f
        costs = self.synapse_costs()
        kbar = 0.0
        if costs is not None:
            effs = {n: self.masks.effective(n).cpu() for n in self.masks.layers}
            n_act = sum(int(e.sum()) for e in effs.values())
            kbar = sum(float((costs[n] * effs[n]).sum()) for n in effs) / max(n_act, 1)
        for n in self.masks.layers:
            w = self.weight(n)
            rows = w.shape[0] if self.granularity == "neuron" else 1
            w2 = w.detach().reshape(rows, -1)
            active = self.masks.effective(n).reshape(rows, -1)
            allowed = structurally_allowed(self.masks, n).reshape(rows, -1)
            rho_g, rho_e = None, torch.ones(w2.shape, dtype=torch.float64)
            if costs is not None and kbar > 0:
                rho_g, rho_e = self.cost_weights(costs[n].reshape(rows, -1), active.cpu(), kbar)
                self._rho_log[n] = float((rho_g * active.sum(1).cpu()).sum()
                                         / max(int(active.sum()), 1))
            rho_e = rho_e.to(w2.device)
            _, c = self.rewire_counts(w2, active, None if rho_g is None else rho_g.to(w2.device))
            prune = select_extreme(w2.abs().to(torch.float64) / rho_e, active, c)
            g = torch.floor(c.to(torch.float64) * f + 0.5).to(torch.int64)
            candidates = allowed & ~active & ~prune
            if o["regrow"] == "gradient":
                score = self._grad[n].reshape(rows, -1).abs().to(torch.float64) / rho_e
            else:
                score = torch.rand(w2.shape, generator=self.generator, dtype=torch.float64)
            grow = select_extreme(score, candidates, g, largest=True)
            self.masks.prune_weights(n, prune.view_as(w))
            self.masks.weight[n] |= grow.view_as(w).to(self.masks.weight[n].device)
            w.view(rows, -1)[grow] = 0.0  # regrown weights start at zero
            self._epoch_log[n]["pruned"] += int(prune.sum())
            self._epoch_log[n]["regrown"] += int(grow.sum())
        for acc in self._grad.values():
            acc.zero_()
        self._updates += 1

    # -- reporting and state -------------------------------------------------------
    def epoch_metrics(self, epoch: int) -> dict[str, Any]:
        layers = {}
        for c in self.masks.counts():
            n = c.name
            w = self.weight(n).detach()
            eff = self.masks.effective(n)
            entry = {"connectivity_pct": 100.0 * c.synapses_remaining / c.synapses_total,
                     "synapses_remaining": c.synapses_remaining,
                     "pq_index": float(pq_index(w, self.opts["p"], self.opts["q"], mask=eff)),
                     **self._epoch_log[n]}
            if self.granularity == "neuron":
                rows_eff = eff.reshape(eff.shape[0], -1)
                per = pq_index(w.reshape(w.shape[0], -1), self.opts["p"], self.opts["q"],
                               mask=rows_eff, dim=1)
                live = rows_eff.any(1)
                entry["pq_index_neuron_mean"] = float(per[live].mean()) if live.any() else 0.0
            if n in self._rho_log:
                entry["cost_rho"] = self._rho_log[n]   # weight-averaged rho_G, last update
            layers[n] = entry
        out = {"connectivity_pct": 100.0 * (1.0 - self.masks.pruning_rate()),
               "objective": self.opts["objective"],
               "updates": self._updates, "regrow_fraction": self._last_fraction,
               "rewired": sum(v["pruned"] for v in self._epoch_log.values()),
               "regrown": sum(v["regrown"] for v in self._epoch_log.values()),
               "layers": layers}
        self._reset_log()
        return out

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state()
        tensors["rng"] = self.generator.get_state()
        tensors.update({f"grad.{n}": t.contiguous() for n, t in self._grad.items()})
        meta["last_fraction"] = self._last_fraction
        meta["epoch_log"] = self._epoch_log
        meta["updates"] = self._updates
        if self.meter is not None:
            tensors.update(self.meter.state())
            meta["cost_rho"] = self._rho_log
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        if self.masks is None:
            return
        if "rng" in tensors:
            self.generator.set_state(tensors["rng"].to(torch.uint8))
        for n in self._grad:
            key = f"grad.{n}"
            if key in tensors:
                if tuple(tensors[key].shape) != tuple(self._grad[n].shape):
                    raise CheckpointError(f"pruner state {key} has shape {tuple(tensors[key].shape)}"
                                      f", the model needs {tuple(self._grad[n].shape)}")
                self._grad[n].copy_(tensors[key])
        self._last_fraction = meta.get("last_fraction")
        if "epoch_log" in meta:
            self._epoch_log = {n: dict(v) for n, v in meta["epoch_log"].items()}
        self._updates = int(meta.get("updates", 0))
        if self.meter is not None:
            self.meter.load_state(tensors)
            self._rho_log = dict(meta.get("cost_rho", {}))


class PQLayerPruner(PQPruner):
    """``--prune pq-layer``: one PQ index and one rewiring count per layer."""

    name = "pq-layer"
    granularity = "layer"


class PQNeuronPruner(PQPruner):
    """``--prune pq-neuron``: one PQ index and rewiring count per output neuron / channel."""

    name = "pq-neuron"
    granularity = "neuron"

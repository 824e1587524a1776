"""DPAP: developmental plasticity-inspired adaptive pruning during training.

Han, Zhao, Zeng, Shen, "Developmental Plasticity-inspired Adaptive Pruning for Deep
Spiking and Artificial Neural Networks" (Eq 5-19); the math lives in
:mod:`.dpap_criteria`, the options in :mod:`.dpap_config`, the cut and the budgets in
:mod:`.dpap_cut`.

Per training batch (forward hooks while training; with the fast engine the same
activity arrives as ``(T, B, N)`` tensors through the engine-activity callback):
post-synaptic traces (Eq 5-6; ANN twins Eq 18-19, ``ReLU`` output) of each prunable
layer's neuron, pre-synaptic traces of its input (conv maps summed over H, W, so conv
criteria are ``C_out x C_in``), then Eq 7 with theta of Eq 8-9 (mean post trace over
all samples seen before this batch), summed into the epoch's BCM (Eq 10). ``hebb`` and
``stdp`` replace Eq 7 (the paper's Fig 4H ablations).

Per epoch after the warm-up: spine importance D (Eq 11), survival updates of F_D
(units of every non-output layer) and F_BCM (FC synapses; conv channel pairs with
``conv_synapses``), Eq 12-17; units with F_D < 0 and synapses with F_BCM < 0 are
removed for good through the :class:`~spikeship.train.masks.MaskSet`. Output units are
never removed. In cut mode (the default, ``preset=chip``) nothing is removed by sign:
one survival update (weight 1) ranks every entry at the cut's epoch and each layer is
cut to its budget (:mod:`.dpap_cut`).

Departures from the paper, in the default: BCM weighted by synaptic strength
(``strength``: ``BCM_ij * |w_ij|``), D the row sum of that alone (``spine=synaptic``),
conv channels ranked at the cut by their filters' L1 norm (``cut_rank=l1``, Li et al.
2017); the activity-based D removed the least active channels, whose spikes the
survivors made up for. How each was decided: ``docs/pruning-decisions.md``.

``objective=synops`` scales Eq 12-13's decay value by each entry's measured on-chip
cost relative to its layer's mean, ``r = (cost / mean) ** cost_power`` clipped to
``[0, cost_cap]``: ``delta_ij = 2 Normalized(BCM)_ij - eps * r_ij`` (Eq 12), likewise
for D (Eq 13), a unit's cost being its incoming plus outgoing operations
(:class:`~.cost.SynopsMeter`).

Data-parallel runs: the epoch's criterion sums are all-reducible
(``reducible_stats``) and theta's running sums are all-reduced after every batch, so
every worker takes the decision a single process would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikeship.errors import CheckpointError, ConfigError, ObsoleteCheckpointError
from spikeship.train.distributed import sum_across_workers
from spikeship.train.pruners import dpap_criteria as K
from spikeship.train.pruners.base import Pruner
from spikeship.train.pruners.cost import SynopsMeter, first_input_shape, relative
from spikeship.train.pruners.dpap_activity import LayerActivity
from spikeship.train.pruners.dpap_config import REMOVED, DPAPConfig
from spikeship.train.pruners.dpap_cut import synapses_to_cut, units_to_remove

_SAMPLE_TRAJECTORIES = 8   # pruned synapses whose survival history is reported in full


class DPAPPruner(Pruner):
    """The DPAP pruner (``--prune dpap``); see the module docstring."""

    name = "dpap"

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.config = DPAPConfig.from_options(self.options)
        self.activity = LayerActivity()
        self.t: dict[str, torch.Tensor] = {}    # every persistent tensor, by state key
        self.hist_count = 0
        self.epochs_done = 0
        self.meter: SynopsMeter | None = None
        self.cut = self.config.cut_epoch           # the cut's epoch (cut_at: set_run)

    @classmethod
    def default_epochs(cls, options: dict[str, Any] | None) -> int | None:
        return DPAPConfig.from_options(options).default_epochs or None

    def lr_restart_epoch(self) -> int:
        """``restart_lr`` in cut mode: the schedule restarts with the cut's epoch, so the
        dense phase is a whole dense run and the cut and fine-tuning start afresh."""
        return self.cut if self.config.restart_lr and self.cut > 1 else 0

    def set_run(self, epochs: int) -> None:
        cfg = self.config
        if cfg.cut_epoch > epochs:
            raise ConfigError(f"dpap option cut_epoch={cfg.cut_epoch}: the run ends after "
                              f"{epochs} epochs, before the cut (give --epochs > "
                              f"{cfg.cut_epoch - 1} or a smaller cut_epoch / cut_at)")
        self.cut = cfg.cut_epoch_of(epochs)

    # ---- wiring ---------------------------------------------------------------------
    def attach(self, model: nn.Sequential, masks, layers, ann: bool = False) -> None:
        super().attach(model, masks, layers, ann)
        for li in layers:
            if li.kind == "conv" and model[int(li.name)].groups != 1:
                raise ConfigError(f"dpap: grouped conv (layer {li.name}) is not supported")
        self.activity.attach(model, layers, ann)
        names = {li.name: li for li in layers}
        wanted = set(self.config.layer_synapse_budgets()) | {
            li.name for li in layers if self.config.synapse_share(li.name, li.kind,
                                                                  li.is_output) is not None}
        for n in sorted(wanted):
            if n not in names or not self._prunes_synapses(names[n]):
                raise ConfigError(
                    f"dpap option synapse_budgets names layer {n}: not a layer whose "
                    f"synapses DPAP tracks (prunable layers {sorted(names, key=int)}; conv "
                    f"needs conv_synapses=true, the output layer output_synapses=true)")
        if self.config.objective == "synops":
            self.meter = SynopsMeter()
            self.meter.attach(model, layers, first_input_shape(model, layers))
        self._init_state()

    def engine_activity(self):
        self.detach()
        return self.record_activity

    def record_activity(self, name: str, pre: torch.Tensor, post: torch.Tensor) -> None:
        """The fast engine's activity of layer ``name``, ``(T, B, N)`` each."""
        self.activity.record(name, pre, post)

    def detach(self) -> None:
        self.activity.detach()
        if self.meter is not None:
            self.meter.detach()

    def _pairs_shape(self, name: str) -> tuple[int, int]:
        w = self.model[int(name)].weight
        return int(w.shape[0]), int(w.shape[1])

    def _prunes_synapses(self, li) -> bool:
        if li.kind == "conv":
            return self.config.conv_synapses
        return self.config.output_synapses or not li.is_output

    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        h = self.config.history
        shapes: dict[str, tuple[int, ...]] = {"n_epoch": (), "n_total": ()}
        for li in self.layers:
            pairs, n = self._pairs_shape(li.name), li.out_units
            shapes.update({f"imp_epoch.{li.name}": pairs, f"trace_epoch.{li.name}": (n,),
                           f"trace_total.{li.name}": (n,)})
            if self.config.window == "cumulative":
                shapes[f"imp_total.{li.name}"] = pairs
            if not li.is_output:
                shapes.update({f"f_unit.{li.name}": (n,), f"hist_unit.{li.name}": (h, n)})
            if self._prunes_synapses(li):
                shapes.update({f"f_syn.{li.name}": pairs, f"hist_syn.{li.name}": (h, *pairs)})
        if self.meter is not None:
            shapes.update({k: tuple(v.shape) for k, v in self.meter.t.items()})
        return shapes

    def _init_state(self) -> None:
        dev = next(self.model.parameters()).device
        if self.meter is not None:
            self.t.update(self.meter.t)         # one dict of persistent tensors
        for key, shape in self._expected_shapes().items():
            if key in self.t:
                continue
            dtype = torch.float64 if key.startswith("n_") else torch.float32
            fill = self.config.beta if key.startswith(("f_", "hist_")) else 0.0
            self.t[key] = torch.full(shape, fill, dtype=dtype, device=dev)
        self._reset_theta()

    def batch_traces(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(pre, post) traces of layer ``name`` over the current batch so far (Eq 5-6, 18-19)."""
        act = self.activity.steps[name].activity()
        if act is None:
            return None
        pre, post = act
        return K.final_trace(pre, self.config.tau), K.final_trace(post, self.config.tau)

    # ---- per batch (Eq 7-10) --------------------------------------------------------
    @torch.no_grad()
    def after_batch(self) -> None:
        batch_size = None
        cfg = self.config
        post_sums: dict[str, torch.Tensor] = {}
        for name, st in self.activity.steps.items():
            tr = self.batch_traces(name)
            post_sums[name] = torch.zeros_like(self.t[f"trace_epoch.{name}"])
            if tr is not None:
                pre, post = tr
                imp = self.t[f"imp_epoch.{name}"]
                if cfg.criterion == "bcm":
                    theta = K.theta_from_sums(
                        self.t[f"trace_total.{name}"] + self._theta_epoch[name],
                        self.t["n_total"] + self._theta_n)
                    imp += K.bcm_batch(pre, post, theta)
                elif cfg.criterion == "hebb":
                    imp += K.hebb_batch(pre, post)
                else:
                    imp += K.stdp(*st.activity(), cfg.tau)
                post_sums[name] = post.sum(0)
                self.t[f"trace_epoch.{name}"] += post_sums[name]
                batch_size = post.shape[0]
            st.clear()
        if batch_size is not None:
            self.t["n_epoch"] += batch_size
            if self.meter is not None:
                self.meter.count_samples(batch_size)
        self._add_theta_batch(post_sums, batch_size or 0)

    def _add_theta_batch(self, post_sums: dict[str, torch.Tensor], batch_size: int) -> None:
        """Theta's running sums of this epoch over *every* worker's batches (data-parallel:
        summed across workers after each batch, so every worker uses the same theta; a
        single process: equal to ``trace_epoch`` / ``n_epoch``)."""
        n = torch.tensor([float(batch_size)], dtype=torch.float64,
                         device=self.t["n_epoch"].device)
        sums = list(post_sums.values())
        sum_across_workers([*sums, n], "DPAP theta sums")
        for name, s in post_sums.items():
            self._theta_epoch[name] += s
        self._theta_n += n[0]

    def _reset_theta(self) -> None:
        self._theta_epoch = {li.name: torch.zeros_like(self.t[f"trace_epoch.{li.name}"])
                             for li in self.layers}
        self._theta_n = torch.zeros((), dtype=torch.float64, device=self.t["n_epoch"].device)

    def reducible_stats(self) -> dict[str, torch.Tensor]:
        """This epoch's sums (criterion matrices, post traces, samples), reduced in place."""
        return {k: v for k, v in self.t.items()
                if k.startswith(("imp_epoch.", "trace_epoch.", "cost_")) or k == "n_epoch"}

    # ---- per epoch (Eq 11-17) -------------------------------------------------------
    @torch.no_grad()
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        cfg, t = self.config, self.t
        v = (epoch - 1) * cfg.scale                # 0-based epoch on the paper's clock
        if cfg.cuts and not self.cut:
            raise ConfigError("dpap option cut_at needs the run length (set_run)")
        cut = epoch == self.cut
        # cut mode: one survival update, from the cut epoch's statistics
        active = cut if cfg.cuts else v >= cfg.warmup
        t["n_total"] += t["n_epoch"]
        report: dict[str, Any] = {"criterion": cfg.criterion, "objective": cfg.objective,
                                  "paper_epoch": v, "active": active, "layers": {},
                                  "cut": cut, "cut_epoch": self.cut or None}
        self._costs = None
        if self.meter is not None:
            self._costs = self.meter.layer_costs(self.masks)
            n_s = max(self.meter.samples(), 1.0)
            report["synops_per_sample"] = {k: float(c["synops"]) / n_s
                                           for k, c in self._costs.items()}
        for li in self.layers:
            n = li.name
            t[f"trace_total.{n}"] += t[f"trace_epoch.{n}"]
            if cfg.window == "cumulative":
                t[f"imp_total.{n}"] += t[f"imp_epoch.{n}"]
                imp, tr = t[f"imp_total.{n}"], t[f"trace_total.{n}"]
            else:
                imp, tr = t[f"imp_epoch.{n}"], t[f"trace_epoch.{n}"]
            report["layers"][n] = self._layer_epoch(li, imp, tr, v, active, cut)
        for k in self.reducible_stats():
            t[k].zero_()
        self._reset_theta()
        self.hist_count = min(self.hist_count + 1, cfg.history)
        self.epochs_done = epoch
        report["pruning_rate"] = self.masks.pruning_rate()
        for c in self.masks.counts():
            report["layers"][c.name].update(
                units_total=c.units_total, units_remaining=c.units_remaining,
                synapses_total=c.synapses_total, synapses_remaining=c.synapses_remaining)
        return report

    def _layer_epoch(self, li, imp, tr, v, active, cut) -> dict[str, Any]:
        """Eq 11-17 for layer ``li`` this epoch, then its removals; its report."""
        cfg, n = self.config, li.name
        eta = cfg.kind_params(li.kind)[1]
        if cut:
            weight = 1.0          # one update: only the ranking by F matters
        else:
            weight = cfg.scale * K.decay_weight(v, eta, cfg.warmup, cfg.decay) if active else 0.0
        eff = self.masks.effective(n)
        pairs = eff if eff.dim() == 2 else eff.flatten(2).any(-1)
        units = self.masks.units[n].clone()
        if cfg.strength:
            w = self.model[int(n)].weight.detach().abs().to(imp.dtype)
            imp = imp * (w if w.dim() == 2 else w.flatten(2).sum(-1))
        d = K.spine_importance(imp, tr, cfg.spine, pairs, units)
        d_norm = K.normalise(d, cfg.normalisation, units)
        out: dict[str, Any] = {
            "kind": li.kind, "decay_weight": weight,
            "importance_mean": _mean(d, units), "importance_norm_mean": _mean(d_norm, units),
            "synapse_importance_mean": _mean(imp, pairs),
        }
        eps_syn, eps_unit = self._decay_values(li, pairs, units, imp.device)
        update = weight if active else None
        if self._prunes_synapses(li):
            out.update(self._synapse_epoch(li, imp, eff, pairs, eps_syn, update))
        if not li.is_output:
            out.update(self._unit_epoch(li, d, d_norm, eff, units, eps_unit, update, cut))
        share = cfg.synapse_share(n, li.kind, li.is_output)
        if cut and share is not None:
            eff = self.masks.effective(n)      # after this epoch's unit cut
            pairs = eff if eff.dim() == 2 else eff.flatten(2).any(-1)
            remove = synapses_to_cut(pairs, self.t[f"f_syn.{n}"], imp, share)
            self._prune_pairs(n, eff, remove)
            out["cut_synapses"] = int(remove.sum())
        return out

    def _decay_values(self, li, pairs, units, device):
        """eps of Eq 12-13 for the layer's synapses and units: the kind's eps, scaled by
        each entry's relative on-chip cost with ``objective=synops``."""
        cfg, n = self.config, li.name
        eps = cfg.kind_params(li.kind)[0]
        if self._costs is None:
            return eps, eps
        cs = self._costs[n]["synapse"]
        cs = cs if cs.dim() == 2 else cs.flatten(2).sum(-1)
        return (eps * relative(cs, pairs, cfg.cost_power, cfg.cost_cap).to(device),
                eps * relative(self._costs[n]["unit"], units, cfg.cost_power,
                               cfg.cost_cap).to(device))

    def _survival(self, key: str, x_norm: torch.Tensor, eps, kind: str,
                  weight: float | None) -> torch.Tensor:
        """F of Eq 16-17 after this epoch's update (``weight`` None: no update), pushed
        onto its history."""
        cfg = self.config
        if weight is not None:
            df = K.survival_delta(x_norm, eps, cfg.kind_params(kind)[2])
            self.t[f"f_{key}"] = K.survival_update(self.t[f"f_{key}"], df,
                                                   cfg.gamma ** cfg.scale, weight)
        f = self.t[f"f_{key}"]
        self._push(f"hist_{key}", f)
        return f

    def _synapse_epoch(self, li, imp, eff, pairs, eps, weight) -> dict[str, Any]:
        """F_BCM of the layer's synapses (Eq 12, 14, 16); outside cut mode F < 0 goes."""
        n, cfg = li.name, self.config
        f = self._survival(f"syn.{n}", K.normalise(imp, cfg.normalisation, pairs), eps,
                           li.kind, weight)
        remove = (f < 0) & pairs & (not cfg.cuts)
        out = {"survival_synapse_mean": _mean(f, pairs),
               **self._pruned_synapses_report(n, remove)}
        self._prune_pairs(n, eff, remove)
        return out

    def _unit_epoch(self, li, d, d_norm, eff, units, eps, weight, cut) -> dict[str, Any]:
        """F_D of the layer's units (Eq 13, 15, 17) and the units removed
        (:func:`.dpap_cut.units_to_remove`)."""
        n, cfg = li.name, self.config
        f = self._survival(f"unit.{n}", d_norm, eps, li.kind, weight)
        budget = cfg.unit_budget(n, li.kind, first=n == self.layers[0].name)
        remove = units_to_remove(cfg, self.model[int(n)], li.kind, f, units, eff, d,
                                 budget, cut)
        hist = self._history(f"hist_unit.{n}")
        if bool(remove.any()):
            self.masks.prune_units(n, remove)
        return {"unit_budget": budget, "survival_unit_mean": _mean(f, units),
                "pruned_units": [{"index": int(i), "survival": hist[:, i].tolist()}
                                 for i in torch.nonzero(remove).flatten().tolist()]}

    def _prune_pairs(self, n: str, eff: torch.Tensor, remove: torch.Tensor) -> None:
        """Remove the synapses (FC) or channel-pair kernels (conv) where ``remove``."""
        if bool(remove.any()):
            full = remove if eff.dim() == 2 else remove[:, :, None, None].expand_as(eff)
            self.masks.prune_weights(n, full)

    def _push(self, key: str, value: torch.Tensor) -> None:
        """Append this epoch's survival values to the history buffer (oldest dropped)."""
        h = self.t[key]
        self.t[key] = torch.cat([h[1:], value.unsqueeze(0).to(h.dtype)])

    def _history(self, key: str) -> torch.Tensor:
        """The valid part of a history buffer (after this epoch's push), oldest first."""
        k = min(self.hist_count + 1, self.config.history)
        return self.t[key][-k:]

    def _pruned_synapses_report(self, n: str, remove: torch.Tensor) -> dict[str, Any]:
        idx = torch.nonzero(remove.flatten()).flatten()
        out: dict[str, Any] = {"pruned_synapses": int(idx.numel())}
        if idx.numel():
            hist = self._history(f"hist_syn.{n}").flatten(1)[:, idx]
            out["pruned_synapse_survival_mean"] = hist.mean(1).tolist()
            step = max(1, idx.numel() // _SAMPLE_TRAJECTORIES)
            out["pruned_synapse_survival_sample"] = [
                {"index": int(idx[j]), "survival": hist[:, j].tolist()}
                for j in range(0, idx.numel(), step)][:_SAMPLE_TRAJECTORIES]
        return out

    # ---- persistence ----------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.t.items()}
        meta = {"config": self.config.to_json(), "hist_count": self.hist_count,
                "epochs_done": self.epochs_done}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        saved = meta.get("config", {})
        used = sorted(f"{k}={saved[k]!r}" for k, (inert, _) in REMOVED.items()
                      if k in saved and saved[k] != inert)
        if used:
            raise ObsoleteCheckpointError(f"dpap state was saved with options since removed "
                                          f"({', '.join(used)}); this run cannot be resumed")
        default = DPAPConfig().to_json()           # options newer than the checkpoint
        diff = sorted(k for k, v in self.config.to_json().items()
                      if saved.get(k, default[k]) != v)
        if diff:
            raise CheckpointError(f"dpap state was saved with other options: {diff}")
        if self.model is not None:
            expected = self._expected_shapes()
            if set(tensors) != set(expected):
                raise CheckpointError(
                    f"dpap state does not fit the model: missing "
                    f"{sorted(set(expected) - set(tensors))}, "
                    f"unexpected {sorted(set(tensors) - set(expected))}")
            for k, shape in expected.items():
                if tuple(tensors[k].shape) != shape:
                    raise CheckpointError(f"dpap state {k} has shape "
                                          f"{tuple(tensors[k].shape)}, expected {shape}")
        dev = next(self.model.parameters()).device if self.model is not None else "cpu"
        self.t = {k: v.detach().clone().to(dev) for k, v in tensors.items()}
        if self.meter is not None:
            self.meter.t = {k: self.t[k] for k in self.meter.t}   # share the same tensors
        self.hist_count = int(meta.get("hist_count", 0))
        self.epochs_done = int(meta.get("epochs_done", 0))
        if self.model is not None:
            self._reset_theta()   # saved at an epoch's end: this epoch's sums are zero


def _mean(x: torch.Tensor, alive: torch.Tensor) -> float | None:
    """Mean of ``x`` over ``alive`` (None when nothing is alive)."""
    vals = x[alive]
    return float(vals.mean()) if vals.numel() else None

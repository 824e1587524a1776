"""DPAP's cut and budgets: which units and synapses go, given their survival values.

A layer's unit budget is the share of its units that may be removed in all
(:meth:`~.dpap_config.DPAPConfig.unit_budget`). In the paper's schedule a unit goes
when its F_D < 0 (Eq 16-17); when more are due than the budget allows, the lowest F go
first and the others wait. At the cut (``cut_epoch`` / ``cut_at``) every live unit is
a candidate: exactly the budget goes, lowest rank first whatever the sign of F (rank:
F_D, or for conv channels with ``cut_rank=l1`` the L1 norm of the filter, Li et al.
2017), and ``synapse_share`` of each layer's remaining synapses go, lowest F_BCM first.
Ties are broken by the epoch's importance, then by index.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeship.train.pruners.dpap_config import DPAPConfig


def lowest_first(survival: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Order of entries by survival F, ties (e.g. all still at beta) by importance."""
    by_imp = torch.argsort(importance.double(), stable=True)
    return by_imp[torch.argsort(survival[by_imp].double(), stable=True)]


def within_budget(remove: torch.Tensor, survival: torch.Tensor, alive: torch.Tensor,
                  budget: float, tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """``remove`` limited to at most ``floor(budget * units)`` units of the layer gone in
    all (``alive``: the units still there): the lowest F first, ties by ``tiebreak``."""
    if budget >= 1.0:
        return remove
    allowed = int(budget * alive.numel()) - int((~alive).sum())
    if int(remove.sum()) <= max(allowed, 0):
        return remove
    out = torch.zeros_like(remove)
    if allowed > 0:
        cand = torch.nonzero(remove).flatten()
        ties = torch.zeros_like(survival) if tiebreak is None else tiebreak
        order = lowest_first(survival[cand], ties[cand])
        out[cand[order[:allowed]]] = True
    return out


def units_to_remove(cfg: DPAPConfig, layer: nn.Module, kind: str, f: torch.Tensor,
                    units: torch.Tensor, eff: torch.Tensor, d: torch.Tensor,
                    budget: float, cut: bool) -> torch.Tensor:
    """The units of one layer removed this epoch: at the cut the budget, by rank;
    outside cut mode those with F < 0 within the budget; else none. ``eff``: the
    layer's effective weight mask, ``d``: its spine importance (ties)."""
    if cut and budget < 1.0:
        rank = f
        if cfg.cut_rank == "l1" and kind == "conv":
            w = layer.weight.detach() * eff
            rank = w.abs().flatten(1).sum(1).to(f.dtype)
        return within_budget(units, rank, units, budget, tiebreak=d)
    if cfg.cuts:
        return torch.zeros_like(units)
    return within_budget((f < 0) & units, f, units, budget)


def synapses_to_cut(pairs: torch.Tensor, f_syn: torch.Tensor, imp: torch.Tensor,
                    share: float) -> torch.Tensor:
    """At the cut: ``share`` of the live ``pairs`` (synapses, or conv channel pairs),
    the lowest survival F_BCM first, ties by the epoch's criterion ``imp``."""
    k = int(share * int(pairs.sum()))
    remove = torch.zeros_like(pairs)
    if k > 0:
        cand = torch.nonzero(pairs.flatten()).flatten()
        order = lowest_first(f_syn.flatten()[cand], imp.flatten()[cand])
        remove.view(-1)[cand[order[:k]]] = True
    return remove

"""Vanish check: every pruned synapse and unit is gone from every deployed artifact.

The truth is the checkpoint's masks (:class:`spikeship.train.masks.MaskSet`): per
prunable layer the effective mask ``eff`` (original weight shape, False = pruned
synapse, including every synapse of a removed unit and every outgoing synapse of a
removed producer unit) and the unit mask ``units`` (False = removed unit).

Each artifact is read back from disk (:mod:`spikeship.energy.artifacts`) as a
list of :class:`DeployedLayer`: the stored weight values in the deployed shape,
which entries are *stored as synapses* (a dense tensor stores every entry, a sparse
matrix only its structure, NIR's ``mask`` metadata marks absent entries), the bias,
and the original indices of the rows (``kept_out``) and columns (``kept_in``).

For every pruned synapse ``(o, i)`` that is still addressable (``o`` in ``kept_out``,
``i`` in ``kept_in``) and every removed unit still present, one finding::

    nonzero        value != 0                         (a bug: the pruned synapse acts)
    explicit_zero  value == 0 but stored as a synapse (costs chip memory)
    unit_present   a removed unit still has a row / channel in the artifact
    unit_fired     a removed unit spiked in a simulation of the artifact

A removed unit's bias counts as one of its synapses (``what="bias"``): a non-zero
bias left in makes a "pruned" neuron fire. A pruned synapse not addressable (its
unit cut out) or not stored (sparse, or masked in NIR) is *absent*: that is the
goal. ``passed`` is True only when at least one artifact was checked and nothing
was found in any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from spikeship.errors import GraphError
from spikeship.train.checkpoint import load_checkpoint

CATEGORIES = ("nonzero", "explicit_zero", "unit_present", "unit_fired")
MAX_LISTED = 100          # findings listed per format and category (all are counted)


@dataclass(frozen=True)
class PrunedLayer:
    """What the checkpoint pruned in one prunable layer (original shapes)."""

    name: str                       # Sequential index, = NIR ``source_layer``
    kind: str                       # "conv" | "fc"
    effective: np.ndarray           # bool, original weight shape; False = pruned synapse
    units: np.ndarray               # bool, (out_units,); False = removed unit

    @property
    def pruned_synapses(self) -> int:
        return int((~self.effective).sum())

    @property
    def removed_units(self) -> int:
        return int((~self.units).sum())


@dataclass(frozen=True)
class DeployedLayer:
    """One synaptic layer as an artifact stores it."""

    format: str
    layer: str                      # deployed name (``fc7``) or artifact-specific name
    source_layer: str
    weight: np.ndarray              # values in the deployed shape (0 where not stored)
    stored: np.ndarray              # bool, deployed shape: entry stored as a synapse
    bias: np.ndarray | None
    kept_out: np.ndarray            # original index of each row
    kept_in: np.ndarray             # original index of each column / in-channel


@dataclass(frozen=True)
class Finding:
    """One pruned synapse or unit found in an artifact."""

    format: str
    category: str
    layer: str
    source_layer: str
    index: tuple[int, ...]          # original index: (o, i[, ky, kx]) or (o,) for a unit
    what: str = "weight"            # "weight" | "bias" | "unit"
    deployed_index: tuple[int, ...] | None = None
    value: float | None = None

    def to_json(self) -> dict:
        return {"category": self.category, "layer": self.layer,
                "source_layer": self.source_layer, "what": self.what,
                "index": list(self.index),
                "deployed_index": None if self.deployed_index is None else list(self.deployed_index),
                "value": self.value}


@dataclass(frozen=True)
class FormatCheck:
    """The outcome for one artifact."""

    format: str
    checked: bool
    reason: str = ""                # why it was not checked / how it was read
    pruned_checked: int = 0         # pruned synapses + removed units examined
    absent: int = 0                 # of those, gone (cut out, not stored)
    counts: Mapping[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    tolerated: tuple[str, ...] = ()     # categories reported but not failing (user's choice)
    # per source layer: {"explicit_zero": n, "stored": entries stored as synapses}
    by_layer: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.checked and not any(self.counts.get(c, 0) for c in CATEGORIES
                                        if c not in self.tolerated)

    def tolerate(self, *categories: str, why: str = "") -> FormatCheck:
        """A copy whose ``passed`` ignores ``categories`` (they stay reported)."""
        reason = f"{self.reason}; {why}" if why and self.reason else (why or self.reason)
        return replace(self, tolerated=tuple(sorted(set(self.tolerated) | set(categories))),
                       reason=reason)

    def to_json(self) -> dict:
        d = {"checked": self.checked, "passed": self.passed if self.checked else None,
             "note": self.reason, "pruned_checked": self.pruned_checked,
             "absent": self.absent, "tolerated": list(self.tolerated)}
        for c in CATEGORIES:
            fs = [f.to_json() for f in self.findings if f.category == c]
            d[c] = {"count": int(self.counts.get(c, 0)), "listed": fs}
        if self.by_layer:
            d["by_layer"] = {k: dict(v) for k, v in self.by_layer.items()}
        return d


@dataclass(frozen=True)
class VanishReport:
    """All artifacts of one run."""

    formats: tuple[FormatCheck, ...]
    pruned_synapses: int
    removed_units: int

    @property
    def passed(self) -> bool:
        checked = [f for f in self.formats if f.checked]
        return bool(checked) and all(f.passed for f in checked)

    def violations(self) -> list[Finding]:
        return [x for f in self.formats for x in f.findings]

    def summary(self) -> str:
        parts = []
        for f in self.formats:
            if not f.checked:
                parts.append(f"{f.format}: not checked ({f.reason})")
            elif f.passed and not any(f.counts.get(c) for c in CATEGORIES):
                parts.append(f"{f.format}: clean")
            elif f.passed:
                n = ", ".join(f"{f.counts[c]} {c}" for c in f.tolerated if f.counts.get(c))
                parts.append(f"{f.format}: {n} (tolerated)")
            else:
                n = ", ".join(f"{f.counts[c]} {c}" for c in CATEGORIES if f.counts.get(c))
                first = f.findings[0]
                parts.append(f"{f.format}: {n} (first: {first.category} in layer "
                             f"{first.layer}, {first.what} {list(first.index)})")
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {"passed": self.passed, "pruned_synapses": self.pruned_synapses,
                "removed_units": self.removed_units,
                "formats": {f.format: f.to_json() for f in self.formats}}


# ---- truth -------------------------------------------------------------------------
def pruned_layers_from_masks(masks) -> dict[str, PrunedLayer]:
    """From a :class:`spikeship.train.masks.MaskSet`."""
    out = {}
    for name, li in masks.layers.items():
        out[name] = PrunedLayer(name=name, kind=li.kind,
                                effective=masks.effective(name).cpu().numpy().astype(bool),
                                units=masks.units[name].cpu().numpy().astype(bool))
    return out


def pruned_layers_from_checkpoint(run_dir) -> dict[str, PrunedLayer]:
    """Load ``run_dir``'s checkpoint and take its masks."""
    return pruned_layers_from_masks(load_checkpoint(run_dir).masks)


# ---- checks ------------------------------------------------------------------------
def _expand_kept_in(dep: DeployedLayer, pruned: PrunedLayer) -> np.ndarray:
    kin = np.asarray(dep.kept_in, dtype=np.int64)
    n_cols = dep.weight.shape[1]
    if kin.size == n_cols:
        return kin
    if kin.size and n_cols % kin.size == 0:
        block = n_cols // kin.size
        return (kin[:, None] * block + np.arange(block)[None, :]).reshape(-1)
    raise GraphError(f"{dep.format} layer {dep.layer}: kept_in has {kin.size} entries for "
                     f"{n_cols} columns")


def check_layer(dep: DeployedLayer, pruned: PrunedLayer) -> tuple[list[Finding], int, int, dict]:
    """Findings for one deployed layer; also (examined, absent, counts)."""
    kout = np.asarray(dep.kept_out, dtype=np.int64)
    kin = _expand_kept_in(dep, pruned)
    eff, units = pruned.effective, pruned.units
    if dep.weight.shape[:2] != (kout.size, kin.size) or dep.weight.shape[2:] != eff.shape[2:]:
        raise GraphError(f"{dep.format} layer {dep.layer}: weight {dep.weight.shape} does not "
                         f"fit kept_out ({kout.size}) x kept_in ({kin.size}) of original "
                         f"{eff.shape}")
    if kout.size and (kout.max() >= eff.shape[0] or kout.min() < 0) or \
            kin.size and (kin.max() >= eff.shape[1] or kin.min() < 0):
        raise GraphError(f"{dep.format} layer {dep.layer}: kept indices outside the original "
                         f"shape {eff.shape}")
    findings: list[Finding] = []
    counts = dict.fromkeys(CATEGORIES, 0)
    kept_eff = eff[np.ix_(kout, kin)] if eff.ndim == 2 else eff[kout][:, kin]
    pruned_here = ~kept_eff
    vals = np.asarray(dep.weight)
    stored = np.asarray(dep.stored, dtype=bool)
    nz = pruned_here & (vals != 0)
    ez = pruned_here & (vals == 0) & stored
    base = dict(format=dep.format, layer=dep.layer, source_layer=dep.source_layer)
    for cat, sel in (("nonzero", nz), ("explicit_zero", ez)):
        idx = np.argwhere(sel)
        counts[cat] += len(idx)
        for d in idx[:MAX_LISTED]:
            orig = (int(kout[d[0]]), int(kin[d[1]]), *(int(v) for v in d[2:]))
            findings.append(Finding(category=cat, index=orig, deployed_index=tuple(int(v) for v in d),
                                    value=float(vals[tuple(d)]), **base))
    removed_rows = np.flatnonzero(~units[kout])
    counts["unit_present"] += len(removed_rows)
    for r in removed_rows[:MAX_LISTED]:
        findings.append(Finding(category="unit_present", index=(int(kout[r]),), what="unit",
                                deployed_index=(int(r),), **base))
    bias_bad = 0
    if dep.bias is not None and len(removed_rows):
        b = np.asarray(dep.bias)[removed_rows]
        for r, v in zip(removed_rows, b):
            if v != 0:
                bias_bad += 1
                if bias_bad <= MAX_LISTED:
                    findings.append(Finding(category="nonzero", index=(int(kout[r]),),
                                            what="bias", deployed_index=(int(r),),
                                            value=float(v), **base))
    counts["nonzero"] += bias_bad
    examined = pruned.pruned_synapses + pruned.removed_units
    absent = examined - int(nz.sum()) - int(ez.sum()) - len(removed_rows)
    return findings, examined, absent, counts


def check_format(fmt: str, deployed: Iterable[DeployedLayer],
                 pruned: Mapping[str, PrunedLayer], note: str = "") -> FormatCheck:
    """Run :func:`check_layer` over one artifact's layers."""
    findings: list[Finding] = []
    counts = dict.fromkeys(CATEGORIES, 0)
    examined = absent = 0
    seen = set()
    by_layer: dict[str, dict[str, int]] = {}
    for dep in deployed:
        if dep.source_layer not in pruned:
            continue
        seen.add(dep.source_layer)
        f, e, a, c = check_layer(dep, pruned[dep.source_layer])
        bl = by_layer.setdefault(dep.source_layer, {"explicit_zero": 0, "stored": 0})
        bl["explicit_zero"] += c["explicit_zero"]
        bl["stored"] += int(np.asarray(dep.stored, dtype=bool).sum())
        findings += f
        examined += e
        absent += a
        for k, v in c.items():
            counts[k] += v
    missing = sorted(set(pruned) - seen, key=lambda s: int(s) if s.isdigit() else s)
    if missing:
        raise GraphError(f"{fmt}: no deployed layer for pruned layer(s) {missing}")
    return FormatCheck(format=fmt, checked=True, reason=note, pruned_checked=examined,
                       absent=absent, counts=counts, findings=tuple(_cap(findings)),
                       by_layer=by_layer)


def _cap(findings: list[Finding]) -> list[Finding]:
    out, per = [], {}
    for f in findings:
        k = (f.layer, f.category)
        per[k] = per.get(k, 0) + 1
        if per[k] <= MAX_LISTED:
            out.append(f)
    return out


def check_fired(fmt: str, neuron_counts: Mapping[str, np.ndarray],
                populations: Mapping[str, tuple[str, np.ndarray]],
                pruned: Mapping[str, PrunedLayer]) -> FormatCheck:
    """``unit_fired``: a removed unit that spiked in a simulation.

    ``populations`` maps a neuron node to (source_layer of the synaptic layer that
    feeds it, original unit index of each channel / neuron along axis 0).
    """
    findings: list[Finding] = []
    n_fired = examined = 0
    for node, (src, kept) in populations.items():
        if src not in pruned or node not in neuron_counts:
            continue
        c = np.asarray(neuron_counts[node])
        units = pruned[src].units
        examined += pruned[src].removed_units
        per_unit = c.reshape(c.shape[0], -1).sum(axis=1) if c.ndim > 1 else c
        if per_unit.shape[0] != len(kept):
            raise GraphError(f"{fmt}: spike counts of {node} have {per_unit.shape[0]} units, "
                             f"the graph keeps {len(kept)}")
        for r, u in enumerate(np.asarray(kept, dtype=np.int64)):
            if not units[u] and per_unit[r] > 0:
                n_fired += 1
                findings.append(Finding(format=fmt, category="unit_fired", layer=node,
                                        source_layer=src, index=(int(u),), what="unit",
                                        deployed_index=(r,), value=float(per_unit[r])))
    counts = dict.fromkeys(CATEGORIES, 0)
    counts["unit_fired"] = n_fired
    return FormatCheck(format=fmt, checked=True, reason="spike counts of a simulation",
                       pruned_checked=examined, absent=examined - n_fired, counts=counts,
                       findings=tuple(_cap(findings)))


def stored_zeros(check: FormatCheck, pruned: Mapping[str, PrunedLayer]) -> dict:
    """Explicit zeros of one format split by layer kind, with the share of the conv
    synapses the format stores that are pruned synapses kept as zeros."""
    out = {"explicit_zero": int(check.counts.get("explicit_zero", 0)), "conv": 0, "fc": 0,
           "conv_stored": 0}
    for name, c in check.by_layer.items():
        kind = pruned[name].kind if name in pruned else "fc"
        out[kind] = out.get(kind, 0) + int(c["explicit_zero"])
        if kind == "conv":
            out["conv_stored"] += int(c["stored"])
    out["conv_share"] = out["conv"] / out["conv_stored"] if out["conv_stored"] else 0.0
    return out


def unavoidable_zeros(checks: Iterable[FormatCheck], pruned: Mapping[str, PrunedLayer]
                      ) -> list[FormatCheck]:
    """Tolerate explicit zeros that a format must store while what is deployed is clean.

    - ``netx`` (the HDF5 file holds dense arrays, so every pruned synapse of a surviving
      unit is stored as 0) when ``netx-sparse``, the network lava-dl loads from that file
      with sparse FC layers, was checked and has no finding except conv zeros;
    - any format whose explicit zeros all lie in conv layers (Lava's ``Conv`` process and
      netx conv blocks have no sparse form: a pruned tap inside a kept kernel is a 0).

    Only ``explicit_zero`` is tolerated, never a non-zero value, a present unit or a
    removed unit that fired; the zeros stay counted in the report (``stored_zeros``).
    """
    checks = list(checks)
    by = {c.format: c for c in checks}

    def conv_only(c: FormatCheck) -> bool:
        conv = sum(int(v["explicit_zero"]) for k, v in c.by_layer.items()
                   if k in pruned and pruned[k].kind == "conv")
        return c.counts.get("explicit_zero", 0) == conv

    def clean_but_conv_zeros(c: FormatCheck | None) -> bool:
        return (c is not None and c.checked and conv_only(c)
                and not any(c.counts.get(k, 0) for k in CATEGORIES if k != "explicit_zero"))

    out = []
    for c in checks:
        if c.checked and c.counts.get("explicit_zero", 0):
            if c.format == "netx" and clean_but_conv_zeros(by.get("netx-sparse")):
                c = c.tolerate("explicit_zero", why="stored zeros: the file holds dense "
                               "arrays; the network loaded sparse (netx-sparse) is clean")
            elif conv_only(c):
                c = c.tolerate("explicit_zero", why="stored zeros inside conv kernels "
                               "(Conv has no sparse form)")
        out.append(c)
    return out


def not_checked(fmt: str, reason: str) -> FormatCheck:
    return FormatCheck(format=fmt, checked=False, reason=reason)


def summarise(checks: Iterable[FormatCheck], pruned: Mapping[str, PrunedLayer]) -> VanishReport:
    return VanishReport(formats=tuple(checks),
                        pruned_synapses=sum(p.pruned_synapses for p in pruned.values()),
                        removed_units=sum(p.removed_units for p in pruned.values()))

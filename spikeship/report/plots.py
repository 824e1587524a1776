"""The report's pictures, as in the DPAP paper's figures, drawn from a run's own files.

Each function takes plain data read from the run directory (metrics.jsonl rows,
energy.json, ...) and writes one PNG, returning its path, or ``None`` when the run
holds no data for that picture (the report then says what is missing).

- accuracy per epoch, dense vs pruned ............................ Fig 2D
- parameters (remaining synapses) over epochs .................... Fig 4G
- survival functions of units in the epochs before pruning ....... Fig 4E-F
- retained neurons / synapses per layer .......................... Fig 4A-C style
- per prunable layer: units retained at each epoch (grid), average
  importance of the units, synapses retained over epochs ......... Fig 4A-C
- energy per layer and per chip, dense vs pruned
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spikeship.io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def accuracy_curve(pruned: list[dict], dense: list[dict] | None, path: Path,
                   pruned_label: str = "pruned") -> Path | None:
    """Test accuracy per epoch of the pruned run (and its dense baseline)."""
    if not pruned:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for rows, label, style in ((dense, "dense", "--"), (pruned, pruned_label, "-")):
        rows = [r for r in rows or [] if r.get("test_accuracy") is not None]  # --eval-every
        if rows:
            ax.plot([r["epoch"] for r in rows], [100 * r["test_accuracy"] for r in rows],
                    style, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy per epoch (cf. DPAP Fig 2D)")
    ax.grid(alpha=.3)
    ax.legend()
    return _save(fig, path)


def parameters_curve(pruned: list[dict], path: Path) -> Path | None:
    """Remaining weights of prunable layers over epochs."""
    rows = [r for r in pruned if "params_remaining" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot([r["epoch"] for r in rows], [r["params_remaining"] for r in rows], marker="o", ms=3)
    total = rows[0].get("params_total")
    if total:
        ax.axhline(total, ls="--", c="gray", label=f"dense ({total:,})")
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("remaining weights")
    ax.set_title("Parameters over epochs (cf. DPAP Fig 4G)")
    ax.grid(alpha=.3)
    return _save(fig, path)


def survival_curves(pruned: list[dict], path: Path, max_lines: int = 40) -> Path | None:
    """Survival-function values of units in the epochs before they were pruned.

    Reads ``pruner.layers.<name>.pruned_units`` (``[{"index", "survival": [...]}]``,
    the last values of each unit pruned that epoch, oldest first) written by DPAP.
    """
    series: list[tuple[str, list[float]]] = []
    for r in pruned:
        layers = (r.get("pruner") or {}).get("layers") or {}
        for name, info in layers.items():
            if not isinstance(info, dict):
                continue
            hist = (info.get("pruned_units") or info.get("pruned_units_survival")
                    or info.get("survival_history") or [])
            for h in hist:
                values = (h.get("survival") or h.get("history")) if isinstance(h, dict) else h
                if values:
                    series.append((name, [float(v) for v in values]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    names = sorted({n for n, _ in series})
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    for name, values in series[:max_lines]:
        xs = list(range(-len(values) + 1, 1))
        ax.plot(xs, values, c=colors[name], alpha=.6, lw=1)
    for n in names:
        ax.plot([], [], c=colors[n], label=f"layer {n}")
    ax.axhline(0, c="k", lw=.8)
    ax.set_xlabel("epochs before pruning")
    ax.set_ylabel("survival function F")
    ax.set_title("Survival of pruned units (cf. DPAP Fig 4E-F)")
    ax.legend(fontsize=8)
    ax.grid(alpha=.3)
    return _save(fig, path)


def _paired_bars(ax, labels: list[str], left: list[float], right: list[float],
                 legend: tuple[str, str], ylabel: str, title: str, log: bool = False,
                 rotation: int = 0) -> None:
    """Two bars per label (left / right series) on ``ax``."""
    x = range(len(labels))
    ax.bar([i - .2 for i in x], left, width=.4, label=legend[0])
    ax.bar([i + .2 for i in x], right, width=.4, label=legend[1])
    ax.set_xticks(list(x), labels, rotation=rotation, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=.3, axis="y")


def retained_per_layer(last: dict, path: Path) -> Path | None:
    """Retained units and synapses per layer (share of the dense layer)."""
    layers = last.get("layers") if last else None
    if not layers:
        return None
    syn = [100 * layer["synapses_remaining"] / layer["synapses_total"] for layer in layers]
    units = [100 * layer["units_remaining"] / layer["units_total"] for layer in layers]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    _paired_bars(ax, [f"{layer['name']}\n{layer['kind']}" for layer in layers], units, syn,
                 ("neurons / channels", "synapses"), "retained (%)",
                 "Retained structure per layer (cf. DPAP Fig 4A-C)")
    ax.set_ylim(0, 105)
    return _save(fig, path)


def dense_series(energy: dict[str, Any], dense_energy: dict[str, Any] | None
                 ) -> tuple[str, list[float], dict[str, float | None]]:
    """(legend, dense operations per layer of ``energy``'s layers, dense pJ per chip).

    The dense run's own deployed figures when its ``energy.json`` is given (a layer it
    does not have counts 0); else the pruned run's spikes on the unpruned wiring."""
    layers = energy.get("layers") or []
    chips = energy.get("energy_pj_per_sample") or {}
    if dense_energy:
        own = {layer.get("layer"): float(layer.get("synops_effective", 0))
               for layer in dense_energy.get("layers") or []}
        dense_chips = dense_energy.get("energy_pj_per_sample") or {}
        return ("dense run", [own.get(layer.get("layer"), 0.0) for layer in layers],
                {c: (dense_chips.get(c) or {}).get("total_pj") for c in chips})
    return ("its spikes, unpruned wiring",
            [float(layer.get("synops_dense", 0)) for layer in layers],
            {c: v.get("dense_total_pj") for c, v in chips.items()})


def energy_per_layer(energy: dict[str, Any], path: Path,
                     dense_energy: dict[str, Any] | None = None) -> Path | None:
    """Synaptic operations per layer and energy per chip, pruned against dense.

    "Dense" is the dense run's own deployed figures (its spikes on its wiring) when its
    ``energy.json`` is given, the definition ``compare`` uses; without it, the pruned
    run's spikes priced on the unpruned wiring stand in, and the legend says so."""
    layers = energy.get("layers") if energy else None
    if not layers:
        return None
    names = [f"{layer.get('layer', i)}\n{layer.get('op', '')}" for i, layer in enumerate(layers)]
    eff = [float(layer.get("synops_effective", 0)) for layer in layers]
    chips = {c: v for c, v in (energy.get("energy_pj_per_sample") or {}).items()
             if v.get("total_pj") is not None}
    legend, dense, dense_pj = dense_series(energy, dense_energy)
    chips = {c: v for c, v in chips.items() if dense_pj.get(c) is not None}
    fig, axes = plt.subplots(1, 2 if chips else 1, figsize=(9 if chips else 5.5, 3.4))
    ax = axes[0] if chips else axes
    _paired_bars(ax, names, dense, eff, (legend, "deployed (pruned)"),
                 "ops / sample (AC, or MAC)", "Synaptic operations per layer", log=True,
                 rotation=30)
    if chips:
        cn = list(chips)
        _paired_bars(axes[1], cn, [dense_pj[c] / 1e6 for c in cn],
                     [chips[c]["total_pj"] / 1e6 for c in cn], (legend, "pruned"),
                     "energy / sample (uJ)", "Energy per chip", log=True, rotation=30)
    return _save(fig, path)


def units_from_hex(text: str, n: int) -> np.ndarray:
    """The bool unit mask (True = kept) of ``n`` units from ``metrics.jsonl``'s
    ``units_kept_hex`` (see :func:`spikeship.train.masks.units_hex`)."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8), bitorder="little")
    if bits.size < n:
        raise ValueError(f"units_kept_hex holds {bits.size} bits, the layer has {n} units")
    return bits[:n].astype(bool)


@dataclass
class LayerHistory:
    """One prunable layer over the epochs of a run, from ``metrics.jsonl``."""

    name: str                          # Sequential index, "3"
    kind: str                          # "conv" | "fc"
    epochs: list[int]
    kept: np.ndarray | None            # (units, epochs) bool, None when not recorded
    synapses_share: list[float]        # retained synapses / total, per epoch
    units_share: list[float]
    importance: list[float | None]     # pruner's mean unit importance, per epoch

    @property
    def label(self) -> str:
        return f"{self.kind}{self.name}"


def layer_histories(metrics: list[dict]) -> list[LayerHistory]:
    """Per prunable layer: the units kept at each epoch (when ``units_kept_hex`` is in
    every row), retained synapse / unit shares and the pruner's mean unit importance
    (``pruner.layers.<name>.importance_mean``, DPAP's Eq 11; None for other pruners)."""
    rows = [r for r in metrics if r.get("layers")]
    out: list[LayerHistory] = []
    if not rows:
        return out
    for first in rows[0]["layers"]:
        name = first["name"]
        per = [next((l for l in r["layers"] if l["name"] == name), None) for r in rows]
        if any(p is None for p in per):
            continue
        kept = None
        if all("units_kept_hex" in p for p in per):
            kept = np.stack([units_from_hex(p["units_kept_hex"], int(p["units_total"]))
                             for p in per], axis=1)
        imp = []
        for r in rows:
            info = ((r.get("pruner") or {}).get("layers") or {}).get(name) or {}
            v = info.get("importance_mean") if isinstance(info, dict) else None
            imp.append(float(v) if isinstance(v, (int, float)) else None)
        out.append(LayerHistory(
            name=name, kind=first.get("kind", ""), epochs=[int(r["epoch"]) for r in rows],
            kept=kept,
            synapses_share=[p["synapses_remaining"] / p["synapses_total"] for p in per],
            units_share=[p["units_remaining"] / p["units_total"] for p in per],
            importance=imp))
    return out


def retained_over_epochs(h: LayerHistory, path: Path) -> Path | None:
    """DPAP Fig 4A-C for one layer: (A) units x epochs, white = pruned; (B) the average
    importance of the layer's units per epoch; (C) retained synapses (and units) per epoch.
    ``None`` when the per-epoch unit masks were not recorded."""
    if h.kept is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6),
                             gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    n_units = h.kept.shape[0]
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    ax.imshow(h.kept, aspect="auto", interpolation="nearest",
              cmap=ListedColormap(["white", "#1f4e8c"]), vmin=0, vmax=1,
              extent=(h.epochs[0] - .5, h.epochs[-1] + .5, n_units - .5, -.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ax.spines.values():
        side.set_visible(True)
    unit = "channel" if h.kind == "conv" else "neuron"
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{unit} index")
    ax.set_title(f"(A) {h.label}: {int(h.kept[:, -1].sum())}/{n_units} {unit}s kept "
                 "(white = pruned)", fontsize=9)
    ax = axes[1]
    pts = [(e, v) for e, v in zip(h.epochs, h.importance) if v is not None]
    if pts:
        ax.plot([e for e, _ in pts], [v for _, v in pts], marker="o", ms=3)
        ax.set_ylabel("mean importance of kept units")
    else:
        ax.text(.5, .5, "not recorded by this pruner", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_title("(B) average unit importance (Eq 11)", fontsize=9)
    ax.grid(alpha=.3)
    ax = axes[2]
    ax.plot(h.epochs, [100 * v for v in h.synapses_share], marker="o", ms=3, label="synapses")
    ax.plot(h.epochs, [100 * v for v in h.units_share], "--", label=f"{unit}s")
    ax.set_ylim(0, 105)
    ax.set_xlabel("epoch")
    ax.set_ylabel("retained (%)")
    ax.set_title("(C) retained synapses", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=.3)
    fig.suptitle(f"Layer {h.label} over training (cf. DPAP Fig 4A-C)", fontsize=10)
    return _save(fig, path)

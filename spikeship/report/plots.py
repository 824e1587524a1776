"""The report's pictures, as in the DPAP paper's figures, drawn from a run's own files.

Each function takes plain data read from the run directory (metrics.jsonl rows,
energy.json, ...) and writes one PNG, returning its path, or ``None`` when the run
holds no data for that picture (the report then says what is missing).

- accuracy per epoch, dense vs pruned ............................ Fig 2D
- parameters (remaining synapses) over epochs .................... Fig 4G
- survival functions of units in the epochs before pruning ....... Fig 4E-F
- retained neurons / synapses per layer .......................... Fig 4A-C style
- energy per layer and per chip, dense vs pruned
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

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


def retained_per_layer(last: dict, path: Path) -> Path | None:
    """Retained units and synapses per layer (share of the dense layer)."""
    layers = last.get("layers") if last else None
    if not layers:
        return None
    names = [str(layer["name"]) for layer in layers]
    syn = [100 * layer["synapses_remaining"] / layer["synapses_total"] for layer in layers]
    units = [100 * layer["units_remaining"] / layer["units_total"] for layer in layers]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = range(len(names))
    ax.bar([i - .2 for i in x], units, width=.4, label="neurons / channels")
    ax.bar([i + .2 for i in x], syn, width=.4, label="synapses")
    ax.set_xticks(list(x), [f"{n}\n{layer['kind']}" for n, layer in zip(names, layers)])
    ax.set_ylabel("retained (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Retained structure per layer (cf. DPAP Fig 4A-C)")
    ax.legend(fontsize=8)
    ax.grid(alpha=.3, axis="y")
    return _save(fig, path)


def energy_per_layer(energy: dict[str, Any], path: Path) -> Path | None:
    """Synaptic operations per layer, effective vs dense, and energy per chip."""
    layers = energy.get("layers") if energy else None
    if not layers:
        return None
    names = [f"{layer.get('layer', i)}\n{layer.get('op', '')}" for i, layer in enumerate(layers)]
    eff = [float(layer.get("synops_effective", 0)) for layer in layers]
    dense = [float(layer.get("synops_dense", 0)) for layer in layers]
    chips = {c: v for c, v in (energy.get("energy_pj_per_sample") or {}).items()
             if v.get("total_pj") is not None}
    fig, axes = plt.subplots(1, 2 if chips else 1, figsize=(9 if chips else 5.5, 3.4))
    ax = axes[0] if chips else axes
    x = range(len(names))
    ax.bar([i - .2 for i in x], dense, width=.4, label="dense")
    ax.bar([i + .2 for i in x], eff, width=.4, label="deployed (pruned)")
    ax.set_xticks(list(x), names, rotation=30, fontsize=8)
    ax.set_ylabel("ops / sample (AC, or MAC)")
    ax.set_yscale("log")
    ax.set_title("Synaptic operations per layer")
    ax.legend(fontsize=8)
    if chips:
        ax2 = axes[1]
        cn = list(chips)
        d = [chips[c]["dense_total_pj"] / 1e6 for c in cn]
        p = [chips[c]["total_pj"] / 1e6 for c in cn]
        xs = range(len(cn))
        ax2.bar([i - .2 for i in xs], d, width=.4, label="dense")
        ax2.bar([i + .2 for i in xs], p, width=.4, label="pruned")
        ax2.set_xticks(list(xs), cn, rotation=30, fontsize=8)
        ax2.set_ylabel("energy / sample (uJ)")
        ax2.set_yscale("log")
        ax2.set_title("Energy per chip")
        ax2.legend(fontsize=8)
    return _save(fig, path)

"""``spikeship compare``: run directories side by side, in the shape of the papers' tables.

Columns (the PQ poster's Table 1 and DPAP's comparison tables): method, architecture,
T, top-1 accuracy, accuracy change vs the dense run, connectivity, parameters
remaining, synaptic operations per sample, epochs to the dense accuracy. Plus the
epochs trained, so a reader sees the runs were matched.

- *Connectivity* = ``params_remaining / params_total`` over the weights of the
  prunable layers (``summary.json``).
- *Accuracy change* = ``acc - acc_dense`` in percentage points. The dense run is the
  ``--dense`` run, or else the input run with ``pruner = none`` and the same dataset,
  model, ANN flag and T (the same seed preferred); without one, a run's own
  ``dense_baseline_accuracy`` from its summary is used.
- *95 % CI*, *Test n*: the Wilson interval of the accuracy and the test-set size;
  below the table, the exact McNemar test of each run against its dense reference
  (or of the two runs given) on their stored per-sample predictions, and mean +- sd
  of runs that differ only in ``seed`` (:mod:`spikeship.report.significance`).
- *Epochs to dense accuracy*: first epoch in ``metrics.jsonl`` whose test accuracy
  reaches the dense run's final accuracy.
- *SynOps per sample*: ``energy.json`` totals, effective (deployed graph) beside
  dense (unpruned architecture), per STYLE rule 9. A cell left empty says why.
- *Ops per sample*: effective synops plus the first layer's MACs (what the deployed
  graph does per sample); *x fewer ops* = the dense run's ops / this run's (the dense
  run needs its own ``energy.json``); *energy per sample* on one chip for every row
  (``--hardware``; default: the chip most of the runs' ``energy.json`` were made for:
  each prices every chip), an empty cell saying why (Loihi 2: no published figures).
  The CLI ranks rows by ops, cheapest first (``--rank``).

Writes Markdown to stdout, and with ``--out FILE`` also ``FILE`` (Markdown) and
``FILE`` with suffix ``.json`` (the same rows, numbers unformatted).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spikeship.errors import RunDirError
from spikeship.io import read_jsonl, write_json_atomic, write_text_atomic
from spikeship.report.markdown import md_code, md_escape
from spikeship.report.significance import McNemar, ci_cells, significance
from spikeship.report.significance import to_markdown as significance_markdown
from spikeship.runlock import writes_run_dir
from spikeship.safeopen import read_json
from spikeship.targets.registry import CHIPS


@dataclass(frozen=True)
class RunInfo:
    """What ``compare`` reads from one run directory."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    energy: dict[str, Any] | None

    def get(self, key: str, default: Any = None) -> Any:
        """A field from ``summary.json``, else ``config.json``."""
        if self.summary.get(key) is not None:
            return self.summary[key]
        return self.config.get(key, default)

    @property
    def is_dense(self) -> bool:
        return self.get("pruner", self.get("prune", "none")) == "none"

    @property
    def key(self) -> tuple:
        """Runs comparable with each other share this."""
        return (self.get("dataset"), self.get("model"), bool(self.get("ann", False)),
                None if self.get("ann", False) else self.get("timesteps"))


@dataclass
class Row:
    """One line of the table (``None`` = empty cell; ``notes[field]`` says why)."""

    run: str
    method: str
    architecture: str
    timesteps: int | None
    epochs: int | None
    top1_accuracy_pct: float | None
    test_samples: int | None
    ci95_pct: list[float] | None               # 95 % Wilson interval of the accuracy
    accuracy_change_pct: float | None
    connectivity_pct: float | None
    params_remaining: int | None
    params_total: int | None
    synops_effective_per_sample: float | None
    synops_dense_per_sample: float | None
    macs_effective_per_sample: float | None
    macs_dense_per_sample: float | None
    epochs_to_dense_accuracy: int | None
    dense_run: str | None
    notes: dict[str, str] = field(default_factory=dict)
    ops_effective_per_sample: float | None = None     # synops + first-layer MACs
    ops_reduction_vs_dense: float | None = None       # dense run's ops / this run's ops
    energy_uj_per_sample: float | None = None         # on energy_hardware
    energy_hardware: str | None = None


# ---- reading ---------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = read_json(path, "run file", RunDirError)      # regular file, size-limited
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path} is unreadable: {e}") from e
    if not isinstance(d, dict):
        raise RunDirError(f"{path} does not hold a JSON object")
    return d


def load_run(path: str | Path) -> RunInfo:
    """Read a run directory; it needs ``summary.json`` (a finished ``spikeship train``)."""
    p = Path(path)
    if not p.is_dir():
        raise RunDirError(f"run directory {p} does not exist")
    if not (p / "summary.json").exists():
        raise RunDirError(f"run directory {p} has no summary.json (train it to the end first)")
    summary = _read_json(p / "summary.json")
    config = _read_json(p / "config.json") if (p / "config.json").exists() else {}
    energy = _read_json(p / "energy.json") if (p / "energy.json").exists() else None
    return RunInfo(p, summary, config, read_jsonl(p / "metrics.jsonl"), energy)


# ---- the columns -----------------------------------------------------------------
def pick_dense(run: RunInfo, runs: list[RunInfo], forced: RunInfo | None) -> RunInfo | None:
    """The dense reference of ``run`` (see module docstring)."""
    if forced is not None:
        return forced
    same = [r for r in runs if r.is_dense and r.key == run.key]
    if not same:
        return None
    if run in same:
        return run
    return next((r for r in same if r.get("seed") == run.get("seed")), same[0])


def method_label(run: RunInfo) -> str:
    """``dense`` or the pruner name with its options, e.g. ``magnitude (target=0.6)``."""
    if run.is_dense:
        return "dense"
    name = run.get("pruner", run.get("prune"))
    opts = run.get("prune_options") or {}
    if not opts:
        return str(name)
    return f"{name} (" + ", ".join(f"{k}={v}" for k, v in sorted(opts.items())) + ")"


def synops(energy: dict[str, Any] | None, kind: str) -> tuple[float | None, str | None]:
    """(synops per sample of ``kind`` = effective|dense, or None and the reason).

    Read from ``energy.json``'s ``totals_per_sample`` (spike-driven accumulates; a
    direct-encoded first layer's MACs are counted apart, see :func:`macs`), else
    summed over its ``layers``.
    """
    if energy is None:
        return None, "no energy.json (run `spikeship energy RUN`)"
    tot = energy.get("totals_per_sample") or energy.get("totals") or energy.get("total") or {}
    for k in (f"synops_{kind}_per_sample", f"synops_{kind}"):
        if isinstance(tot.get(k), (int, float)):
            return float(tot[k]), None
    layers = energy.get("layers")
    if isinstance(layers, list) and layers and all(
            isinstance(x.get(f"synops_{kind}"), (int, float)) for x in layers):
        return float(sum(x[f"synops_{kind}"] for x in layers)), None
    return None, f"energy.json has no synops_{kind} totals"


def macs(energy: dict[str, Any] | None, kind: str) -> float | None:
    """MACs per sample of a first layer fed non-binary input (``energy.json``), if given."""
    tot = (energy or {}).get("totals_per_sample") or {}
    v = tot.get(f"macs_{kind}")
    return float(v) if isinstance(v, (int, float)) else None


def ops_and_energy(energy: dict[str, Any] | None, hardware: str | None = None
                   ) -> tuple[float | None, float | None, str | None, str | None]:
    """(all operations per sample: synops + MACs, energy per sample in uJ, hardware, why
    the energy is missing or None).

    The energy is priced on ``hardware`` (``energy.json`` prices every chip in
    ``energy_pj_per_sample``), else on the chip the run's ``energy.json`` was made for."""
    tot = (energy or {}).get("totals_per_sample") or {}
    ops = tot.get("ops_effective")
    if not isinstance(ops, (int, float)):
        eff, _ = synops(energy, "effective")
        ops = None if eff is None else eff + (macs(energy, "effective") or 0.0)
    own = (energy or {}).get("hardware")
    hw = hardware or own
    chips = (energy or {}).get("energy_pj_per_sample") or {}
    why = None
    if isinstance(chips.get(hw), dict):
        e = chips[hw].get("total_pj")
        if not isinstance(e, (int, float)):
            why = ("; ".join(chips[hw].get("notes") or []) or f"energy.json does not price {hw}"
                   ) + " (`compare --hardware CHIP` prices every row on another chip)"
    elif hw == own:
        e = tot.get("energy_pj")
    else:
        e, why = None, f"energy.json prices {own}, not {hw} (run `spikeship energy` again)"
    if energy is not None and why is None and not isinstance(e, (int, float)):
        why = f"energy.json has no energy for {hw}"
    return (None if ops is None else float(ops),
            float(e) / 1e6 if isinstance(e, (int, float)) else None, hw, why)


def common_hardware(runs: list[RunInfo]) -> str | None:
    """The chip to price every row on: the one most of the runs' ``energy.json`` were
    made for (ties: the first run's), so that one column never mixes chips."""
    hws = [r.energy.get("hardware") for r in runs if r.energy and r.energy.get("hardware")]
    return max(hws, key=lambda h: (hws.count(h), -hws.index(h))) if hws else None


def epochs_to(metrics: list[dict[str, Any]], accuracy: float) -> int | None:
    """First epoch whose ``test_accuracy`` reaches ``accuracy``."""
    return next((int(m["epoch"]) for m in metrics
                 if m.get("test_accuracy") is not None and m["test_accuracy"] >= accuracy), None)


def build_row(run: RunInfo, dense: RunInfo | None, hardware: str | None = None) -> Row:
    """One table row for ``run`` against its dense reference; energy priced on
    ``hardware`` (default: the chip of the run's own ``energy.json``)."""
    notes: dict[str, str] = {}
    acc = run.get("test_accuracy")
    total, remaining = run.get("params_total"), run.get("params_remaining")
    conn = 100.0 * remaining / total if total and remaining is not None else None
    if conn is None:
        notes["connectivity_pct"] = "summary.json has no params_total/params_remaining"
    dense_acc = dense.get("test_accuracy") if dense is not None else run.get(
        "dense_baseline_accuracy")
    change = to_dense = None
    if dense_acc is None:
        notes["accuracy_change_pct"] = notes["epochs_to_dense_accuracy"] = \
            "no dense run of the same dataset/model/T among the inputs"
    else:
        if acc is not None:
            change = 100.0 * (acc - dense_acc)
        if dense is None and run.get("epochs_to_baseline") is not None:
            to_dense = int(run.get("epochs_to_baseline"))
        else:
            to_dense = epochs_to(run.metrics, dense_acc)
        if to_dense is None:
            notes["epochs_to_dense_accuracy"] = (
                f"not reached in {run.get('epochs', len(run.metrics))} epochs"
                if run.metrics else "no metrics.jsonl")
    eff, why = synops(run.energy, "effective")
    den, why_d = synops(run.energy, "dense")
    if why:
        notes["synops_effective_per_sample"] = why
    if why_d:
        notes["synops_dense_per_sample"] = why_d
    ann = bool(run.get("ann", False))
    ops, uj, hw, why_e = ops_and_energy(run.energy, hardware)
    if ops is None:
        notes["ops_effective_per_sample"] = notes["energy_uj_per_sample"] = (
            why or "no energy.json (run `spikeship energy RUN`)")
    elif uj is None and why_e:
        notes["energy_uj_per_sample"] = why_e
    dense_ops = ops_and_energy(dense.energy)[0] if dense is not None else None
    ratio = dense_ops / ops if dense_ops and ops else None
    if ratio is None:
        notes["ops_reduction_vs_dense"] = (
            "no dense run among the inputs" if dense is None else
            f"the dense run {dense.path.name} has no energy.json (run `spikeship energy "
            f"{dense.path}`)" if dense_ops is None else "no energy.json")
    return Row(
        run=run.path.name, method=method_label(run),
        architecture=str(run.get("model")) + (" (ANN)" if ann else ""),
        timesteps=None if ann else run.get("timesteps"), epochs=run.get("epochs"),
        top1_accuracy_pct=None if acc is None else 100.0 * acc,
        test_samples=ci_cells(run.summary)[0],
        ci95_pct=None if ci_cells(run.summary)[1] is None else [
            100.0 * v for v in ci_cells(run.summary)[1]],
        accuracy_change_pct=change, connectivity_pct=conn,
        params_remaining=remaining, params_total=total,
        synops_effective_per_sample=eff, synops_dense_per_sample=den,
        macs_effective_per_sample=macs(run.energy, "effective"),
        macs_dense_per_sample=macs(run.energy, "dense"),
        epochs_to_dense_accuracy=to_dense,
        dense_run=str(dense.path) if dense is not None else None, notes=notes,
        ops_effective_per_sample=ops, ops_reduction_vs_dense=ratio,
        energy_uj_per_sample=uj, energy_hardware=hw if run.energy is not None else None)


RANKS = ("given", "ops", "energy")


def compare_runs(paths: list[str | Path], dense: str | Path | None = None,
                 rank: str = "given", hardware: str | None = None) -> list[Row]:
    """Rows for ``paths``: in the given order, or ranked by effective operations
    (``ops``: synops + first-layer MACs per sample) or energy per sample (``energy``),
    cheapest first; rows without ``energy.json`` go last. Every row's energy is priced
    on ``hardware`` (default: :func:`common_hardware`)."""
    return compare_all(paths, dense, rank, hardware)[0]


def compare_all(paths: list[str | Path], dense: str | Path | None = None, rank: str = "given",
                hardware: str | None = None):
    """Rows (ordered by ``rank``), McNemar tests and seed groups
    (:mod:`spikeship.report.significance`)."""
    runs = [load_run(p) for p in paths]
    forced = load_run(dense) if dense is not None else None
    hw = hardware or common_hardware(runs)
    rows = [build_row(r, pick_dense(r, runs, forced), hw) for r in runs]
    tests, groups = significance(runs, rows, [forced] if forced is not None else [])
    if rank == "ops":
        rows.sort(key=lambda r: (r.ops_effective_per_sample is None,
                                 r.ops_effective_per_sample or 0.0))
    elif rank == "energy":
        rows.sort(key=lambda r: (r.energy_uj_per_sample is None, r.energy_uj_per_sample or 0.0))
    return rows, tests, groups


# ---- writing ---------------------------------------------------------------------
COLUMNS = [  # (field, header, formatter)
    ("method", "Method", str),
    ("architecture", "Architecture", str),
    ("timesteps", "T", str),
    ("epochs", "Epochs", str),
    ("top1_accuracy_pct", "Top-1 Acc. (%)", lambda v: f"{v:.2f}"),
    ("ci95_pct", "95 % CI", lambda v: f"[{v[0]:.2f}, {v[1]:.2f}]"),
    ("test_samples", "Test n", lambda v: f"{v:,}"),
    ("accuracy_change_pct", "Acc. change (%)", lambda v: f"{v:+.2f}"),
    ("connectivity_pct", "Conn. (%)", lambda v: f"{v:.2f}"),
    ("params_remaining", "Params remaining", lambda v: f"{v:,}"),
    ("synops_effective_per_sample", "SynOps/sample (deployed)", lambda v: _si(v)),
    ("synops_dense_per_sample", "SynOps/sample (dense)", lambda v: _si(v)),
    ("ops_effective_per_sample", "Ops/sample (SynOps + MACs)", lambda v: _si(v)),
    ("ops_reduction_vs_dense", "x fewer ops than dense run", lambda v: f"{v:.2f}"),
    ("energy_uj_per_sample", "Energy/sample (uJ)", lambda v: f"{v:.3g}"),
    ("epochs_to_dense_accuracy", "Epochs to dense acc.", str),
    ("run", "Run", str),
]


def _si(v: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:.3g} {suffix}"
    return f"{v:.3g}"


def to_markdown(rows: list[Row]) -> str:
    """The table; empty cells carry a footnote number, the notes follow the table."""
    footnotes: list[str] = []
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            v = getattr(r, key)
            if v is not None:     # text read from files (names, methods) made inert
                cells.append(md_escape(v) if fmt is str else fmt(v))
                continue
            reason = r.notes.get(key)
            if reason is None:
                cells.append("—")
                continue
            if reason not in footnotes:
                footnotes.append(reason)
            cells.append(f"— [{footnotes.index(reason) + 1}]")
        lines.append("| " + " | ".join(cells) + " |")
    dense = sorted({r.dense_run for r in rows if r.dense_run})
    out = "\n".join(lines) + "\n"
    if dense:
        out += "\nDense reference: " + ", ".join(md_code(d) for d in dense) + ".\n"
    hw = sorted({r.energy_hardware for r in rows if r.energy_hardware})
    if hw:
        out += f"\nEnergy per sample priced on: {', '.join(hw)} (energy.json).\n"
    if any(r.macs_effective_per_sample for r in rows):
        out += ("\nSynOps: spike-driven accumulates per test sample; the MACs of a first layer "
                "fed non-binary (direct-encoded) input are counted apart (JSON: macs_*).\n")
    if footnotes:
        out += "\n" + "\n".join(f"[{i}] {md_escape(t)}"
                                for i, t in enumerate(footnotes, 1)) + "\n"
    return out


def to_json(rows: list[Row], tests=(), groups=()) -> dict[str, Any]:
    return {"columns": [k for k, _, _ in COLUMNS], "rows": [asdict(r) for r in rows],
            "mcnemar": [asdict(t) | {"significant": t.significant} if isinstance(t, McNemar)
                        else {"a": t[0], "b": t[1], "skipped": t[2]} for t in tests],
            "seed_groups": list(groups)}


@writes_run_dir(lambda a: Path(a["out"]).absolute().parent if a["out"] else None,
                "compare --out", create=True)
def compare_to_files(runs: list[str | Path], out: str | Path | None = None,
                     dense: str | Path | None = None, rank: str = "given",
                     hardware: str | None = None) -> tuple[str, list[Path]]:
    """The Markdown table of ``runs`` (row order: ``rank``, see :func:`compare_runs`;
    energy on ``hardware``) with the significance section; written to ``out`` (and its
    JSON beside it) when given. Returns (markdown, written paths)."""
    rows, tests, groups = compare_all(list(runs), dense, rank, hardware)
    md = to_markdown(rows) + significance_markdown(tests, groups)
    if not out:
        return md, []
    path = Path(out)
    md_path = path if path.suffix != ".json" else path.with_suffix(".md")
    write_text_atomic(md_path, md)
    write_json_atomic(md_path.with_suffix(".json"), to_json(rows, tests, groups))
    return md, [md_path, md_path.with_suffix(".json")]

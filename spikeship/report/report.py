"""``report.md``, ``report.html`` (one self-contained file) and ``plots/*.png`` for a run.

Everything is read from the run directory's files (DESIGN.md artifact contract):
``summary.json``, ``metrics.jsonl``, ``simulate-*.json``, ``energy.json`` and, when
given, the dense baseline's run directory and a comparison table. A section whose
data is missing says so instead of disappearing.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeship.errors import RunDirError
from spikeship.io import read_jsonl, safe_component, write_text_atomic
from spikeship.report import plots
from spikeship.report.compare import ops_and_energy
from spikeship.stats import format_accuracy
from spikeship.runlock import RUN_KINDS, writes_run_dir
from spikeship.safeopen import read_json


@dataclass
class RunFiles:
    """The JSON artifacts of one run directory (missing ones are empty)."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    simulations: dict[str, dict[str, Any]] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)
    energies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> RunFiles:
        p = Path(path)
        if not p.is_dir():
            raise RunDirError(f"run directory {p} does not exist")
        if not any((p / n).exists() for n in ("summary.json", "metrics.jsonl", "config.json",
                                               "checkpoint")):
            raise RunDirError(f"{p} is not a run directory (no summary.json, metrics.jsonl, "
                              "config.json or checkpoint/)")
        rf = cls(p)
        try:
            if (p / "summary.json").exists():
                rf.summary = _object(p / "summary.json")
            rf.metrics = read_jsonl(p / "metrics.jsonl")
            for f in sorted(p.glob("simulate-*.json")):
                rf.simulations[f.stem[len("simulate-"):]] = _object(f)
            for f in sorted(p.glob("energy*.json")):
                rf.energies[f.stem] = _object(f)
            rf.energy = rf.energies.get("energy", next(iter(rf.energies.values()), {}))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunDirError(f"corrupt JSON artifact in {p}: {e}") from e
        if not all(isinstance(m, dict) for m in rf.metrics):
            raise RunDirError(f"{p / 'metrics.jsonl'}: every line must be a JSON object")
        return rf


def _object(path: Path) -> dict[str, Any]:
    d = read_json(path, "run file", RunDirError)      # regular file, size-limited
    if not isinstance(d, dict):
        raise RunDirError(f"{path} does not hold a JSON object")
    return d


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{100 * v:.2f} %" if pct else f"{v:.4g}"
    return str(v)


def _acc(acc: float | None, n: int | None) -> str:
    """Accuracy with its 95 % Wilson interval and test-set size, when the size is known."""
    if acc is None or not n:
        return _fmt(acc, pct=True)
    return format_accuracy(round(acc * n), int(n))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _headline(run: RunFiles, dense: RunFiles | None) -> list[list[Any]]:
    s = run.summary
    rows = [["dataset / model", f"{s.get('dataset')} / {s.get('model')}"],
            ["pruner", s.get("pruner")],
            ["test accuracy (pruned)", _acc(s.get("test_accuracy"), s.get("samples_test"))]]
    dense_acc, dense_n = s.get("dense_baseline_accuracy"), None
    if dense is not None:
        dense_acc, dense_n = dense.summary.get("test_accuracy"), dense.summary.get("samples_test")
    rows.append(["test accuracy (dense)", _acc(dense_acc, dense_n)])
    rows.append(["pruning rate (prunable weights)", _fmt(s.get("pruning_rate"), pct=True)])
    rows.append(["weights remaining / total",
                 f"{s.get('params_remaining', 'n/a')} / {s.get('params_total', 'n/a')}"])
    rows.append(["epochs to dense accuracy", _fmt(s.get("epochs_to_baseline"))])
    e = run.energy
    if e:
        rows += _ops_energy_rows(e, dense.energy if dense is not None else None)
        for chip, c in (e.get("cores") or {}).items():
            if isinstance(c, dict) and "before_pruning" in c:
                rows.append([f"cores on {chip}, before / after pruning",
                             f"{c['before_pruning']['cores']} / {c['after_pruning']['cores']}"])
        vc = e.get("vanish_check")
        if vc is not None:
            rows.append(["vanish check", "passed" if vc.get("passed") else "FAILED"])
    return rows


def _ops_energy_rows(e: dict[str, Any], dense_e: dict[str, Any] | None) -> list[list[Any]]:
    """Operations and energy per sample, against the dense run's own deployed figures.

    "x fewer operations than the dense run" is one definition everywhere (this report
    and ``compare``): the dense run's deployed operations per sample (its own spikes on
    its own wiring, synops + MACs) over the pruned run's (:func:`ops_and_energy`). Without
    a dense run the pruned run's spikes priced on the unpruned wiring stand in, and the
    row says so."""
    ops, _, _, _ = ops_and_energy(e)
    rows: list[list[Any]] = []
    dense_ops = ops_and_energy(dense_e)[0] if dense_e else None
    chips = list((e.get("energy_pj_per_sample") or {}).items())
    if ops and dense_ops:
        rows.append(["ops per sample, pruned / dense run (x fewer than the dense run)",
                     f"{ops:,.0f} / {dense_ops:,.0f} (x{dense_ops / ops:.2f})"])
    elif ops:
        tot = e.get("totals_per_sample") or {}
        if tot.get("ops_dense"):
            rows.append(["ops per sample, deployed / its spikes on the unpruned wiring "
                         "(no dense run given)",
                         f"{ops:,.0f} / {tot['ops_dense']:,.0f} (x{tot['ops_dense'] / ops:.2f})"])
    for chip, c in chips:
        if c.get("total_pj") is None:
            continue
        own = f"{c['total_pj'] / 1e6:.4g} uJ"
        if dense_e:
            d = ops_and_energy(dense_e, chip)[1]
            rows.append([f"energy / sample on {chip}",
                         own + (f" (dense run {d:.4g} uJ)" if d is not None else "")])
        else:
            rows.append([f"energy / sample on {chip}", own + f" (its spikes on the unpruned "
                         f"wiring {c['dense_total_pj'] / 1e6:.4g} uJ)"])
    return rows


def _agreement_rows(run: RunFiles) -> list[list[Any]]:
    rows = []
    for target, sim in run.simulations.items():
        ag = sim.get("agreement_with_training") or {}
        rows.append([target, sim.get("samples"), _acc(sim.get("accuracy"), sim.get("samples")),
                     _fmt(ag.get("spikes"), pct=True), _fmt(ag.get("predictions"), pct=True),
                     _fmt(sim.get("samples_per_s"))])
    return rows


def _vanish_rows(run: RunFiles) -> list[list[Any]]:
    vc = (run.energy or {}).get("vanish_check") or {}
    rows = []
    for fmt, info in (vc.get("formats") or {}).items():
        if not isinstance(info, dict):
            continue
        count = {k: (info.get(k) or {}).get("count", 0) for k in
                 ("nonzero", "explicit_zero", "unit_present", "unit_fired")}
        result = "passed" if info.get("passed") else "FAILED"
        if info.get("tolerated"):
            result += f" (tolerated: {', '.join(info['tolerated'])})"
        rows.append([fmt, result, info.get("pruned_checked", "n/a"), info.get("absent", "n/a"),
                     count["explicit_zero"], count["nonzero"], count["unit_present"],
                     count["unit_fired"]])
    return rows


@writes_run_dir("run_dir", "report", accepts=RUN_KINDS)
def build_report(run_dir: str | Path, dense_dir: str | Path | None = None,
                 comparison_md: str | None = None) -> dict[str, Path]:
    """Write plots/*.png, report.md and report.html into ``run_dir``; return their paths."""
    run = RunFiles.read(run_dir)
    dense = RunFiles.read(dense_dir) if dense_dir else None
    pdir = run.path / "plots"
    if pdir.is_symlink():
        raise RunDirError(f"{pdir} is a symlink (to {pdir.resolve()}); report writes its plots "
                          f"only inside {run.path}: remove it")
    pdir.mkdir(exist_ok=True)
    last = run.metrics[-1] if run.metrics else {}
    figures = {
        "accuracy": plots.accuracy_curve(run.metrics, dense.metrics if dense else None,
                                         pdir / "accuracy.png", run.summary.get("pruner", "pruned")),
        "parameters": plots.parameters_curve(run.metrics, pdir / "parameters.png"),
        "survival": plots.survival_curves(run.metrics, pdir / "survival.png"),
        "retained": plots.retained_per_layer(last, pdir / "retained.png"),
        "energy": plots.energy_per_layer(run.energy, pdir / "energy.png",
                                         dense.energy if dense else None),
    }
    captions = {
        "accuracy": "Test accuracy per epoch, dense vs pruned",
        "parameters": "Remaining weights of prunable layers over epochs",
        "survival": "Survival functions of units in the epochs before they were pruned",
        "retained": "Retained neurons/channels and synapses per layer",
        "energy": "Synaptic operations per layer and energy per chip, dense vs pruned",
    }
    sections: list[tuple[str, str]] = [
        ("Headline", _table(["quantity", "value"], _headline(run, dense))),
    ]
    for key, path in figures.items():
        body = f"![{captions[key]}](plots/{path.name})" if path else \
            f"_No data for this figure in {run.path.name} ({captions[key].lower()})._"
        sections.append((captions[key], body))
    histories = plots.layer_histories(run.metrics)
    layer_figs = {h.label: plots.retained_over_epochs(   # layer names come from a file
                      h, pdir / f"units-{safe_component(h.label)}.png") for h in histories}
    for label, path in layer_figs.items():
        if path:
            figures[f"units-{label}"] = path
            sections.append((f"Layer {label}: units retained per epoch, importance, synapses",
                             f"![Layer {label}: units kept at each epoch (white = pruned), "
                             f"average importance, retained synapses](plots/{path.name})"))
    if not any(layer_figs.values()):
        sections.append(("Units retained per epoch (cf. DPAP Fig 4A-C)",
                         f"_No per-epoch unit masks in {run.path.name}/metrics.jsonl "
                         "(units_kept_hex: recorded by training since this version)._"))
    agree = _agreement_rows(run)
    sections.append(("Agreement across targets", _table(
        ["target", "samples", "accuracy", "identical output spikes", "identical predictions",
         "samples/s"], agree) if agree else "_No simulation results yet._"))
    vrows = _vanish_rows(run)
    sections.append(("Vanish check", _table(
        ["format / run", "result", "pruned checked", "absent", "explicit zeros",
         "non-zero", "unit present", "unit fired"], vrows) if vrows
        else "_No energy.json / vanish check yet._"))
    if comparison_md:
        sections.append(("Comparison", comparison_md))
    title = f"spikeship report: {run.path.name}"
    md = f"# {title}\n\n" + "\n\n".join(f"## {h}\n\n{b}" for h, b in sections) + "\n"
    write_text_atomic(run.path / "report.md", md)
    write_text_atomic(run.path / "report.html", _html(title, sections, pdir))
    return {"md": run.path / "report.md", "html": run.path / "report.html",
            **{k: v for k, v in figures.items() if v}}


def _md_table_to_html(block: str) -> str:
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    cells = [[html.escape(c.strip()) for c in ln.strip().strip("|").split("|")] for ln in lines]
    head, body = cells[0], cells[2:]
    h = "".join(f"<th>{c}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def _html(title: str, sections: list[tuple[str, str]], pdir: Path) -> str:
    parts = []
    for head, body in sections:
        if body.startswith("!["):
            alt, src = body[2:].split("](", 1)
            data = base64.b64encode((pdir / Path(src.rstrip(")")).name).read_bytes()).decode()
            content = f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        elif body.lstrip().startswith("|"):
            content = _md_table_to_html(body)
        else:
            content = f"<p>{html.escape(body.strip('_'))}</p>"
        parts.append(f"<h2>{html.escape(head)}</h2>\n{content}")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:left}img{max-width:100%}")
    # The script marks whether every image decoded: the browser test reads it.
    script = ("<script>window.addEventListener('load',function(){var i=document.images,ok=i.length>0;"
              "for(var k=0;k<i.length;k++){if(!i[k].complete||i[k].naturalWidth==0)ok=false;}"
              "document.body.setAttribute('data-images-ok',ok?'yes':'no');"
              "document.body.setAttribute('data-images',String(i.length));});</script>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style>{script}</head><body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")

"""The one renderer: results/*.json -> the results pages, their figures and the README's
headline block.

    python -m benchmarks.render [--results results] [--docs docs/results] [--readme README.md]

Writes ``docs/results/<topic>.md`` (one page per topic: tables and summaries of every
result on it, with the command, commit, date and machine that made it),
``docs/results/<name>.svg`` (the trade-off figures, drawn from the same JSON),
``docs/results/index.md`` (the headline table and the pages), and the block between
``<!-- results:headline:begin -->`` and ``<!-- results:headline:end -->`` of the README,
when it has those markers. The same JSON renders to the same bytes (figures too: fixed
SVG hash salt, no date).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

from benchmarks import common, schema

BEGIN, END = "<!-- results:headline:begin -->", "<!-- results:headline:end -->"
STAMP = "<!-- rendered by `python -m benchmarks.render` from results/*.json; do not edit -->"
PAGES = {"pruning": "Pruning for the chip: dense vs pruned, per seed",
         "timesteps": "Time steps: accuracy, operations and energy against T",
         "onnx-latency": "ONNX Runtime latency of dense and pruned graphs",
         "speed": "Speed: training, DPAP's overhead, the emulator, data-parallel scaling",
         "reliability": "Reliability: hostile cases tried, by class",
         "conformance": "Conformance: NIR files from other frameworks on every simulator"}
#: headline rows: label -> the results whose seeds it pools (the current defaults)
HEADLINE = {"digits": ("prune-digits-chip", "prune-digits-chip-seeds10-19",
                       "prune-digits-chip-seeds20-29", "prune-digits-chip-seeds30-39"),
            "MNIST (6,000 training samples)": ("prune-mnist-chip",)}


# ---- numbers --------------------------------------------------------------------------------
def fmt(v, signed: bool = False) -> str:
    """One number as the pages write it (``—`` for none)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:+,}" if signed else f"{v:,}"
    if isinstance(v, float):
        if signed:
            return f"{v:+.2f}"
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(v)


def interval(d: dict, signed: bool = False) -> str:
    """``mean [lo, hi]`` of an interval object (the mean alone when it has none)."""
    out = fmt(d["mean"], signed)
    if d.get("lo") is not None:
        out += f" [{fmt(d['lo'], signed)}, {fmt(d['hi'], signed)}]"
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


# ---- per benchmark ----------------------------------------------------------------------------
PRUNE_HEADER = ["seed", "float dense", "float pruned", "diff (pt) [95 % paired]", "emu dense",
                "emu pruned", "conv0 ch", "conv3 ch", "fc7 units (deployed; synapses kept)",
                "pruned %", "synops dense", "synops pruned", "ratio", "from structure",
                "from rates", "Loihi uJ dense", "Loihi uJ pruned", "Loihi cores d / p",
                "Loihi 2 cores d / p", "energy exit"]


def _prune_row(r: dict) -> list[str]:
    ci = "" if r["diff_lo"] is None else f" [{fmt(r['diff_lo'], True)}, {fmt(r['diff_hi'], True)}]"
    return [str(r["seed"]), fmt(r["float_dense"]), fmt(r["float_pruned"]),
            fmt(r["diff_pt"], True) + ci, fmt(r["emu_dense"]), fmt(r["emu_pruned"]),
            f"{r['conv0_kept']}/{r['conv0_total']}", f"{r['conv3_kept']}/{r['conv3_total']}",
            f"{r['fc7_kept']}/{r['fc7_total']} ({fmt(r['fc7_deployed'])}; "
            f"{r['fc7_synapses_kept_pct']:.0f} %)", f"{r['pruned_pct']:.1f}",
            fmt(float(r["synops_dense"])), fmt(float(r["synops_pruned"])), fmt(r["ratio"]),
            fmt(r["from_structure"]), fmt(r["from_rates"]), fmt(r["energy_uj_dense"]),
            fmt(r["energy_uj_pruned"]),
            f"{fmt(r['loihi_cores_dense'])} / {fmt(r['loihi_cores_pruned'])}",
            f"{fmt(r['loihi2_cores_dense'])} / {fmt(r['loihi2_cores_pruned'])}",
            fmt(r["energy_exit"])]


def _se(d: dict) -> str:
    return "" if d.get("se") is None else f" (SE {d['se']:.2f})"


def prune_section(doc: dict) -> list[str]:
    s = doc["summary"]
    lines = _table(PRUNE_HEADER, [_prune_row(r) for r in doc["rows"]])
    lines += ["", f"- seeds: {s['seeds']}; mean paired accuracy difference (pruned - dense), "
              f"95 % interval over seeds: float {interval(s['diff_float_pt'], True)} pt"
              f"{_se(s['diff_float_pt'])}; Loihi emulator {interval(s['diff_emu_pt'], True)} pt"
              f"{_se(s['diff_emu_pt'])}"]
    if "pooled_diff_pt" in s:
        p = s["pooled_diff_pt"]
        lines.append(f"- the seeds' {fmt(p['pairs'])} test-sample pairs pooled: "
                     f"{interval(p, True)} pt (95 % paired interval; test-sample noise only)")
    lines += [f"- operations ratio dense / pruned: min {fmt(s['ratio']['min'])}, mean "
              f"{fmt(s['ratio']['mean'])}; Loihi energy ratio: min "
              f"{fmt(s['energy_ratio']['min'])}, mean {fmt(s['energy_ratio']['mean'])}",
              f"- largest |emulator - float| over all runs: {fmt(s['max_emu_float_gap_pt'])} pt",
              f"- epochs dense {fmt(s.get('epochs_dense'))}, pruned "
              f"{fmt(s.get('epochs_pruned'))}; training samples {fmt(s.get('samples_train'))}; "
              f"time steps dense {s['timesteps_dense']}, pruned {s['timesteps_pruned']}"]
    lines += ["", f"![{doc['title']}]({doc['name']}.svg)"]
    return lines


def generic_section(doc: dict) -> list[str]:
    """Rows as a table (columns in the first row's order), summary as a list."""
    lines = []
    if doc["rows"]:
        keys = list(dict.fromkeys(k for r in doc["rows"] for k in r))
        lines += _table([k.replace("_", " ") for k in keys],
                        [[fmt(r.get(k)) for k in keys] for r in doc["rows"]])
        lines.append("")
    for k, v in doc["summary"].items():
        text = (", ".join(f"{a.replace('_', ' ')} {fmt(b)}" for a, b in v.items())
                if isinstance(v, dict) else fmt(v))
        lines.append(f"- {k.replace('_', ' ')}: {text}")
    if doc["benchmark"] == "bench_timesteps":
        lines += ["", f"![{doc['title']}]({doc['name']}.svg)"]
    return lines


def provenance(doc: dict) -> list[str]:
    m = doc["machine"]
    ram = "RAM not recorded" if m["ram_gb"] is None else f"{fmt(float(m['ram_gb']))} GB RAM"
    vers = ", ".join(f"{k} {v}" for k, v in sorted(doc["versions"].items()))
    out = [f"Command: `{doc['command']}`", "",
           f"Commit `{doc['commit']}`, {doc['date']}; {m['cpu']}, {m['cores']} cores, {ram}; "
           f"{vers}."]
    if "imported_from" in doc:
        out[-1] += (f" Imported once from the generated block of `{doc['imported_from']}` "
                    f"(the runs take hours to remake here); the command is the one that "
                    f"wrote it.")
    return out


def section(doc: dict) -> list[str]:
    lines = [f"## {doc['title']}", "", doc["description"], ""]
    if doc.get("config"):
        lines += ["Settings: " + ", ".join(f"{k} {fmt(v)}" for k, v in doc["config"].items()
                                            if v not in (None, "")), ""]
    body = prune_section(doc) if doc["benchmark"] == "bench_prune_energy" else generic_section(doc)
    lines += body + [""]
    if doc.get("notes"):
        lines += [*(f"- {n}" for n in doc["notes"]), ""]
    return lines + provenance(doc) + [f"(`results/{doc['name']}.json`)", ""]


# ---- figures ----------------------------------------------------------------------------------
def _figure(draw) -> str:
    """The SVG text of the figure ``draw(fig)`` fills, with no date and a fixed hash salt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.hashsalt": "spikeship", "svg.fonttype": "none"}):
        fig = plt.figure(figsize=(10, 4))
        draw(fig)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


def prune_figure(doc: dict) -> str:
    """Per seed, dense and pruned run joined (operations, log x, against float accuracy);
    right: each seed's operations ratio against its paired difference with its interval."""
    def draw(fig):
        ax, bx = fig.subplots(1, 2)
        for i, r in enumerate(doc["rows"]):
            c = f"C{i % 10}"
            ax.plot([r["synops_dense"], r["synops_pruned"]], [r["float_dense"], r["float_pruned"]],
                    "-o", color=c, alpha=0.7)
            yerr = (None if r["diff_lo"] is None else
                    [[r["diff_pt"] - r["diff_lo"]], [r["diff_hi"] - r["diff_pt"]]])
            bx.errorbar([r["ratio"]], [r["diff_pt"]], yerr=yerr, fmt="o", color=c, capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("effective synaptic operations per sample")
        ax.set_ylabel("float test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        bx.axhline(0.0, color="k", lw=0.8)
        bx.axhline(doc["summary"]["diff_float_pt"]["mean"], color="C3", lw=1.0, ls=":",
                   label="mean over seeds")
        bx.legend(fontsize=7)
        bx.set_xlabel("operations ratio dense / pruned")
        bx.set_ylabel("accuracy pruned - dense (pt), 95 % paired")
        bx.grid(alpha=0.3)
        fig.suptitle(doc["title"], fontsize=9)
    return _figure(draw)


def timesteps_figure(doc: dict) -> str:
    """Float accuracy (mean, 95 % interval over seeds) against Loihi energy per sample."""
    def draw(fig):
        ax = fig.subplots()
        s = doc["summary"]
        groups = sorted({k.rsplit("-", 1)[0] for k in s}, key=lambda g: int(g[1:].split("-")[0]))
        for kind in sorted({g.split("-", 1)[1] for g in groups}):
            pts = [g for g in groups if g.split("-", 1)[1] == kind]
            xs = [s[f"{g}-means"]["energy_uj"] for g in pts]
            acc = [s[f"{g}-float_pct"] for g in pts]
            err = [[a["mean"] - (a["lo"] if a["lo"] is not None else a["mean"]) for a in acc],
                   [(a["hi"] if a["hi"] is not None else a["mean"]) - a["mean"] for a in acc]]
            ax.errorbar(xs, [a["mean"] for a in acc], yerr=err, marker="o", capsize=3,
                        label=kind)
            for g, x, a in zip(pts, xs, acc):
                ax.annotate(g.split("-")[0].replace("T", "T="), (x, a["mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("Loihi energy per sample (uJ)")
        ax.set_ylabel("float test accuracy (%), 95 % interval over seeds")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.suptitle(doc["title"], fontsize=9)
    return _figure(draw)


FIGURES = {"bench_prune_energy": prune_figure, "bench_timesteps": timesteps_figure}


# ---- headline ---------------------------------------------------------------------------------
def headline(docs: list[dict]) -> list[str]:
    """Dense vs DPAP's default on digits and on MNIST: accuracy (mean over seeds, 95 %
    interval), the paired difference, and how many times fewer deployed operations."""
    by_name = {d["name"]: d for d in docs}
    rows, sources = [], []
    for label, names in HEADLINE.items():
        have = [by_name[n] for n in names if n in by_name]
        if not have:
            continue
        rs = [r for d in have for r in d["rows"]]
        dense = common.mean_interval([r["float_dense"] for r in rs])
        pruned = common.mean_interval([r["float_pruned"] for r in rs])
        diff = common.mean_interval([r["diff_pt"] for r in rs])
        ratios = [r["ratio"] for r in rs]
        rows.append([label, str(len(rs)), interval(dense), interval(pruned),
                     interval(diff, True),
                     f"{sum(ratios) / len(ratios):.2f}x (min {min(ratios):.2f}x)"])
        sources += [f"`results/{d['name']}.json`" for d in have]
    if not rows:
        return ["_No results of the current defaults yet._"]
    return _table(["dataset", "seeds", "dense accuracy (%)", "DPAP default accuracy (%)",
                   "difference (pt)", "fewer deployed operations"], rows) + [
        "", "Accuracy: mean over seeds with its 95 % interval; the difference is paired "
        "(the same seed and test samples); operations: effective synaptic operations per "
        "sample on the deployed graph (Loihi emulator spikes), dense / pruned, mean over "
        "seeds. From " + ", ".join(sources) + "."]


# ---- pages ------------------------------------------------------------------------------------
def pages(docs: list[dict], figures: bool = True) -> dict[str, str]:
    """File name -> text of every page (and, with ``figures``, figure) the results render to."""
    out: dict[str, str] = {}
    for topic, title in PAGES.items():
        on = [d for d in docs if d["topic"] == topic]
        if not on:
            continue
        lines = [STAMP, "", f"# {title}", ""]
        for d in on:
            lines += section(d)
        out[f"{topic}.md"] = "\n".join(lines).rstrip("\n") + "\n"
    for d in docs if figures else ():
        if d["benchmark"] in FIGURES:
            out[f"{d['name']}.svg"] = FIGURES[d["benchmark"]](d)
    index = [STAMP, "", "# Results", "",
             "Every figure here is rendered from `results/*.json` (the command, commit, date "
             "and machine of each are on its page). `make bench` runs every benchmark on its "
             "small defaults into `bench-out/` (`make bench BENCH_ARGS=--results`: into "
             "`results/`); `make results-pages` renders the pages.", "",
             "## The current defaults", "", *headline(docs), "", "## Pages", ""]
    index += [f"- [{PAGES[t]}]({t}.md)" for t in PAGES if f"{t}.md" in out]
    index += ["- [Experiment log](experiment-log.md): the experiments that chose today's "
              "defaults, superseded by them", ""]
    out["index.md"] = "\n".join(index)
    return out


def readme_block(text: str, docs: list[dict]) -> str | None:
    """``text`` with its headline block rendered; None when it has no (single) block."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        return None
    block = "\n".join([BEGIN, *headline(docs), END])
    return re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, text,
                  flags=re.S)


def render(results: Path, docs_dir: Path | None, readme: Path | None) -> list[Path]:
    """Render every page into ``docs_dir`` and the README's block (either None: not that);
    returns the files written."""
    from spikeship.io import write_text_atomic

    docs = schema.read_all(results)
    written = []
    for name, text in (pages(docs) if docs_dir is not None else {}).items():
        docs_dir.mkdir(parents=True, exist_ok=True)
        schema.check_text(name, "page", re.sub(r"<svg.*</svg>", "", text, flags=re.S))
        write_text_atomic(docs_dir / name, text)
        written.append(docs_dir / name)
    if readme is not None and readme.exists():
        new = readme_block(readme.read_text(encoding="utf-8"), docs)
        if new is not None:
            write_text_atomic(readme, new)
            written.append(readme)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--results", type=Path, default=common.ROOT / "results")
    ap.add_argument("--docs", type=Path, default=common.ROOT / "docs" / "results")
    ap.add_argument("--readme", type=Path, default=common.ROOT / "README.md")
    args = ap.parse_args(argv)
    for path in render(args.results, args.docs, args.readme):
        print(f"wrote {common.relative(str(path))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seed sweep: does DPAP (CLI defaults) cut the deployed network's work >= 3x at no accuracy cost?

For every seed, two runs through the documented command sequence, each a real
``spikeship`` process::

    spikeship train    --dataset digits --model dpap-mnist --seed S [--prune dpap ...]
    spikeship export   RUN
    spikeship simulate RUN --target loihi-emu     # whole test split, fixed point
    spikeship energy   RUN --hardware loihi       # no tolerance flag: must pass as is

once dense (``--prune none``) and once pruned (``--prune dpap`` plus any
``--prune-opt`` given here; none = the CLI defaults). Per seed the table has the
float accuracy of the trained model, the Loihi-emulator (fixed point) accuracy,
the conv channels kept, effective synaptic operations per sample (emulator spikes
x synapses of the deployed graph, as ``energy.json`` counts them), Loihi energy per
sample, and the dense / pruned ratios. The summary gives the paired mean accuracy
difference (pruned - dense, float and emulator) with its standard error.

The two factors of the ratio: *from structure* = the pruned run's spikes priced on
the unpruned wiring / on its deployed wiring (fewer synapses per surviving spike);
*from rates* = the dense run's operations / the pruned run's spikes on the unpruned
wiring (the spikes removed neurons no longer emit, net of what the surviving ones
fire more or less). Their product is the ratio.

The "Done when" of issue 16: every seed prunes conv channels (the line says in which
layers),
synops ratio >= 3 on every seed, paired mean difference >= -0.5 pt, emulator within
0.5 pt of float. Finished runs are reused (``--out`` keeps them), so an interrupted
sweep continues where it stopped.

Time steps, the other lever of energy: ``--timesteps T`` trains dense and pruned runs
with T steps (folders ``-TT``); ``--pruned-timesteps T`` only the pruned ones, so a
pruned network deployed with fewer steps is compared with the dense run of the CLI's T
on the same test samples. The ratio then counts the steps too: the summary says how
much of "from rates" is T dense / T pruned and how much is the spike rate per step.

Loihi and Loihi 2 cores come from ``energy.json``'s ``cores`` (the mapper's count for
the deployed graph, ``after_pruning``), dense and pruned per seed; the summary says
whether the cores were at least halved on both chips for every seed.

The figure ``OUT/TAG-tradeoff.png`` (matplotlib) shows, per seed, the dense and the
pruned run as two points joined by a line (operations per sample, log scale, against
float and emulator accuracy), and each seed's operations ratio against its paired
accuracy difference with its 95 % interval; ``--figure PATH`` copies it (e.g. to
``docs/`` for the README).

``--readme README.md`` rewrites the block between ``<!-- prune-table:begin -->`` and
``<!-- prune-table:end -->`` with the table, the summary, the machine, the versions,
the date and the exact command, so the README's table is generated, never pasted.
``--block NAME`` writes ``<!-- prune-table-NAME:begin -->`` ... instead, so one README
can hold one generated table per method.

    python benchmarks/bench_prune_energy.py --seeds 0-9 --out runs/bench-prune
    python benchmarks/bench_prune_energy.py --seeds 0-9 --readme README.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_numbers import cpu_model, git_commit  # noqa: E402  (one machine line for all)

CLI = [sys.executable, "-m", "spikeship.cli"]
ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- prune-table:begin -->", "<!-- prune-table:end -->"


def markers(block: str = "") -> tuple[str, str]:
    """The begin / end markers of the README block ``block`` ("" = the default one)."""
    name = f"prune-table-{block}" if block else "prune-table"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
CHIPS = (("loihi", "Loihi"), ("loihi2", "Loihi 2"))


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def _run(args: list[str], log: Path) -> int:
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ spikeship " + " ".join(args) + "\n")
        f.flush()
        return subprocess.run(CLI + args, stdout=f, stderr=subprocess.STDOUT).returncode


def check_reused(run: Path, train_args: list[str]) -> None:
    """A finished run is reused only if it was trained with the quantisation-aware
    training these arguments ask for (``--no-qat``, ``--qat``, ``--qat-epochs N``) and, for
    DPAP, with the DPAP options they resolve to now (``--prune-opt`` over the current
    default, compared with the options its checkpoint records): a run of an older default
    is named, not reused."""
    from readme_numbers import _dpap_resolved, _dpap_resolved_run

    from spikeship.train.config import SAVED_BEFORE, TrainConfig

    cfg = {**SAVED_BEFORE, **json.loads((run / "config.json").read_text())}
    have_q = (bool(cfg["qat"]), int(cfg["qat_epochs"]))
    want_q = have_q                     # neither flag: not asked (the bench gives one)
    if "--no-qat" in train_args:
        want_q = (False, 0)
    elif "--qat" in train_args:
        want_q = (True, int(train_args[train_args.index("--qat-epochs") + 1])
                  if "--qat-epochs" in train_args else 0)
    if have_q != want_q:
        raise SystemExit(f"{run} was trained with qat={have_q[0]}, qat_epochs={have_q[1]}; "
                         f"these arguments ask for qat={want_q[0]}, qat_epochs={want_q[1]}: "
                         f"move it away to retrain")
    want_t = (int(train_args[train_args.index("--timesteps") + 1])
              if "--timesteps" in train_args else TrainConfig.timesteps)
    have_t = int(cfg.get("timesteps", TrainConfig.timesteps))
    if have_t != want_t:
        raise SystemExit(f"{run} was trained with {have_t} time steps; these "
                         f"arguments ask for {want_t}: move it away to retrain")
    if "--prune" not in train_args or train_args[train_args.index("--prune") + 1] != "dpap":
        return
    opts = dict(train_args[i + 1].split("=", 1) for i, a in enumerate(train_args)
                if a == "--prune-opt")
    want, have = _dpap_resolved(opts), _dpap_resolved_run(run)
    if have is None:
        raise SystemExit(f"{run}: finished, but its checkpoint records no DPAP options; "
                         f"move it away to retrain")
    diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if diff:
        k, (h, w) = next(iter(sorted(diff.items())))
        raise SystemExit(f"{run} was trained with DPAP option {k}={h!r}, these arguments "
                         f"resolve to {k}={w!r} ({len(diff)} option(s) differ): it is a "
                         f"run of other options (an older default?); move it away")


def one_run(run: Path, seed: int, train_args: list[str], epochs: int | None) -> dict:
    """Train/export/simulate/energy ``run`` unless done; return its row."""
    run.parent.mkdir(parents=True, exist_ok=True)
    log = run.parent / (run.name + ".log")   # not with_suffix: tags hold dots ("0.4")
    if (run / "summary.json").exists():
        check_reused(run, train_args)
    else:
        extra = ["--epochs", str(epochs)] if epochs else []
        if (run / "checkpoint").exists():
            extra.append("--resume")              # an interrupted run continues exactly
        rc = _run(["train", "--out", str(run), "--seed", str(seed), "--no-progress",
                   "--threads", "1", *extra, *train_args], log)
        if rc:
            raise SystemExit(f"train failed for {run} (see {log})")
    if not (run / "model.net").exists():
        if _run(["export", str(run)], log):
            raise SystemExit(f"export failed for {run} (see {log})")
    if not (run / "simulate-loihi-emu.json").exists():
        if _run(["simulate", str(run), "--target", "loihi-emu"], log):
            raise SystemExit(f"simulate failed for {run} (see {log})")
    energy_rc = 0
    if not (run / "energy.json").exists() or not (run / "energy.rc").exists():
        energy_rc = _run(["energy", str(run), "--hardware", "loihi",
                          "--spikes-from", "loihi-emu"], log)
        (run / "energy.rc").write_text(str(energy_rc))
    energy_rc = int((run / "energy.rc").read_text())
    summ = json.loads((run / "summary.json").read_text())
    sim = json.loads((run / "simulate-loihi-emu.json").read_text())
    en = json.loads((run / "energy.json").read_text())
    t = en["totals_per_sample"]
    units = {}
    for line in (run / "metrics.jsonl").read_text().splitlines()[-1:]:
        for l in json.loads(line)["layers"]:
            units[l["name"]] = (l["units_remaining"], l["units_total"],
                                100.0 * l["synapses_remaining"] / max(l["synapses_total"], 1))
    exp = (json.loads((run / "export.json").read_text())
           if (run / "export.json").exists() else {})
    deployed = {l["layer"]: l["after"][0] for l in exp.get("layers", [])}   # "fc7": 206
    vc = en.get("vanish_check", {})
    cores = {}
    for chip, _ in CHIPS:
        after = ((en.get("cores") or {}).get(chip) or {}).get("after_pruning") or {}
        cores[chip] = after.get("cores")          # None when the mapper refused the graph
    from spikeship.train.config import TrainConfig

    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return {"cores": cores, "float": summ["test_accuracy"], "emu": sim["accuracy"],
            "timesteps": int(cfg.get("timesteps", TrainConfig.timesteps)),
            "samples": sim["samples"], "pruning_rate": summ["pruning_rate"],
            "epochs": summ.get("epochs"), "samples_train": summ.get("samples_train"),
            "units": units, "deployed_units": deployed, "synops": t["ops_effective"],
            "synops_unpruned": t["ops_dense"],
            "energy_uj": t["energy_pj"] / 1e6, "energy_rc": energy_rc,
            "vanish": vc.get("passed"), "vanish_summary": vc.get("summary", vc.get("note"))}


def span(values) -> str:
    """The distinct values, sorted, joined by "/" ("?" when none is known)."""
    vals = sorted({v for v in values if v is not None})
    return "/".join(map(str, vals)) if vals else "?"


def epochs_line(rows) -> str:
    """How long the dense and the pruned runs trained, from their summaries."""
    samples = span(r.get("samples_train") for _, d, p in rows for r in (d, p))
    return (f"epochs (from the runs' summaries): dense {span(d.get('epochs') for _, d, _ in rows)}"
            f", pruned {span(p.get('epochs') for _, _, p in rows)}; training samples {samples}")


def paired_counts(dense_dir: Path, pruned_dir: Path) -> tuple[int, int, int] | None:
    """``(b, c, n)`` of the two runs' ``predictions.npz`` on their shared test samples:
    ``b`` samples only the dense run gets right, ``c`` only the pruned one, ``n`` pairs
    (matched as ``compare``'s McNemar test matches them). None when they cannot be
    paired (a file missing, other samples)."""
    from spikeship.report.significance import mcnemar_runs

    def config(d: Path) -> dict:
        f = d / "config.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    t = mcnemar_runs(dense_dir, pruned_dir, config(dense_dir), config(pruned_dir))
    if isinstance(t, str):
        return None
    return int(t.a_only), int(t.b_only), int(t.n)


def interval_pt(counts: tuple[int, int, int]) -> tuple[float, float]:
    """95 % interval (pt) of the pruned - dense difference from :func:`paired_counts`
    (:func:`spikeship.stats.paired_difference_interval`)."""
    from spikeship.stats import paired_difference_interval

    lo, hi = paired_difference_interval(*counts)
    return 100 * lo, 100 * hi


def paired_ci(dense_dir: Path, pruned_dir: Path) -> tuple[float, float] | None:
    """95 % interval (pt) of the pruned - dense accuracy difference on the shared test
    samples; None when the runs cannot be paired."""
    counts = paired_counts(dense_dir, pruned_dir)
    return None if counts is None else interval_pt(counts)


def pooled_paired_line(counts: list[tuple[int, int, int] | None]) -> str:
    """The seeds' sample pairs pooled into one paired interval (several seeds on a large
    test split, e.g. MNIST). It measures the test-sample noise of the mean difference
    over these seeds' networks only; the spread between seeds is the SE line's."""
    if len(counts) < 2 or any(c is None for c in counts):
        return ""
    b, c, n = (sum(x[i] for x in counts) for i in range(3))
    lo, hi = interval_pt((b, c, n))
    return (f"pooled over the {len(counts)} seeds' {n:,} sample pairs: "
            f"{100 * (c - b) / n:+.2f} pt, 95 % paired interval [{lo:+.2f}, "
            f"{hi:+.2f}] (test-sample noise only; the seed-to-seed spread is the SE)")


def mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var / n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--out", default="runs/bench-prune")
    ap.add_argument("--prune", default="dpap")
    ap.add_argument("--prune-opt", action="append", default=[],
                    help="key=value for the pruned runs (repeatable); none = CLI defaults")
    ap.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--pruned-epochs", type=int, default=None,
                    help="epochs of the pruned runs (default: --epochs); with --from-dense, "
                         "the fine-tuning after the trained dense network was pruned")
    ap.add_argument("--dataset", default=None, help="default: the CLI's (digits)")
    ap.add_argument("--timesteps", type=int, default=None, metavar="T",
                    help="time steps of dense and pruned runs (default: the CLI's, 8; "
                         "folder suffix -TT)")
    ap.add_argument("--pruned-timesteps", type=int, default=None, metavar="T",
                    help="time steps of the pruned runs only (default: --timesteps): the "
                         "pruned network is deployed with fewer steps than the dense "
                         "reference, the other lever of energy; the ratio then includes "
                         "the steps (the summary splits them out)")
    ap.add_argument("--qat", action="store_true",
                    help="train dense and pruned runs with --qat (weights on the Loihi "
                         "quantiser's grid in every epoch); without --qat / --qat-epochs "
                         "the runs are trained with --no-qat (run folders without a -qat "
                         "suffix, as before the CLI's default became --qat-epochs 5)")
    ap.add_argument("--qat-epochs", type=int, default=None, metavar="N",
                    help="quantisation-aware only in the last N epochs of each run (implies "
                         "--qat; folder suffix -qatN). The CLI's default is --qat-epochs 5")
    ap.add_argument("--tag", default="", help="name of the pruned variant (run folder)")
    ap.add_argument("--limit-train", type=int, default=None,
                    help="train dense and pruned runs on a stratified subset of this many "
                         "training samples (the test split stays whole)")
    ap.add_argument("--dense-only", action="store_true")
    ap.add_argument("--figure", type=Path, default=None,
                    help="also copy the trade-off figure (OUT/TAG-tradeoff.png) here")
    ap.add_argument("--from-dense", action="store_true",
                    help="each pruned run starts from the trained dense run of its seed "
                         "(spikeship train --init-from): prune a trained network, fine-tune")
    ap.add_argument("--readme", type=Path, default=None,
                    help=f"rewrite the {BEGIN} ... {END} block of this file")
    ap.add_argument("--block", default="", help="README block name (prune-table-NAME)")
    args = ap.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", args.block):
        ap.error("--block: letters, digits, '.', '_' and '-' only")
    begin, end = markers(args.block)
    if args.readme is not None and args.dense_only:
        ap.error("--readme needs the pruned runs (not --dense-only)")
    if args.readme is not None:
        check_block(args.readme, begin, end)      # before hours of runs, not after
    if not args.dense_only:                       # the pruner checks its options now too
        from spikeship.errors import ConfigError
        from spikeship.train.config import parse_prune_option
        from spikeship.train.pruners import get_pruner_class

        try:
            get_pruner_class(args.prune)(dict(parse_prune_option(o) for o in args.prune_opt))
        except ConfigError as e:
            ap.error(f"--prune / --prune-opt: {e}")
    out = Path(args.out)
    ep = (f"-{args.dataset}" if args.dataset else "") + (f"-e{args.epochs}" if args.epochs else "")
    pep = ep if args.pruned_epochs is None else ep + f"-p{args.pruned_epochs}"
    data = ["--dataset", args.dataset] if args.dataset else []
    if args.limit_train:
        data += ["--limit-train", str(args.limit_train)]
        ep += f"-lt{args.limit_train}"
        pep += f"-lt{args.limit_train}"
    if args.qat_epochs is not None and args.qat_epochs < 0:
        ap.error("--qat-epochs must be >= 0")
    if args.qat or args.qat_epochs is not None:
        q = "-qat" + (f"{args.qat_epochs}" if args.qat_epochs else "")
        ep += q
        pep += q
        data.append("--qat")
        if args.qat_epochs:
            data += ["--qat-epochs", str(args.qat_epochs)]
    else:
        data.append("--no-qat")
    for name in ("timesteps", "pruned_timesteps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    steps = [] if args.timesteps is None else ["--timesteps", str(args.timesteps)]
    psteps = (steps if args.pruned_timesteps is None
              else ["--timesteps", str(args.pruned_timesteps)])
    ep += "".join(f"-T{v}" for v in steps[1:])
    pep += "".join(f"-T{v}" for v in psteps[1:])
    opts = "-".join(o.replace("=", "") for o in args.prune_opt)
    tag = args.tag or (("fromdense-" if args.from_dense else "") + args.prune
                       + (f"-{opts}" if opts else ""))
    popts = [a for o in args.prune_opt for a in ("--prune-opt", o)]
    rows = []
    for seed in _seeds(args.seeds):
        dense_dir, pruned_dir = out / f"dense{ep}-s{seed}", out / f"{tag}{pep}-s{seed}"
        dense = one_run(dense_dir, seed, [*data, *steps], args.epochs)
        if args.dense_only:
            print(f"seed {seed}: dense {100 * dense['float']:.2f} %  "
                  f"{dense['synops']:,.0f} synops", flush=True)
            continue
        init = ["--init-from", str(dense_dir.resolve())] if args.from_dense else []
        pr = one_run(pruned_dir, seed, [*data, *psteps, *init, "--prune", args.prune, *popts],
                     args.epochs if args.pruned_epochs is None else args.pruned_epochs)
        counts = pr["paired_counts"] = paired_counts(dense_dir, pruned_dir)
        pr["paired_ci"] = None if counts is None else interval_pt(counts)
        rows.append((seed, dense, pr))
        _print_row(seed, dense, pr)
    if rows:
        note = ""
        if args.from_dense:
            note = (f"each pruned run started from the trained dense run of its seed "
                    f"(`--init-from`) and trained "
                    f"{args.pruned_epochs or args.epochs or 'the default number of'} epochs "
                    f"more with the pruner (the dense run: "
                    f"{args.epochs or 'the default number of'} epochs)")
        else:
            note = epochs_line(rows)
        text = _summary(rows, out / f"{tag}{pep}-table.md", note=note)
        fig = out / f"{tag}{pep}-tradeoff.png"
        t_pairs = {(d.get("timesteps"), p.get("timesteps")) for _, d, p in rows}
        title = f"{tag}{pep}: {args.prune} {' '.join(args.prune_opt)}" + "".join(
            f"; T dense {a}, pruned {b}" for a, b in sorted(t_pairs) if a != b)
        if plot(rows, fig, title=title):
            print(f"wrote {fig}", flush=True)
            if args.figure:
                args.figure.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(fig, args.figure)
                print(f"copied to {args.figure}", flush=True)
        if args.readme is not None:
            cmd = shlex.join(["python", "benchmarks/bench_prune_energy.py",
                              *(sys.argv[1:] if argv is None else argv)])
            rewrite_readme(args.readme, render_block(text, cmd, begin, end), begin, end)
            print(f"rewrote the {begin} block of {args.readme}", flush=True)
    return 0


HEADER = ("| seed | float dense | float pruned | diff (pt) [95 % paired] | emu dense | emu pruned | "
          "conv0 ch | conv3 ch | fc7 units (deployed; synapses kept) | pruned % | synops dense | synops pruned | "
          "ratio | from structure | from rates | Loihi uJ dense | Loihi uJ pruned | "
          "Loihi cores dense | Loihi cores pruned | Loihi 2 cores dense | Loihi 2 cores pruned | "
          "energy exit |")


def _fmt_row(seed, d, p) -> str:
    u = p["units"]
    return (f"| {seed} | {100 * d['float']:.2f} | {100 * p['float']:.2f} | "
            f"{100 * (p['float'] - d['float']):+.2f}{_ci(p.get('paired_ci'))} | "
            f"{100 * d['emu']:.2f} | "
            f"{100 * p['emu']:.2f} | {u['0'][0]}/{u['0'][1]} | {u['3'][0]}/{u['3'][1]} | "
            f"{u['7'][0]}/{u['7'][1]} ({p.get('deployed_units', {}).get('fc7', '?')}; "
            f"{u['7'][2]:.0f} %) | {100 * p['pruning_rate']:.1f} | "
            f"{d['synops']:,.0f} | {p['synops']:,.0f} | {d['synops'] / p['synops']:.2f} | "
            f"{p['synops_unpruned'] / p['synops']:.2f} | {d['synops'] / p['synops_unpruned']:.2f} | "
            f"{d['energy_uj']:.2f} | {p['energy_uj']:.2f} | "
            + "".join(f"{_n(d['cores'][c])} | {_n(p['cores'][c])} | " for c, _ in CHIPS)
            + f"{p['energy_rc']} |")


def _se(se: float) -> str:
    return "n/a, one seed" if math.isnan(se) else f"{se:.2f}"


def _ci(ci) -> str:
    return "" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _n(v) -> str:
    return "—" if v is None else str(v)


def cores_summary(rows) -> str:
    """Per chip: min and mean of dense / pruned cores over seeds; halved on both chips?"""
    parts, halved = [], True
    for chip, title in CHIPS:
        r = [d["cores"][chip] / p["cores"][chip] for _, d, p in rows
             if d["cores"].get(chip) and p["cores"].get(chip)]
        # a dense graph the chip cannot hold at all, pruned into one it can: counted as
        # (more than) halved, and said
        fits = sum(1 for _, d, p in rows if not d["cores"].get(chip) and p["cores"].get(chip))
        if len(r) + fits < len(rows):
            halved = False
        text = f"{title} min {min(r):.2f}, mean {sum(r) / len(r):.2f}" if r else title
        if fits:
            text += (f"{',' if r else ':'} {fits} seed(s) where only the pruned graph fits "
                     f"on the chip")
        elif not r:
            text += ": not mapped"
        halved = halved and (not r or min(r) >= 2.0)
        parts.append(text)
    return (f"cores dense/pruned: {'; '.join(parts)}; cores halved on both chips "
            f"(every seed): {halved}")


def steps_line(rows) -> str:
    """When the pruned runs use fewer (or more) time steps than their dense runs: the
    steps' share of "from rates" (T dense / T pruned) and what is left, the spike rates
    per step (min and mean over seeds). "" when every pair runs the same T."""
    pairs = [(d.get("timesteps"), p.get("timesteps")) for _, d, p in rows]
    if all(a == b for a, b in pairs):
        return ""
    per_step = [d["synops"] / p["synops_unpruned"] * p["timesteps"] / d["timesteps"]
                for _, d, p in rows]
    ts = sorted({f"{a} / {b}" for a, b in pairs})
    return (f"time steps dense / pruned: {', '.join(ts)}; 'from rates' includes them: "
            f"from rates = (T dense / T pruned) x (rates per step, dense / pruned: min "
            f"{min(per_step):.2f}, mean {sum(per_step) / len(per_step):.2f}); both runs "
            f"are tested on the same samples (paired)")


def _print_row(seed, d, p) -> None:
    print(_fmt_row(seed, d, p), flush=True)


def _summary(rows, path: Path, note: str = "") -> None:
    lines = [HEADER, "|" + "|".join(["---"] * (HEADER.count("|") - 1)) + "|"]
    lines += [_fmt_row(s, d, p) for s, d, p in rows]
    diff = [100 * (p["float"] - d["float"]) for _, d, p in rows]
    diff_emu = [100 * (p["emu"] - d["emu"]) for _, d, p in rows]
    ratio = [d["synops"] / p["synops"] for _, d, p in rows]
    eratio = [d["energy_uj"] / p["energy_uj"] for _, d, p in rows]
    gap = [100 * abs(r["emu"] - r["float"]) for _, d, p in rows for r in (d, p)]
    m, se = mean_se(diff)
    me, see = mean_se(diff_emu)
    every = {f"conv{k}": all(p["units"][k][0] < p["units"][k][1] for _, _, p in rows)
             for k in ("0", "3")}
    some = all(any(p["units"][k][0] < p["units"][k][1] for k in ("0", "3"))
               for _, _, p in rows)
    chans = (f"{some} ("
             + ", ".join(f"{k} {'every seed' if v else 'not on every seed'}"
                         for k, v in every.items()) + ")")
    lines += [
        "",
        "fc7 units = kept by the pruner / trained (deployed: those the export keeps, less "
        "the units left without any synapse that can never fire). "
        "synops = effective synaptic operations + first-layer MACs per test sample, counted "
        "from Loihi-emulator spikes on the deployed graph. ratio = dense run / pruned run = "
        "(from structure: the pruned run's spikes on the unpruned wiring / on its deployed "
        "wiring) x (from rates: the dense run's ops / the pruned run's spikes on the "
        "unpruned wiring).",
        f"seeds: {len(rows)}; paired accuracy difference (pruned - dense), float: "
        f"{m:+.2f} pt (SE {_se(se)}); Loihi emulator: {me:+.2f} pt (SE {_se(see)})",
        f"effective synops ratio dense/pruned: min {min(ratio):.2f}, mean "
        f"{sum(ratio) / len(ratio):.2f}; Loihi energy ratio: min {min(eratio):.2f}, "
        f"mean {sum(eratio) / len(eratio):.2f}",
        *filter(None, [steps_line(rows)]),
        *filter(None, [pooled_paired_line([p.get("paired_counts") for _, _, p in rows])]),
        f"largest |emulator - float| over all runs: {max(gap):.2f} pt",
        cores_summary(rows),
        f"every seed prunes conv channels: {chans}; energy (vanish check) exit "
        f"codes of pruned runs: {sorted({p['energy_rc'] for _, _, p in rows})}",
    ]
    if note:
        lines.append(note)
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    print(text, flush=True)
    return text


def plot(rows, path: Path, title: str = "") -> bool:
    """Per seed, dense and pruned run as two points joined by a line: effective synaptic
    operations per sample (log x) against float accuracy (filled), the Loihi emulator's
    beside it (open); left panel. Right panel: each seed's operations ratio against its
    paired accuracy difference with its 95 % interval, and their mean. False when
    matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (seed, d, p) in enumerate(rows):
        c = f"C{i % 10}"
        xs = [d["synops"], p["synops"]]
        ax.plot(xs, [100 * d["float"], 100 * p["float"]], "-o", color=c, alpha=0.7,
                label=f"seed {seed}" if len(rows) <= 10 else None)
        ax.plot(xs, [100 * d["emu"], 100 * p["emu"]], "o", color=c, alpha=0.7,
                markerfacecolor="none")
        ratio = d["synops"] / p["synops"]
        diff = 100 * (p["float"] - d["float"])
        ci = p.get("paired_ci")
        yerr = None if ci is None else [[diff - ci[0]], [ci[1] - diff]]
        bx.errorbar([ratio], [diff], yerr=yerr, fmt="o", color=c, capsize=3)
        bx.annotate(str(seed), (ratio, diff), textcoords="offset points", xytext=(4, 3),
                    fontsize=7)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # ticks at 1, 2, 5 x 10^k, labelled 200k / 1M (the default's minor labels overlap)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("effective synaptic operations per sample (Loihi emulator spikes)")
    ax.set_ylabel("test accuracy (%): float (filled), emulator (open)")
    ax.grid(alpha=0.3, which="both")
    if len(rows) <= 10:
        ax.legend(fontsize=7, ncol=2)
    bx.axhline(0.0, color="k", lw=0.8)
    mean = sum(100 * (p["float"] - d["float"]) for _, d, p in rows) / len(rows)
    bx.axhline(mean, color="C3", lw=1.0, ls=":", label=f"mean {mean:+.2f} pt")
    bx.axvline(3.0, color="k", lw=0.8, ls="--", label="3x")
    bx.legend(fontsize=7)
    bx.set_xlabel("operations ratio dense / pruned")
    bx.set_ylabel("accuracy pruned - dense (pt), 95 % paired interval")
    bx.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- the README block -----------------------------------------------------------------------
def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    commit = git_commit()
    out = [f"spikeship{f' ({commit})' if commit else ''}", f"Python {platform.python_version()}"]
    for pkg in ("torch", "snntorch", "numpy", "lava-nc", "lava-dl"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def render_block(summary: str, command: str, begin: str = BEGIN, end: str = END,
                 writer: str = "benchmarks/bench_prune_energy.py") -> str:
    """The README block: the table and summary as written, then machine, versions, date
    and the command that wrote it."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        begin, f"<!-- written by {writer} --readme; do not edit by hand -->", "",
        summary.rstrip("\n"), "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; {versions()}; {now}.", "",
        f"Command: `{command}`", end])


def check_block(readme: Path, begin: str = BEGIN, end: str = END) -> str:
    """``readme``'s text; SystemExit unless it holds exactly one marked block."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"cannot read {readme}: {e}") from e
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"{readme} must hold exactly one {begin} ... {end} block")
    return text


def rewrite_readme(readme: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the marked block of ``readme`` by ``block`` (atomically), nothing else."""
    from spikeship.io import write_text_atomic

    text = check_block(readme, begin, end)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    write_text_atomic(readme, pattern.sub(lambda _m: block, text))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")    # shared CPU: no oversubscription
    sys.exit(main())

"""Time steps as the lever of energy: a sweep over T, dense and pruned, through the real CLI.

For every T, every seed and both kinds (dense = ``--prune none``; pruned = ``--prune``
plus any ``--prune-opt`` given here, none = the CLI defaults), the documented command
sequence runs, each step a real ``spikeship`` process (the helpers of
``bench_prune_energy.py``: finished steps are reused, an interrupted training resumes)::

    spikeship train    --timesteps T --dataset D --seed S --no-qat [--epochs E ...]
    spikeship export   RUN
    spikeship simulate RUN --target loihi-emu     # the test split, fixed point
    spikeship energy   RUN --hardware loihi --spikes-from loihi-emu

The runs train in float (``--no-qat``, the training default when this sweep's runs
were made, so their folders keep their meaning); ``--qat-epochs N`` trains every run
quantisation-aware in its last N epochs instead (the CLI's default is 5; folders
``-qatN``). A run found in ``--out`` with another configuration (qat included) is
refused by name, not reused.

Per (T, kind), over the seeds: the float accuracy of the trained model (mean and its
standard error), the Loihi-emulator accuracy, effective synaptic operations per sample
(emulator spikes x synapses of the deployed graph, first-layer MACs included, as
``energy.json`` counts them), Loihi energy per sample (uJ, ``energy.json``), the
latency in time steps (= T) and the energy-delay product ``EDP = energy x latency``
in uJ x steps, each also as a ratio to the reference (dense at T = 8 by default).

Latency in seconds: neither ``energy.json`` nor the Loihi chip spec gives a wall-clock
time per step, so none is claimed. What the run does give is the step duration of the
exported graph (``export.json`` ``dt_s``, the NIR graph's model time): ``T x dt_s`` is
reported as *model time*, with that source.

Writes ``timesteps-{tag}.md`` (summary and per-seed tables), ``timesteps-{tag}.json`` and,
with matplotlib, ``timesteps-{tag}.png`` (accuracy vs energy per sample, one point per T
and kind) into ``--out``::

    python benchmarks/bench_timesteps.py --timesteps 4,8,16 --seeds 0-2 --out runs/bench-T

``--readme README.md`` also rewrites the README block ``<!-- prune-table-timesteps:begin
-->`` ... ``end`` with the summary table, machine, versions, date and the command (the
block functions of ``bench_prune_energy.py``), so the README's sweep is never pasted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prune_energy import (  # noqa: E402
    _seeds,
    check_block,
    markers,
    mean_se,
    one_run,
    render_block,
    rewrite_readme,
    span,
)

#: config.json fields a reused run must match (else it is another experiment's run)
CHECKED = ("dataset", "timesteps", "seed", "prune", "prune_options", "limit_train",
           "limit_test", "epochs", "qat", "qat_epochs")


def _ints(text: str) -> list[int]:
    out = [int(v) for v in text.split(",") if v.strip()]
    if not out or min(out) < 1:
        raise SystemExit(f"--timesteps needs positive integers, got {text!r}")
    return sorted(set(out))


def _opt_value(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def expected_config(args, t: int, seed: int, prune: str) -> dict:
    popts = ({k: _opt_value(v) for k, _, v in (o.partition("=") for o in args.prune_opt)}
             if prune != "none" else {})
    exp = {"dataset": args.dataset, "timesteps": t, "seed": seed, "prune": prune,
           "prune_options": popts, "limit_train": args.limit_train,
           "limit_test": args.limit_test, "qat": args.qat_epochs is not None,
           "qat_epochs": args.qat_epochs or 0}
    if args.epochs:
        exp["epochs"] = args.epochs
    return exp


def check_reused(run: Path, exp: dict) -> None:
    """A run directory found in ``--out`` must be the run asked for (or be absent)."""
    cfg_path = run / "config.json"
    if not cfg_path.exists():
        return
    from spikeship.train.config import SAVED_BEFORE

    cfg = {**SAVED_BEFORE, **json.loads(cfg_path.read_text())}
    bad = {k: (cfg.get(k), v) for k, v in exp.items() if k in CHECKED and cfg.get(k) != v}
    if bad:
        raise SystemExit(f"{run} holds another configuration ({bad}: found, asked); "
                         f"use another --out or remove it")


def sweep_run(args, out: Path, t: int, seed: int, kind: str, tag: str) -> dict:
    prune = "none" if kind == "dense" else args.prune
    ep = f"-e{args.epochs}" if args.epochs else ""
    if args.qat_epochs is not None:
        ep += f"-qat{args.qat_epochs or ''}"
    run = out / f"{tag if kind != 'dense' else 'dense'}-T{t}{ep}-s{seed}"
    check_reused(run, expected_config(args, t, seed, prune))
    train_args = ["--timesteps", str(t), "--dataset", args.dataset, "--prune", prune]
    train_args += (["--no-qat"] if args.qat_epochs is None else
                   ["--qat", "--qat-epochs", str(args.qat_epochs)])
    if prune != "none":
        train_args += [a for o in args.prune_opt for a in ("--prune-opt", o)]
    for flag, val in (("--limit-train", args.limit_train), ("--limit-test", args.limit_test)):
        if val is not None:
            train_args += [flag, str(val)]
    row = one_run(run, seed, train_args, args.epochs)
    en = json.loads((run / "energy.json").read_text())
    exp_json = json.loads((run / "export.json").read_text())
    steps = int(en["spikes"]["timesteps"])
    if steps != t:
        raise SystemExit(f"{run}: energy.json counts {steps} steps, the run was asked for {t}")
    energy_uj = en["totals_per_sample"]["energy_pj"] / 1e6
    dt_s = exp_json.get("dt_s")
    return {"timesteps": t, "kind": kind, "seed": seed, "run": str(run),
            "float": row["float"], "emu": row["emu"], "samples": row["samples"],
            "pruning_rate": row["pruning_rate"], "synops": row["synops"],
            "energy_uj": energy_uj, "latency_steps": steps,
            "latency_model_s": steps * dt_s if dt_s else None, "dt_s": dt_s,
            "edp_uj_steps": energy_uj * steps, "energy_rc": row["energy_rc"],
            "epochs": row.get("epochs")}


def summarise(rows: list[dict], ref_t: int) -> tuple[list[dict], dict]:
    """Per (T, kind): means over seeds, SE of the accuracies, ratios to dense at ``ref_t``."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["timesteps"], r["kind"]), []).append(r)

    def mean(xs):
        return sum(xs) / len(xs)

    out = []
    for (t, kind), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "dense")):
        f_m, f_se = mean_se([100 * r["float"] for r in rs])
        e_m, e_se = mean_se([100 * r["emu"] for r in rs])
        f_se, e_se = (None if v != v else v for v in (f_se, e_se))   # one seed: no SE
        out.append({"timesteps": t, "kind": kind, "seeds": [r["seed"] for r in rs],
                    "float_pct": f_m, "float_se_pt": f_se, "emu_pct": e_m, "emu_se_pt": e_se,
                    "synops": mean([r["synops"] for r in rs]),
                    "energy_uj": mean([r["energy_uj"] for r in rs]),
                    "latency_steps": t, "latency_model_s": rs[0]["latency_model_s"],
                    "edp_uj_steps": mean([r["edp_uj_steps"] for r in rs]),
                    "pruning_rate": mean([r["pruning_rate"] for r in rs])})
    ref = next((s for s in out if s["kind"] == "dense" and s["timesteps"] == ref_t), None)
    for s in out:
        for key in ("synops", "energy_uj", "edp_uj_steps"):
            s[f"{key}_vs_ref"] = s[key] / ref[key] if ref else None
        s["float_vs_ref_pt"] = s["float_pct"] - ref["float_pct"] if ref else None
    return out, ({"kind": "dense", "timesteps": ref_t} if ref else {})


def _f(v, fmt: str) -> str:
    return "—" if v is None or v != v else format(v, fmt)


SUMMARY_HEADER = ("| T | kind | seeds | float % (SE) | emu % (SE) | pruned % | "
                  "synops / sample | Loihi uJ / sample | latency (steps) | "
                  "latency, model time (s) | EDP (uJ x steps) | synops / ref | "
                  "energy / ref | EDP / ref | float - ref (pt) |")
SEED_HEADER = ("| T | kind | seed | float % | emu % | pruned % | synops / sample | "
               "Loihi uJ / sample | EDP (uJ x steps) | energy exit | run |")


def _epochs_by_kind(rows: list[dict]) -> str:
    """``dense 20, dpap 50``: how long each kind trained, from the runs' summaries."""
    kinds: dict[str, list] = {}
    for r in rows:
        kinds.setdefault(r["kind"], []).append(r.get("epochs"))
    return ", ".join(f"{k} {span(v)}"
                     for k, v in sorted(kinds.items(), key=lambda kv: kv[0] != "dense"))


def markdown(summary: list[dict], rows: list[dict], ref: dict, args) -> str:
    sep = lambda h: "|" + "|".join(["---"] * (h.count("|") - 1)) + "|"  # noqa: E731
    qat = ("trained in float (--no-qat)" if args.qat_epochs is None
           else f"--qat-epochs {args.qat_epochs}")
    lines = [f"Time-step sweep: dataset {args.dataset}, pruned = --prune {args.prune} "
             f"{' '.join('--prune-opt ' + o for o in args.prune_opt) or '(CLI defaults)'}, "
             f"epochs {args.epochs or 'CLI default'} ({_epochs_by_kind(rows)}), "
             f"{qat}, "
             f"limit-train {args.limit_train}, "
             f"limit-test {args.limit_test}", "",
             SUMMARY_HEADER, sep(SUMMARY_HEADER)]
    for s in summary:
        lines.append(
            f"| {s['timesteps']} | {s['kind']} | {len(s['seeds'])} | "
            f"{s['float_pct']:.2f} ({_f(s['float_se_pt'], '.2f')}) | "
            f"{s['emu_pct']:.2f} ({_f(s['emu_se_pt'], '.2f')}) | {100 * s['pruning_rate']:.1f} | "
            f"{s['synops']:,.0f} | {s['energy_uj']:.3f} | {s['latency_steps']} | "
            f"{_f(s['latency_model_s'], 'g')} | {s['edp_uj_steps']:.3f} | "
            f"{_f(s['synops_vs_ref'], '.3f')} | {_f(s['energy_uj_vs_ref'], '.3f')} | "
            f"{_f(s['edp_uj_steps_vs_ref'], '.3f')} | {_f(s['float_vs_ref_pt'], '+.2f')} |")
    ref_text = (f"dense at T = {ref['timesteps']}" if ref else
                f"none (dense at T = {args.ref_timesteps} is not in the sweep)")
    lines += ["", f"ref = {ref_text}. synops = effective synaptic operations + first-layer "
              "MACs per test sample, counted from Loihi-emulator spikes on the deployed graph "
              "(energy.json totals_per_sample.ops_effective); Loihi uJ = energy.json "
              "totals_per_sample.energy_pj / 1e6; EDP = Loihi energy per sample x latency "
              "in steps (= T); SE = standard error of the mean over seeds. Latency in "
              "seconds: neither energy.json nor the Loihi spec gives a time per step; "
              "'model time' is T x dt_s of the exported graph (export.json), not chip "
              "wall-clock time.", "", SEED_HEADER, sep(SEED_HEADER)]
    for r in rows:
        lines.append(f"| {r['timesteps']} | {r['kind']} | {r['seed']} | {100 * r['float']:.2f} | "
                     f"{100 * r['emu']:.2f} | {100 * r['pruning_rate']:.1f} | "
                     f"{r['synops']:,.0f} | {r['energy_uj']:.3f} | {r['edp_uj_steps']:.3f} | "
                     f"{r['energy_rc']} | {Path(r['run']).name} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> bool:
    """Accuracy (float, mean +- SE) vs Loihi energy per sample; one point per T and kind."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("dense", "o"), *((k, "s") for k in
                                           sorted({s["kind"] for s in summary} - {"dense"}))):
        pts = [s for s in summary if s["kind"] == kind]
        if not pts:
            continue
        se = [s["float_se_pt"] or 0.0 for s in pts]
        ax.errorbar([s["energy_uj"] for s in pts], [s["float_pct"] for s in pts], yerr=se,
                    marker=marker, capsize=3, label=kind)
        for s in pts:
            ax.annotate(f"T={s['timesteps']}", (s["energy_uj"], s["float_pct"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("Loihi energy per sample (uJ)")
    ax.set_ylabel("float test accuracy (%), mean +- SE over seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", default="4,8,16", help="comma-separated T values")
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--out", default="runs/bench-timesteps")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--prune", default="dpap")
    ap.add_argument("--prune-opt", action="append", default=[],
                    help="key=value for the pruned runs (repeatable); none = CLI defaults")
    ap.add_argument("--qat-epochs", type=int, default=None, metavar="N",
                    help="quantisation-aware training in the last N epochs of every run "
                         "(0: every epoch; the CLI's default is 5; folder suffix -qatN); "
                         "without it the runs train in float (--no-qat), as this sweep's "
                         "runs did before that default")
    ap.add_argument("--tag", default="", help="name of the pruned variant (run folders)")
    ap.add_argument("--ref-timesteps", type=int, default=8, help="T of the dense reference")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--readme", type=Path, default=None,
                    help="rewrite the prune-table-timesteps block of this file")
    args = ap.parse_args(argv)
    begin, end = markers("timesteps")
    if args.readme is not None:
        check_block(args.readme, begin, end)      # before the runs, not after
    if args.prune == "none":
        raise SystemExit("--prune none: the dense runs are always made; name a pruner")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or (args.prune + ("-" + "-".join(o.replace("=", "") for o in args.prune_opt)
                                     if args.prune_opt else ""))
    rows = []
    for t in _ints(args.timesteps):
        for seed in _seeds(args.seeds):
            for kind in ("dense", tag):
                r = sweep_run(args, out, t, seed, kind, tag)
                rows.append(r)
                print(f"T={t} {kind} seed {seed}: float {100 * r['float']:.2f} %, emu "
                      f"{100 * r['emu']:.2f} %, {r['synops']:,.0f} synops, "
                      f"{r['energy_uj']:.3f} uJ, EDP {r['edp_uj_steps']:.3f}", flush=True)
    summary, ref = summarise(rows, args.ref_timesteps)
    stem = f"timesteps-{tag}"
    text = markdown(summary, rows, ref, args)
    (out / f"{stem}.md").write_text(text)
    plotted = (not args.no_plot) and plot(summary, out / f"{stem}.png")
    (out / f"{stem}.json").write_text(json.dumps({
        "config": {"timesteps": _ints(args.timesteps), "seeds": _seeds(args.seeds),
                   "dataset": args.dataset, "epochs": args.epochs,
                   "limit_train": args.limit_train, "limit_test": args.limit_test,
                   "prune": args.prune, "prune_opt": args.prune_opt, "tag": tag,
                   "qat_epochs": args.qat_epochs},
        "reference": ref, "summary": summary, "runs": rows,
        "plot": f"{stem}.png" if plotted else None,
        "units": {"energy_uj": "Loihi energy per test sample, uJ",
                  "edp_uj_steps": "energy per sample (uJ) x latency (time steps)",
                  "latency_model_s": "T x export.json dt_s (model time, not chip wall time)"},
    }, indent=1))
    print(text, flush=True)
    if args.readme is not None:
        import shlex

        cmd = shlex.join(["python", "benchmarks/bench_timesteps.py",
                          *(sys.argv[1:] if argv is None else argv)])
        table = text.split("\n\n| T | kind | seed |")[0]     # the summary, not per seed
        rewrite_readme(args.readme, render_block(table, cmd, begin, end,
                                                   "benchmarks/bench_timesteps.py"), begin, end)
        print(f"rewrote the {begin} block of {args.readme}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")    # shared CPU: no oversubscription
    sys.exit(main())

"""Pruning trade-off: does DPAP (the CLI defaults) cut the deployed network's work at no accuracy cost?

For every seed, a dense run (``--prune none``) and a pruned run (``--prune`` plus any
``--prune-opt``; none = the CLI defaults), each through train, export, the Loihi emulator
(whole test split, fixed point) and ``energy`` (:mod:`benchmarks.runs`). Per seed: float
and emulator accuracy, the paired accuracy difference with its 95 % interval (the same
test samples), conv channels and fc7 units kept, effective synaptic operations per sample
(emulator spikes x synapses of the deployed graph, as ``energy.json`` counts them), Loihi
energy per sample, Loihi and Loihi 2 cores, and the ratio dense / pruned with its two
factors: *from structure* = the pruned run's spikes on the unpruned wiring / on its
deployed wiring; *from rates* = the dense run's operations / the pruned run's spikes on
the unpruned wiring. Summary: mean paired difference over seeds with its 95 % interval,
the seeds' sample pairs pooled into one paired interval, the ratios' min and mean.

``--pruned-timesteps T`` deploys the pruned network with T steps against the dense run at
``--timesteps`` (the other lever of energy; the ratio then counts the steps too).

Defaults: digits, seed 0, the CLI's epochs (dense 20, DPAP 50).
"""

from __future__ import annotations

import json
import sys

from benchmarks import common, runs
from spikeship.report.significance import mcnemar_runs
from spikeship.stats import paired_difference_interval

MODULE = "benchmarks.bench_prune_energy"
CHIPS = ("loihi", "loihi2")


def _units(run) -> dict:
    """Per prunable layer of the last epoch: (units kept, units trained, % synapses kept)."""
    last = (run / "metrics.jsonl").read_text().splitlines()[-1]
    return {l["name"]: (l["units_remaining"], l["units_total"],
                        100.0 * l["synapses_remaining"] / max(l["synapses_total"], 1))
            for l in json.loads(last)["layers"]}


def measure(run) -> dict:
    """What one finished run contributes to a row."""
    summ, sim, en, cfg = (runs.read(run, n) for n in
                          ("summary", f"simulate-{runs.EMULATOR}", "energy", "config"))
    exp = runs.read(run, "export")
    cores = {c: (((en.get("cores") or {}).get(c) or {}).get("after_pruning") or {}).get("cores")
             for c in CHIPS}
    t = en["totals_per_sample"]
    return {"float": 100 * summ["test_accuracy"], "emu": 100 * sim["accuracy"],
            "pruned_pct": 100 * summ["pruning_rate"], "epochs": summ.get("epochs"),
            "samples_train": summ.get("samples_train"), "timesteps": cfg["timesteps"],
            "synops": t["ops_effective"], "synops_unpruned": t["ops_dense"],
            "energy_uj": t["energy_pj"] / 1e6, "cores": cores, "units": _units(run),
            "deployed": {l["layer"]: l["after"][0] for l in exp.get("layers", [])},
            "energy_exit": int((run / "energy.rc").read_text())}


def paired(dense_run, pruned_run) -> tuple[int, int, int] | None:
    """(only dense right, only pruned right, pairs) on the shared test samples, or None."""
    t = mcnemar_runs(dense_run, pruned_run, runs.read(dense_run, "config"),
                     runs.read(pruned_run, "config"))
    return None if isinstance(t, str) else (int(t.a_only), int(t.b_only), int(t.n))


def row(seed: int, d: dict, p: dict, counts) -> dict:
    lo, hi = ((None, None) if counts is None else
              (100 * x for x in paired_difference_interval(*counts)))
    u = p["units"]
    out = {"seed": seed, "float_dense": d["float"], "float_pruned": p["float"],
           "diff_pt": p["float"] - d["float"], "diff_lo": lo, "diff_hi": hi,
           "emu_dense": d["emu"], "emu_pruned": p["emu"]}
    for layer in ("0", "3", "7"):
        kind = "fc" if layer == "7" else "conv"
        out[f"{kind}{layer}_kept"], out[f"{kind}{layer}_total"] = u[layer][0], u[layer][1]
    out.update({"fc7_deployed": p["deployed"].get("fc7"),
                "fc7_synapses_kept_pct": u["7"][2], "pruned_pct": p["pruned_pct"],
                "synops_dense": d["synops"], "synops_pruned": p["synops"],
                "ratio": d["synops"] / p["synops"],
                "from_structure": p["synops_unpruned"] / p["synops"],
                "from_rates": d["synops"] / p["synops_unpruned"],
                "energy_uj_dense": d["energy_uj"], "energy_uj_pruned": p["energy_uj"]})
    for c in CHIPS:
        out[f"{c}_cores_dense"], out[f"{c}_cores_pruned"] = d["cores"][c], p["cores"][c]
    out["energy_exit"] = p["energy_exit"]
    out["pairs_only_dense"], out["pairs_only_pruned"], out["pairs"] = counts or (None,) * 3
    return out


def summarise(rows: list[dict], dense: list[dict], pruned: list[dict]) -> dict:
    """Mean paired differences with their intervals over seeds, pooled pairs, ratios."""
    def minmean(xs):
        return {"min": min(xs), "mean": sum(xs) / len(xs)}

    out = {"seeds": len(rows),
           "diff_float_pt": common.mean_interval([r["diff_pt"] for r in rows]),
           "diff_emu_pt": common.mean_interval([r["emu_pruned"] - r["emu_dense"] for r in rows]),
           "float_dense_pct": common.mean_interval([r["float_dense"] for r in rows]),
           "float_pruned_pct": common.mean_interval([r["float_pruned"] for r in rows]),
           "ratio": minmean([r["ratio"] for r in rows]),
           "energy_ratio": minmean([r["energy_uj_dense"] / r["energy_uj_pruned"] for r in rows]),
           "max_emu_float_gap_pt": max(abs(x["emu"] - x["float"]) for x in dense + pruned),
           "epochs_dense": dense[0]["epochs"], "epochs_pruned": pruned[0]["epochs"],
           "samples_train": dense[0]["samples_train"],
           "timesteps_dense": dense[0]["timesteps"], "timesteps_pruned": pruned[0]["timesteps"]}
    if all(r["pairs"] for r in rows):
        b, c, n = (sum(r[k] for r in rows) for k in ("pairs_only_dense", "pairs_only_pruned",
                                                       "pairs"))
        lo, hi = paired_difference_interval(b, c, n)
        out["pooled_diff_pt"] = {"mean": 100 * (c - b) / n, "lo": 100 * lo, "hi": 100 * hi,
                                 "pairs": n}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--prune", default="dpap")
    ap.add_argument("--prune-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="option of the pruned runs (repeatable); none = the CLI defaults")
    ap.add_argument("--timesteps", type=int, default=None, help="default: the CLI's (8)")
    ap.add_argument("--pruned-timesteps", type=int, default=None,
                    help="time steps of the pruned runs only (default: --timesteps)")
    ap.add_argument("--name", default=None, help="result name (default from the settings)")
    args = ap.parse_args(argv)
    from spikeship.train.config import parse_prune_option

    opts = dict(parse_prune_option(o) for o in args.prune_opt)
    base = {"dataset": args.dataset, "epochs": args.epochs, "limit_train": args.limit_train}
    rows, dense, pruned = [], [], []
    for seed in common.seeds(args.seeds):
        d_run = runs.made(args.out, runs.settings(seed=seed, timesteps=args.timesteps, **base))
        p_run = runs.made(args.out, runs.settings(
            seed=seed, prune=args.prune, prune_options=opts,
            timesteps=args.pruned_timesteps or args.timesteps, **base))
        d, p = measure(d_run), measure(p_run)
        rows.append(row(seed, d, p, paired(d_run, p_run)))
        dense.append(d)
        pruned.append(p)
        r = rows[-1]
        print(f"seed {seed}: float {r['float_dense']:.2f} -> {r['float_pruned']:.2f} %, "
              f"ratio {r['ratio']:.2f}x", flush=True)
    summary = summarise(rows, dense, pruned)
    label = " ".join([f"--prune {args.prune}", *(f"--prune-opt {o}" for o in args.prune_opt)])
    name = args.name or "-".join(["prune", args.dataset, args.prune,
                                  *(o.replace("=", "") for o in args.prune_opt)])
    common.write_result(
        args, name=name, module=MODULE, argv=argv, topic="pruning",
        title=f"{args.dataset}: dense vs {label}",
        description="Dense and pruned run per seed through export, the Loihi emulator and "
                    "energy; ratio = dense / pruned effective synaptic operations.",
        rows=rows, summary=summary,
        config={"dataset": args.dataset, "seeds": args.seeds, "prune": args.prune,
                "prune_opt": " ".join(args.prune_opt), "epochs": args.epochs,
                "limit_train": args.limit_train, "timesteps": args.timesteps,
                "pruned_timesteps": args.pruned_timesteps})
    s = summary["diff_float_pt"]
    print(f"mean difference {s['mean']:+.2f} pt over {len(rows)} seed(s); ratio mean "
          f"{summary['ratio']['mean']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time steps as the lever of energy: a sweep over T, dense and pruned, through the documented sequence.

For every T, seed and kind (dense = ``--prune none``; pruned = ``--prune`` plus any
``--prune-opt``, none = the CLI defaults), a run through train, export, the Loihi
emulator and ``energy`` (:mod:`benchmarks.runs`; the runs at the CLI's T are the same
folders :mod:`benchmarks.bench_prune_energy` uses). Per (T, kind), over the seeds: float
and emulator accuracy (mean, SE), effective synaptic operations and Loihi energy per
sample, latency in steps (= T), the energy-delay product ``EDP = energy x steps`` (uJ x
steps), each also as a ratio to the reference, dense at T = 8. No time per step on the
chip is published in the spec: "model time" is T x the exported graph's ``dt_s``.

Defaults: digits, T = 4 and 8, seed 0, the CLI's epochs.
"""

from __future__ import annotations

import sys

from benchmarks import common, runs

MODULE = "benchmarks.bench_timesteps"


def one(args, t: int, seed: int, kind: str, opts: dict) -> dict:
    run = runs.made(args.out, runs.settings(
        dataset=args.dataset, seed=seed, timesteps=t, epochs=args.epochs,
        limit_train=args.limit_train,
        prune="none" if kind == "dense" else args.prune, prune_options=opts))
    summ, sim, en, exp = (runs.read(run, n) for n in
                          ("summary", f"simulate-{runs.EMULATOR}", "energy", "export"))
    steps = int(en["spikes"]["timesteps"])
    energy_uj = en["totals_per_sample"]["energy_pj"] / 1e6
    dt_s = exp.get("dt_s")
    return {"timesteps": t, "kind": kind, "seed": seed, "float_pct": 100 * summ["test_accuracy"],
            "emu_pct": 100 * sim["accuracy"], "pruned_pct": 100 * summ["pruning_rate"],
            "synops": en["totals_per_sample"]["ops_effective"], "energy_uj": energy_uj,
            "latency_steps": steps, "latency_model_s": steps * dt_s if dt_s else None,
            "edp_uj_steps": energy_uj * steps, "epochs": summ.get("epochs")}


def summarise(rows: list[dict], ref_t: int) -> dict:
    """Per (T, kind): means over seeds with intervals, ratios to dense at ``ref_t``."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["timesteps"], r["kind"]), []).append(r)

    def mean(rs, k):
        return sum(r[k] for r in rs) / len(rs)

    ref = groups.get((ref_t, "dense"))
    out = {}
    for (t, kind), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "dense")):
        key = f"T{t}-{kind}"
        out[f"{key}-float_pct"] = common.mean_interval([r["float_pct"] for r in rs])
        out[f"{key}-emu_pct"] = common.mean_interval([r["emu_pct"] for r in rs])
        means = {k: mean(rs, k) for k in ("synops", "energy_uj", "edp_uj_steps")}
        vs = {f"{k}_vs_ref": (v / mean(ref, k) if ref else None) for k, v in means.items()}
        out[f"{key}-means"] = {**means, **vs, "pruned_pct": mean(rs, "pruned_pct"),
                               "latency_steps": t, "seeds": len(rs)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--timesteps", default="4,8", help="comma-separated T values")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--prune", default="dpap")
    ap.add_argument("--prune-opt", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--ref-timesteps", type=int, default=8, help="T of the dense reference")
    args = ap.parse_args(argv)
    from spikeship.train.config import parse_prune_option

    opts = dict(parse_prune_option(o) for o in args.prune_opt)
    ts = sorted({int(v) for v in args.timesteps.split(",") if v.strip()})
    if not ts or ts[0] < 1:
        ap.error(f"--timesteps needs positive integers, got {args.timesteps!r}")
    rows = []
    for t in ts:
        for seed in common.seeds(args.seeds):
            for kind in ("dense", args.prune):
                rows.append(one(args, t, seed, kind, opts))
                r = rows[-1]
                print(f"T={t} {kind} seed {seed}: float {r['float_pct']:.2f} %, "
                      f"{r['synops']:,.0f} synops, {r['energy_uj']:.3f} uJ", flush=True)
    common.write_result(
        args, name=f"timesteps-{args.dataset}-t{'-'.join(map(str, ts))}-s{args.seeds}",
        module=MODULE, argv=argv, topic="timesteps",
        title=f"{args.dataset}: time steps, dense and --prune {args.prune}",
        description=f"Per T and kind, means over seeds; ratios to dense at T = "
                    f"{args.ref_timesteps}. EDP = Loihi energy per sample x steps.",
        rows=rows, summary=summarise(rows, args.ref_timesteps),
        config={"dataset": args.dataset, "timesteps": args.timesteps, "seeds": args.seeds,
                "prune": args.prune, "prune_opt": " ".join(args.prune_opt),
                "epochs": args.epochs, "limit_train": args.limit_train,
                "ref_timesteps": args.ref_timesteps})
    return 0


if __name__ == "__main__":
    sys.exit(main())

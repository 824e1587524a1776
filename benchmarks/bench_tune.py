"""``spikeship tune`` on digits: the study's front, and its picked point on held-out seeds.

1. The dense run of the README's recipe (the CLI defaults: digits, ``dpap-mnist``, T = 8,
   20 epochs, the last 5 quantisation-aware), seed 0 (:mod:`benchmarks.runs`).
2. ``spikeship.tune`` on it (``--trials``, default 40, one thread), resumable: the study
   lives in ``<out>/tune-digits/`` (validation carve of 20 % of the training split,
   Loihi emulator, deployed operations per sample).
3. ``--pick EXPR`` chooses a front point. On each held-out seed (``--seeds``, default
   1-2: the study saw seed 0 only), the dense run of that seed on the whole training
   split, the point's cut and fine-tuning from it (``--init-from``), and DPAP's default
   (``--prune dpap``, 50 epochs, the cut at 21), each through export, the Loihi
   emulator (whole test split) and ``energy``. Per seed: accuracies, operations, the
   paired difference picked - DPAP default with its 95 % interval (McNemar-style, on the
   same 450 test samples), the operations ratio DPAP default / picked.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import spikeship
from benchmarks import common, runs
from spikeship.sim.result import SimResult
from spikeship.stats import paired_difference_interval

MODULE = "benchmarks.bench_tune"


def evaluated(run: Path) -> dict:
    """Emulator accuracy, per-sample correctness and operations of a made run."""
    sim = SimResult.load(run, runs.EMULATOR)
    en = runs.read(run, "energy")
    return {"correct": sim.predictions == sim.labels, "acc": 100 * float(sim.accuracy),
            "ops": float(en["totals_per_sample"]["ops_effective"]),
            "float": 100 * runs.read(run, "summary")["test_accuracy"]}


def seed_row(args, seed: int, point: dict) -> dict:
    dense = runs.made(args.out, runs.settings(seed=seed))
    dpap = runs.made(args.out, runs.settings(seed=seed, prune="dpap"))
    b = point["budgets"]
    from spikeship.tune.space import Budgets

    budgets = Budgets.from_json(b)
    picked = runs.made(args.out, {**runs.settings(seed=seed, prune="dpap",
                                                  prune_options=budgets.prune_options(),
                                                  epochs=budgets.epochs),
                                  "init_from": str(dense.resolve())})
    d, p, c = evaluated(dense), evaluated(picked), evaluated(dpap)
    n = int(p["correct"].size)
    only_c = int((c["correct"] & ~p["correct"]).sum())
    only_p = int((p["correct"] & ~c["correct"]).sum())
    lo, hi = paired_difference_interval(only_c, only_p, n)
    return {"kind": "heldout", "seed": seed, "trial": point["trial"], "emu_dense": round(d["acc"], 2),
            "emu_dpap_default": round(c["acc"], 2), "emu_picked": round(p["acc"], 2),
            "diff_picked_vs_dpap_pt": round(100 * (only_p - only_c) / n, 2),
            "diff_lo": round(100 * lo, 2), "diff_hi": round(100 * hi, 2),
            "ops_dense": round(d["ops"]), "ops_dpap_default": round(c["ops"]),
            "ops_picked": round(p["ops"]), "ops_ratio_dpap_over_picked":
                round(c["ops"] / p["ops"], 3), "ops_ratio_dense_over_picked":
                round(d["ops"] / p["ops"], 3), "picked_epochs": budgets.epochs,
            "beats_dpap_on_both": bool(p["acc"] > c["acc"] and p["ops"] < c["ops"]),
            "_pair": (only_c, only_p, n)}


def front_rows(front: dict) -> list[dict]:
    return [{"kind": "front", "trial": p["trial"], "preset": p["preset"] or "",
             "val_emu_pct": round(p["accuracy"], 2), "val_ops": round(p["ops"]),
             "prune_opt": p["prune_opt"]} for p in front["points"]]


def summarise(rows: list[dict], front: dict, wall_s: float | None) -> dict:
    pairs = [r.pop("_pair") for r in rows]
    b, c, n = (sum(x[i] for x in pairs) for i in range(3))
    lo, hi = paired_difference_interval(b, c, n)
    presets = {p["preset"]: p for p in front["presets"]}
    return {"seeds": len(rows), "front_points": len(front["points"]),
            "trials": front["trials"], "study_wall_s": wall_s,
            "val_dense_pct": round(front["dense"]["accuracy"], 2),
            "val_dense_ops": round(front["dense"]["ops"]),
            "val_chip_preset": {"pct": presets.get("chip", {}).get("accuracy"),
                                "ops": presets.get("chip", {}).get("ops")},
            "diff_picked_vs_dpap_pooled": {"mean": 100 * (c - b) / n, "lo": 100 * lo,
                                           "hi": 100 * hi, "n": n},
            "ops_ratio_dpap_over_picked": common.mean_interval(
                [r["ops_ratio_dpap_over_picked"] for r in rows]),
            "beats_dpap_on_both_every_seed": all(r["beats_dpap_on_both"] for r in rows),
            "beats_dpap_on_both_mean": bool(
                np.mean([r["emu_picked"] for r in rows]) >
                np.mean([r["emu_dpap_default"] for r in rows]) and
                np.mean([r["ops_picked"] for r in rows]) <
                np.mean([r["ops_dpap_default"] for r in rows]))}


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seeds", default="1-2", help="held-out seeds of the picked point")
    ap.add_argument("--pick", default="max accuracy with ops <= 0.25*dense")
    ap.add_argument("--epochs", default="5-30", help="range of a pruned run's length")
    ap.add_argument("--study", default="tune-digits", help="study folder under --out")
    args = ap.parse_args(argv)
    runs.one_thread()
    lo, _, hi = args.epochs.partition("-")
    dense0 = runs.made(args.out, runs.settings(seed=0))
    study = Path(args.out) / args.study
    t0 = time.monotonic()
    result = spikeship.tune(dense0, study, trials=args.trials, threads=1,
                            epochs=(int(lo), int(hi or lo)), resume=True,
                            progress=lambda line: print(line, flush=True))
    wall = time.monotonic() - t0
    from spikeship.tune.pick import parse, select

    point = select(result.front, parse(args.pick), args.pick)
    print(f"picked trial {point['trial']}: {point['prune_opt']}", flush=True)
    rows = [seed_row(args, s, point) for s in common.seeds(args.seeds)]
    summary = summarise(rows, result.front, round(wall))
    common.write_result(
        args, name="tune-digits", module=MODULE, argv=argv, topic="pruning",
        title="digits: spikeship tune's front, its picked point vs DPAP's default on "
              "held-out seeds",
        description=f"Study on seed 0 (validation carve, Loihi emulator); picked by "
                    f"{args.pick!r}; held-out seeds {args.seeds} on the whole test split.",
        rows=rows + front_rows(result.front), summary=summary,
        config={"trials": args.trials, "seeds": args.seeds, "pick": args.pick,
                "epochs": args.epochs, "picked_prune_opt": point["prune_opt"]},
        notes=["study_wall_s is this call's time: 0 trials ran when the study was "
               "already complete (resumed)."])
    return 0


if __name__ == "__main__":
    sys.exit(main())

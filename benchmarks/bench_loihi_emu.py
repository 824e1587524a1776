"""Loihi emulator vs Lava ``fixed_pt``: samples/s on the same samples, in one run.

Net: the DPAP-pruned (CLI defaults) ``dpap-mnist`` on ``digits``, seed 0 (T = 8, direct
encoding: host current into the first LIF), made by :mod:`benchmarks.runs` (the run the
pruning benchmark uses). Both targets get the same fixed-point
deployment (:func:`spikeship.targets.loihi.deploy.deployment_for`) and the same test inputs (the
whole digits test split unless ``--samples``); their output spikes must be identical
(checked, else the script fails).

Lava: one compile, the samples streamed back to back (:mod:`spikeship.sim.lava.run`,
Lava's own worker processes, one per process of the network). Emulator: one torch
thread, the best of ``--repeats`` runs (shared CPU: the least disturbed one).

Printed, for both: samples/s of wall time (building/compiling and the host's input
stream included), of the run proper (Lava's ``run_s``: its chunks of steps; the
emulator's ``run_s``: its steps, after the same host stream), and of CPU time (this
process plus, for Lava, its reaped worker processes: on a shared, loaded machine the
single-threaded emulator gets a smaller share of the cores than Lava's many workers,
so CPU time is the load-independent comparison). Target: emulator/Lava >= 100 (run).
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

from benchmarks import common, runs

TARGET = 100.0


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (user + system)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--samples", type=int, default=None,
                    help="first N test samples, run on both (default: the whole split)")
    ap.add_argument("--repeats", type=int, default=3, help="emulator repeats (best kept)")
    args = ap.parse_args(argv)
    runs.one_thread()
    run = runs.made(args.out, runs.settings(prune="dpap"))
    x, y, dep = runs.fixed_deployment(run, args.samples)
    n = len(x)

    t0, c0 = time.perf_counter(), _cpu_s()
    lava = runs.lava_fixed(dep, x, y)
    lava_wall, lava_cpu = time.perf_counter() - t0, _cpu_s() - c0
    lava_run = float(lava.extra["run_s"])

    best_wall, best_run, best_cpu, emu = float("inf"), float("inf"), float("inf"), None
    for _ in range(max(1, args.repeats)):
        t0, c0 = time.perf_counter(), _cpu_s()
        emu = runs.emulator(dep, x, y)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, _cpu_s() - c0)
        best_run = min(best_run, float(emu.extra["run_s"]))

    identical = bool(np.array_equal(emu.output_spikes, lava.output_spikes))
    rows = [{"target": "lava fixed_pt", "samples_per_s_wall": n / lava_wall,
             "samples_per_s_run": n / lava_run, "samples_per_s_cpu": n / lava_cpu,
             "accuracy_pct": 100 * lava.accuracy},
            {"target": "loihi-emu", "samples_per_s_wall": n / best_wall,
             "samples_per_s_run": n / best_run, "samples_per_s_cpu": n / best_cpu,
             "accuracy_pct": 100 * emu.accuracy}]
    ratio = {k: rows[1][f"samples_per_s_{k}"] / rows[0][f"samples_per_s_{k}"]
             for k in ("wall", "run", "cpu")}
    summary = {"samples": n, "timesteps": int(x.shape[1]), "output_spikes_identical": identical,
               **{f"ratio_{k}": v for k, v in ratio.items()}, "target_ratio": TARGET,
               "target_met_run": ratio["run"] >= TARGET, "target_met_cpu": ratio["cpu"] >= TARGET,
               "lava_compile_s": float(lava.extra.get("compile_s", float("nan"))),
               "emulator_repeats": args.repeats, "load_average": os.getloadavg()[0]}
    common.write_result(
        args, name="loihi-emu-speed", module="benchmarks.bench_loihi_emu", argv=argv,
        topic="speed", title="Loihi emulator vs Lava fixed_pt: samples per second",
        description="The same fixed-point deployment and test samples on both; samples/s of "
                    "wall time, of the run proper and of CPU time (Lava's worker processes "
                    "included); the emulator's best of its repeats, one thread.",
        rows=rows, summary=summary)
    print(f"ratio emulator/lava: wall {ratio['wall']:.0f}x, run {ratio['run']:.0f}x, "
          f"CPU {ratio['cpu']:.0f}x; output spikes identical: {identical}")
    if not identical:
        raise SystemExit("emulator and Lava output spikes differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())

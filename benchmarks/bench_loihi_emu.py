"""Loihi emulator vs Lava ``fixed_pt``: samples/s on the same samples, in one run.

Net: a DPAP-pruned ``dpap-mnist`` on ``digits`` (T = 8, direct encoding: host current
into the first LIF). ``--run DIR`` uses a trained run directory's ``model.nir``;
without it a short DPAP training (2 epochs) is run in a temporary directory and
exported, so the benchmark needs nothing prepared. Both targets get the same fixed-point
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

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TARGET = 100.0


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (user + system)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _trained_run(out: Path) -> Path:
    from spikeship.targets.export import export_run
    from spikeship.train.config import TrainConfig
    from spikeship.train.trainer import train

    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=2, prune="dpap",
                      prune_options={"run_epochs": 2}, seed=0)
    train(cfg, out, progress=False, quiet=True)
    export_run(out, ("nir",))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="run directory with model.nir")
    ap.add_argument("--samples", type=int, default=None,
                    help="first N test samples, run on both (default: the whole split, 450)")
    ap.add_argument("--repeats", type=int, default=3, help="emulator repeats (best kept)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from spikeship.sim import loihi_emu
    from spikeship.sim.simulate import test_split
    from spikeship.targets.loihi.deploy import deployment_for, load_graph
    from spikeship.sim.lava.run import run_deployment

    with tempfile.TemporaryDirectory(prefix="bench-loihi-emu-") as tmp:
        run = args.run or _trained_run(Path(tmp) / "run")
        x, y = test_split(run, args.samples)
        dep = deployment_for(load_graph(run / "model.nir"), "fixed", x, {})
        n = len(x)

        t0, c0 = time.perf_counter(), _cpu_s()
        lava = run_deployment(dep, x, y, progress=False)
        lava_wall, lava_cpu = time.perf_counter() - t0, _cpu_s() - c0
        lava_run = float(lava.extra["run_s"])

        best_wall, best_run, best_cpu, emu = float("inf"), float("inf"), float("inf"), None
        for _ in range(max(1, args.repeats)):
            t0, c0 = time.perf_counter(), _cpu_s()
            emu = loihi_emu.run_deployment(dep, x, y)
            best_wall = min(best_wall, time.perf_counter() - t0)
            best_cpu = min(best_cpu, _cpu_s() - c0)
            best_run = min(best_run, float(emu.extra["run_s"]))

    identical = bool(np.array_equal(emu.output_spikes, lava.output_spikes))
    rate = {"lava_wall": n / lava_wall, "lava_run": n / lava_run, "lava_cpu": n / lava_cpu,
            "emu_wall": n / best_wall, "emu_run": n / best_run, "emu_cpu": n / best_cpu}
    print(f"model: {run if args.run else 'dpap-mnist, 2-epoch DPAP on digits'}; {n} samples, "
          f"T={x.shape[1]}, populations {[p.name for p in dep.populations]}")
    print(f"output spikes identical: {identical} "
          f"({int(emu.output_spikes.sum())} spikes; accuracy lava {lava.accuracy:.4f}, "
          f"emulator {emu.accuracy:.4f})")
    print(f"samples/s       {'wall':>10} {'run':>10} {'CPU':>10}")
    for who, key in (("lava fixed_pt", "lava"), ("loihi-emu", "emu")):
        print(f"{who:15} {rate[key + '_wall']:10.1f} {rate[key + '_run']:10.1f} "
              f"{rate[key + '_cpu']:10.1f}")
    ratio = {k: rate["emu_" + k] / rate["lava_" + k] for k in ("wall", "run", "cpu")}
    print(f"ratio emulator/lava: wall {ratio['wall']:.0f}x, run {ratio['run']:.0f}x, "
          f"CPU {ratio['cpu']:.0f}x (target >= {TARGET:.0f}x): run "
          f"{'OK' if ratio['run'] >= TARGET else 'BELOW TARGET'}, CPU "
          f"{'OK' if ratio['cpu'] >= TARGET else 'BELOW TARGET'}")
    print(f"(Lava compile {lava.extra.get('compile_s', float('nan')):.2f} s; emulator 1 thread, "
          f"best of {args.repeats}; load average {__import__('os').getloadavg()[0]:.1f} "
          f"on {__import__('os').cpu_count()} CPUs)")
    if not identical:
        raise SystemExit("emulator and Lava output spikes differ")


if __name__ == "__main__":
    main()

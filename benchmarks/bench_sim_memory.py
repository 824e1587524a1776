"""Peak resident memory of a simulator against the number of test samples.

Each (target, samples) point runs in its own Python process (``--child``): the run's
test split is loaded as ``spikeship simulate`` loads it and the target's ``run`` is
called on it; the peak is that process's ``ru_maxrss`` (Linux: KiB). What grows with
the samples beyond the inputs themselves (``N x T x input`` values) is what a
simulator holds for all samples at once; bounded batches keep it flat.

Default run: a dense MNIST run of one epoch on 10,000 training samples (made once in
the scratch folder, :mod:`benchmarks.runs`): the memory a simulator holds depends on
the network's size and the samples, not on how well it was trained. ``--run`` measures
another trained, exported run (the project's result: a DPAP run on MNIST). Target
``loihi-emu``, samples 1,000 / 4,000 / 10,000. Writes ``sim-memory.json`` (results
schema; ``--results``: into ``results/``), one row per point.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(run: Path, target: str, samples: int, options: dict) -> dict:
    """One point, in this process: load the test split, run the target, report peak RSS."""
    import torch

    torch.set_num_threads(1)
    from spikeship.sim import registry
    from spikeship.sim.simulate import test_split

    x, y = test_split(run, samples)
    input_mb = x.nbytes / 2**20
    t0 = time.perf_counter()
    result = registry.get(target).run(run, x, y, options)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"target": target, "samples": int(x.shape[0]), "timesteps": int(x.shape[1]),
            "options": options, "peak_rss_mb": peak_kib / 1024, "inputs_mb": input_mb,
            "wall_s": wall, "accuracy": result.accuracy}


def main(argv: list[str] | None = None) -> int:
    from benchmarks import common

    ap = common.parser(__doc__)
    ap.add_argument("--run", type=Path, default=None,
                    help="trained, exported run directory (default: a dense MNIST run, made)")
    ap.add_argument("--targets", default="loihi-emu", help="comma-separated targets")
    ap.add_argument("--samples", default="1000,4000,10000", help="comma-separated counts")
    ap.add_argument("--option", action="append", default=[], help="KEY=JSON target option")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.child:
        print(json.dumps(child(args.run, args.targets, int(args.samples), options)))
        return 0
    if args.run is None:
        from benchmarks import runs

        args.run = runs.made(args.out, runs.settings(dataset="mnist", epochs=1,
                                                     limit_train=10_000))
    rows = []
    for target in args.targets.split(","):
        for n in (int(s) for s in args.samples.split(",")):
            cmd = [sys.executable, "-m", "benchmarks.bench_sim_memory", "--child", "--run",
                   str(args.run), "--targets", target, "--samples", str(n),
                   *sum((["--option", o] for o in args.option), [])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["options"] = json.dumps(row["options"])
            rows.append(row)
            print(f"{target:10} {n:6d} samples: peak {row['peak_rss_mb']:8.0f} MB "
                  f"(inputs {row['inputs_mb']:.0f} MB), {row['wall_s']:.1f} s", flush=True)
    summary = {f"{t} peak MB": {str(r["samples"]): r["peak_rss_mb"]
                                for r in rows if r["target"] == t}
               for t in sorted({r["target"] for r in rows})}
    common.write_result(
        args, name="sim-memory", module="benchmarks.bench_sim_memory", argv=argv,
        topic="reliability", title="Peak memory of a simulator against the test samples",
        description="Peak resident memory (ru_maxrss) of one process that loads the run's "
                    "test split and runs the target on it, per number of samples; the "
                    "inputs' own size beside it.",
        rows=rows, summary=summary, config={"run": common.relative(str(args.run))})
    return 0


if __name__ == "__main__":
    sys.exit(main())

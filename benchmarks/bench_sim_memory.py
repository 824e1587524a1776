"""Peak resident memory of a simulator against the number of test samples.

Each (target, samples) point runs in its own Python process (``--child``): the run's
test split is loaded as ``spikeship simulate`` loads it and the target's ``run`` is
called on it; the peak is that process's ``ru_maxrss`` (Linux: KiB). What grows with
the samples beyond the inputs themselves (``N x T x input`` values) is what a
simulator holds for all samples at once; bounded batches keep it flat.

Default: the run given by ``--run`` (a trained, exported MNIST run, e.g. ``spikeship
train --dataset mnist --limit-train 10000 --prune dpap --threads 1`` then ``spikeship
export``), target ``loihi-emu``, samples 1,000 / 4,000 / 10,000. Writes
``results/sim_memory.json`` (command, commit, date, machine, one row per point).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
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


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="trained, exported run directory")
    ap.add_argument("--targets", default="loihi-emu", help="comma-separated targets")
    ap.add_argument("--samples", default="1000,4000,10000", help="comma-separated counts")
    ap.add_argument("--option", action="append", default=[], help="KEY=JSON target option")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "sim_memory.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    options = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.child:
        print(json.dumps(child(args.run, args.targets, int(args.samples), options)))
        return
    rows = []
    for target in args.targets.split(","):
        for n in (int(s) for s in args.samples.split(",")):
            cmd = [sys.executable, __file__, "--child", "--run", str(args.run), "--targets",
                   target, "--samples", str(n), *sum((["--option", o] for o in args.option),
                                                     [])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{target:10} {n:6d} samples: peak {rows[-1]['peak_rss_mb']:8.0f} MB "
                  f"(inputs {rows[-1]['inputs_mb']:.0f} MB), {rows[-1]['wall_s']:.1f} s")
    doc = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "python": platform.python_version()},
           "run": str(args.run), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

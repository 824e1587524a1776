"""Data-parallel training throughput: samples/s with 1 and 2 processes, in one run.

What runs: the real command, ``spikeship train --nproc N`` (the launcher, gloo on
127.0.0.1, gradient all-reduce, sharded evaluation, rank-0 checkpointing), on
``dpap-mnist`` (SNN, T = 8) with MNIST-sized input: IDX files of random 28 x 28
images written to a temporary directory (``--train`` samples, 64 test samples;
throughput does not depend on the pixels). Global batch ``--batch-size`` (the same
for every N), 2 epochs; the second epoch's ``wall_time_s`` (training + evaluation
of 64 samples + checkpoint) is the measurement. N = 1 runs the same command without
``--nproc`` and with one thread. Each process has one thread (``OMP_NUM_THREADS=1``).

Caveat: this machine has 2 cores, shared with other work; 2 processes can at best
double the throughput, and any other load on the cores comes straight off the
2-process number. The printed ratio is the measured speed-up, not a scaling claim.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def fake_mnist(root: Path, n_train: int, n_test: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = (rng.random((n, 28, 28)) < 0.2) * rng.integers(0, 256, (n, 28, 28))
        write_idx(root / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))


def run(nproc: int, data: Path, out: Path, args) -> float:
    cmd = [sys.executable, "-m", "spikeship", "train", "--out", str(out), "--dataset", "mnist",
           "--data-dir", str(data), "--model", "dpap-mnist", "--epochs", "2",
           "--batch-size", str(args.batch_size), "--timesteps", "8", "--no-progress"]
    cmd += ["--nproc", str(nproc)] if nproc > 1 else ["--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{nproc} process(es) failed:\n{r.stderr}")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = lines[-1]["wall_time_s"]
    sps = args.train / epoch
    print(f"  {nproc} process(es): epoch 2 {epoch:.2f} s -> {sps:.1f} samples/s "
          f"(whole command {wall:.1f} s)", flush=True)
    return sps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1024, help="training samples")
    ap.add_argument("--batch-size", type=int, default=32, help="global batch")
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    try:
        fake_mnist(tmp / "mnist", args.train, 64)
        print(f"dpap-mnist SNN, T=8, 28x28 input, {args.train} samples, global batch "
              f"{args.batch_size}, {os.cpu_count()} cores (shared)", flush=True)
        best: dict[int, float] = {}
        for rep in range(args.repeats):
            for n in (1, 2):
                out = tmp / f"run{n}-{rep}"
                best[n] = max(best.get(n, 0.0), run(n, tmp / "mnist", out, args))
        print(f"samples/s: 1 process {best[1]:.1f}, 2 processes {best[2]:.1f}, "
              f"speed-up {best[2] / best[1]:.2f}x (2 cores, shared: at most 2x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

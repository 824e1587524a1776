"""Data-parallel training throughput: samples/s with 1 and 2 processes, in one run.

What runs: ``spikeship.train(..., nproc=N)``, what ``spikeship train --nproc N`` runs (the launcher, gloo on
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

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common, runs


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


def run(nproc: int, data: Path, out: Path, args) -> dict:
    t0 = time.perf_counter()
    runs.train_processes(out, nproc, dataset="mnist", data_dir=str(data), model="dpap-mnist",
                         epochs=2, batch_size=args.batch_size, timesteps=8)
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = lines[-1]["wall_time_s"]
    print(f"  {nproc} process(es): epoch 2 {epoch:.2f} s -> {args.train / epoch:.1f} samples/s "
          f"(whole command {wall:.1f} s)", flush=True)
    return {"processes": nproc, "epoch_s": epoch, "samples_per_s": args.train / epoch,
            "command_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--train", type=int, default=1024, help="training samples")
    ap.add_argument("--batch-size", type=int, default=32, help="global batch")
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs; best kept")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")          # the workers inherit it
    tmp = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    try:
        fake_mnist(tmp / "mnist", args.train, 64)
        best: dict[int, dict] = {}
        for rep in range(args.repeats):
            for n in (1, 2):
                r = run(n, tmp / "mnist", tmp / f"run{n}-{rep}", args)
                if n not in best or r["samples_per_s"] > best[n]["samples_per_s"]:
                    best[n] = r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    speedup = best[2]["samples_per_s"] / best[1]["samples_per_s"]
    common.write_result(
        args, name="distributed-scaling", module="benchmarks.bench_distributed", argv=argv,
        topic="speed", title="Data-parallel training: samples/s with 1 and 2 processes",
        description=f"dpap-mnist SNN, T = 8, 28x28 input, {args.train} samples, global batch "
                    f"{args.batch_size}; the second epoch's wall time. On a shared 2-core "
                    f"machine 2 processes can at best double the throughput.",
        rows=[best[1], best[2]],
        summary={"speedup": speedup, "cores": os.cpu_count() or 1, "repeats": args.repeats,
                 "train_samples": args.train, "batch_size": args.batch_size})
    print(f"speed-up {speedup:.2f}x (at most 2x on 2 shared cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

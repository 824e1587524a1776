"""Where a training epoch's time goes: the trainer's loop, phase by phase, dense and DPAP.

``dpap-mnist`` on MNIST-sized synthetic input (1 x 28 x 28, 10 classes, direct
encoding, T = 8), batch 32 by default. The loop is the trainer's own
(:meth:`Trainer.train_step` pieces, in order), each phase timed with this
process's CPU clock (``time.process_time``: on a shared machine it counts what
the run itself computes, not the time other jobs hold the cores) around it; evaluation (the trainer's ``evaluate``) and the
checkpoint + metrics write of one epoch are timed too. Prints a markdown table of
seconds and shares per phase, per engine (``--engines``) and pruner.

Run: ``python benchmarks/profile_train.py [--batches 60] [--engines snntorch,fast]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict

import numpy as np
import torch

from spikeship.train.config import TrainConfig
from spikeship.data import ArrayDataset, DatasetBundle
from spikeship.train.losses import predict
from spikeship.train.trainer import Trainer


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> DatasetBundle:
    """MNIST-shaped data (uint8-like intensities in [0, 1], 10 balanced classes)."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 1, 28, 28)).astype(np.float32)

    def make(n):
        y = np.arange(n) % 10
        x = np.clip(protos[y] * 0.7 + rng.random((n, 1, 28, 28), dtype=np.float32) * 0.5, 0, 1)
        return ArrayDataset((x * 255).round() / 255, y)
    return DatasetBundle("synthetic-mnist", make(n_train), make(n_test), (1, 28, 28), 10,
                         "direct", 8)


def profile(engine: str, prune: str, batches: int, batch_size: int, eval_n: int) -> dict:
    data = synthetic_mnist(batches * batch_size, eval_n)
    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=2, batch_size=batch_size,
                      prune=prune, prune_options={"warmup": 0} if prune == "dpap" else {},
                      engine=engine)
    out = tempfile.mkdtemp(prefix="profile-train-")
    tr = Trainer(cfg, out, progress=False, quiet=True, data=data)
    tr._build()
    tr._start_fresh()
    t: dict[str, float] = defaultdict(float)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    tr.model.train()
    clock = time.process_time
    it = iter(tr._batches(data.train, order, batch_size))
    while True:
        a = clock()
        try:
            x, y = next(it)
        except StopIteration:
            break
        b = clock(); t["data loading & batching"] += b - a
        tr.optimizer.zero_grad(set_to_none=True)
        out_ = tr.forward(x, membrane=False)
        loss = tr.loss_fn(out_, y)
        c = clock(); t["forward (incl. pruner hooks / activity)"] += c - b
        loss.backward()
        d = clock(); t["backward"] += d - c
        tr.pruner.after_backward()
        tr.masks.mask_grads()
        e = clock(); t["mask gradients"] += e - d
        tr.optimizer.step()
        f = clock(); t["optimizer (AdamW)"] += f - e
        tr.masks.apply(tr.optimizer)
        g = clock(); t["mask application"] += g - f
        tr.pruner.after_batch()
        h = clock(); t["pruner statistics (after_batch)"] += h - g
        float(loss.detach()); int((predict(out_.detach()) == y).sum())
        t["logging (loss, accuracy)"] += clock() - h
    a = clock()
    tr.pruner.end_epoch(1)
    tr.masks.apply(tr.optimizer)
    b = clock(); t["pruner end of epoch"] += b - a
    tr.evaluate()
    c = clock(); t[f"test evaluation ({eval_n} samples)"] += c - b
    tr.epoch = 0
    tr.metrics = []
    tr._save_epoch(1, {"train_loss": 0.0, "train_accuracy": 0.0, "lr": 0.0}, 0.0, 0.0, {})
    t["checkpoint + metrics"] += clock() - c
    tr.pruner.detach()
    return dict(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--eval", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--engines", default="snntorch,fast")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = {}
    for engine in args.engines.split(","):
        for prune in ("none", "dpap"):
            profile(engine, prune, 3, args.batch_size, 64)   # warm-up
            runs[f"{engine} / {'dense' if prune == 'none' else 'DPAP'}"] = profile(
                engine, prune, args.batches, args.batch_size, args.eval)
    phases = list(next(iter(runs.values())))
    print(f"{args.batches} batches of {args.batch_size}, T = 8, 1x28x28, "
          f"{args.threads} thread(s); CPU seconds (share of the total)\n")
    print("| phase | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for p in phases:
        cells = []
        for r in runs.values():
            tot = sum(r.values())
            cells.append(f"{r.get(p, 0.0):.3f} ({100 * r.get(p, 0.0) / tot:.1f} %)")
        print(f"| {p} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{sum(r.values()):.3f}" for r in runs.values()) + " |")
    n = args.batches * args.batch_size
    print("| train samples/s (train phases only) | " + " | ".join(
        f"{n / sum(v for k, v in r.items() if not k.startswith(('test', 'checkpoint', 'pruner end'))):.0f}"
        for r in runs.values()) + " |")


if __name__ == "__main__":
    main()

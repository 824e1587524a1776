"""Training throughput of the trainer's engines against a plain PyTorch loop, in one run.

Net: ``dpap-mnist`` (15C3-AvgPool2-40C3-AvgPool2-300FC-10FC) on MNIST-sized input
(1 x 28 x 28, 10 classes, direct encoding), T = 8, AdamW, MSE on output rates
(Eq 3). Variants, each trained from the same initial weights on the same batches:

- ``fast``: the trainer (:meth:`Trainer.train_step`: lr schedule, forward, loss,
  backward, pruner, gradient masking, AdamW, mask enforcement) with its default
  engine (T folded into the batch, first conv once, fused LIF);
- ``snntorch``: the same trainer with ``engine="snntorch"`` (the net once per step);
- ``plain``: a plain PyTorch loop written the obvious way (``PlainNet`` below: the
  same layers, a LIF with a rectangle surrogate as an autograd Function, one time
  step at a time; no snntorch, no hooks, no masks, no fusing, no compile, float32).

``fast`` and ``snntorch`` run dense and with DPAP (``--prune dpap``, default
options; its per-batch statistics and hooks are what DPAP adds per batch).
``fast+qat`` is ``fast`` with ``--qat`` (:mod:`spikeship.train.qat`: the on-chip
layers' weights put on the Loihi quantiser's grid before every forward and the
float master weights put back after the backward); its cost is printed as the
time ratio qat / dense.
Throughput is training samples per second over ``--batches`` batches; the
variants are interleaved ``--repeats`` times (the machine is shared: absolute
numbers mean little, ratios within one run do) and the median of each is used.
Two clocks: wall time and this process's CPU time (``time.process_time``). With
one thread (the default) CPU time is what the run would take on an idle core and
is much less disturbed by other jobs than wall time; both ratios are printed.

Run: ``python -m benchmarks.bench_train_throughput [--batch-sizes 32,128]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

from benchmarks import common
from spikeship.train.config import TrainConfig
from spikeship.data import ArrayDataset, DatasetBundle
from spikeship.train.losses import mse_rate
from spikeship.train.trainer import Trainer

TIMESTEPS = 8


# ---- data ---------------------------------------------------------------------------------
def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> DatasetBundle:
    """MNIST-shaped data: 10 random class prototypes plus noise, quantised to 1/255."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 1, 28, 28)).astype(np.float32) * (rng.random((10, 1, 28, 28)) > 0.8)

    def make(n):
        y = np.arange(n) % 10
        x = np.clip(protos[y] + rng.random((n, 1, 28, 28), dtype=np.float32) * 0.3, 0, 1)
        return ArrayDataset(np.round(x * 255) / 255, y)
    return DatasetBundle("synthetic-mnist", make(n_train), make(n_test), (1, 28, 28), 10,
                         "direct", TIMESTEPS)


# ---- the plain PyTorch loop -----------------------------------------------------------------
class _Rect(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D102
        ctx.save_for_backward(x)
        return (x > 0).float()

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (x,) = ctx.saved_tensors
        return g * (x.abs() < 0.5).float()


class PlainNet(nn.Module):
    """dpap-mnist as one would write it by hand: LIF (lambda 0.2, V_th 0.5, reset to
    zero, rectangle surrogate of width 1) after every layer, one step per call."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 15, 3, padding=1), nn.Conv2d(15, 40, 3, padding=1)
        self.f1, self.f2 = nn.Linear(40 * 7 * 7, 300), nn.Linear(300, 10)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        mems = [None] * 4
        out = []
        for _ in range(TIMESTEPS):
            h = x
            for k, layer in enumerate((self.c1, self.c2, self.f1, self.f2)):
                if k == 2:
                    h = h.flatten(1)
                cur = layer(h)
                m = mems[k]
                m = cur if m is None else 0.2 * m * (m <= 0.5).float() + cur
                mems[k] = m
                h = _Rect.apply(m - 0.5)
                if k < 2:
                    h = self.pool(h)
            out.append(h)
        return torch.stack(out)


def plain_weights_from(model: nn.Sequential, net: PlainNet) -> None:
    """Copy the trainer model's initial weights into the plain net (same starting point)."""
    convs = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for src, dst in zip(convs, (net.c1, net.c2, net.f1, net.f2)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)


# ---- measurements ---------------------------------------------------------------------------
class Variant:
    """One way of training; ``run(batches)`` times training on them, returns seconds."""

    def __init__(self, name: str, data: DatasetBundle, batch_size: int, engine: str,
                 prune: str, qat: bool = False):
        self.name, self.engine = name, engine
        torch.manual_seed(0)
        if engine == "plain":
            ref = Trainer(TrainConfig(batch_size=batch_size), tempfile.mkdtemp(), data=data,
                          progress=False, quiet=True)
            ref._build()
            self.net = PlainNet()
            plain_weights_from(ref.model, self.net)
            self.opt = torch.optim.AdamW(self.net.parameters(), lr=2e-3, weight_decay=0.01)
        else:
            cfg = TrainConfig(batch_size=batch_size, engine=engine, prune=prune, epochs=1,
                              qat=qat)
            self.tr = Trainer(cfg, tempfile.mkdtemp(prefix="bench-"), data=data,
                              progress=False, quiet=True)
            self.tr._build()
            self.tr.model.train()

    def run(self, batches) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        if self.engine == "plain":
            for x, y in batches:
                self.opt.zero_grad(set_to_none=True)
                loss = mse_rate(self.net(x), y)
                loss.backward()
                self.opt.step()
                float(loss.detach())
        else:
            for x, y in batches:
                loss, _ = self.tr.train_step(x, y, 2e-3)
                float(loss)
        return time.perf_counter() - t0, time.process_time() - c0


def throughput(data: DatasetBundle, batch_size: int, n_batches: int, repeats: int) -> dict:
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    batches = [(data.train.x[order[i * batch_size:(i + 1) * batch_size]],
                data.train.y[order[i * batch_size:(i + 1) * batch_size]])
               for i in range(n_batches)]
    variants = [Variant("fast", data, batch_size, "fast", "none"),
                Variant("snntorch", data, batch_size, "snntorch", "none"),
                Variant("plain", data, batch_size, "plain", "none"),
                Variant("fast+dpap", data, batch_size, "fast", "dpap"),
                Variant("snntorch+dpap", data, batch_size, "snntorch", "dpap"),
                Variant("fast+qat", data, batch_size, "fast", "none", qat=True)]
    for v in variants:
        v.run(batches[:2])                                   # warm-up (allocator, caches)
    times: dict[str, list[tuple[float, float]]] = {v.name: [] for v in variants}
    for r in range(repeats):
        for v in (variants if r % 2 == 0 else variants[::-1]):   # interleaved
            times[v.name].append(v.run(batches))
    n = n_batches * batch_size
    return {clock: {k: n / statistics.median(t[j] for t in ts) for k, ts in times.items()}
            for j, clock in enumerate(("wall", "cpu"))}


RATIOS = (("fast / snntorch (dense)", "fast", "snntorch"), ("fast / plain (dense)", "fast", "plain"),
          ("snntorch / plain (dense)", "snntorch", "plain"),
          ("fast / snntorch (DPAP)", "fast+dpap", "snntorch+dpap"),
          ("fast+dpap / plain", "fast+dpap", "plain"), ("fast / fast+qat", "fast", "fast+qat"),
          ("fast / fast+dpap", "fast", "fast+dpap"),
          ("snntorch / snntorch+dpap", "snntorch", "snntorch+dpap"))


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--batch-sizes", default="32")
    ap.add_argument("--batches", type=int, default=0,
                    help="batches per measurement (default: 1024 samples' worth)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    data = synthetic_mnist(max(max(sizes) * (args.batches or 1024 // min(sizes)), 4096), 256)
    rows, summary = [], {}
    for bs in sizes:
        nb = args.batches or max(2, 1024 // bs)
        both = throughput(data, bs, nb, args.repeats)
        for k in both["wall"]:
            rows.append({"batch": bs, "variant": k, "samples_per_s_wall": both["wall"][k],
                         "samples_per_s_cpu": both["cpu"][k]})
        for label, num, den in RATIOS:
            summary[f"batch {bs}: {label}"] = {
                clock: both[clock][num] / both[clock][den] for clock in ("wall", "cpu")}
            print(f"  batch {bs} ratio {label:28s} {both['wall'][num] / both['wall'][den]:7.2f}x")
    common.write_result(
        args, name="train-throughput", module="benchmarks.bench_train_throughput", argv=argv,
        topic="speed", title="Training throughput: the trainer's engines and a plain PyTorch loop",
        description=f"dpap-mnist on MNIST-shaped synthetic input, T = {TIMESTEPS}, one thread; "
                    f"median of {args.repeats} interleaved repeats; training samples per "
                    f"second of wall and CPU time, and their ratios.",
        rows=rows, summary=summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

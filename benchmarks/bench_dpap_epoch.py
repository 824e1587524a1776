"""Time one training epoch with and without DPAP on the same net, in one run; print the ratio.

Net and data: ``dpap-mnist`` on ``digits`` (T = 8, batch 32), the project's default
run. Both variants start from the same weights and see the same batches; the loop is
the trainer's (forward over T, MSE rate loss, backward, gradient masking, AdamW,
mask enforcement, pruner hooks), and the DPAP epoch ends with a full, *active*
``end_epoch`` (warm-up 0: importance, survival update and pruning decision), so the
hooks, the per-batch BCM and the per-epoch work are all inside the timed region.
Variants alternate ``--repeats`` times on one thread; the minimum of each is
compared (shared CPU: the minimum is the least disturbed measurement).

Target: ratio <= 1.10 for the default criterion (BCM). The STDP ablation, which
needs one outer product per time step, is printed for information.
"""

from __future__ import annotations

import copy
import sys
import time

import torch

from benchmarks import common
from spikeship.data import load_dataset
from spikeship.train.losses import get_loss
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.pruners import get_pruner_class
from spikeship.train.structure import describe

TARGET = 1.10


def one_epoch(base_model, spec, data, pruner_name, options, timesteps, batch_size) -> float:
    model = copy.deepcopy(base_model)
    layers = describe(model, spec.input_shape)
    masks = MaskSet(model, layers)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    pruner = get_pruner_class(pruner_name)(options)
    pruner.set_run(1)                       # a one-epoch run: DPAP's cut falls in it
    pruner.attach(model, masks, layers, ann=False)
    loss_fn = get_loss("mse_rate", False)            # Eq 3, the trainer's SNN default
    x_all, y_all = data.train.x, data.train.y
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
    model.train()
    t0 = time.perf_counter()
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x, y = x_all[idx], y_all[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward_sequence(model, x, timesteps), y)
        loss.backward()
        pruner.after_backward()
        masks.mask_grads()
        opt.step()
        masks.apply(opt)
        pruner.after_batch()
    pruner.end_epoch(1)
    masks.apply(opt)
    dt = time.perf_counter() - t0
    pruner.detach()
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_dataset("digits", timesteps=args.timesteps)
    spec = ModelSpec("dpap-mnist", tuple(data.input_shape), data.num_classes)
    base = build_model(spec)
    variants = {"dense": ("none", {}),
                "dpap-bcm": ("dpap", {"warmup": 0}),
                "dpap-stdp": ("dpap", {"warmup": 0, "criterion": "stdp"})}
    times: dict[str, list[float]] = {k: [] for k in variants}
    one_epoch(base, spec, data, "none", {}, args.timesteps, args.batch_size)   # warm caches
    for _ in range(args.repeats):
        for name, (pruner, opts) in variants.items():
            times[name].append(one_epoch(base, spec, data, pruner, opts, args.timesteps,
                                         args.batch_size))
    best = {k: min(v) for k, v in times.items()}
    ratio = best["dpap-bcm"] / best["dense"]
    common.write_result(
        args, name="dpap-epoch-overhead", module="benchmarks.bench_dpap_epoch", argv=argv,
        topic="speed", title="One training epoch with and without DPAP",
        description=f"dpap-mnist on digits ({len(data.train)} samples, T = {args.timesteps}, "
                    f"batch {args.batch_size}), the same weights and batches; minimum of "
                    f"{args.repeats} alternating repeats, one thread.",
        rows=[{"variant": k, "epoch_s": best[k], "ratio_to_dense": best[k] / best["dense"]}
              for k in variants],
        summary={"ratio_dpap_dense": ratio, "target": TARGET, "target_met": ratio <= TARGET,
                 "ratio_stdp_dense": best["dpap-stdp"] / best["dense"]})
    print(f"ratio dpap/dense = {ratio:.3f} (target <= {TARGET:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

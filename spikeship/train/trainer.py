"""BPTT training of an SNN (or its ANN twin) with a pruner plugged in, resumable bit for bit.

One epoch (``B`` = batch, ``T`` = time steps)::

    for each batch (x, y), shuffled with a generator seeded by (seed, epoch):   # train_step
        out = forward(x)                           # (T, B, K) spikes; BPTT through T steps
        loss = L(out, y)                           # Eq 3 (MSE of rate vs one-hot) by default
        loss.backward()                            # surrogate gradient of Eq 4
        pruner.after_backward()
        masks.mask_grads(); AdamW step (lr from warm-up + cosine); masks.apply(optimizer)
        pruner.after_batch()
    pruner.end_epoch(epoch); masks.apply(optimizer)
    test accuracy (of the pruned net, as checkpointed; every eval_every epochs and after
    the last); checkpoint; metrics.jsonl line

Two engines compute ``forward`` (``config.engine``): ``fast`` (default,
:mod:`spikeship.train.multistep`: stateless layers on all T steps folded into the
batch, the first conv of a static input once, a fused LIF recurrence, pruner
activity handed over without hooks) and ``snntorch`` (the reference: the whole net
once per step, :func:`~spikeship.train.models.forward_sequence`). Both give the same
spikes and train the same ``nn.Sequential``, so checkpoints and exports do not
depend on the engine. ANN twins have no time and always run the plain forward.

The pruner life cycle is exactly that of :mod:`spikeship.train.pruners.base`; the
trainer never knows which pruner it drives. Determinism: weights come from
``torch.manual_seed(seed)``, shuffling from a per-epoch generator, and every
random-generator state is checkpointed, so on CPU ``stop after epoch k`` + resume
gives the same weights, bit for bit, as an uninterrupted run.

Data-parallel runs (:mod:`spikeship.train.distributed`): the ``self.dp`` hooks give each
rank its share of every global batch, all-reduce gradients before the pruner sees
them, shard the evaluation, compare mask hashes after every pruning decision and let
rank 0 alone write the run directory; with one process every hook is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn)

from spikeship.data import DatasetBundle, load_dataset
from spikeship.errors import CheckpointError, ConfigError, RunDirError
from spikeship.io import append_jsonl, ensure_writable_dir, write_json_atomic, write_text_atomic
from spikeship.train import multistep
from spikeship.runlock import PIPELINE, TRAINING, writes_run_dir
from spikeship.train.batches import batches, epoch_permutation, shard_batches
from spikeship.train.checkpoint import (CKPT, NEW, OLD, load_checkpoint, load_model_state,
                                        recover_checkpoint, restore_rng, save_checkpoint)
from spikeship.train.config import TrainConfig, lr_at
from spikeship.train.distributed import SINGLE, DataParallel
from spikeship.train.losses import get_loss, predict
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.predictions import save_predictions
from spikeship.train.pruners import get_pruner_class
from spikeship.train.pruners.base import all_reduce_stats
from spikeship.train.qat import chip_layers, put_on_grid, weights_on_grid
from spikeship.train.record import check_resumable, check_schedule, epoch_metrics, run_summary
from spikeship.train.structure import describe



def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``auto`` (cuda when available) -> a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("field 'device': cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def model_spec(config: TrainConfig, data: DatasetBundle) -> ModelSpec:
    """The architecture of ``config`` for the input shape and classes of ``data``."""
    return ModelSpec(preset=config.model, input_shape=tuple(data.input_shape),
                     num_classes=data.num_classes, ann=config.ann, pool=config.pool,
                     hidden=config.hidden)


class Trainer:
    """Train ``config`` into ``run_dir`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
    ``checkpoint/``). ``baseline_dir``: a dense run whose accuracy sets
    ``dense_baseline_accuracy`` / ``epochs_to_baseline`` in the summary."""

    def __init__(self, config: TrainConfig, run_dir, *, baseline_dir=None,
                 progress: bool = True, quiet: bool = False, console=None,
                 data: DatasetBundle | None = None, dp: DataParallel = SINGLE):
        self.config = config
        self.dp = dp   # data-parallel hooks (spikeship.train.distributed): no-ops when single
        self.run_dir = Path(run_dir)
        self.baseline_dir = Path(baseline_dir) if baseline_dir is not None else None
        self.progress, self.quiet = progress, quiet
        if console is None:
            console = Console(stderr=True, highlight=False)
        self.console = console
        self.device = dp.device(resolve_device(config.device))
        self.loss_fn = get_loss(config.loss, config.ann)
        self._given_data = data   # a ready dataset (benchmarks, tests) instead of config.dataset

    # ---- set-up ------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)
        self.data = self._given_data if self._given_data is not None else load_dataset(
            cfg.dataset, data_dir=cfg.data_dir, timesteps=cfg.timesteps, seed=cfg.data_seed,
            limit_train=cfg.limit_train, limit_test=cfg.limit_test,
            validation_carve=cfg.validation_carve)
        self.spec = model_spec(cfg, self.data)
        self.model = build_model(self.spec).to(self.device)
        self.layers = describe(self.model, self.spec.input_shape)
        self.masks = MaskSet(self.model, self.layers)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                           weight_decay=cfg.weight_decay)
        self.pruner = get_pruner_class(cfg.prune)(dict(cfg.prune_options))
        self.pruner.set_run(cfg.epochs)
        self.pruner.attach(self.model, self.masks, self.layers, ann=cfg.ann)
        self.multistep = cfg.engine == "fast" and not cfg.ann
        if self.multistep and not multistep.supports(self.model):
            raise ConfigError(f"field 'engine': the fast engine cannot run '{cfg.model}' "
                              f"exactly; use engine 'snntorch'")
        if cfg.precision == "bf16" and not self.multistep:
            raise ConfigError("field 'precision': bf16 needs the fast engine on an SNN "
                              "(its LIF keeps the membrane in fp32)")
        self._record = self.pruner.engine_activity() if self.multistep else None
        self.qat_modules = (chip_layers(self.model, self.layers, self.data.encoding)
                            if cfg.qat else [])
        # --qat-epochs N: the weights go on the grid only from epoch epochs - N + 1 on
        self.qat_on = bool(self.qat_modules) and not cfg.qat_epochs
        self._inputs = self.pruner.engine_inputs() if self.multistep else None
        self.masks.apply(self.optimizer)
        self.dp.broadcast_state(self.model)
        n = len(self.data.train)
        self.steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup_steps = self.steps_per_epoch * cfg.warmup_epochs
        # a pruner may restart the schedule (DPAP's cut: warm-up and cosine afresh, as a
        # fine-tuning run would); the segment before the restart decays to its end
        self.restart_step = self.steps_per_epoch * max(self.pruner.lr_restart_epoch() - 1, 0)
        self.step = 0
        self.epoch = 0
        self.metrics: list[dict[str, Any]] = []
        self.elapsed_s = 0.0

    def _start_fresh(self) -> None:
        if not self.dp.writer:
            return
        ensure_writable_dir(self.run_dir)
        leftovers = [n for n in (CKPT, NEW, OLD) if (self.run_dir / n).exists()]
        if leftovers:
            raise RunDirError(f"{self.run_dir} already holds a training run ({leftovers[0]}/); "
                              f"continue it with --resume or choose another --out")
        for name in ("metrics.jsonl", "summary.json"):
            (self.run_dir / name).unlink(missing_ok=True)
        write_json_atomic(self.run_dir / "config.json", self.config.to_json())

    def _read_init(self, src: Path):
        """The checkpoint of the trained run ``src`` (``init_from``), checked: same
        architecture and input as this run (optimizer, schedule, pruner start fresh)."""
        ckpt = load_checkpoint(src, device=self.device)   # CheckpointError: missing, corrupt
        theirs, ours = ckpt.spec.to_json(), self.spec.to_json()
        if theirs != ours:
            diff = ", ".join(f"{k} {theirs.get(k)!r} there, {ours.get(k)!r} here"
                             for k in sorted(set(theirs) | set(ours))
                             if theirs.get(k) != ours.get(k))
            raise ConfigError(f"field 'init_from': the run {src} has another model or input "
                              f"than this one ({diff})")
        return ckpt

    def _apply_init(self, ckpt) -> None:
        src = ckpt.path.parent
        load_model_state(self.model, ckpt.model.state_dict(), where=str(src))
        self.masks.load_state(ckpt.masks.state())
        self.masks.apply(self.optimizer)
        self.dp.broadcast_state(self.model)
        if not self.quiet:
            self.console.print(
                f"initialised from {src} (epoch {ckpt.epoch}, seed "
                f"{ckpt.config.get('seed', '?')}, {100 * ckpt.masks.pruning_rate():.1f}% pruned)",
                soft_wrap=True)

    def _resume(self) -> None:
        if not self.dp.writer:
            self.dp.barrier("waiting for rank 0 to read the checkpoint")
        ckpt = load_checkpoint(self.run_dir, device=self.device)
        if self.dp.writer:
            self.dp.barrier("waiting for rank 0 to read the checkpoint")
        check_resumable(ckpt, self.config, self.spec, self.run_dir)
        load_model_state(self.model, {k: v.to(self.device) for k, v in ckpt.group("model").items()},
                         where=str(ckpt.path))
        self.masks.load_state(ckpt.group("mask"))
        try:
            self.optimizer.load_state_dict(ckpt.optimizer_state_dict())
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"optimizer state in {ckpt.path} does not fit: {e}") from e
        try:
            self.pruner.load_state(*ckpt.pruner_state())
            self.masks.apply(self.optimizer)
            restore_rng(ckpt)
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"pruner or random-generator state in {ckpt.path} is "
                                  f"malformed: {type(e).__name__}: {e}") from e
        self.epoch = ckpt.epoch
        sched = ckpt.meta.get("scheduler", {})
        self.step = int(sched.get("step", self.epoch * self.steps_per_epoch))
        check_schedule(ckpt, self.step, self.epoch * self.steps_per_epoch, self.total_steps,
                        self.warmup_steps)
        self.metrics = ckpt.metrics[: self.epoch]
        self.elapsed_s = float(self.metrics[-1].get("elapsed_s", 0.0)) if self.metrics else 0.0
        self.dp.broadcast_state(self.model)
        if not self.dp.writer:
            return
        # metrics.jsonl may hold lines written after the checkpoint's epoch: rewrite it.
        write_text_atomic(self.run_dir / "metrics.jsonl",
                          "".join(json.dumps(m) + "\n" for m in self.metrics))
        write_json_atomic(self.run_dir / "config.json", self.config.to_json())

    # ---- one epoch ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, membrane: bool = False) -> torch.Tensor:
        """Outputs ``(T, B, K)`` for a batch ``x`` (B, C, H, W) or (B, T, C, H, W).

        ``membrane=True`` returns the output layer's membrane ``u[t]`` (Eq 1, before
        the reset) instead of its spikes, for the ``ce_mem`` loss.
        """
        if x.dim() == 5:
            x = x.transpose(0, 1)  # (T, B, C, H, W)
        if self.multistep:
            record = self._record if self.model.training else None
            inputs = self._inputs if self.model.training else None
            if self.config.precision == "bf16":
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = multistep.run(self.model, x, self.config.timesteps,
                                        layers=self.layers, record=record, membrane=membrane,
                                        inputs=inputs)
                return out.float()
            return multistep.run(self.model, x, self.config.timesteps, layers=self.layers,
                                 record=record, membrane=membrane, inputs=inputs)
        if self.config.ann:
            return forward_sequence(self.model, x, ann=True)
        if not membrane:
            return forward_sequence(self.model, x, self.config.timesteps)
        mems: list[torch.Tensor] = []
        hook = self.model[-1].register_forward_hook(lambda m, i, o: mems.append(m.mem))
        try:
            forward_sequence(self.model, x, self.config.timesteps)
        finally:
            hook.remove()
        return torch.stack(mems)

    def _lr(self, step: int) -> float:
        """Learning rate of optimiser step ``step``: :func:`lr_at` over the run, or over
        each segment when the pruner restarts the schedule at ``restart_step``."""
        cfg, r = self.config, self.restart_step
        if not r:
            return lr_at(step, self.total_steps, self.warmup_steps, cfg.lr, cfg.min_lr_ratio)
        if step < r:
            return lr_at(step, r, self.warmup_steps, cfg.lr, cfg.min_lr_ratio)
        return lr_at(step - r, self.total_steps - r, self.warmup_steps, cfg.lr,
                     cfg.min_lr_ratio)

    def train_epoch(self, epoch: int, progress=None, task=None) -> dict[str, float]:
        cfg, model = self.config, self.model
        model.train()
        order = epoch_permutation(len(self.data.train), cfg.seed, epoch)
        total_loss, correct, seen = 0.0, 0, 0
        membrane = cfg.loss == "ce_mem"
        if self.dp.active:      # data-parallel: this rank's share of each global batch
            items = shard_batches(self.data.train, self.dp.train_shards(order, cfg.batch_size),
                                  self.device)
        else:
            items = batches(self.data.train, order, cfg.batch_size, self.device)
        for idx, x, y in items:
            self.dp.maybe_fault(self.step)
            lr = self._lr(self.step)
            loss, out = self.train_step(x, y, lr, membrane)
            self.dp.after_pruner_batch(self.pruner, self.masks, self.step)
            if len(y):
                total_loss += float(loss) * len(y)
            correct += int((predict(out) == y).sum())
            seen += len(y)
            if progress is not None:
                progress.update(task, advance=1,
                                description=f"epoch {epoch} loss {total_loss / seen:.4f}")
        total_loss, correct, seen = self.dp.sum_numbers(total_loss, correct, seen,
                                                        op="all_reduce of epoch metrics")
        return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                "lr": lr}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float,
                   membrane: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on batch ``(x, y)`` at learning rate ``lr``, with the pruner
        and masks; returns the (detached) loss and outputs. ``self.step`` advances."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with self._qat():          # --qat: forward / backward at the chip's weights
            out = self.forward(x, membrane=membrane)
            loss = self.loss_fn(out, y)
            loss.backward()
        self.dp.sync_grads(self.model, len(y))  # data-parallel: before the pruner sees them
        self.pruner.after_backward()
        self.masks.mask_grads()
        self.optimizer.step()
        self.masks.apply(self.optimizer)
        self.pruner.after_batch()
        self.step += 1
        return loss.detach(), out.detach()

    @property
    def eval_batch_size(self) -> int:
        """``config.eval_batch_size``, or by engine: the fast engine folds T steps into the
        batch, so on CPU its test pass is fastest at a small batch (the reason is in
        ``docs/pruning-decisions.md``)."""
        if self.config.eval_batch_size:
            return self.config.eval_batch_size
        return 64 if getattr(self, "multistep", False) else 256

    def _qat(self):
        """``config.qat``: the on-chip layers' weights on the quantiser's grid for the
        block (:mod:`spikeship.train.qat`); otherwise nothing."""
        if not self.qat_on:
            return contextlib.nullcontext()
        return weights_on_grid(self.qat_modules)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Test accuracy: prediction = most output spikes (SNN) / largest logit (ANN)."""
        with self._qat():
            return self._evaluate()

    def _evaluate(self) -> float:
        self.model.eval()
        ds = self.data.test
        preds, labels = [], []
        for _, x, y in batches(ds, self.dp.eval_indices(len(ds)), self.eval_batch_size,
                               self.device):
            preds.append(predict(self.forward(x)).cpu())
            labels.append(y.cpu())
        empty = torch.zeros(0, dtype=torch.int64)
        # data-parallel: each rank evaluated its share; every rank gets all of them, in order
        self.test_predictions = self.dp.gather_shards(
            torch.cat(preds) if preds else empty, len(ds), "all_gather of test predictions").numpy()
        self.test_labels = self.dp.gather_shards(
            torch.cat(labels) if labels else empty, len(ds), "all_gather of test labels").numpy()
        self.test_correct = int((self.test_predictions == self.test_labels).sum())
        return self.test_correct / max(len(ds), 1)

    # ---- the run -----------------------------------------------------------------------------
    def run(self, *, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``config.epochs`` (from the checkpoint with ``resume``); return the summary.

        ``stop_after=k`` stops after epoch ``k`` as a crash would (checkpoint written,
        no summary): for tests and for splitting a long run.
        """
        self._build()
        # under the run lock (see train()); in a data-parallel run rank 0 alone holds the
        # lock and writes, the other ranks never touch the run directory
        recovered = recover_checkpoint(self.run_dir) if self.dp.writer else []
        if recovered and not self.quiet:
            self.console.print(f"recovered an interrupted checkpoint: {', '.join(recovered)}")
        if resume:
            self._resume()
        else:
            # the source run is read and checked before anything is written here
            init = (self._read_init(Path(self.config.init_from))
                    if self.config.init_from is not None else None)
            self._start_fresh()
            if init is not None:
                self._apply_init(init)
        try:
            while self.epoch < self.config.epochs:
                if stop_after is not None and self.epoch >= stop_after:
                    return {}
                self._one_epoch(self.epoch + 1)
        finally:
            self.pruner.detach()
        summary = run_summary(self.config, self.metrics, samples_train=len(self.data.train),
                              samples_test=len(self.data.test), epochs=self.epoch,
                              elapsed_s=self.elapsed_s, device=str(self.device),
                              baseline_dir=self.baseline_dir)
        if self.dp.writer:
            write_json_atomic(self.run_dir / "summary.json", summary)
        return summary

    def _one_epoch(self, epoch: int) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        self.qat_on = bool(self.qat_modules) and (
            not cfg.qat_epochs or epoch > cfg.epochs - cfg.qat_epochs)
        # a live bar only on a terminal; elsewhere (logs, pipes, CI) the one line per
        # epoch below is all that is printed
        if self.progress and not self.quiet and self.console.is_terminal:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=self.console, transient=True) as bar:
                task = bar.add_task(f"epoch {epoch}", total=self.steps_per_epoch)
                stats = self.train_epoch(epoch, bar, task)
        else:
            stats = self.train_epoch(epoch)
        all_reduce_stats(self.pruner)  # no-op unless data-parallel
        pruner_metrics = self.pruner.end_epoch(epoch) or {}
        self.masks.apply(self.optimizer)
        if self.qat_modules and epoch == self.config.epochs:
            put_on_grid(self.qat_modules)      # what is saved and exported is what the chip gets
        self.dp.check_masks(self.masks, f"after epoch {epoch}")
        self.dp.average_norm_stats(self.model)
        evaluate = epoch % self.config.eval_every == 0 or epoch == self.config.epochs
        acc = self.evaluate() if evaluate else None
        if evaluate and self.dp.writer:
            save_predictions(self.run_dir, self.test_predictions, self.test_labels,
                             getattr(self.data.test, "source_indices", None), epoch)
        dt = time.perf_counter() - t0
        m = self._save_epoch(epoch, stats, acc, dt, pruner_metrics)
        if not self.quiet:
            test = "-" if acc is None else f"{100 * acc:.2f}%"
            self.console.print(
                f"epoch {epoch:>3}/{self.config.epochs}  loss {m['train_loss']:.4f}  "
                f"train {100 * m['train_accuracy']:.1f}%  test {test}  "
                f"params {m['params_remaining']:,}/{m['params_total']:,} "
                f"({100 * m['pruning_rate']:.1f}% pruned)  lr {m['lr']:.2e}  {dt:.1f} s",
                soft_wrap=True)

    def _save_epoch(self, epoch, stats, acc, dt, pruner_metrics) -> dict[str, Any]:
        """Record epoch ``epoch``: metrics, checkpoint, ``metrics.jsonl`` line."""
        self.elapsed_s += dt
        self.epoch = epoch
        m = epoch_metrics(self.masks, epoch, stats, acc, dt, self.elapsed_s, pruner_metrics)
        m.update(self.dp.epoch_record())
        self.metrics.append(m)
        if not self.dp.writer:
            return m
        save_checkpoint(self.run_dir, model=self.model, spec=self.spec, masks=self.masks,
                        config=self.config.to_json(), epoch=epoch, optimizer=self.optimizer,
                        scheduler={"step": self.step, "total_steps": self.total_steps,
                                   "warmup_steps": self.warmup_steps},
                        pruner=self.pruner, metrics=self.metrics)
        append_jsonl(self.run_dir / "metrics.jsonl", m)
        return m

@writes_run_dir(lambda a: a["run_dir"] if a["dp"].writer else None, "train", create=True,
                kind=TRAINING, accepts=(TRAINING, PIPELINE))
def train(config: TrainConfig, run_dir, *, resume: bool = False, baseline_dir=None,
          stop_after: int | None = None, progress: bool = True, quiet: bool = False,
          dp: DataParallel = SINGLE) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and return the summary (see :class:`Trainer`;
    ``dp``: this process's place in a data-parallel run, :mod:`.distributed`)."""
    return Trainer(config, run_dir, baseline_dir=baseline_dir, progress=progress,
                   quiet=quiet, dp=dp).run(resume=resume, stop_after=stop_after)

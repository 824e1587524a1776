"""What a training run records, and the checks a record to resume from must pass.

Per epoch a ``metrics.jsonl`` line (:func:`epoch_metrics`); at the end ``summary.json``
(:func:`run_summary`, DESIGN.md "Artifact contract"). A checkpoint is resumed only when
this version can continue it exactly (:func:`check_current`, :func:`check_schedule`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikeship.errors import CheckpointError, ConfigError, ObsoleteCheckpointError, RunDirError
from spikeship.safeopen import read_json
from spikeship.stats import wilson_interval
from spikeship.train.config import TrainConfig
from spikeship.train.masks import MaskSet, units_hex


def epoch_metrics(masks: MaskSet, epoch: int, stats: dict[str, float], acc: float | None,
                  dt: float, elapsed_s: float, pruner_metrics: dict[str, Any]
                  ) -> dict[str, Any]:
    """The ``metrics.jsonl`` line of ``epoch``: losses, accuracy, sizes, per-layer counts."""
    counts = masks.counts()
    return {
        "epoch": epoch, "train_loss": stats["train_loss"],
        "train_accuracy": stats["train_accuracy"], "test_accuracy": acc,
        "params_total": sum(c.synapses_total for c in counts),
        "params_remaining": sum(c.synapses_remaining for c in counts),
        "pruning_rate": masks.pruning_rate(),
        "units_total": sum(c.units_total for c in counts),
        "units_remaining": sum(c.units_remaining for c in counts),
        "layers": [{"name": c.name, "kind": c.kind,
                    "synapses_total": c.synapses_total,
                    "synapses_remaining": c.synapses_remaining,
                    "synapses_pruned": c.synapses_total - c.synapses_remaining,
                    "units_total": c.units_total, "units_remaining": c.units_remaining,
                    "units_pruned": c.units_total - c.units_remaining,
                    "units_kept_hex": units_hex(masks.units[c.name])}
                   for c in counts],
        "lr": stats["lr"], "wall_time_s": dt, "elapsed_s": elapsed_s,
        "pruner": _jsonable(pruner_metrics),
    }


def run_summary(cfg, metrics: list[dict[str, Any]], *, samples_train: int, samples_test: int,
                epochs: int, elapsed_s: float, device: str,
                baseline_dir: Path | None) -> dict[str, Any]:
    """``summary.json``: final accuracy, size, pruning rate, baseline comparison."""
    last = metrics[-1]
    base = read_baseline_accuracy(baseline_dir) if baseline_dir else None
    to_base = None
    if base is not None:
        to_base = next((m["epoch"] for m in metrics
                        if m["test_accuracy"] is not None and m["test_accuracy"] >= base),
                       None)
    return {
        "dataset": cfg.dataset, "model": cfg.model, "ann": cfg.ann, "pruner": cfg.prune,
        "prune_options": dict(cfg.prune_options), "timesteps": cfg.timesteps,
        "seed": cfg.seed, "loss": cfg.loss,
        "test_accuracy": last["test_accuracy"],
        "test_accuracy_ci95": list(wilson_interval(
            round(last["test_accuracy"] * samples_test), samples_test)),
        "best_test_accuracy": max(m["test_accuracy"] for m in metrics
                                  if m["test_accuracy"] is not None),
        "init_from": cfg.init_from,
        "dense_baseline_accuracy": base,
        "baseline_run": str(baseline_dir) if baseline_dir else None,
        "params_total": last["params_total"], "params_remaining": last["params_remaining"],
        "pruning_rate": last["pruning_rate"], "units_total": last["units_total"],
        "units_remaining": last["units_remaining"],
        "epochs": epochs, "epochs_to_baseline": to_base,
        "wall_time_s": elapsed_s, "device": device,
        "samples_train": samples_train, "samples_test": samples_test,
    }


# Fields that may differ between a checkpoint's config and the one resuming it.
RESUMABLE_CHANGES = ("epochs", "device", "engine", "eval_batch_size", "eval_every")


def check_resumable(ckpt, config: TrainConfig, spec, run_dir: Path) -> None:
    """``config`` may continue the run of checkpoint ``ckpt``: a checkpoint this version
    can resume, trained with the same settings (but :data:`RESUMABLE_CHANGES`), for the
    model ``spec``, not already past ``config.epochs``."""
    check_current(ckpt)
    saved = TrainConfig.from_mapping(ckpt.config, source=f"{ckpt.path}/meta.json").to_json()
    mine = config.to_json()
    diffs = [k for k, v in saved.items() if k not in RESUMABLE_CHANGES and mine[k] != v]
    if diffs:
        k = diffs[0]
        raise ConfigError(f"field '{k}': the run in {run_dir} was trained with "
                          f"{k}={saved[k]!r}, not {mine[k]!r}; "
                          f"resume with the same settings or choose another --out")
    if ckpt.spec != spec:
        raise CheckpointError(f"checkpoint in {run_dir} is for {ckpt.spec}, "
                              f"the config builds {spec}")
    if ckpt.epoch > config.epochs:
        raise ConfigError(f"field 'epochs': the run already trained {ckpt.epoch} epochs, "
                          f"more than epochs={config.epochs}")


def check_current(ckpt) -> None:
    """Refuse a checkpoint this version can no longer resume exactly: one holding a
    distilling run's teacher outputs (distillation was removed), or one saved before the
    ``qat`` field existed (such a run trained in float; today's default differs)."""
    if ckpt.group("teacher"):
        raise ObsoleteCheckpointError(f"{ckpt.path}: the run distils from a teacher, an "
                                      f"option since removed; it cannot be resumed")
    if "qat" not in ckpt.config:
        raise ObsoleteCheckpointError(f"{ckpt.path}: the run was saved before the 'qat' "
                                      f"field existed; it cannot be resumed by this version")


def check_schedule(ckpt, step: int, want_step: int, total: int, warmup: int) -> None:  # noqa: ARG001
    """The learning-rate schedule of a resumed run is the one the config defines: the
    step counter is where ``epoch`` full epochs put it and the warm-up agrees (a forged or
    stale step would resume at another learning rate, e.g. 0 past the cosine's end). The
    total may differ: ``epochs`` may be raised on resume, which stretches the cosine."""
    sched = ckpt.meta.get("scheduler", {})
    found = {"step": step, "warmup_steps": sched.get("warmup_steps", warmup)}
    want = {"step": want_step, "warmup_steps": warmup}
    diff = [f"{k}={found[k]} (expected {want[k]})" for k in want if found[k] != want[k]]
    if diff:
        raise CheckpointError(f"{ckpt.path}/meta.json: scheduler state {', '.join(diff)} does "
                              f"not match epoch {ckpt.epoch} of this configuration; the "
                              f"learning rate would be wrong from here on")


def read_baseline_accuracy(baseline_dir: Path) -> float:
    """``test_accuracy`` of a finished dense run's ``summary.json``."""
    p = Path(baseline_dir) / "summary.json"
    try:
        if not p.exists():
            raise FileNotFoundError(p)
        d = read_json(p, "baseline summary", RunDirError)   # regular file, size-limited
        return float(d["test_accuracy"])
    except FileNotFoundError as e:
        raise RunDirError(f"baseline run {baseline_dir} has no summary.json "
                          f"(train it to the end first)") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"baseline summary {p} is unreadable: {e}") from e


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    """A pruner's end_epoch metrics with tensors/arrays turned into lists/numbers."""
    def conv(v):
        if torch.is_tensor(v):
            return v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return conv(dict(d))

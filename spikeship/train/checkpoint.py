"""Checkpoints as a directory of safetensors + JSON, written atomically, never unpickled.

``run_dir/checkpoint/`` holds

- ``tensors.safetensors``: ``model/<state key>`` (weights, masks already applied),
  ``mask/<weight|units>.<layer>`` (:meth:`MaskSet.state`, uint8), ``optim/<i>/<key>``
  (AdamW moments and step of parameter ``i``), ``pruner/<key>`` (the pruner's
  tensors) and ``rng/torch``, ``rng/numpy`` (random-generator states as uint8).
- ``meta.json`` (written last): ``format_version``, ``spec`` (:meth:`ModelSpec.to_json`),
  ``config``, ``epoch``, ``scheduler``, ``optimizer`` (param groups and scalar state),
  ``pruner`` (name and JSON meta), ``rng`` (the JSON parts), ``metrics`` (every epoch
  so far) and ``tensors_sha256``.

Atomic swap: the new checkpoint is written to ``checkpoint.new/`` (fsynced), the old
one renamed to ``checkpoint.old/``, the new one renamed to ``checkpoint/``, then the
old one removed. A crash at any point leaves one complete checkpoint, which
:func:`load_checkpoint` finds and reads without changing anything; the next writer
(under the run lock) puts it back under ``checkpoint/`` (:func:`recover_checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeship.errors import CheckpointError, ConfigError, MaskError, RunDirError
from spikeship.io import sha256_file, write_json_atomic
from spikeship.safeopen import LIMITS, check_file, read_json
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model
from spikeship.train.structure import LayerInfo, describe

FORMAT_VERSION = 1
CKPT, NEW, OLD = "checkpoint", "checkpoint.new", "checkpoint.old"
TENSORS, META = "tensors.safetensors", "meta.json"


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``model`` is in eval mode with the masks applied."""

    model: nn.Sequential
    masks: MaskSet
    layers: list[LayerInfo]
    spec: ModelSpec
    config: dict[str, Any]
    epoch: int
    path: Path
    meta: dict[str, Any] = field(repr=False)
    tensors: dict[str, torch.Tensor] = field(repr=False)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The per-epoch metrics recorded up to this checkpoint."""
        return list(self.meta.get("metrics", []))

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors saved under ``<prefix>/`` with the prefix stripped."""
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    def optimizer_state_dict(self) -> dict[str, Any]:
        """The optimizer's ``state_dict``, as ``Optimizer.load_state_dict`` wants it."""
        opt = self.meta["optimizer"]
        state: dict[int, dict[str, Any]] = {}
        for key, t in self.group("optim").items():
            i, name = key.split("/", 1)
            state.setdefault(int(i), {})[name] = t
        for i, scalars in opt.get("scalars", {}).items():
            state.setdefault(int(i), {}).update(scalars)
        groups = [dict(g) for g in opt["param_groups"]]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        return {"state": state, "param_groups": groups}

    def pruner_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What :meth:`Pruner.state` returned when the checkpoint was written."""
        return self.group("pruner"), dict(self.meta.get("pruner", {}).get("meta", {}))


# ---- writing -------------------------------------------------------------------------------
def save_checkpoint(run_dir: str | os.PathLike, *, model: nn.Module, spec: ModelSpec,
                    masks: MaskSet, config: dict[str, Any], epoch: int,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler: dict[str, Any] | None = None, pruner=None,
                    metrics: list[dict[str, Any]] | None = None,
                    extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``run_dir/checkpoint/`` atomically (see the module docstring); return its path.
    ``extra``: more tensors, named ``group/name``."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model/{k}"] = v
    for k, v in masks.state().items():
        tensors[f"mask/{k}"] = v
    opt_meta: dict[str, Any] = {"param_groups": [], "scalars": {}}
    if optimizer is not None:
        sd = optimizer.state_dict()
        opt_meta["param_groups"] = sd["param_groups"]
        for i, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"optim/{i}/{k}"] = v
                else:
                    opt_meta["scalars"].setdefault(str(i), {})[k] = v
    pruner_meta: dict[str, Any] = {"name": getattr(pruner, "name", "none"), "meta": {}}
    if pruner is not None:
        p_tensors, p_meta = pruner.state()
        for k, v in p_tensors.items():
            tensors[f"pruner/{k}"] = v
        pruner_meta["meta"] = p_meta
    for k, v in (extra or {}).items():
        if k in tensors or "/" not in k:
            raise ValueError(f"extra checkpoint tensor {k!r}: needs a group/ name of its own")
        tensors[k] = v
    rng_meta = _rng_state(tensors)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format_version": FORMAT_VERSION, "spec": spec.to_json(), "config": config,
        "epoch": int(epoch), "scheduler": scheduler or {}, "optimizer": opt_meta,
        "pruner": pruner_meta, "rng": rng_meta, "metrics": metrics or [],
    }
    return _write_dir(run_dir, tensors, meta)


def _rng_state(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    tensors["rng/torch"] = torch.get_rng_state()
    np_state = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np_state[1].astype("<u4").view(np.uint8).copy())
    py = random.getstate()
    return {"numpy": {"pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                      "cached_gaussian": float(np_state[4])},
            "python": [py[0], list(py[1]), py[2]]}


def restore_rng(ckpt: Checkpoint) -> None:
    """Put the torch, numpy and Python random generators back as they were at save time."""
    rng = ckpt.meta["rng"]
    torch.set_rng_state(ckpt.tensors["rng/torch"])
    keys = ckpt.tensors["rng/numpy"].numpy().view("<u4").astype(np.uint32)
    n = rng["numpy"]
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = rng["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _write_dir(run_dir: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    from safetensors import SafetensorError

    run_dir.mkdir(parents=True, exist_ok=True)
    new = run_dir / NEW
    try:
        return _swap_in(run_dir, tensors, meta)
    except (OSError, SafetensorError) as e:   # disk full, I/O error: the old one stays
        shutil.rmtree(new, ignore_errors=True)
        reason = getattr(e, "strerror", None) or str(e)
        raise RunDirError(f"cannot write the checkpoint in {run_dir}: {reason} "
                          f"(the previous checkpoint is intact)") from e
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def _swap_in(run_dir: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    new, old, cur = run_dir / NEW, run_dir / OLD, run_dir / CKPT
    if new.exists():
        shutil.rmtree(new)
    new.mkdir()
    save_file(tensors, str(new / TENSORS))
    _fsync(new / TENSORS)
    meta["tensors_sha256"] = sha256_file(new / TENSORS)
    write_json_atomic(new / META, meta)
    _fsync_dir(new)
    if cur.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(cur, old)
    os.replace(new, cur)
    _fsync_dir(run_dir)
    if old.exists():
        shutil.rmtree(old)
    return cur


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)



# ---- reading -------------------------------------------------------------------------------
def _read_meta(d: Path) -> dict[str, Any] | None:
    """The meta of a complete checkpoint directory, or None if ``d`` is not one."""
    if (d / META).is_symlink():          # not read through a link: incomplete
        return None
    try:
        meta = read_json(d / META, "checkpoint metadata", CheckpointError)
    except (OSError, ValueError, CheckpointError):
        return None
    if not isinstance(meta, dict) or not (d / TENSORS).exists():
        return None
    return meta


def _refuse_link(path: Path) -> None:
    """A checkpoint (directory, tensors, metadata) is read where it is, never through a
    symlink: one could lead ``--init-from`` or ``--resume`` into another run."""
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symlink (to {os.path.realpath(path)}), not a "
                              f"regular file or directory of its run; a checkpoint is read "
                              f"only from its own run directory")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """The complete checkpoint directory of ``run_dir``; reads only, changes nothing.

    Prefers ``checkpoint.new/`` when it is complete (it is the newer one: a writer
    stopped between finishing it and renaming it), then ``checkpoint/``, then
    ``checkpoint.old/``. Putting the winner back under ``checkpoint/`` is the job of
    the next writer, under the run lock (:func:`recover_checkpoint`).
    """
    run_dir = Path(run_dir)
    new, old, cur = run_dir / NEW, run_dir / OLD, run_dir / CKPT
    for d in (new, cur, old):
        _refuse_link(d)
    candidates = [d for d in (new, cur, old) if d.is_dir() and _read_meta(d) is not None]
    if not candidates:
        found = [d.name for d in (new, cur, old) if d.exists()]
        if found:
            raise CheckpointError(f"no complete checkpoint in {run_dir} (found incomplete "
                                  f"{found}: {META} or {TENSORS} missing or unreadable)")
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {cur}/)")
    return candidates[0]


def recover_checkpoint(run_dir: str | os.PathLike) -> list[str]:
    """Finish or undo an interrupted checkpoint swap; for writers holding the run lock.

    The complete checkpoint :func:`checkpoint_dir` would read ends up as ``checkpoint/``
    and the other ``checkpoint.*/`` directories are removed. Returns what was done
    (empty when there was nothing to recover).
    """
    run_dir = Path(run_dir)
    new, old, cur = run_dir / NEW, run_dir / OLD, run_dir / CKPT
    if not new.exists() and not old.exists():
        return []
    done = []
    try:
        best = checkpoint_dir(run_dir)
    except CheckpointError:
        best = None
    try:
        if best is not None and best != cur:
            if cur.exists():
                shutil.rmtree(cur)
            os.replace(best, cur)
            done.append(f"{best.name}/ -> {CKPT}/")
        for d in (new, old):
            if d.exists():
                shutil.rmtree(d)
                done.append(f"removed {d.name}/")
        _fsync_dir(run_dir)
    except OSError as e:
        raise RunDirError(f"cannot recover the interrupted checkpoint in {run_dir}: "
                          f"{e.strerror or e}") from e
    return done


def _read_complete(run_dir: Path, attempts: int = 20):
    """(directory, meta, tensors) of the complete checkpoint, read without a lock: a writer
    may swap directories meanwhile, so a checkpoint that vanishes mid-read is looked up
    again (the reader never changes anything)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    for attempt in range(attempts):
        d = checkpoint_dir(run_dir)
        meta = _read_meta(d)
        try:
            if meta is None:
                raise FileNotFoundError(d / META)
            _check_format(d, meta)
            check_meta(d, meta)
            if not (d / TENSORS).exists():
                raise FileNotFoundError(d / TENSORS)
            _refuse_link(d / TENSORS)            # before anything opens it
            check_file(d / TENSORS, "checkpoint tensor file", LIMITS.checkpoint_bytes,
                       CheckpointError)
            want = meta.get("tensors_sha256")
            if want is not None and sha256_file(d / TENSORS) != want:
                raise CheckpointError(f"{d / TENSORS} is corrupt (SHA-256 differs from {META})")
            try:
                tensors = load_file(str(d / TENSORS), device="cpu")
            except (SafetensorError, OSError, ValueError) as e:
                if not (d / TENSORS).exists():
                    raise FileNotFoundError(d / TENSORS) from e
                raise CheckpointError(f"cannot read {d / TENSORS}: {e}") from e
            return d, meta, tensors
        except FileNotFoundError:
            time.sleep(0.01 * attempt)       # a swap is two renames: let it finish
            if attempt == attempts - 1:
                raise CheckpointError(f"the checkpoint in {run_dir} kept changing while it "
                                      f"was read (a trainer is writing it); try again") from None
    raise AssertionError("unreachable")


def _check_format(d: Path, meta: dict[str, Any]) -> None:
    if "format_version" not in meta:
        raise CheckpointError(f"{d}: checkpoint written in an older format (no format_version "
                              f"in {META}); this spikeship reads format {FORMAT_VERSION}: "
                              f"retrain or re-save it")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{d}: checkpoint format {meta.get('format_version')!r} is not "
                              f"supported (this spikeship reads format {FORMAT_VERSION})")


def check_meta(d: Path, meta: dict[str, Any]) -> None:
    """The fields of ``meta.json`` have the types and ranges the readers rely on."""
    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{d / META}: field '{field}' {why}")

    epoch = meta.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 1_000_000:
        raise bad("epoch", f"must be an integer in [0, 1000000], got {epoch!r}")
    for key, kind in (("spec", dict), ("config", dict), ("scheduler", dict),
                      ("optimizer", dict), ("pruner", dict), ("rng", dict), ("metrics", list)):
        if key in meta and not isinstance(meta[key], kind):
            raise bad(key, f"must be a JSON {'object' if kind is dict else 'array'}, got "
                           f"{type(meta[key]).__name__}")
    if not all(isinstance(m, dict) for m in meta.get("metrics", [])):
        raise bad("metrics", "must hold one JSON object per epoch")
    sched = meta.get("scheduler", {})
    for key in ("step", "total_steps", "warmup_steps"):
        v = sched.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(f"scheduler.{key}", f"must be an integer >= 0, got {v!r}")
    groups = meta.get("optimizer", {}).get("param_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise bad("optimizer.param_groups", "must be a list of JSON objects")
    for i, g in enumerate(groups):
        for key in ("lr", "weight_decay", "eps"):
            v = g.get(key, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0:
                raise bad(f"optimizer.param_groups[{i}].{key}",
                          f"must be a finite number >= 0, got {v!r}")
        betas = g.get("betas", (0.9, 0.999))
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                for b in betas)):
            raise bad(f"optimizer.param_groups[{i}].betas", f"must be two numbers in [0, 1), "
                                                             f"got {betas!r}")
    if not isinstance(meta.get("optimizer", {}).get("scalars", {}), dict):
        raise bad("optimizer.scalars", "must be a JSON object")


def load_checkpoint(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu"
                    ) -> Checkpoint:
    """Load ``run_dir/checkpoint`` (see :func:`checkpoint_dir`): model rebuilt from its
    spec, weights and masks restored and applied, model in eval mode on ``device``.

    Raises :class:`CheckpointError` if the checkpoint is missing, corrupt or its
    weights do not fit its architecture, :class:`MaskError` if its masks do not fit.
    """
    d, meta, tensors = _read_complete(Path(run_dir))
    try:
        spec = ModelSpec.from_json(meta["spec"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{d / META}: bad model spec: {e}") from e
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    with torch.device("meta"):   # shapes only, nothing allocated: an absurd spec is refused
        try:
            shell = build_model(spec)
        except (ConfigError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{d / META}: bad model spec: {e}") from e
    check_model_state(shell, state, where=str(d))
    model = build_model(spec)
    load_model_state(model, state, where=str(d))
    model.to(device)
    layers = describe(model, spec.input_shape)
    masks = MaskSet(model, layers)
    masks.load_state({k[5:]: v for k, v in tensors.items() if k.startswith("mask/")})
    masks.apply()
    model.eval()
    return Checkpoint(model=model, masks=masks, layers=layers, spec=spec,
                      config=dict(meta.get("config", {})), epoch=int(meta["epoch"]), path=d,
                      meta=meta, tensors=tensors)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], where: str = "") -> None:
    """``model.load_state_dict(state, strict=True)`` with a :class:`CheckpointError` naming
    the missing, unexpected and mis-shaped entries (another architecture)."""
    check_model_state(model, state, where)
    model.load_state_dict(state, strict=True)


def check_model_state(model: nn.Module, state: dict[str, torch.Tensor], where: str = "") -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly ``model``'s entries and shapes
    (works on a model on the meta device: nothing is copied)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        raise CheckpointError(f"checkpoint {where} does not fit the model: missing {missing}, "
                              f"unexpected {extra}, shape mismatches {shapes}")


__all__ = ["Checkpoint", "CheckpointError", "MaskError", "checkpoint_dir", "load_checkpoint",
           "load_model_state", "recover_checkpoint", "restore_rng", "save_checkpoint"]

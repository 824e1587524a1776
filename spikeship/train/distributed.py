"""Data-parallel training on ``torch.distributed``: one model replica per process.

How a run is split (``R`` processes, global batch ``B`` = ``--batch-size``):

- Every rank computes the project's own per-epoch permutation
  (:func:`spikeship.train.trainer.epoch_permutation`) and cuts it into the same
  global batches of ``B`` samples as a single-process run. Rank ``r`` takes a
  contiguous slice of each global batch: ``B // R`` samples, one more for the
  first ``B % R`` ranks. The last, uneven batch of ``L < B`` samples is split the
  same way (``L // R``, one more for the first ``L % R`` ranks); when ``L < R`` the
  ranks without a sample still take part in the step with an empty batch, so
  every rank runs the same number of optimizer steps and collectives.
- After ``loss.backward()`` every rank scales its gradients (its loss is a mean
  over its ``n_r`` samples) by ``n_r / L_global`` and the gradients are summed
  across ranks in one flat all-reduce per dtype (:meth:`DataParallel.sync_grads`):
  every rank then holds the gradient of the global batch's mean loss, as a
  single-process run does, up to the order of floating-point sums. This happens
  *before* ``pruner.after_backward``, so pruners that read gradients (PQ's
  RigL regrowth) accumulate the global gradient on every rank.
  DDP's module wrapper is not used: the SNN forward calls the model ``T`` times
  per batch and the pruners hook the bare ``nn.Sequential``; the gradient
  exchange is the same all-reduce DDP does, without its overlap with backward.
- Identical starting weights (same seed; rank 0's parameters and buffers are
  broadcast after set-up and after resume) + identical gradients + the same
  optimizer => identical weights on every rank. BatchNorm normalises with each
  rank's own batch statistics (as DDP without SyncBatchNorm); its running
  estimates are averaged across ranks at the end of every epoch.
- Pruner statistics are summed across ranks before every decision
  (:func:`sum_across_workers`; DPAP also sums its running threshold's post-trace
  sums after every batch), pruner randomness comes from generators seeded by the
  options (identical on every rank), and after every decision
  :meth:`DataParallel.check_masks` compares a SHA-256 of the masks across ranks and
  raises :class:`ReplicaMismatchError` if they differ.
- Test evaluation is sharded (rank ``r`` evaluates a contiguous slice of the test
  set) and the correct counts are summed, so the accuracy is that of the whole set.
- Rank 0 alone writes ``config.json``, ``metrics.jsonl``, ``summary.json`` and the
  (atomic) checkpoints. On ``--resume`` rank 0 reads (and, after a crash, repairs)
  the checkpoint first, then the other ranks read it: for several nodes the run
  directory must be on a shared filesystem. The number of processes may change
  between runs: the global batch does not depend on it.
- Failures: every collective, the rendezvous and the teardown go through this module
  and are bounded by the process-group timeout (``--dist-timeout``, default
  :data:`DEFAULT_TIMEOUT_S`; gloo's own default is 30 minutes), also where the backend
  does not apply it (:meth:`DataParallel._call`: the first connection to the store). A dead peer (its sockets close) or a hung one
  (past the timeout) makes the others raise :class:`DistributedError` naming the
  rank and the operation.

Launching: ``spikeship train --nproc N ...`` (:func:`spikeship.train.launch.launch`: N local workers with a
rendezvous on 127.0.0.1) or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, such as
``torchrun --nproc-per-node N -m spikeship train ...``. Backend: gloo on CPU, NCCL
on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from spikeship.errors import ConfigError, DistributedError, ReplicaMismatchError

DEFAULT_TIMEOUT_S = 120.0
GRACE_S = 2.0     # past the timeout, for the backend to raise its own error first
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Test hook, "rank:step:signal" (e.g. "1:30:KILL"): that rank sends itself the signal
# before global training step ``step`` (0-based). Only read when the variable is set.
FAULT_ENV = "SPIKESHIP_DIST_FAULT"


def distributed_env() -> bool:
    """True when a launcher (``--nproc``, torchrun) asked for more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError as e:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from e


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous share of ``n`` items (the first
    ``n % world`` ranks get one more)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass
class DataParallel:
    """This process's place in a data-parallel run (``world == 1``: everything is a no-op)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    backend: str = ""
    comm_device: torch.device = torch.device("cpu")
    batch_total: int = 0          # length of the global batch last handed out by train_shards
    mask_hashes: tuple[str, ...] = ()   # every rank's mask hash at the last check
    fault: tuple[int, int] | None = None   # (step, signal) of the FAULT_ENV test hook

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        """Rank 0 writes the run directory; the others only train."""
        return self.rank == 0

    # ---- set-up ------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA run."""
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def _call(self, op: str, fn, *args, **kw):
        """Run a rendezvous or collective, bounded by the timeout; turn a backend failure
        into a named error. The call runs in a daemon thread that this thread waits
        for at most ``timeout_s + GRACE_S``: the backend's own timeout does not cover
        every phase (a TCPStore client whose peer accepted the connection but never
        answers waits forever), so a call still running then is abandoned with a
        :class:`DistributedError` and the process can end."""
        box: dict = {}

        def run() -> None:
            try:
                if self.comm_device.type == "cuda":      # the current device is per thread
                    torch.cuda.set_device(self.comm_device)
                box["value"] = fn(*args, **kw)
            except BaseException as e:   # handed to the waiting thread below
                box["error"] = e

        worker = threading.Thread(target=run, name=f"spikeship {op}", daemon=True)
        worker.start()
        worker.join(self.timeout_s + GRACE_S)
        if worker.is_alive():
            raise DistributedError(
                f"rank {self.rank}/{self.world}: {op} did not finish within the process-group "
                f"timeout ({self.timeout_s:g} s, --dist-timeout): a peer accepted the "
                f"connection but never answered, or hung")
        e = box.get("error")
        if isinstance(e, (RuntimeError, ValueError)):  # DistBackendError is a RuntimeError
            raise DistributedError(
                f"rank {self.rank}/{self.world}: {op} failed: a peer process died or did not "
                f"answer within the process-group timeout ({self.timeout_s:g} s, "
                f"--dist-timeout): {_backend_message(e)}") from e
        if e is not None:
            raise e
        return box.get("value")

    def barrier(self, op: str = "barrier") -> None:
        if self.active:
            t = torch.zeros(1, device=self.comm_device)
            self._call(op, torch.distributed.all_reduce, t)

    # ---- reductions --------------------------------------------------------------------
    def sum_tensors(self, tensors: Sequence[torch.Tensor], op: str = "all_reduce") -> None:
        """Sum ``tensors`` across ranks in place (one flat all-reduce per dtype)."""
        if not self.active:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for dtype, group in by_dtype.items():
            flat = torch.cat([t.detach().reshape(-1).to(self.comm_device) for t in group])
            self._call(op, torch.distributed.all_reduce, flat)
            offset = 0
            for t in group:
                n = t.numel()
                t.copy_(flat[offset:offset + n].view_as(t).to(t.device))
                offset += n

    def sum_numbers(self, *values: float, op: str = "all_reduce") -> list[float]:
        """Sum Python numbers across ranks (float64)."""
        t = torch.tensor(values, dtype=torch.float64)
        self.sum_tensors([t], op)
        return t.tolist()

    def sync_grads(self, model: torch.nn.Module, n_local: int, n_global: int | None = None
                   ) -> None:
        """Make every rank's gradients those of the global batch's mean loss (see module doc).

        ``n_global``: samples in the global batch (default: that of the last shard
        :meth:`train_shards` handed out)."""
        if not self.active:
            return
        n_global = self.batch_total if n_global is None else n_global
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        w = n_local / max(n_global, 1)
        grads = [p.grad for p in params]
        if n_local == 0:
            for g in grads:
                g.zero_()       # an empty shard: the gradient of an empty mean is 0, not NaN
        else:
            torch._foreach_mul_(grads, w)
        self.sum_tensors(grads, "all_reduce of gradients")

    def broadcast_state(self, model: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank."""
        if not self.active:
            return
        for t in [*model.parameters(), *model.buffers()]:
            buf = t.detach().to(self.comm_device)
            self._call("broadcast of the weights", torch.distributed.broadcast, buf, src=0)
            if buf is not t:
                t.detach().copy_(buf.to(t.device))

    def average_norm_stats(self, model: torch.nn.Module) -> None:
        """Average BatchNorm running mean / variance across ranks."""
        if not self.active:
            return
        stats = [b for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 for b in (m.running_mean, m.running_var) if b is not None]
        if stats:
            self.sum_tensors(stats, "all_reduce of BatchNorm statistics")
            for b in stats:
                b.div_(self.world)

    # ---- data ----------------------------------------------------------------------------
    def train_shards(self, order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        """This rank's sample indices of each global batch of ``order`` (may be empty)."""
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            start, stop = shard(len(idx), self.rank, self.world)
            self.batch_total = len(idx)
            yield idx[start:stop]

    def gather_shards(self, t: torch.Tensor, n: int, op: str = "all_gather") -> torch.Tensor:
        """Rank-ordered concatenation of every rank's ``t``, the rank's contiguous share
        (:func:`shard`) of ``n`` items along dim 0: the whole ``n`` items on every rank."""
        if not self.active:
            return t
        width = -(-n // self.world)
        pad = torch.zeros((width, *t.shape[1:]), dtype=t.dtype, device=self.comm_device)
        pad[:len(t)] = t.to(self.comm_device)
        out = [torch.zeros_like(pad) for _ in range(self.world)]
        self._call(op, torch.distributed.all_gather, out, pad)
        parts = []
        for r, o in enumerate(out):
            start, stop = shard(n, r, self.world)
            parts.append(o[:stop - start])
        return torch.cat(parts).to(t.device)

    def eval_indices(self, n: int) -> torch.Tensor:
        """This rank's contiguous slice of ``range(n)`` for evaluation."""
        start, stop = shard(n, self.rank, self.world)
        return torch.arange(start, stop)

    # ---- agreement -----------------------------------------------------------------------
    def check_masks(self, masks, where: str) -> None:
        """Raise :class:`ReplicaMismatchError` unless every rank holds the same masks."""
        if not self.active:
            return
        h = hashlib.sha256()
        for k, v in sorted(masks.state().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        mine = int.from_bytes(h.digest()[:7], "big")   # 56 bits: fits an int64
        t = torch.tensor([mine], dtype=torch.int64, device=self.comm_device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        self._call(f"mask check ({where})", torch.distributed.all_gather, out, t)
        hashes = [int(x.item()) for x in out]
        self.mask_hashes = tuple(f"{x:014x}" for x in hashes)
        if len(set(hashes)) > 1:
            differ = [r for r, x in enumerate(hashes) if x != hashes[0]]
            raise ReplicaMismatchError(
                f"rank {self.rank}/{self.world}: pruning masks differ across ranks {where} "
                f"(ranks {differ} disagree with rank 0): a pruner took a rank-dependent "
                f"decision; the run is stopped, the last checkpoint is the last agreed state")

    def epoch_record(self) -> dict:
        """What ``metrics.jsonl`` records of the data-parallel run (nothing when single)."""
        if not self.active:
            return {}
        return {"data_parallel": {"world_size": self.world, "backend": self.backend,
                                  "mask_hashes": list(self.mask_hashes)}}

    def after_pruner_batch(self, pruner, masks, step: int) -> None:
        """Check the masks after a batch on which an interval-K pruner decided."""
        if not self.active:
            return
        k = getattr(pruner, "opts", {}).get("interval") if hasattr(pruner, "opts") else None
        if isinstance(k, int) and not isinstance(k, bool) and step % k == 0:
            self.check_masks(masks, f"after training step {step}")

    def maybe_fault(self, step: int) -> None:
        """Test hook (see :data:`FAULT_ENV`): this rank signals itself at ``step``."""
        if self.fault is not None and self.fault[0] == step:
            os.kill(os.getpid(), self.fault[1])

    # ---- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        global _current
        if self.active and torch.distributed.is_initialized():
            with contextlib.suppress(Exception):
                self._call("teardown", torch.distributed.destroy_process_group)
        if _current is self:
            _current = SINGLE


SINGLE = DataParallel()
_current = SINGLE


def current() -> DataParallel:
    """The data-parallel context of this process (``SINGLE`` unless one was initialised)."""
    return _current


def sum_across_workers(tensors: Sequence[torch.Tensor], what: str = "pruner statistics") -> None:
    """Sum ``tensors`` in place across the ranks of the current run (no-op when single)."""
    _current.sum_tensors(list(tensors), f"all_reduce of {what}")


def init_from_env(device_name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> DataParallel:
    """Join the process group the launcher's environment describes (or a single process).

    ``device_name``: the run's ``device`` (``cpu`` | ``cuda`` | ``auto``): gloo for CPU,
    NCCL for CUDA.
    """
    if not distributed_env():
        return SINGLE
    if not (timeout_s > 0):
        raise ConfigError(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
    missing = [v for v in ENV_VARS if v not in os.environ and v != "LOCAL_RANK"]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set but {missing} are not: launch with "
                          f"'spikeship train --nproc N' or torchrun")
    if not torch.distributed.is_available():
        raise DistributedError("this torch build has no torch.distributed")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    comm = torch.device("cpu")
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError("field 'device': cuda was asked for but torch sees no CUDA device")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA "
                              f"devices: start at most one process per GPU")
        torch.cuda.set_device(local)
        comm = torch.device("cuda", local)
    dp = DataParallel(rank=rank, world=world, local_rank=local, timeout_s=float(timeout_s),
                      backend=backend, comm_device=comm, fault=_fault_hook(rank))
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    dp._call(f"rendezvous at {where} ({backend})", torch.distributed.init_process_group,
             backend=backend, init_method="env://", rank=rank, world_size=world,
             timeout=datetime.timedelta(seconds=float(timeout_s)))
    global _current
    _current = dp
    return dp


def _fault_hook(rank: int) -> tuple[int, int] | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    try:
        r, step, sig = spec.split(":")
        return (int(step), int(getattr(signal, f"SIG{sig}"))) if int(r) == rank else None
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"{FAULT_ENV}={spec!r}: expected RANK:STEP:SIGNAL, e.g. 1:30:KILL") from e


def _backend_message(e: Exception) -> str:
    """The informative part of a backend error (no source paths, no boilerplate hints)."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    first = re.sub(r"\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", first)
    return first.split(" This is typically caused")[0].strip()

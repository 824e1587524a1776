"""``spikeship train --nproc N``: start N local data-parallel workers and watch them.

Each worker is ``python -m spikeship train ...`` with the environment torchrun would
give it (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``,
``MASTER_PORT`` = a free port, ``OMP_NUM_THREADS`` = cores / N unless ``--threads``);
the workers meet in :func:`spikeship.train.distributed.init_from_env`. When a worker
fails the launcher gives the others time to stop with their own named error, then
terminates them, and raises :class:`DistributedError` naming the first failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from spikeship import procstat
from spikeship.errors import ConfigError, DistributedError
from spikeship.train.distributed import DEFAULT_TIMEOUT_S


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def launch(worker_args: Sequence[str], nproc: int, timeout_s: float = DEFAULT_TIMEOUT_S,
           *, threads: int | None = None, oversubscribe: bool = False) -> None:
    """Run ``python -m spikeship <worker_args>`` in ``nproc`` local processes, ranks 0..N-1,
    with a rendezvous on 127.0.0.1; return when all succeeded.

    When a worker fails, the others are given ``timeout_s + 10`` s to stop with their
    own error (they notice a dead peer at their next collective), then terminated; a
    worker that is stopped (``SIGSTOP``, a debugger) can notice nothing, so once every
    live worker is stopped the launcher does not wait out that time.
    ``nproc`` above the usable cores is a :class:`ConfigError` unless ``oversubscribe``.
    Raises :class:`DistributedError` naming the first worker that failed.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    cores = usable_cores()
    if nproc > cores and not oversubscribe:
        raise ConfigError(f"--nproc {nproc} is more than the {cores} CPU cores this process may "
                          f"use: each worker holds a full model and data set; start at most "
                          f"{cores}, or pass --oversubscribe to start {nproc} anyway")
    port = free_port()
    per_proc = threads or max(1, (os.cpu_count() or 1) // nproc)
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(nproc):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                   "OMP_NUM_THREADS": str(per_proc)}
            procs.append(subprocess.Popen([sys.executable, "-m", "spikeship", *worker_args],
                                          env=env))
        first: tuple[int, int] | None = None
        deadline = None
        while True:
            codes = [p.poll() for p in procs]
            if first is None:
                bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
                if bad:
                    first = bad[0]
                    deadline = time.monotonic() + timeout_s + 10.0
            if all(c is not None for c in codes):
                break
            if deadline is not None and (time.monotonic() > deadline or all(
                    _stopped(p) for p, c in zip(procs, codes, strict=True) if c is None)):
                break
            time.sleep(0.1)
    finally:
        _stop(procs)
    if first is not None:
        rank, code = first
        raise DistributedError(f"worker rank {rank} of {nproc} {_describe_exit(code)}; "
                               f"the run stopped (resume it with --resume, with any --nproc)")


def _stopped(p: subprocess.Popen) -> bool:
    """Whether ``p`` is stopped by a signal (state ``T``; Linux); False where that
    cannot be read."""
    return procstat.state(p.pid) == "T"


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every live worker (with SIGCONT, so a stopped one receives it), then
    SIGKILL whichever has not exited within 5 s."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(OSError):
            p.terminate()
            p.send_signal(signal.SIGCONT)
    t0 = time.monotonic()
    for p in live:
        try:
            p.wait(timeout=max(0.1, 5.0 - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                p.kill()
            p.wait()

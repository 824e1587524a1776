"""Lava's worker processes die with spikeship, and a stale one is ended only when proven.

Lava forks about a dozen worker processes per run. Killed with SIGKILL, spikeship gets
no chance to stop them, and they would run on without a parent. Two guards:

- **Parent-death signal.** While a :class:`~spikeship.sim.lava.session.LavaSession` is
  open, every process this process forks from its main thread asks the kernel, first
  thing in the child, for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  Linux ``prctl(2)``), and exits at once if the parent is already gone. The kernel
  sends it when the *thread* that forked exits, so only forks from the main thread
  are armed. Lava's resource tracker is started by fork + exec without Python's
  at-fork hooks: it is not armed, and ends by itself when its pipe closes.
- **Proof of identity.** The session records its workers in a per-user directory
  (:func:`registry_dir`): the parent's pid and start time, and each worker's pid and
  start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot, ``proc(5)``).
  The next session ends a recorded worker only if its recorded parent is dead (no
  process with that pid *and* start time) and a process with the worker's pid has
  the recorded start time and its recorded parent's pid no more as its parent; a pid
  reused by another program has another start time and is left alone. No process is
  ever chosen by its name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

from spikeship.errors import RunDirError
from spikeship.io import write_json_atomic
from spikeship.procstat import parent as parent_of
from spikeship.procstat import start_time
from spikeship.safeopen import read_json

PR_SET_PDEATHSIG = 1          # <linux/prctl.h>
_armed = False                # True while a Lava session may fork its workers
_forked_by_main = False       # set in the parent just before each fork, inherited by the child
_parent_pid = 0


def _before_fork() -> None:
    global _forked_by_main, _parent_pid
    _forked_by_main = threading.current_thread() is threading.main_thread()
    _parent_pid = os.getpid()


def _in_child() -> None:
    """First thing in a forked child: die with the parent (see the module docstring)."""
    if not (_armed and _forked_by_main):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != _parent_pid:      # the parent died before prctl took effect
        os._exit(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_in_child)


@contextlib.contextmanager
def armed():
    """Forks from the main thread inside this block get the parent-death signal."""
    global _armed
    before, _armed = _armed, True
    try:
        yield
    finally:
        _armed = before


def registry_dir() -> Path | None:
    """``$TMPDIR/spikeship-lava-<uid>/``, made private (0700) and checked to be this
    user's own real directory; None when it cannot be (then nothing is recorded)."""
    d = Path(tempfile.gettempdir()) / f"spikeship-lava-{os.getuid()}"
    with contextlib.suppress(FileExistsError, OSError):
        d.mkdir(mode=0o700)
    try:
        st = os.lstat(d)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return d


def record(workers: list[int]) -> Path | None:
    """Write this process's identity and its workers' to the registry; return the file."""
    d = registry_dir()
    me, t = os.getpid(), start_time(os.getpid())
    if d is None or t is None:
        return None
    rec = {"parent": {"pid": me, "start": t},
           "workers": [{"pid": p, "start": s} for p in workers
                       if (s := start_time(p)) is not None]}
    path = d / f"{me}-{t}.json"
    try:
        write_json_atomic(path, rec)
    except RunDirError:          # a full /tmp: the parent-death signal still holds
        return None
    return path


def forget(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _alive(pid: object, start: object) -> bool:
    return isinstance(pid, int) and pid > 0 and start_time(pid) == start


def end_stale() -> list[int]:
    """End the recorded workers of dead spikeship processes (proof of identity, see the
    module docstring); drop their records. Returns the pids signalled."""
    d = registry_dir()
    if d is None:
        return []
    ended = []
    for path in d.glob("*.json"):
        try:
            rec = read_json(path, "Lava worker record", RunDirError, max_bytes=1 << 20)
            parent, workers = rec["parent"], rec["workers"]
        except (RunDirError, KeyError, TypeError):
            continue
        if not isinstance(parent, dict) or not isinstance(workers, list):
            continue                     # not a record this module wrote: leave it
        if _alive(parent.get("pid"), parent.get("start")):
            continue                     # its spikeship process still runs
        for w in workers:
            pid = w.get("pid") if isinstance(w, dict) else None
            if _alive(pid, w.get("start")) and parent_of(pid) != parent.get("pid"):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    ended.append(pid)
        forget(path)
    return ended

"""One writer per run directory: an advisory ``fcntl`` lock on ``RUN_DIR/.spikeship.lock``.

Every command that writes a run directory (train, export, simulate, energy, report,
compare --out, pipeline) holds this lock while it runs. The lock file records the
holder (pid, command line, start time) so a second writer fails at once with a
:class:`RunLockedError` naming it. Readers (``inspect``, loading a checkpoint) never
take the lock and never modify anything.

Life cycle of the lock file:

- created (``O_CREAT``) and locked with ``flock(LOCK_EX | LOCK_NB)``; after locking,
  the inode of the open file is compared with the one at the path, so a file that
  was unlinked by its previous holder in between is never "locked";
- the holder writes its pid and command into it;
- on a clean exit the holder unlinks it (still holding the lock), then closes it.

The lock file is opened without following a symlink and must be a regular file with a
single link: a hard link planted under its name (to a file outside the directory) is
refused before a byte is written to it.

The holder also journals in the lock file, one JSON line each, the temporary files and
scratch directories it creates (:func:`own_temp`: the hidden ``.*.tmp`` files of
:func:`spikeship.io.atomic_path`, ``.netx-*`` scratch directories, also in
subdirectories such as ``plots/``). The kernel drops a ``flock`` when its holder dies,
so a lock file that can be locked but still has content is the trace of a writer that
did not finish: the next writer proceeds, reports that on stderr
(:attr:`RunLock.previous`), and removes exactly the leftovers that writer journalled
(:func:`clean_leftovers`), nothing it did not create, and only in a directory of a
spikeship kind (``compare --out`` into any folder removes nothing). The trainer also recovers an
interrupted checkpoint swap, under the lock
(:func:`spikeship.train.checkpoint.recover_checkpoint`).

Directories have a kind (:mod:`spikeship.dirkind`), checked first under the lock: a
command writes only into an empty directory (marked with its kind) or one of a kind it
accepts (``kind``/``accepts`` of :func:`run_lock`); a refused one is left as it was.

Within one process the lock is re-entrant (the pipeline holds it while its stages run).
The lock file itself (opening, locking, its records, the leftovers a journal names) is
``spikeship.runlock.lockfile``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeship import dirkind
from spikeship.dirkind import (COMPARE, KINDS, MARKER_NAME, PIPELINE, RUN_KINDS,
                               STANDALONE, TRAINING, TUNE, dir_kind)
from spikeship.errors import RunDirError, RunLockedError
from spikeship.runlock.lockfile import (LOCK_NAME, clean_leftovers, describe_holder, open_locked,
                                        read_record, read_temps)


@dataclass
class RunLock:
    """A held lock. ``previous``: the holder record of a writer that did not finish
    (its lock file was left behind), or None; ``cleaned``: leftovers removed;
    ``temps``: temporary paths this holder journalled (relative to ``run_dir``)."""

    run_dir: Path
    fd: int
    created_dirs: list[Path]
    previous: dict[str, Any] | None = None
    cleaned: list[str] = field(default_factory=list)
    depth: int = 1
    record: dict[str, Any] = field(default_factory=dict)
    temps: list[str] = field(default_factory=list)
    marked: bool = False


_held: dict[str, RunLock] = {}
_guard = threading.RLock()


def _command() -> str:
    return " ".join(["spikeship", *sys.argv[1:]]) if sys.argv else "spikeship"


def _write_journal(lock: RunLock) -> None:
    """Record line + one line per journalled temporary; written before the old content is
    cut, so the record is never missing."""
    data = "".join(json.dumps(x) + "\n" for x in
                   [lock.record, *({"tmp": t} for t in lock.temps)]).encode("utf-8")
    os.pwrite(lock.fd, data, 0)
    os.ftruncate(lock.fd, len(data))


def _holder_of(path: Path) -> tuple[RunLock, str] | None:
    """The lock this process holds on the deepest directory containing ``path``."""
    parent = os.path.realpath(path.parent)
    best = None
    for key, lock in _held.items():
        if (parent == key or parent.startswith(key.rstrip("/") + "/")) and \
                (best is None or len(key) > len(best[0])):
            best = (key, lock)
    if best is None:
        return None
    return best[1], os.path.relpath(os.path.join(parent, path.name), best[0])


def own_temp(path: str | os.PathLike, done: bool = False) -> None:
    """Journal ``path`` (a hidden ``.*.tmp`` file or ``.netx-*`` directory just created)
    in the lock this process holds on a directory containing it, so that the next writer
    removes it if this one dies; ``done``: it was renamed or removed, forget it. Outside
    any held lock this does nothing."""
    with _guard:
        found = _holder_of(Path(path))
        if found is None:
            return
        lock, rel = found
        if done:
            if rel not in lock.temps:
                return
            lock.temps.remove(rel)
        else:
            lock.temps.append(rel)
        try:
            _write_journal(lock)
        except OSError as e:
            if done:             # a stale entry names a file that is gone: harmless
                return
            raise RunDirError(f"cannot write the lock file of {lock.run_dir}: "
                              f"{e.strerror or e}") from e


def _claim_kind(lock: RunLock, what: str, kind: str | None, accepts: tuple[str, ...]) -> None:
    """Refuse a directory of another kind; mark an empty one (:mod:`spikeship.dirkind`)."""
    lock.marked = dirkind.claim(lock.run_dir, what, kind, accepts, _command(), {LOCK_NAME})


def _make_dirs(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` and missing parents; return the ones created (deepest first)."""
    created = []
    p = run_dir
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    if p.exists() and not p.is_dir():
        raise RunDirError(f"{p} exists and is not a directory")
    for d in reversed(created):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as e:
            raise RunDirError(f"cannot create output directory {d}: {e.strerror}") from e
    return created


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, what: str, *, create: bool = False,
             kind: str | None = None, accepts: tuple[str, ...] = (),
             report: Callable[[str], None] | None = None) -> Iterator[RunLock | None]:
    """Hold the write lock of ``run_dir`` (re-entrant in one process).

    ``create``: make the directory when missing (it is removed again, with the parents
    made for it, if the block fails and left it empty). Without ``create`` a missing
    directory is not locked (yields None): the caller reports it as it always did.
    ``kind``: the kind the command writes (marked in an empty directory); ``accepts``:
    the kinds it may write into (default: ``kind``); a directory of another kind is a
    :class:`RunDirError`. ``report``: where the note about a writer that did not finish
    goes (stderr).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() and not create:
        yield None
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"output path {run_dir} exists and is not a directory")
    key = os.path.realpath(run_dir)
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield held
        finally:
            with _guard:
                held.depth -= 1
        return
    created = _make_dirs(run_dir) if create else []
    path = run_dir / LOCK_NAME
    try:
        fd, existed = open_locked(path)
    except BaseException:
        _remove_empty(created)
        raise
    lock = RunLock(run_dir=run_dir, fd=fd, created_dirs=created)
    try:
        _start(lock, what, existed, kind, accepts, report)
        with _guard:
            _held[key] = lock
    except OSError as e:         # disk full while recording the holder or cleaning up
        _release(lock, path, failed=True)
        _remove_empty(created)
        raise RunDirError(f"cannot write the lock file {path}: {e.strerror or e}") from e
    except BaseException:
        _release(lock, path, failed=True)
        _remove_empty(created)
        raise
    ok = False
    try:
        yield lock
        ok = True
    finally:
        with _guard:
            _held.pop(key, None)
        _release(lock, path, failed=not ok)
        if not ok:
            _remove_empty(created)


def _start(lock: RunLock, what: str, existed: bool, kind, accepts, report) -> None:
    """Under the fresh lock: check (and mark) the directory's kind, record the holder,
    then clean what a dead holder journalled (only in a directory of a spikeship kind:
    ``compare --out`` into any folder removes nothing)."""
    temps = []
    if existed:
        lock.previous = read_record(lock.fd) or {}
        temps = read_temps(lock.fd)
    _claim_kind(lock, what, kind, accepts)       # refused: nothing written, nothing removed
    lock.record = {"pid": os.getpid(), "host": os.uname().nodename, "command": _command(),
                   "what": what, "started": time.time()}
    _write_journal(lock)
    if kind is not None or accepts:
        lock.cleaned = clean_leftovers(lock.run_dir, temps)
    if lock.previous is not None:
        note = (f"note: the previous writer of {lock.run_dir}, "
                f"{describe_holder(lock.previous)}, did not finish")
        if lock.cleaned:
            note += f"; cleaned up: {', '.join(lock.cleaned)}"
        (report or _stderr)(note)


def _release(lock: RunLock, path: Path, failed: bool = False) -> None:
    if failed and lock.marked:   # a directory marked by a command that then failed
        names = set(os.listdir(lock.run_dir)) - {LOCK_NAME}
        if names == {MARKER_NAME}:
            with contextlib.suppress(OSError):
                os.unlink(lock.run_dir / MARKER_NAME)
    if lock.record or lock.previous is None:    # a dead writer's record we did not
        with contextlib.suppress(FileNotFoundError):   # replace stays, with its journal
            os.unlink(path)      # still holding the lock: nobody can have taken it
    with contextlib.suppress(OSError):
        os.close(lock.fd)


def _remove_empty(created: list[Path]) -> None:
    for d in created:            # deepest first
        try:
            d.rmdir()
        except OSError:
            break


def _stderr(msg: str) -> None:
    print(f"spikeship: {msg}", file=sys.stderr, flush=True)


def writes_run_dir(locate: str | Callable[..., Any], what: str, *, create: bool = False,
                   kind: str | None = None, accepts: tuple[str, ...] = ()):
    """Decorator: run the function under :func:`run_lock` of the directory given by the
    argument named ``locate`` (or returned by ``locate(bound arguments)``)."""
    def deco(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            target = bound.arguments[locate] if isinstance(locate, str) \
                else locate(bound.arguments)
            if target is None:
                return fn(*args, **kwargs)
            with run_lock(Path(target), what, create=create, kind=kind, accepts=accepts):
                return fn(*args, **kwargs)
        return wrapper
    return deco


__all__ = ["COMPARE", "KINDS", "LOCK_NAME", "MARKER_NAME", "PIPELINE", "RUN_KINDS", "RunLock",
           "RunLockedError", "STANDALONE", "TRAINING", "TUNE", "clean_leftovers",
           "describe_holder", "dir_kind", "own_temp", "run_lock", "writes_run_dir"]

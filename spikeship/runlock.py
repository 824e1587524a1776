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

The kernel drops a ``flock`` when its holder dies, so a lock file that can be locked
but still has content is the trace of a writer that did not finish: the next writer
proceeds, reports that on stderr (:attr:`RunLock.previous`), and cleans up what such
a writer leaves behind (:func:`clean_leftovers`: hidden ``.*.tmp`` files of
:func:`spikeship.io.atomic_path` and ``.netx-*`` scratch directories) before writing.
The trainer also recovers an interrupted checkpoint swap, under the lock
(:func:`spikeship.train.checkpoint.recover_checkpoint`).

Within one process the lock is re-entrant (the pipeline holds it while its stages run).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeship.errors import RunDirError, RunLockedError

LOCK_NAME = ".spikeship.lock"
MAX_LOCK_BYTES = 64 * 1024   # a lock file is a few hundred bytes; read at most this much


@dataclass
class RunLock:
    """A held lock. ``previous``: the holder record of a writer that did not finish
    (its lock file was left behind), or None; ``cleaned``: leftovers removed."""

    run_dir: Path
    fd: int
    created_dirs: list[Path]
    previous: dict[str, Any] | None = None
    cleaned: list[str] = field(default_factory=list)
    depth: int = 1


_held: dict[str, RunLock] = {}
_guard = threading.Lock()
def _command() -> str:
    return " ".join(["spikeship", *sys.argv[1:]]) if sys.argv else "spikeship"


def describe_holder(rec: dict[str, Any] | None) -> str:
    """``pid 123 (`spikeship train ...`, since 2026-12-01 08:00:00)`` from a lock record."""
    if not rec:
        return "an unknown process (its lock file is empty)"
    since = rec.get("started")
    since_s = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) \
        if isinstance(since, (int, float)) else "?"
    return f"pid {rec.get('pid', '?')} on {rec.get('host', '?')} (`{rec.get('command', '?')}`, " \
           f"{rec.get('what', '?')}, since {since_s})"


def _read_record(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, MAX_LOCK_BYTES, 0)
    except OSError:
        return None
    if not data.strip():
        return None
    try:
        rec = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return {"command": data[:200].decode("utf-8", "replace")}
    return rec if isinstance(rec, dict) else None


def _holder_record(fd: int, wait: float = 2.0) -> dict[str, Any] | None:
    """The record of the live holder of ``fd``'s lock. A holder writes its record just
    after it locked the file, so a writer that lost a race by microseconds can find the
    file still empty (or holding a dead writer's record, being replaced): poll briefly
    until the record is there and names a process, then give up and report what is."""
    deadline = time.monotonic() + wait
    while True:
        rec = _read_record(fd)
        if rec and _names_live_process(rec):
            return rec
        if time.monotonic() >= deadline:
            return rec
        time.sleep(0.01)


def _names_live_process(rec: dict[str, Any]) -> bool:
    """The record names a process that may hold the lock: one on another host, or a
    live pid here (a dead writer's record is being replaced by the new holder's)."""
    pid = rec.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if rec.get("host") not in (None, os.uname().nodename):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True               # exists, owned by someone else
    return True


def _open_locked(path: Path) -> tuple[int, bool]:
    """Open and lock ``path``; returns (fd, existed before). Raises RunLockedError."""
    for _ in range(100):
        existed = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o644)
            existed = False
        except FileExistsError:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                continue          # the holder just removed it: try again
            except OSError as e:
                raise RunDirError(f"cannot open the lock file {path}: {e.strerror} (it must be "
                                  f"a regular file; remove it if it is not)") from e
        except OSError as e:
            raise RunDirError(f"cannot create the lock file {path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            busy = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
            rec = _holder_record(fd) if busy else None
            os.close(fd)
            if busy:
                raise RunLockedError(
                    f"run directory {path.parent} is being written by {describe_holder(rec)}; "
                    f"wait for it to finish or choose another directory") from None
            raise RunDirError(f"cannot lock {path}: {e.strerror}") from e
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, existed
        os.close(fd)              # locked a file its holder had already unlinked: retry
    raise RunDirError(f"cannot lock {path}: it keeps being replaced")


def clean_leftovers(run_dir: Path) -> list[str]:
    """Remove what an interrupted writer leaves: hidden ``.NAME.*.tmp`` files of
    :func:`spikeship.io.atomic_path` and ``.netx-*`` scratch directories (only ever
    called under the lock, so no live writer owns them)."""
    removed = []
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        try:
            if name.startswith(".") and name.endswith(".tmp") and e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(name)
            elif name.startswith(".netx-") and e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
                removed.append(name + "/")
        except OSError:
            continue
    return removed


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
             report: Callable[[str], None] | None = None) -> Iterator[RunLock | None]:
    """Hold the write lock of ``run_dir`` (re-entrant in one process).

    ``create``: make the directory when missing (it is removed again, with the parents
    made for it, if the block fails and left it empty). Without ``create`` a missing
    directory is not locked (yields None): the caller reports it as it always did.
    ``report``: where the note about a writer that did not finish goes (stderr).
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
        fd, existed = _open_locked(path)
    except BaseException:
        _remove_empty(created)
        raise
    lock = RunLock(run_dir=run_dir, fd=fd, created_dirs=created)
    try:
        if existed:
            lock.previous = _read_record(fd) or {}
        rec = {"pid": os.getpid(), "host": os.uname().nodename, "command": _command(),
               "what": what, "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(rec) + "\n").encode("utf-8"), 0)
        lock.cleaned = clean_leftovers(run_dir)
        if lock.previous is not None:
            note = (f"note: the previous writer of {run_dir}, "
                    f"{describe_holder(lock.previous)}, did not finish")
            if lock.cleaned:
                note += f"; cleaned up: {', '.join(lock.cleaned)}"
            (report or _stderr)(note)
        with _guard:
            _held[key] = lock
    except OSError as e:         # disk full while recording the holder or cleaning up
        _release(lock, path)
        _remove_empty(created)
        raise RunDirError(f"cannot write the lock file {path}: {e.strerror or e}") from e
    except BaseException:
        _release(lock, path)
        _remove_empty(created)
        raise
    ok = False
    try:
        yield lock
        ok = True
    finally:
        with _guard:
            _held.pop(key, None)
        _release(lock, path)
        if not ok:
            _remove_empty(created)


def _release(lock: RunLock, path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)          # still holding the lock: nobody can have taken it
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


def writes_run_dir(locate: str | Callable[..., Any], what: str, *, create: bool = False):
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
            with run_lock(Path(target), what, create=create):
                return fn(*args, **kwargs)
        return wrapper
    return deco


__all__ = ["LOCK_NAME", "RunLock", "RunLockedError", "clean_leftovers", "describe_holder",
           "run_lock", "writes_run_dir"]

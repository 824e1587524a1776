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
import stat
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

LOCK_NAME = ".spikeship.lock"
MAX_LOCK_BYTES = 64 * 1024   # a lock file is a few hundred bytes; read at most this much

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


def describe_holder(rec: dict[str, Any] | None) -> str:
    """``pid 123 (`spikeship train ...`, since 2026-12-01 08:00:00)`` from a lock record."""
    if not rec:
        return "an unknown process (its lock file is empty)"
    since = rec.get("started")
    since_s = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) \
        if isinstance(since, (int, float)) else "?"
    return f"pid {rec.get('pid', '?')} on {rec.get('host', '?')} (`{rec.get('command', '?')}`, " \
           f"{rec.get('what', '?')}, since {since_s})"


def _read_lines(fd: int) -> list[Any]:
    try:
        data = os.pread(fd, MAX_LOCK_BYTES, 0)
    except OSError:
        return []
    out = []
    for line in data.decode("utf-8", "replace").split("\n"):
        if line.strip():
            try:
                out.append(json.loads(line))
            except (ValueError, RecursionError):
                out.append({"command": line[:200]})
    return out


def _read_record(fd: int) -> dict[str, Any] | None:
    """The holder record: the first line of the lock file."""
    lines = _read_lines(fd)
    return lines[0] if lines and isinstance(lines[0], dict) else None


def _read_temps(fd: int) -> list[str]:
    """The temporary paths a holder journalled: ``{"tmp": REL}`` lines after the record."""
    return [ln["tmp"] for ln in _read_lines(fd)[1:]
            if isinstance(ln, dict) and isinstance(ln.get("tmp"), str)]


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


def _check_single_file(fd: int, path: Path) -> None:
    """A lock file must be a regular file with one link: writing a hard link planted
    under its name would overwrite the file it links to."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise RunDirError(f"the lock file {path} is not a regular file with a single link "
                          f"({st.st_nlink} links: a hard link to another file?); refusing to "
                          f"write it: remove it if no spikeship command is running there")


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
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError:
                continue          # the holder just removed it: try again
            except OSError as e:
                raise RunDirError(f"cannot open the lock file {path}: {e.strerror} (it must be "
                                  f"a regular file; remove it if it is not)") from e
        except OSError as e:
            raise RunDirError(f"cannot create the lock file {path}: {e.strerror}") from e
        _check_single_file(fd, path)
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
            _check_single_file(fd, path)     # linked while we waited for the lock
            return fd, existed
        os.close(fd)              # locked a file its holder had already unlinked: retry
    raise RunDirError(f"cannot lock {path}: it keeps being replaced")


def _is_temp_name(name: str) -> bool:
    return name.startswith(".") and (name.endswith(".tmp") or name.startswith(".netx-"))


def clean_leftovers(run_dir: Path, temps: list[str]) -> list[str]:
    """Remove the temporary files and scratch directories a writer that did not finish
    journalled (``temps``, relative to ``run_dir``); nothing else. Only ever called
    under the lock, so no live writer owns them. A journal entry that leaves the
    directory, passes through a symlink or does not name a temporary is ignored."""
    removed = []
    root = os.path.realpath(run_dir)
    for rel in dict.fromkeys(temps):
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts or not _is_temp_name(parts[-1]):
            continue
        path = Path(root, *parts)
        if os.path.realpath(path.parent) != str(path.parent):
            continue              # a symlinked directory on the way: not ours to follow
        try:
            st = os.lstat(path)
            if parts[-1].endswith(".tmp") and stat.S_ISREG(st.st_mode):
                os.unlink(path)
            elif parts[-1].startswith(".netx-") and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            else:
                continue
        except OSError:
            continue
        removed.append(rel + ("/" if parts[-1].startswith(".netx-") else ""))
    return removed


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
        fd, existed = _open_locked(path)
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
        lock.previous = _read_record(lock.fd) or {}
        temps = _read_temps(lock.fd)
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

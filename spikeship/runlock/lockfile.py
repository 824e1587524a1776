"""The lock file of a run directory: open and ``flock`` it safely, read its holder record
and journal, remove the leftovers a journal names (see :mod:`spikeship.runlock`)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from spikeship.errors import RunDirError, RunLockedError

LOCK_NAME = ".spikeship.lock"
MAX_LOCK_BYTES = 64 * 1024   # a lock file is a few hundred bytes; read at most this much


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


def read_record(fd: int) -> dict[str, Any] | None:
    """The holder record: the first line of the lock file."""
    lines = _read_lines(fd)
    return lines[0] if lines and isinstance(lines[0], dict) else None


def read_temps(fd: int) -> list[str]:
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
        rec = read_record(fd)
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


def open_locked(path: Path) -> tuple[int, bool]:
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

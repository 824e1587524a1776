"""A process's ``/proc/<pid>/stat`` fields (Linux, ``proc(5)``), read in one place.

The command name (field 2) is in parentheses and may itself hold spaces and ``)``, so
the fields are split after the last ``)``. Each reader returns None when the process
does not exist (or there is no ``/proc``, or the field is unreadable).
"""

from __future__ import annotations


def fields(pid: int) -> list[bytes] | None:
    """Fields 3 onward of ``/proc/<pid>/stat``: field n is item n - 3."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()


def state(pid: int) -> str | None:
    """Field 3, the state: ``R`` running, ``S`` sleeping, ``T`` stopped by a signal, ..."""
    f = fields(pid)
    return f[0].decode("ascii", "replace") if f else None


def parent(pid: int) -> int | None:
    """Field 4, the parent's pid."""
    return _int(pid, 1)


def start_time(pid: int) -> int | None:
    """Field 22, the start time in clock ticks since boot: with the pid, it names one
    process (a pid is reused, a (pid, start time) pair is not)."""
    return _int(pid, 19)


def _int(pid: int, i: int) -> int | None:
    f = fields(pid)
    try:
        return int(f[i]) if f is not None else None
    except (IndexError, ValueError):
        return None

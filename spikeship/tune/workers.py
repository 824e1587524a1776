"""The study's storage and the workers that share it.

Storage: ``sqlite:///STUDY/study.db`` by default, or any RDB URL Optuna's
``RDBStorage`` accepts (``postgresql://``, ``mysql://``): Optuna's own distributed
mode, one study shared by every worker. SQLite allows one writer at a time; each
connection waits up to ``SQLITE_TIMEOUT_S`` for the lock instead of failing.

A worker is known by its identity, ``host``, ``pid`` and the process's start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot), recorded in each trial's user
attributes with the trial's run directory. A trial left RUNNING whose worker is of this
host and provably gone (no such pid, or a pid reused by a process started at another
time) is marked FAIL when a worker starts: a killed worker loses its running trial and
nothing else. Trials of other hosts are left alone (their workers may be alive).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spikeship import procstat
from spikeship._optional import require
from spikeship.errors import ConfigError

SQLITE_TIMEOUT_S = 300.0


def identity(pid: int | None = None) -> dict[str, Any] | None:
    """``{"host", "pid", "started"}`` of process ``pid`` (default this one), None if no
    such process runs on this host."""
    pid = os.getpid() if pid is None else int(pid)
    started = procstat.start_time(pid)
    if started is None:
        return None
    return {"host": socket.gethostname(), "pid": pid, "started": started}


def is_gone(who: dict[str, Any]) -> bool:
    """True when ``who`` (an :func:`identity`) is of this host and no longer runs."""
    if who.get("host") != socket.gethostname():
        return False
    now = identity(int(who["pid"]))
    return now is None or now["started"] != who.get("started")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing, never truncated, not
    through a link) for the ``with`` block: the workers of one study folder take turns."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def open_storage(url: str | None, study_dir: Path):
    """Optuna's ``RDBStorage`` at ``url`` (default ``sqlite:///STUDY/study.db``); an
    unusable URL is a :class:`ConfigError` naming it."""
    optuna = require("optuna")
    url = url or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    # two workers starting together would both create the schema (alembic's version row
    # then fails UNIQUE): the workers of this study folder create it one at a time
    try:
        with file_lock(study_dir / ".storage.lock"):
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as e:   # noqa: BLE001 - sqlalchemy/optuna raise many types for a bad URL
        raise ConfigError(f"--storage {url!r} is not a storage Optuna can open: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                          ) from e


def fail_dead_trials(storage, study) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker (user attr ``worker``) is of this host
    and gone; returns their numbers."""
    optuna = require("optuna")
    state = optuna.trial.TrialState
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        who = t.user_attrs.get("worker")
        if who and is_gone(who):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "failed_because",
                                        f"its worker (pid {who['pid']} on {who['host']}) died")
            storage.set_trial_state_values(trial_id, state.FAIL)
            failed.append(t.number)
    return failed


def claim_slot(study_dir: Path) -> int:
    """The lowest worker slot ``k`` free in ``STUDY/workers/`` (a file per live worker,
    created exclusively; a file whose worker is gone is taken over). The sampler of
    slot k is seeded ``seed + k``, so workers sharing a folder propose different points
    and a lone worker (slot 0) is reproducible."""
    d = study_dir / "workers"
    d.mkdir(parents=True, exist_ok=True)
    me = json.dumps(identity())
    for k in range(1024):
        path = d / f"{k}.json"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                continue
            if holder and is_gone(holder):
                path.unlink(missing_ok=True)
                return claim_slot(study_dir)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return k
    raise ConfigError(f"{d}: more than 1024 live workers")


def release_slot(study_dir: Path, k: int) -> None:
    (study_dir / "workers" / f"{k}.json").unlink(missing_ok=True)

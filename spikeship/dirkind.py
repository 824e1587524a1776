"""What kind of directory a command writes into, recorded in ``DIR/.spikeship-dir``.

Kinds: a training run, a standalone output (``simulate/energy FILE --out DIR``), a
pipeline output, a compare output, a tune study. A command writes only into an empty
directory (which it marks with its kind) or one of a kind it accepts
(:func:`claim`, called by :func:`spikeship.runlock.run_lock` under the lock); a
directory of files spikeship did not write, or of another kind, is refused before
anything is written. A directory made before the marker existed is recognised by its
files (:data:`_SIGNATURES`, first match). The marker is opened without following a
symlink and read only if it is a regular file.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from spikeship.errors import RunDirError

MARKER_NAME = ".spikeship-dir"
_MARKER_TEMP = MARKER_NAME + ".new-"      # + pid: a marker being written (see _mark)
TRAINING, STANDALONE, PIPELINE, COMPARE, TUNE = (
    "training run", "standalone output", "pipeline output", "compare output", "tune study")
KINDS = (TRAINING, STANDALONE, PIPELINE, COMPARE, TUNE)
RUN_KINDS = (TRAINING, PIPELINE, STANDALONE)      # what export/simulate/energy/report accept
_SIGNATURES = ((PIPELINE, ("pipeline.json", ".pipeline")),
               (STANDALONE, ("standalone.json",)),
               (TUNE, ("study.db", "dense.json", "pareto.json")),
               (TRAINING, ("config.json", "checkpoint", "checkpoint.old", "checkpoint.new",
                           "metrics.jsonl", "summary.json", "model.nir", "model.onnx",
                           "model.net")))


def _read_marker(marker: Path) -> str | None:
    """The kind in ``marker``, None if there is none; a damaged one is a RunDirError."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RunDirError(f"cannot read the directory marker {marker}: {e.strerror} (it "
                          f"must be a regular file)") from e
    try:
        st = os.fstat(fd)
        rec = json.loads(os.read(fd, 4096)) if stat.S_ISREG(st.st_mode) else None
    except (OSError, ValueError, RecursionError):
        rec = None
    finally:
        os.close(fd)
    kind = rec.get("kind") if isinstance(rec, dict) else None
    if kind not in KINDS:
        raise RunDirError(f"the directory marker {marker} is damaged (no known kind); "
                          f"remove it if {marker.parent} is a spikeship directory")
    return kind


def dir_kind(run_dir: str | os.PathLike, ignore: frozenset[str] | set[str] = frozenset()
             ) -> str | None:
    """The kind of ``run_dir``: its marker's, else recognised by its files; None for an
    empty directory (``ignore`` and the marker aside), ``"unrelated"`` for other files."""
    run_dir = Path(run_dir)
    kind = _read_marker(run_dir / MARKER_NAME)
    if kind is not None:
        return kind
    names = {n for n in os.listdir(run_dir)
             if n != MARKER_NAME and not n.startswith(_MARKER_TEMP)} - set(ignore)
    if not names:
        return None
    for kind, files in _SIGNATURES:
        if names & set(files):
            return kind
    return "unrelated"


def claim(run_dir: Path, what: str, kind: str | None, accepts: tuple[str, ...],
          command: str, ignore: set[str]) -> bool:
    """Refuse ``run_dir`` unless it is empty or of a kind in ``accepts`` (default
    ``(kind,)``); mark an empty one with ``kind``. Returns whether it marked it."""
    if kind is None and not accepts:
        return False
    accepts = accepts or (kind,)
    found = dir_kind(run_dir, ignore)
    if found is None:
        if kind is None:
            return False
        if _mark(run_dir, kind, command):
            return True
        found = dir_kind(run_dir, ignore)      # another process marked it first
    if found not in accepts:
        held = "files spikeship did not write" if found == "unrelated" else f"a {found}"
        raise RunDirError(f"{run_dir} holds {held}; `{what}` writes only into an empty "
                          f"directory or a {' or '.join(accepts)}: choose another directory")
    return False


def _mark(run_dir: Path, kind: str, command: str) -> bool:
    """Write the marker whole, or not at all: into a temporary file, then hard-linked to
    its name (fails if the name exists), so a process that finds the marker never reads
    it half written. False when another process's marker got there first."""
    rec = {"kind": kind, "created_by": command, "created": time.time()}
    tmp = run_dir / f"{_MARKER_TEMP}{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(rec) + "\n")
        os.link(tmp, run_dir / MARKER_NAME, follow_symlinks=False)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["COMPARE", "KINDS", "MARKER_NAME", "PIPELINE", "RUN_KINDS", "STANDALONE",
           "TRAINING", "TUNE", "claim", "dir_kind"]

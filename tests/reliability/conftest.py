"""Shared pieces of the reliability tests: a small exported run, CLI calls, artifact snapshots.

Every bad-input test goes through :func:`expect_error`: the command is run twice through
``spikeship.cli.main`` in-process, once as a user would (exit code, exactly one line on
stderr starting ``spikeship: error:``, nothing written or changed in the watched
directories) and once with ``--debug`` (the exception is re-raised, so its class from
:mod:`spikeship.errors` can be checked).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from spikeship import cli
from spikeship.errors import SpikeshipError


@dataclass
class CliResult:
    rc: int
    out: str
    err: str


def run_cli(capsys, argv: list[str]) -> CliResult:
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    got = capsys.readouterr()
    return CliResult(rc, got.out, got.err)


def snapshot(*dirs: Path) -> dict[str, str]:
    """Every file under ``dirs`` (temporary files included) -> SHA-256 of its content."""
    out = {}
    for d in dirs:
        d = Path(d)
        if not d.exists():
            continue
        for p in sorted(x for x in d.rglob("*") if x.is_file()):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def expect_error(capsys, argv: list, error: type[SpikeshipError], match: str,
                 watch: tuple[Path, ...] = ()) -> str:
    """Run ``spikeship argv``: it must fail with ``error`` (message containing ``match``,
    case-insensitive), print one line, exit non-zero, and leave ``watch`` untouched.
    Returns the message."""
    before = snapshot(*watch)
    missing = [d for d in watch if not Path(d).exists()]
    res = run_cli(capsys, argv)
    lines = res.err.strip().splitlines()
    assert res.rc == error.exit_code != 0, (res.rc, res.err)
    assert len(lines) == 1 and lines[0].startswith("spikeship: error: "), res.err
    assert "Traceback" not in res.err
    assert match.lower() in lines[0].lower(), lines[0]
    assert snapshot(*watch) == before, "the failing command wrote or changed files"
    for d in missing:
        assert not Path(d).exists(), f"the failing command created {d}"
    with pytest.raises(error) as info:
        cli.main(["--debug", *[str(a) for a in argv]])
    assert type(info.value) is error, f"{type(info.value).__name__} is not {error.__name__}"
    capsys.readouterr()
    return lines[0]


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory) -> Path:
    """An untrained, hand-pruned dpap-mnist run on digits (T = 4) exported to
    ``model.nir``, ``model.onnx`` and ``model.net`` (never modified: copy it)."""
    from spikeship.targets.export import export_run
    from tests.export import nets

    run_dir, _, _ = nets.make_run(tmp_path_factory.mktemp("reliability") / "run",
                                  prune_units={"0": [1, 2], "7": list(range(0, 300, 5))})
    export_run(run_dir, ("nir", "onnx", "netx"))
    return run_dir


@pytest.fixture
def run(exported_run, tmp_path) -> Path:
    """A private copy of :func:`exported_run` to damage."""
    d = tmp_path / "run"
    shutil.copytree(exported_run, d)
    return d


def dvs_gesture_run(tmp_path: Path, exported_run: Path, write_recording) -> Path:
    """A run directory whose config points at a DVS-Gesture layout under ``tmp_path``
    holding one recording per split, written by ``write_recording(path)``."""
    import json

    for split in ("ibmGestureTrain", "ibmGestureTest"):
        d = tmp_path / "DVSGesture" / split / "user01_fluorescent"
        d.mkdir(parents=True)
        write_recording(d / "0.npy")
    run = tmp_path / "run"
    run.mkdir()
    cfg = json.loads((exported_run / "config.json").read_text())
    cfg.update(dataset="dvs-gesture", data_dir=str(tmp_path))
    (run / "config.json").write_text(json.dumps(cfg))
    return run

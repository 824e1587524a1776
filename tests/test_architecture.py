"""The package's import architecture (pyproject.toml, [tool.importlinter]): layers
errors, io/_optional, data, nir, train, export, targets, sim, energy, report, pipeline,
cli, each importing only from below (lazy imports too), and no import cycles between
sibling packages or modules. Runs the real ``lint-imports`` on the real package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in r.stdout

"""What every benchmark shares: its command line (``--out``, ``--results``), the machine and
versions it ran on, seed lists, means with intervals, and writing its result.

A benchmark writes ``<out>/results/<name>.json`` (``--out``, default the scratch folder
``bench-out/``, git-ignored) unless ``--results`` asks for the project's ``results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import schema

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "bench-out"
PACKAGES = ("spikeship", "torch", "snntorch", "numpy", "nir", "onnxruntime", "lava-nc",
            "lava-dl")


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--out", type=Path, default=SCRATCH,
                    help="scratch folder: cached runs and results (default: bench-out/)")
    ap.add_argument("--results", action="store_true",
                    help="write the result to the project's results/ instead of OUT/results/")
    return ap


def seeds(text: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "ram_gb": ram_gb()}


def git_commit() -> str:
    """The short commit of this checkout ("0000000" outside git)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        out = ""
    return out or "0000000"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def relative(arg: str) -> str:
    """A command-line word (or its ``KEY=`` value) with an absolute path made relative to
    the working folder: a result never holds a machine's absolute path."""
    key, eq, value = arg.rpartition("=") if "=" in arg else ("", "", arg)
    if value.startswith(("/", "~")):
        value = os.path.relpath(os.path.expanduser(value), os.getcwd())
    return key + eq + value


def command(module: str, argv: list[str] | None) -> str:
    """The command that ran: ``python -m benchmarks.NAME ARGS`` with relative paths."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", module, *(relative(str(a)) for a in args)])


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def interval(mean: float, se: float | None, n: int) -> dict:
    """``mean`` with its standard error and 95 % t-interval over ``n`` seeds (``se``,
    ``lo``, ``hi`` null for one seed or an unknown SE)."""
    if se is None or n < 2:
        return {"mean": mean, "se": None, "lo": None, "hi": None, "n": n}
    from scipy.stats import t

    h = float(t.ppf(0.975, n - 1)) * se
    return {"mean": mean, "se": se, "lo": mean - h, "hi": mean + h, "n": n}


def mean_interval(xs: list[float]) -> dict:
    """:func:`interval` of the mean of ``xs`` (one value per seed)."""
    n = len(xs)
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else None
    return interval(m, se, n)


def write_result(args, *, name: str, module: str, argv: list[str] | None, topic: str,
                 title: str, description: str, rows: list[dict], summary: dict,
                 config: dict | None = None, notes: list[str] | None = None) -> Path:
    """Check and write the result ``name`` where ``args`` say; returns its path."""
    folder = ROOT / "results" if args.results else Path(args.out) / "results"
    doc = {"schema": schema.VERSION, "name": name, "benchmark": module.rsplit(".", 1)[-1],
           "topic": topic, "title": title, "description": description,
           "command": command(module, argv), "commit": git_commit(), "date": now(),
           "machine": machine(), "versions": versions(), "rows": rows, "summary": summary}
    if config is not None:
        doc["config"] = config
    if notes:
        doc["notes"] = notes
    path = schema.write(folder / f"{name}.json", doc)
    print(f"wrote {relative(str(path))}", flush=True)
    return path

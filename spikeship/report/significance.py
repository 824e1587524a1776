"""Is a difference between runs real? Intervals, exact McNemar, mean +- sd over seeds.

For ``compare``: every run's accuracy with its test-set size and 95 % Wilson interval
(:mod:`spikeship.stats`); for each run and its dense reference (or, without one, the
two runs given), the exact McNemar test on the per-sample predictions both stored
(``predictions.npz``: the same test samples, checked by sample index and label); and,
for a configuration trained with several seeds, the mean +- sample sd of their
accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeship.errors import RunDirError
from spikeship.report.markdown import md_escape
from spikeship.stats import mcnemar_exact, mean_sd, wilson_interval
from spikeship.train.predictions import FILENAME, load_predictions

ALPHA = 0.05


@dataclass(frozen=True)
class McNemar:
    """Run ``a`` vs run ``b`` on ``n`` shared samples: ``b_only``/``a_only`` discordant."""

    a: str
    b: str
    n: int
    a_correct: int
    b_correct: int
    a_only: int        # a right, b wrong
    b_only: int        # b right, a wrong
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def tested_on(run_path: Path, config: dict[str, Any]) -> tuple:  # noqa: ARG001
    """What identifies a run's test samples beyond the sample indices."""
    return (config.get("dataset"), config.get("data_dir"), config.get("data_seed", 0))


def mcnemar_runs(a: Path, b: Path, config_a: dict, config_b: dict) -> McNemar | str:
    """The test between two runs' ``predictions.npz``, or the reason it cannot be made."""
    pa, pb = Path(a) / FILENAME, Path(b) / FILENAME
    for p in (pa, pb):
        if not p.is_file():
            return f"{p.parent.name} has no {FILENAME} (trained before predictions were stored)"
    if tested_on(a, config_a) != tested_on(b, config_b):
        return f"{Path(a).name} and {Path(b).name} were tested on different data"
    try:
        da, db = load_predictions(pa), load_predictions(pb)
    except RunDirError as e:
        return str(e)
    if not (np.array_equal(da["sample_index"], db["sample_index"])
            and np.array_equal(da["labels"], db["labels"])):
        return f"{Path(a).name} and {Path(b).name} were tested on different samples"
    ra, rb = da["predictions"] == da["labels"], db["predictions"] == db["labels"]
    a_only, b_only = int((ra & ~rb).sum()), int((~ra & rb).sum())
    return McNemar(Path(a).name, Path(b).name, int(len(ra)), int(ra.sum()), int(rb.sum()),
                   a_only, b_only, mcnemar_exact(a_only, b_only))


def ci_cells(summary: dict[str, Any]) -> tuple[int | None, list[float] | None]:
    """(test-set size, 95 % interval) of a run's ``summary.json`` (computed if absent)."""
    n = summary.get("samples_test")
    acc = summary.get("test_accuracy")
    if n is None or acc is None:
        return n, None
    ci = summary.get("test_accuracy_ci95")
    if ci is None:
        ci = list(wilson_interval(round(acc * n), n))
    return int(n), [float(ci[0]), float(ci[1])]


def seed_groups(runs) -> list[dict[str, Any]]:
    """Runs equal but for ``seed`` (two or more): their mean +- sd accuracy."""
    groups: dict[tuple, list] = {}
    for r in runs:
        cfg = {k: v for k, v in (r.config or r.summary).items()
               if k not in ("seed", "data_dir", "device")}
        key = tuple(sorted((k, repr(v)) for k, v in cfg.items()))
        groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        seeds = sorted({m.get("seed") for m in members})
        accs = [m.get("test_accuracy") for m in members]
        if len(seeds) < 2 or any(a is None for a in accs):
            continue
        mean, sd = mean_sd([float(a) for a in accs])
        out.append({"runs": [m.path.name for m in members], "seeds": seeds,
                    "mean_accuracy": mean, "sd_accuracy": sd,
                    "min_accuracy": min(accs), "max_accuracy": max(accs)})
    return out


def to_markdown(tests: list[McNemar | tuple[str, str, str]], groups: list[dict]) -> str:
    lines = []
    if tests:
        lines.append("\nExact McNemar test on the same test samples (two-sided, "
                     f"significant if p < {ALPHA}):\n")
        for t in tests:          # run names are text from the file system: escaped
            if isinstance(t, McNemar):
                verdict = "significant" if t.significant else "not significant"
                a, b = md_escape(t.a), md_escape(t.b)
                lines.append(f"- {a} vs {b}: n = {t.n}, {t.a_correct} vs {t.b_correct} "
                             f"correct; only {a} right: {t.a_only}, only {b} right: "
                             f"{t.b_only}; p = {t.p_value:.4g} ({verdict})")
            else:
                lines.append(f"- {md_escape(t[0])} vs {md_escape(t[1])}: no test "
                             f"({md_escape(t[2])})")
    for g in groups:
        sd = "n/a" if g["sd_accuracy"] is None else f"{100 * g['sd_accuracy']:.2f}"
        seeds = "[" + ", ".join(md_escape(x) for x in g["seeds"]) + "]"
        lines.append(f"\nSeeds {seeds} "
                     f"({', '.join(md_escape(r) for r in g['runs'])}): accuracy "
                     f"{100 * g['mean_accuracy']:.2f} +- {sd} % (mean +- sd), range "
                     f"{100 * g['min_accuracy']:.2f}-{100 * g['max_accuracy']:.2f} %")
    return "\n".join(lines) + ("\n" if lines else "")


def significance(runs, rows, extra=()) -> tuple[list, list[dict]]:
    """McNemar tests (each run vs its dense reference; else the two runs given) and
    seed groups for ``compare``'s runs and rows; ``extra``: other loaded runs a row may
    name as its dense reference (``--dense``)."""
    by_path = {str(r.path): r for r in [*runs, *extra]}
    pairs = []
    for r, row in zip(runs, rows):
        d = by_path.get(row.dense_run) if row.dense_run else None
        if d is not None and d.path != r.path:
            pairs.append((d, r))
    if not pairs and len(runs) == 2:
        pairs = [(runs[0], runs[1])]
    tests = []
    for a, b in pairs:
        t = mcnemar_runs(a.path, b.path, a.config or a.summary, b.config or b.summary)
        tests.append(t if isinstance(t, McNemar) else (a.path.name, b.path.name, t))
    return tests, seed_groups(runs)

"""``--pick EXPR``: choose a front point by a small grammar, retrain it, test it once.

Grammar (parsed here, never ``eval``'d)::

    expr   := [goal ("with" | ":")] cond ("," | "and") cond ...  |  goal
    goal   := ("max" | "min") metric                 (default: max accuracy)
    cond   := metric ("<=" | ">=" | "<" | ">" | "==") value
    metric := accuracy | drop | cost | ops | energy | cores
    value  := number | number "x" | number "*" "dense" | number "%"

``accuracy``: validation accuracy (%); ``drop``: the dense run's accuracy minus the
point's (pt); ``cost``: the study's objective; ``ops`` / ``energy`` / ``cores``: those
of the point. ``N x`` compares the reduction ``dense / point`` with N (``ops>=5x``: at
least 5x fewer operations); ``F*dense`` is F times the dense run's value; ``%`` after
a cost is a share of the dense run's (``ops<=20%``). Example:
``max accuracy with ops <= 0.2*dense`` or ``ops>=5x,drop<=0.3``.

The picked point is retrained on the whole training split (no carve): a dense run of
the recipe, then the point's cut and fine-tuning from it; both are deployed and
evaluated once on the test split, with the paired 95 % interval of the difference
(:func:`spikeship.stats.paired_difference_interval`).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeship.data import splits_read
from spikeship.errors import ConfigError
from spikeship.io import write_json_atomic
from spikeship.safeopen import read_json
from spikeship.stats import paired_difference_interval, wilson_interval
from spikeship.tune import trial
from spikeship.tune.space import Budgets


class PickError(ConfigError):
    """A ``--pick`` expression that does not parse, or that no front point satisfies."""


_CMP = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
        "==": operator.eq}
_METRICS = ("accuracy", "drop", "cost", "ops", "energy", "cores")
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:e-?\d+)?|\.\d+)|(?P<word>[a-z_]+)"
                    r"|(?P<op><=|>=|==|<|>)|(?P<sym>[,:*%]))")


@dataclass(frozen=True)
class Condition:
    metric: str
    cmp: str
    value: float
    unit: str          # "" | "x" | "dense" (a factor of the dense value)


@dataclass(frozen=True)
class Pick:
    goal: tuple[str, str]                  # ("max" | "min", metric)
    conditions: tuple[Condition, ...]


def tokens(expr: str) -> list[str]:
    out, pos, text = [], 0, expr.strip().lower()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PickError(f"--pick {expr!r}: cannot read {text[pos:]!r}")
        out.append(m.group().strip())
        pos = m.end()
    return out


def parse(expr: str) -> Pick:
    """``expr`` parsed; a :class:`PickError` naming the part that is wrong."""
    toks = tokens(expr)
    goal = ("max", "accuracy")
    if toks and toks[0] in ("max", "min"):
        if len(toks) < 2 or toks[1] not in _METRICS:
            raise PickError(f"--pick {expr!r}: '{toks[0]}' needs a metric ({list(_METRICS)})")
        goal, toks = (toks[0], toks[1]), toks[2:]
        if toks and toks[0] in ("with", ":"):
            toks = toks[1:]
        elif toks:
            raise PickError(f"--pick {expr!r}: expected 'with' after the goal, got {toks[0]!r}")
    conds, i = [], 0
    while i < len(toks):
        cond, i = _condition(expr, toks, i)
        conds.append(cond)
        if i < len(toks):
            if toks[i] not in (",", "and"):
                raise PickError(f"--pick {expr!r}: expected ',' or 'and', got {toks[i]!r}")
            i += 1
            if i == len(toks):
                raise PickError(f"--pick {expr!r}: a condition is missing at the end")
    if not conds and not expr.strip().lower().startswith(("max", "min")):
        raise PickError(f"--pick {expr!r}: no goal and no condition")
    return Pick(goal, tuple(conds))


def _condition(expr: str, toks: list[str], i: int) -> tuple[Condition, int]:
    part = " ".join(toks[i:i + 3])
    if i + 2 >= len(toks) or toks[i] not in _METRICS or toks[i + 1] not in _CMP:
        raise PickError(f"--pick {expr!r}: expected 'metric <op> value' with a metric of "
                        f"{list(_METRICS)}, got {part!r}")
    metric, cmp = toks[i], toks[i + 1]
    try:
        value = float(toks[i + 2])
    except ValueError:
        raise PickError(f"--pick {expr!r}: {toks[i + 2]!r} is not a number") from None
    i, unit = i + 3, ""
    if i < len(toks) and toks[i] == "x":
        unit, i = "x", i + 1
    elif i + 1 < len(toks) and toks[i] == "*" and toks[i + 1] == "dense":
        unit, i = "dense", i + 2
    elif i < len(toks) and toks[i] == "%":
        unit, value, i = "dense", value / 100, i + 1
    if unit and metric in ("accuracy", "drop"):
        raise PickError(f"--pick {expr!r}: {metric} takes a plain number (percent / pt)")
    return Condition(metric, cmp, value, unit), i


def _value(p: dict[str, Any], dense: dict[str, Any], metric: str) -> float | None:
    if metric == "drop":
        return dense["accuracy"] - p["accuracy"]
    key = {"energy": "energy_pj"}.get(metric, metric)
    return p.get(key)


def select(doc: dict[str, Any], pick: Pick, expr: str) -> dict[str, Any]:
    """The front point of ``doc`` (``pareto.json``) that ``pick`` chooses."""
    dense = {**doc["dense"], "energy_pj": doc["dense"].get("energy_pj")}
    ok = []
    for p in doc["points"]:
        for c in pick.conditions:
            v, ref = _value(p, dense, c.metric), _value(dense, dense, c.metric)
            if v is None:
                raise PickError(f"--pick {expr!r}: the study has no {c.metric} figures")
            if c.unit == "x":
                v = ref / v if v else float("inf")
            elif c.unit == "dense":
                v, ref = v, c.value * ref
            if not _CMP[c.cmp](v, ref if c.unit == "dense" else c.value):
                break
        else:
            ok.append(p)
    if not ok:
        raise PickError(f"--pick {expr!r}: no point of the front ({len(doc['points'])}) "
                        f"satisfies it; {Path('pareto.md')} lists them")
    sign = 1 if pick.goal[0] == "max" else -1
    return max(ok, key=lambda p: sign * (_value(p, dense, pick.goal[1]) or 0.0))


def retrain(out: Path, point: dict[str, Any], hardware: str, threads: int | None,
            seed: int | None = None) -> dict[str, Any]:
    """Retrain ``point`` and its dense run on the whole training split (seed ``seed``,
    default the recipe's) and evaluate both once on the test split."""
    tag = "" if seed is None else f"-seed{seed}"
    recipe = out / "recipe.json"
    if seed is not None:
        recipe = out / "pick" / f"recipe{tag}.json"
        recipe.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(recipe, {**read_json(out / "recipe.json", "recipe", ConfigError),
                                   "seed": seed})
    dense_dir = out / "pick" / f"dense{tag}"
    point_dir = out / "pick" / f"trial-{point['trial']}{tag}"
    trial.train_dense(dense_dir, recipe, None, threads)
    dense = trial.deploy(dense_dir, hardware)
    budgets = Budgets.from_json(point["budgets"])
    if not (point_dir / "summary.json").exists():
        trial.train_point(point_dir, recipe, budgets, dense_dir, None, threads, None)
    pruned = trial.deploy(point_dir, hardware)
    n = int(dense.correct.size)
    b = int((dense.correct & ~pruned.correct).sum())
    c = int((pruned.correct & ~dense.correct).sum())
    lo, hi = paired_difference_interval(b, c, n)
    return {"seed": seed, "point": point, "prune_opt": budgets.prune_opt_string(),
            "dense": {**dense.to_json(), "ci95": wilson_interval(int(dense.correct.sum()), n),
                      "run_dir": str(dense_dir)},
            "pruned": {**pruned.to_json(),
                       "ci95": wilson_interval(int(pruned.correct.sum()), n),
                       "run_dir": str(point_dir)},
            "difference_pt": 100 * (c - b) / n, "difference_ci95_pt": [100 * lo, 100 * hi],
            "ops_ratio": dense.ops / pruned.ops,
            "splits_read": trial.splits_named(splits_read())}


def pick_and_retrain(out: Path, expr: str, hardware: str, threads: int | None,
                     seed: int | None = None) -> dict[str, Any]:
    """Parse ``expr``, choose from ``STUDY/pareto.json``, retrain, write ``pick.json``."""
    pick = parse(expr)                     # a bad expression fails before any file is read
    path = out / "pareto.json"
    if not path.exists():
        raise ConfigError(f"{out}: no pareto.json; run the study first")
    doc = read_json(path, "Pareto front", ConfigError)
    result = {"expression": expr, **retrain(out, select(doc, pick, expr), hardware, threads,
                                            seed)}
    write_json_atomic(out / ("pick.json" if seed is None else f"pick-seed{seed}.json"), result)
    return result

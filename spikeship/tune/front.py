"""The study's Pareto front as data, a table and a plot.

``STUDY/pareto.json``: the dense run and, per Pareto point (Optuna's ``best_trials``:
non-dominated among the feasible complete trials), its budgets, validation accuracy
(Loihi emulator, %), the minimised cost, operations, cores, the ``--prune-opt`` string
and run directory; the presets' trials beside them (whether on the front or not).
``STUDY/pareto.md``: the same as a table; ``STUDY/pareto.png``: accuracy against the
cost, every complete trial, the front, the dense run and the presets;
``STUDY/points/trial-N.toml``: each point as a ``spikeship pipeline --config`` file
(the recipe's dense run, then the point's cut from it: ``from_dense``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spikeship._optional import lazy_import, require
from spikeship.io import atomic_path, write_json_atomic, write_text_atomic
from spikeship.tune.space import Budgets

matplotlib = lazy_import("matplotlib")
plt = lazy_import("matplotlib.pyplot")


def point(t) -> dict[str, Any]:
    """A complete trial as a front point."""
    ev = t.user_attrs.get("evaluation", {})
    return {"trial": t.number, "preset": t.user_attrs.get("preset"),
            "accuracy": t.values[0], "cost": t.values[1], "ops": ev.get("ops"),
            "energy_pj": ev.get("energy_pj"), "cores": ev.get("cores"),
            "budgets": t.user_attrs.get("budgets"), "prune_opt": t.user_attrs.get("prune_opt"),
            "run_dir": t.user_attrs.get("path"),
            "host": (t.user_attrs.get("worker") or {}).get("host")}


def front_document(study, dense: dict[str, Any], objective: str, hardware: str
                   ) -> dict[str, Any]:
    optuna = require("optuna")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
              for s in optuna.trial.TrialState}
    counts["repeated"] = sum("same_as" in t.user_attrs for t in study.get_trials(deepcopy=False))
    dense_cost = {"ops": dense["ops"], "energy": dense["energy_pj"], "cores": dense["cores"]}
    return {"objective": objective, "hardware": hardware,
            "dense": {**dense, "accuracy": 100 * dense["accuracy"],
                      "cost": dense_cost[objective]},
            "trials": counts,
            # a trial that repeated a point (same_as) stands beside its twin: shown once
            "points": sorted((point(t) for t in study.best_trials
                              if "same_as" not in t.user_attrs), key=lambda p: p["cost"]),
            "presets": [point(t) for t in complete if t.user_attrs.get("preset")],
            "all": [[t.number, t.values[0], t.values[1]] for t in complete]}


def write_front(study, out: Path, dense: dict[str, Any], objective: str, hardware: str
                ) -> dict[str, Any]:
    """Write ``pareto.json``, ``pareto.md`` and ``pareto.png``; return the document."""
    doc = front_document(study, dense, objective, hardware)
    write_json_atomic(out / "pareto.json", doc)
    write_text_atomic(out / "pareto.md", markdown(doc))
    plot(doc, out / "pareto.png")
    recipe = json.loads((out / "recipe.json").read_text())
    (out / "points").mkdir(exist_ok=True)
    for p in doc["points"]:
        write_text_atomic(out / "points" / f"trial-{p['trial']}.toml", pipeline_toml(p, recipe))
    return doc


# the recipe fields a pipeline configuration has
_PIPELINE_FIELDS = ("dataset", "data_dir", "model", "timesteps", "seed", "batch_size", "lr",
                    "epochs")


def pipeline_toml(p: dict[str, Any], recipe: dict[str, Any]) -> str:
    """Point ``p`` as a pipeline configuration (TOML): the recipe's dense run, then DPAP
    with the point's options from it for the point's epochs."""
    b = Budgets.from_json(p["budgets"])
    lines = [f"# trial {p['trial']} of a spikeship tune study", 'prune = "dpap"',
             "from_dense = true", f"pruned_epochs = {b.epochs}"]
    lines += [f"{k} = {json.dumps(recipe[k])}" for k in _PIPELINE_FIELDS
              if recipe.get(k) is not None]
    if not recipe.get("qat", True) or recipe.get("qat_epochs") == 0:
        lines.append(f"qat = {json.dumps(bool(recipe.get('qat')))}")   # else train's default
    lines += ["", "[prune_options]"]
    lines += [f"{k} = {json.dumps(str(v))}" for k, v in b.prune_options().items()]
    return "\n".join(lines) + "\n"


def markdown(doc: dict[str, Any]) -> str:
    """The front as a Markdown table (cheapest first), the dense run on top."""
    d = doc["dense"]
    head = (f"| trial | preset | validation accuracy (%) | {doc['objective']} | dense / point "
            f"| cores | budgets (`--prune-opt`) |\n|---|---|---|---|---|---|---|\n"
            f"| dense | | {d['accuracy']:.2f} | {d['cost']:,.0f} | 1.00 | {d['cores']} | |\n")
    rows = [f"| {p['trial']} | {p['preset'] or ''} | {p['accuracy']:.2f} | {p['cost']:,.0f} "
            f"| {d['cost'] / p['cost']:.2f} | {p['cores']} | `{p['prune_opt']}` |"
            for p in doc["points"]]
    counts = ", ".join(f"{k} {v}" for k, v in doc["trials"].items() if v)
    return (f"Pareto front on the validation carve (Loihi emulator, {doc['hardware']}); "
            f"trials: {counts}\n\n" + head + "\n".join(rows) + "\n")


def plot(doc: dict[str, Any], path: Path) -> None:
    """Accuracy against the cost: trials (grey), the front (line), dense, presets."""
    matplotlib.use("Agg")
    fig, ax = plt.subplots(figsize=(6, 4))
    if doc["all"]:
        _, acc, cost = zip(*doc["all"])
        ax.scatter(cost, acc, s=12, c="0.7", label="trials")
    pts = doc["points"]
    ax.plot([p["cost"] for p in pts], [p["accuracy"] for p in pts], "o-", c="C0",
            label="Pareto front")
    ax.scatter([doc["dense"]["cost"]], [doc["dense"]["accuracy"]], marker="*", s=120,
               c="k", label="dense", zorder=3)
    for i, p in enumerate(doc["presets"]):
        ax.scatter([p["cost"]], [p["accuracy"]], marker="s", s=50, c=f"C{i + 1}",
                   label=f"DPAP preset={p['preset']}", zorder=3)
    ax.set_xlabel(f"{doc['objective']} per sample (deployed, {doc['hardware']})")
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def read_front(out: Path) -> dict[str, Any]:
    return json.loads((out / "pareto.json").read_text())

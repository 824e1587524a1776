"""The one place where the benchmarks call spikeship: make (or reuse) a run and read it.

A run is named by its training settings: ``<dataset>-<prune>-T<steps>-s<seed>-<hash>``,
the hash over every setting given, under ``<scratch>/runs/``. Two benchmarks that need
the same run (say the dense digits seed-0 run at T = 8) get the same folder, so it is
trained once; a folder without ``summary.json`` is an interrupted run and is made anew.
The folder is a cache keyed by the settings, not by the code: after changing the code,
delete it (``rm -r bench-out``) so that the runs are made again.
Each run goes through the documented sequence: train, export (NIR, ONNX, netx), simulate
on the Loihi emulator (the whole test split, fixed point), energy on Loihi from those
spikes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

import spikeship
from spikeship.errors import VanishCheckError
from spikeship.train.config import TrainConfig

EMULATOR = "loihi-emu"


def run_name(fields: dict) -> str:
    """``digits-dpap-T8-s0-1a2b3c4d``: readable, and unique for the settings."""
    key = json.dumps(fields, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return (f"{fields['dataset']}-{fields['prune']}-T{fields['timesteps']}-s{fields['seed']}"
            f"-{digest}")


def settings(*, dataset: str = "digits", seed: int = 0, prune: str = "none",
             prune_options: dict | None = None, epochs: int | None = None,
             timesteps: int | None = None, limit_train: int | None = None,
             limit_test: int | None = None) -> dict:
    """The TrainConfig fields of a run (``None`` = the CLI's default, left out)."""
    fields = {"dataset": dataset, "seed": seed, "prune": prune,
              "timesteps": timesteps or TrainConfig.timesteps, "epochs": epochs,
              "limit_train": limit_train, "limit_test": limit_test,
              "prune_options": dict(prune_options or {}) if prune != "none" else {}}
    return {k: v for k, v in fields.items() if v is not None}


def made(scratch: Path, fields: dict) -> Path:
    """The run of ``fields`` (see :func:`settings`), trained, exported, simulated and priced;
    made once per scratch folder."""
    run = Path(scratch) / "runs" / run_name(fields)
    if not (run / "summary.json").exists():
        if run.exists():
            shutil.rmtree(run)                 # an interrupted run of ours: made anew
        values = {k: v for k, v in fields.items() if k != "prune_options"}
        print(f"  training {run.name}", flush=True)
        spikeship.train(run, prune_options=fields.get("prune_options"), threads=1, **values)
    if not (run / "export.json").exists():
        spikeship.export(run)                  # NIR, ONNX and netx (when netx can express it)
    if not (run / f"simulate-{EMULATOR}.json").exists():
        spikeship.simulate(run, EMULATOR)
    if not (run / "energy.rc").exists():
        try:
            spikeship.energy(run, hardware="loihi", spikes_from=EMULATOR)
            rc = 0
        except VanishCheckError:
            rc = 1                             # energy.json is written; the row shows it
        (run / "energy.rc").write_text(str(rc))
    return run


def read(run: Path, name: str) -> dict:
    """A JSON artifact of a run (``summary``, ``config``, ``energy``, ``export``, ...)."""
    return json.loads((Path(run) / f"{name}.json").read_text(encoding="utf-8"))


def train_processes(out: Path, nproc: int, **fields) -> None:
    """Train into ``out`` with ``nproc`` data-parallel processes (the launcher of
    ``spikeship train --nproc``; one process: in this one, one thread)."""
    if nproc > 1:
        spikeship.train(out, nproc=nproc, **fields)
    else:
        spikeship.train(out, threads=1, **fields)


def one_thread() -> None:
    torch.set_num_threads(1)


def deployable(run: Path):
    """(config, deployable network) of a run's checkpoint: what ``spikeship export`` writes."""
    from spikeship.targets.export import load_deployable

    _, config, net = load_deployable(Path(run))
    return config, net


def fixed_deployment(run: Path, samples: int | None):
    """(inputs, labels, fixed-point Loihi deployment) of a run's ``model.nir`` test split."""
    from spikeship.sim.simulate import test_split
    from spikeship.targets.loihi.deploy import deployment_for, load_graph

    x, y = test_split(Path(run), samples)
    return x, y, deployment_for(load_graph(Path(run) / "model.nir"), "fixed", x, {})


def lava_fixed(dep, x, y):
    """The deployment on Lava's bit-accurate ``fixed_pt`` models (its own worker processes)."""
    from spikeship.sim.lava.run import run_deployment

    return run_deployment(dep, x, y, progress=False)


def emulator(dep, x, y):
    """The deployment on spikeship's Loihi emulator."""
    from spikeship.sim import loihi_emu

    return loihi_emu.run_deployment(dep, x, y)


def netx_deployment(net_file: Path, x):
    """A netx file from elsewhere, imported to NIR and deployed fixed point for input ``x``."""
    from spikeship.targets.loihi.deploy import deployment_for
    from spikeship.targets.loihi.netx_import import netx_to_nir

    return deployment_for(netx_to_nir(Path(net_file)), "fixed", x, {})


def lava_fixed_traced(dep, x, names: tuple[str, ...], traces: dict):
    """Lava ``fixed_pt`` with the voltages of ``names`` recorded into ``traces``."""
    from spikeship.sim.lava.run import run_deployment

    return run_deployment(dep, x, record_voltages=names, traces=traces, timeout_s=3000)


def emulator_traced(dep, x, names: tuple[str, ...]):
    """The emulator with the voltages of ``names`` recorded."""
    from spikeship.sim.loihi_emu import LoihiEmulator

    return LoihiEmulator(dep).run(x, record_voltages=names)

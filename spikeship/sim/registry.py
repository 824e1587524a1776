"""Simulation targets by name: ``spikeship simulate RUN --target NAME``.

Each entry is ``"module:function"`` with the signature::

    run(run_dir: Path, inputs: np.ndarray, labels: np.ndarray | None,
        options: dict) -> spikeship.sim.result.SimResult

``inputs`` is ``(samples, T, *input_shape)`` float32 (direct encoding repeats the
image at every step), ``labels`` is ``(samples,)``. The runner reads the deployed
file it needs from ``run_dir`` (``model.nir``, ``model.onnx`` or ``model.net``),
never a Python object from training. Modules are imported on use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from spikeship.errors import ConfigError

TARGETS: dict[str, str] = {
    "snntorch": "spikeship.sim.snntorch:run_target",     # the training-time model
    "reference": "spikeship.sim.reference:run_target",
    "norse": "spikeship.sim.norse_runner:run_target",
    "onnx": "spikeship.sim.onnx_runner:run_target",
    "lava-float": "spikeship.sim.lava.run:run_float_target",
    "lava-fixed": "spikeship.sim.lava.run:run_fixed_target",
    "lava-netx": "spikeship.sim.lava.netx:run_target",
    "loihi-emu": "spikeship.sim.loihi_emu:run_target",
}


def get_target(name: str) -> Callable:
    """The runner function of target ``name``."""
    if name not in TARGETS:
        raise ConfigError(f"unknown target '{name}'; choose one of {sorted(TARGETS)}")
    module, attr = TARGETS[name].split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise ConfigError(f"target '{name}' is not available yet ({TARGETS[name]})") from e
        raise

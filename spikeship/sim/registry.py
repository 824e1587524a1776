"""Simulation targets by name: ``spikeship simulate RUN --target NAME``.

Each entry points at a :class:`~spikeship.sim.base.Simulator` declared next to its
code (``"module:ATTRIBUTE"``); modules are imported on use, so listing the names
(CLI choices, ``--help``) imports nothing heavy. A simulator reads the deployed file it
needs from the run directory (``model.nir``, ``model.onnx`` or ``model.net``; the
training-time ``snntorch`` model reads the checkpoint), never a Python object from
training. Adding one: a module (or ``sim/<name>/`` folder) declaring its
``Simulator``, one line here, and the conformance tests in ``tests/sim`` run it.
"""

from __future__ import annotations

import importlib

from spikeship.errors import ConfigError
from spikeship.sim.base import Simulator

# name -> "module:ATTRIBUTE" of its Simulator; the order is the pipeline's default order.
SIMULATORS: dict[str, str] = {
    "snntorch": "spikeship.sim.snntorch:SIMULATOR",      # the training-time model
    "reference": "spikeship.sim.reference:SIMULATOR",
    "onnx": "spikeship.sim.onnx_runner:SIMULATOR",
    "norse": "spikeship.sim.norse_runner:SIMULATOR",
    "lava-float": "spikeship.sim.lava.run:LAVA_FLOAT",
    "lava-fixed": "spikeship.sim.lava.run:LAVA_FIXED",
    "lava-netx": "spikeship.sim.lava.netx:SIMULATOR",
    "loihi-emu": "spikeship.sim.loihi_emu:SIMULATOR",
}

# Run by the pipeline unless its configuration says otherwise (snntorch always runs
# as the yardstick of agreement).
PIPELINE_DEFAULT = ("reference", "onnx", "norse", "lava-float", "lava-fixed", "lava-netx",
                    "loihi-emu")


def names() -> list[str]:
    """Every registered simulator name (nothing imported)."""
    return list(SIMULATORS)


def get(name: str) -> Simulator:
    """The :class:`Simulator` registered as ``name`` (:class:`UsageError` if none)."""
    if name not in SIMULATORS:
        raise ConfigError(f"unknown target '{name}'; choose one of {sorted(SIMULATORS)}")
    module, attr = SIMULATORS[name].split(":")
    sim = getattr(importlib.import_module(module), attr)
    if not isinstance(sim, Simulator) or sim.name != name:
        raise TypeError(f"{SIMULATORS[name]} is not the Simulator '{name}'")
    return sim


def all_simulators() -> list[Simulator]:
    """Every registered simulator (imports their modules)."""
    return [get(n) for n in SIMULATORS]


def spike_sources() -> list[str]:
    """Simulators whose recorded spikes ``spikeship energy`` may price, in the order it
    picks the first one present (deployed fixed point first)."""
    ranked = [(s.spike_source_rank, s.name) for s in all_simulators()
              if s.spike_source_rank is not None]
    return [n for _, n in sorted(ranked)]

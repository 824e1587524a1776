"""A run's ``model.nir`` -> the :class:`~spikeship.targets.loihi.deployment.Deployment`
every Loihi-style runner executes: :func:`~spikeship.targets.loihi.lower.lower` (float)
and, for fixed point, :func:`~spikeship.targets.loihi.quantize.quantize_deployment`.
The Lava targets (``lava-float``, ``lava-fixed``) and the emulator (``loihi-emu``) call
the same function, so they run the same deployment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeship.errors import RunDirError
from spikeship.nir.read import read_nir
from spikeship.targets.loihi import netx_read
from spikeship.targets.loihi.deployment import Deployment
from spikeship.targets.loihi.host import input_bits
from spikeship.targets.loihi.lower import graph_dt, graph_encoding, lower
from spikeship.targets.loihi.quantize import quantize_deployment
from spikeship.targets.loihi.tau_groups import share_quantised_decays


def load_graph(path: str | Path):
    """Read and validate a NIR file with spikeship's importer (size limits before
    allocating, NaN/Inf, shapes, edges): ``GraphError`` if bad, ``RunDirError`` if missing."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist (run `spikeship export` first)")
    return read_nir(path).graph


def deployment_for(graph, precision: str, inputs: np.ndarray, options: dict) -> Deployment:
    """The float or fixed deployment of ``graph`` for these inputs and target options."""
    mode = options.get("input_mode") or ("current" if graph_encoding(graph) == "direct"
                                         else "spikes")
    bits = input_bits(inputs, precision) if mode == "spikes" else 0
    if precision == "fixed" and not netx_read.is_netx_import(graph):
        graph = share_quantised_decays(graph, graph_dt(graph, options.get("dt_s")))
    dep = lower(graph, dt_s=options.get("dt_s"), input_mode=mode, input_message_bits=bits)
    if precision == "fixed" and netx_read.is_netx_import(graph):
        return netx_read.fixed_deployment(graph, dep)   # netx's own integers
    return quantize_deployment(dep) if precision == "fixed" else dep

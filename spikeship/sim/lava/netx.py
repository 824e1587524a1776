"""Target ``lava-netx``: run ``model.net`` with lava-dl's netx (fixed point only).

``lava.lib.dl.netx.hdf5.Network`` builds the network from the HDF5 file that
:func:`spikeship.targets.loihi.netx.write_netx` wrote (optionally with
``sparse_fc_layer=True``: every dense layer becomes a ``Sparse`` process holding the
nonzero synapses). netx has no floating-point process models, so this target is
fixed point only. It streams samples exactly like the direct path
(:mod:`spikeship.sim.lava.run`): netx's own ``reset_interval`` / ``reset_offset``
put the same ``LIFReset`` phases on its layers (layer ``i`` resets at
``(offset + 1 + i) mod T``), the same memory-mapped sources and sinks are attached
to ``Network.inp`` and to every layer's neuron. Direct-encoded networks get their
host current from the ``spikeship_host`` group of the file. The result must be
identical, spike for spike, to ``lava-fixed`` on ``model.nir``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import Field

from spikeship.errors import GraphError
from spikeship.targets.loihi import host as lava_host
from spikeship.sim.lava import require
from spikeship.sim.lava.build import LavaNetwork, _lava, _stream
from spikeship.sim.lava.run import check_inputs, chunk_samples, run_network
from spikeship.sim.lava.run import io_dir as new_io_dir
from spikeship.sim.base import Capabilities, Options, PositiveFloat, PositiveInt, Simulator
from spikeship.sim.result import SimResult
from spikeship.targets.loihi.deployment import SOURCE_INPUT, Deployment
from spikeship.targets.loihi.netx_read import read_deployment  # noqa: F401 (re-exported)


def build_netx(path: str | Path, dep: Deployment, *, timesteps: int, chunk_steps: int,
               io_dir: Path, sparse_fc_layer: bool = False, input_message_bits: int = 0):
    """netx's ``Network`` from ``path`` with streamed input and a sink on every layer."""
    Network = require("lava.lib.dl.netx.hdf5").Network
    L = _lava()
    net = Network(net_config=str(path), reset_interval=timesteps,
                  reset_offset=0 if dep.input_mode == "current" else 1,
                  input_message_bits=int(input_message_bits), sparse_fc_layer=sparse_fc_layer)
    if len(net.layers) != len(dep.populations):
        raise GraphError(f"netx built {len(net.layers)} layers for {len(dep.populations)} "
                         "populations")
    if dep.input_mode == "current":   # netx's input block leaves its InPort unconnected:
        key = dep.host_layers[0].target   # the current goes straight into the neuron
        dst = net.layers[0].neuron.a_in
    else:
        key, dst = SOURCE_INPUT, net.inp
    source = _stream(L, "source", io_dir, key, tuple(dst.shape), chunk_steps, np.int32)
    source.s_out.connect(dst)
    pops, sinks = {}, {}
    for p, layer in zip(dep.populations, net.layers):
        pops[p.name] = layer.neuron
        sinks[p.name] = _stream(L, "sink", io_dir, p.name, tuple(layer.neuron.s_out.shape),
                                chunk_steps)
        layer.neuron.s_out.connect(sinks[p.name].a_in)
    synapses = {s.name: getattr(layer, "synapse", None)
                for s, layer in zip(dep.synapses, net.layers[-len(dep.synapses):])}
    return LavaNetwork(dep, timesteps, chunk_steps, io_dir, {key: source}, synapses, pops,
                       sinks), net


def run_netx(path: str | Path, inputs: np.ndarray, labels: np.ndarray | None = None, *,
             sparse_fc_layer: bool = False, timeout_s: float | None = None,
             progress: bool = False, chunk: int | None = None,
             target: str = "lava-netx") -> SimResult:
    """Run ``inputs`` ``(N, T, *input_shape)`` through the netx network in ``path``."""
    dep = read_deployment(path)
    if sparse_fc_layer:         # the host layer too holds only its nonzero synapses
        dep = lava_host.sparse_hosts(dep)
    x = check_inputs(dep, inputs)
    n, t = int(x.shape[0]), int(x.shape[1])
    bits = lava_host.input_bits(x, "fixed") if dep.input_mode == "spikes" else 0
    c = chunk_samples(dep, n, t, chunk)
    folder = new_io_dir()
    try:
        lnet, _ = build_netx(path, dep, timesteps=t, chunk_steps=c * t, io_dir=folder,
                             sparse_fc_layer=sparse_fc_layer, input_message_bits=bits)
        flat_input = dep.input_mode == "spikes" and dep.synapses[0].kind == "dense" \
            and len(dep.input_shape) > 1
        if flat_input:      # netx feeds a first dense layer its input flattened C-order
            dep_run = _flat_input(dep)
            lnet.deployment = dep_run
            x = x.reshape(n, t, -1)
        result = run_network(lnet, x, labels, target=target, timeout_s=timeout_s,
                             progress=progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.extra["netx"] = {"file": str(path), "sparse_fc_layer": bool(sparse_fc_layer)}
    if flat_input:
        result.input_count = result.input_count.reshape(dep.input_shape)
        result.input_sum = result.input_sum.reshape(dep.input_shape)
    return result


def _flat_input(dep: Deployment) -> Deployment:
    return replace(dep, input_shape=(int(np.prod(dep.input_shape)),))


def run_target(run_dir, inputs, labels, options) -> SimResult:
    """Registry target ``lava-netx``: ``run_dir/model.net`` through netx, fixed point;
    ``options``: :class:`NetxOptions`."""
    o = SIMULATOR.parse_options(options)
    return run_netx(Path(run_dir) / "model.net", inputs, labels,
                    sparse_fc_layer=o.sparse_fc_layer, timeout_s=o.timeout_s,
                    progress=o.progress, chunk=o.chunk_samples)


class NetxOptions(Options):
    sparse_fc_layer: bool = Field(False, description="netx builds Sparse, not Dense, synapses")
    timeout_s: PositiveFloat | None = Field(None, description="give up after (default: never)")
    chunk_samples: PositiveInt | None = Field(
        None, description="samples per run chunk (default: from a memory budget)")


SIMULATOR = Simulator(
    name="lava-netx", artifact="model.net",
    summary="lava-dl netx network from model.net, Lava fixed_pt",
    options=NetxOptions,
    capabilities=Capabilities(precision=("fixed",), recurrent=False, conv=True,
                              per_neuron_tau=False),
    run_function="spikeship.sim.lava.netx:run_target", spike_source_rank=4)

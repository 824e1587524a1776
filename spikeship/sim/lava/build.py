"""Run NIR graphs in Lava: ``floating_pt`` and bit-accurate ``fixed_pt`` (Loihi 2 models).

``model.nir`` -> :func:`~spikeship.targets.loihi.lower.lower` (float) or
:func:`~spikeship.targets.loihi.quantize.quantize` (fixed) -> :func:`build` (Lava
processes) -> :func:`~spikeship.sim.lava.run.run_deployment` (many samples, one
compile). The registry targets ``lava-float`` / ``lava-fixed`` are in :mod:`.run`.

Process graph: a source sends the input (spikes mode) or the host current (current
mode, straight into the first population's ``a_in``); every synapse is Lava's
``Dense``, ``Sparse`` (pruned layers: the CSR matrix holds only the surviving
synapses) or ``Conv``; every population a ``LIFReset``; a population onto itself gets
a recurrent ``Dense``; a CubaLIF bias with a slow current comes from a constant
``RingBuffer`` through a ``Dense``. A sink per population records its spikes
(per-neuron counts for the energy estimator). Sources and sinks exchange whole
chunks through memory-mapped files (:mod:`spikeship.sim.lava.io`).

Timing (steps 1-based). A population at depth ``d`` (synapses between the input and
it) handles sample ``n``, step ``t`` at Lava step ``n T + t + 1 + d``: each synapse
delays by one step (Lava's ``a_buff``), while a bias acts from step 1. Samples are
streamed back to back and each population restarts at its own phase:
``LIFReset(reset_interval=T, reset_offset=(1 + d) mod T)`` zeroes ``u, v`` at the
first step of each of its sample windows (before integrating that step's input), and
a ``Reset`` process zeroes a recurrent synapse's ``a_buff`` one step earlier. So
nothing leaks from one sample into the next and nothing the bias did before the
first input arrived survives. Outputs are read at their depth offset, so
``output_spikes[n, t]`` lines up with the reference's step ``t``: ``N T + depth`` Lava
steps in total, run in chunks (inputs refilled and sinks read between chunks, never
recompiled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeship.errors import ConfigError, GraphError, RuleError
from spikeship.targets.loihi.deployment import SOURCE_CONST, SOURCE_INPUT, Deployment

# Lava processes one NIR population may be split into (groups of equal time constants,
# targets/loihi/tau_groups.py). Each group is a LIFReset process with its own sink and
# synapses, compiled and run by its own Lava worker; the per-process cost is measured by
# tools/lava_process_cost.py (results/lava-process-cost.json).
MAX_PROCESSES_PER_POPULATION = 16


def _lava():
    from spikeship.sim.lava import require

    require("lava")
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.reset import Reset
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    from spikeship.sim.lava.io import StreamSink, StreamSource

    return dict(Conv=Conv, Dense=Dense, Reset=Reset, RingBuffer=RingBuffer, LIFReset=LIFReset,
                Sparse=Sparse, StreamSink=StreamSink, StreamSource=StreamSource)


def _to_lava(a: np.ndarray) -> np.ndarray:
    return np.transpose(np.asarray(a), tuple(range(np.ndim(a) - 1, -1, -1)))


def lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """NIR ``(O, I, kH, kW)`` cross-correlation kernel -> Lava's ``(O, kW, kH, I)``.

    Lava's Conv convolves (flips the kernel, see ``lava/proc/conv/utils.py``), so the
    kernel is flipped here; netx does the same (``weight[:, :, ::-1, ::-1]``).
    """
    return np.ascontiguousarray(np.asarray(w)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


@dataclass
class LavaNetwork:
    """The Lava processes built from a deployment, and their I/O files."""

    deployment: Deployment
    timesteps: int
    chunk_steps: int
    io_dir: Path
    sources: dict[str, Any]                 # "input" | population name (current mode)
    synapses: dict[str, Any]                # synapse name -> Dense | Sparse | Conv
    populations: dict[str, Any]             # population name -> LIFReset
    sinks: dict[str, Any]                   # population name -> StreamSink
    const: Any = None                       # RingBuffer of ones (bias unit), if any
    resets: list = field(default_factory=list)
    monitors: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self):
        return next(iter(self.sources.values()))

    def source_frames(self, key: str) -> np.memmap:
        """Writable ``(chunk_steps, *lava_shape)`` frames of source ``key``."""
        p = self.sources[key].proc_params
        return np.memmap(p["path"], dtype=np.dtype(p["dtype"]), mode="r+",
                         shape=(p["steps"], *p["shape"]))

    def sink_frames(self, name: str) -> np.memmap:
        """``(chunk_steps, *lava_shape)`` uint8 spikes recorded by population ``name``."""
        p = self.sinks[name].proc_params
        return np.memmap(p["path"], dtype=np.uint8, mode="r", shape=(p["steps"], *p["shape"]))


def _dtype(dep: Deployment):
    return np.int32 if dep.precision == "fixed" else np.float64


def _stream(L, kind: str, io_dir: Path, key: str, shape, steps: int, dtype=None):
    path = io_dir / f"{kind}-{len(list(io_dir.iterdir()))}.bin"
    size = steps * int(np.prod(shape)) * (np.dtype(dtype).itemsize if dtype else 1)
    with open(path, "wb") as f:
        f.truncate(max(size, 1))
    if kind == "source":
        return L["StreamSource"](shape=shape, steps=steps, path=str(path),
                                 dtype=np.dtype(dtype).str, name=f"source:{key}")
    return L["StreamSink"](shape=shape, steps=steps, path=str(path), name=f"sink:{key}")


def build(dep: Deployment, *, timesteps: int, chunk_steps: int, io_dir: str | Path,
          record_voltages: tuple[str, ...] = (), total_steps: int = 0) -> LavaNetwork:
    """Create (not compile) the Lava process graph of ``dep`` (see module docstring).

    ``io_dir``: an existing empty directory for the source/sink files.
    """
    L = _lava()
    if timesteps < 1 or chunk_steps < 1:
        raise ConfigError("timesteps and chunk_steps must be >= 1")
    io_dir = Path(io_dir)
    _check_process_count(dep)
    fixed, dtype = dep.precision == "fixed", _dtype(dep)
    pops, sinks, sources, syns, resets, const = {}, {}, {}, {}, [], None
    for p in dep.populations:
        kw = dict(du=int(p.du), dv=int(p.dv), vth=int(p.vth)) if fixed else \
            dict(du=float(p.du), dv=float(p.dv), vth=float(p.vth))
        pops[p.name] = L["LIFReset"](
            shape=p.lava_shape, bias_mant=_to_lava(p.bias_mant).astype(dtype),
            bias_exp=_to_lava(p.bias_exp).astype(dtype), reset_interval=timesteps,
            reset_offset=(1 + p.depth) % timesteps, name=f"lif:{p.name}", **kw)
        sinks[p.name] = _stream(L, "sink", io_dir, p.name, p.lava_shape, chunk_steps)
        pops[p.name].s_out.connect(sinks[p.name].a_in)
    if dep.input_mode == "spikes":
        sources[SOURCE_INPUT] = _stream(L, "source", io_dir, SOURCE_INPUT,
                                        tuple(reversed(dep.input_shape)), chunk_steps, dtype)
    for target in dict.fromkeys(h.target for h in dep.host_layers):
        sources[target] = _stream(L, "source", io_dir, target,
                                  dep.population(target).lava_shape, chunk_steps, dtype)
        sources[target].s_out.connect(pops[target].a_in)
    if not sources:
        raise GraphError("deployment has no input: nothing feeds the network")
    if any(s.source == SOURCE_CONST for s in dep.synapses):
        const = L["RingBuffer"](data=np.ones((1, 1), dtype=dtype))
    for s in dep.synapses:
        syns[s.name] = proc = _synapse(L, s, fixed)
        src = (sources[SOURCE_INPUT] if s.source == SOURCE_INPUT else
               const if s.source == SOURCE_CONST else pops[s.source])
        port = src.s_out
        if s.flatten_source and s.kind != "conv":
            port = port.transpose(list(range(len(s.source_shape) - 1, -1, -1))).flatten()
        port.connect(proc.s_in)
        _into(proc, s, dep.population(s.target).lava_shape).connect(pops[s.target].a_in)
        if s.source == SOURCE_CONST:   # the constant is there from step 1, as a bias would be
            proc.a_buff.init = np.asarray(s.weights).sum(axis=1).astype(dtype)
        if s.recurrent:
            depth = dep.population(s.target).depth
            r = L["Reset"](interval=timesteps, offset=(depth - 1) % timesteps)
            r.connect_var(proc.a_buff)
            resets.append(r)
    monitors = {}
    if record_voltages:
        from lava.proc.monitor.process import Monitor

        for name in record_voltages:
            monitors[name] = Monitor()
            monitors[name].probe(pops[name].v, total_steps)
    return LavaNetwork(dep, timesteps, chunk_steps, io_dir, sources, syns, pops, sinks, const,
                       resets, monitors)


def _check_process_count(dep: Deployment) -> None:
    for name, (_, groups) in (dep.groups or {}).items():
        if len(groups) > MAX_PROCESSES_PER_POPULATION:
            raise RuleError(
                f"population {name!r}: {len(groups)} distinct time constants would start "
                f"{len(groups)} Lava processes (limit {MAX_PROCESSES_PER_POPULATION}; each "
                f"adds the cost measured in results/lava-process-cost.json): use fewer "
                f"distinct tau values, lava-fixed (equal quantised decays share a process) "
                f"or the loihi-emu target")


def _into(proc, s, lava_shape):
    """The synapse's output port shaped as its target population. A Dense/Sparse writes a
    flat vector in NIR's C order of ``(C, H, W)``; a conv population is ``(W, H, C)`` in
    Lava: reshape to the NIR shape, then reverse the axes (a CubaLIF's constant bias
    current into a conv population used to fail here: "Shapes (256,) and (8, 8, 4)")."""
    if s.kind == "conv" or len(lava_shape) < 2:
        return proc.a_out
    nd = len(lava_shape)
    return proc.a_out.reshape(tuple(reversed(lava_shape))).transpose(list(range(nd - 1, -1, -1)))


def _synapse(L, s, fixed: bool):
    name = f"syn:{s.name}"
    bits = int(s.num_message_bits)
    if s.kind == "conv":
        w = lava_conv_weight(s.weights)
        return L["Conv"](weight=w.astype(np.int32) if fixed else w.astype(np.float64),
                         input_shape=tuple(reversed(s.source_shape)), padding=s.padding[::-1],
                         stride=s.stride[::-1], dilation=s.dilation[::-1], groups=int(s.groups),
                         num_message_bits=bits, name=name)
    kw = dict(weight_exp=int(s.weight_exp)) if fixed else {}
    if s.kind == "sparse":
        w = s.weights.astype(np.int32 if fixed else np.float64)
        return L["Sparse"](weights=w, num_message_bits=bits, name=name, **kw)
    w = np.asarray(s.weights).astype(np.int32 if fixed else np.float64)
    return L["Dense"](weights=w, num_message_bits=bits, name=name, **kw)

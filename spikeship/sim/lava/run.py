"""The run loop of a Lava deployment: stream samples, read spikes, measure speed.

Used by the direct NIR -> Lava path (:mod:`spikeship.sim.lava.build`) and by the netx path
(:mod:`spikeship.sim.lava.netx`): both hand over a :class:`~spikeship.sim.lava.build.LavaNetwork`
whose sources and sinks are memory-mapped streams. One compile; ``N T + depth``
steps in chunks of ``C T`` steps (``C`` samples); between chunks the source frames
are rewritten and the sink frames read, in the host's memory (no Lava messages).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from spikeship.errors import ConfigError
from spikeship.targets.loihi import host as lava_host
from spikeship.sim.lava.build import build
from spikeship.targets.loihi.deploy import deployment_for, load_graph
from spikeship.sim.lava.session import LavaSession
from spikeship.sim.base import (Capabilities, DtSeconds, Options, PositiveFloat, PositiveInt,
                                Simulator)
from spikeship.sim.result import SimResult
from spikeship.targets.loihi.deployment import SOURCE_INPUT, Deployment

SINK_BUDGET_BYTES = 256 * 2 ** 20   # uint8 spike frames of all populations per chunk
MAX_CHUNK_SAMPLES = 512


def chunk_samples(dep: Deployment, n: int, t: int, requested: int | None = None) -> int:
    """Samples per chunk: ``requested``, else as many as the sink budget allows."""
    if requested:
        return max(1, min(int(requested), n))
    per_step = sum(p.size for p in dep.populations)
    return max(1, min(n, SINK_BUDGET_BYTES // max(per_step * t, 1), MAX_CHUNK_SAMPLES))


def io_dir() -> Path:
    """A fresh directory for stream files: RAM-backed /dev/shm when it has room for a few
    chunks (containers often give it only 64 MB), else the system temp directory."""
    shm = Path("/dev/shm")
    base = None
    if shm.is_dir() and os.access(shm, os.W_OK):
        if shutil.disk_usage(shm).free > 4 * SINK_BUDGET_BYTES:
            base = shm
    # the pid in the name tells whose directory it is (a leftover, or another process's)
    return Path(tempfile.mkdtemp(prefix=f"spikeship-lava-{os.getpid()}-", dir=base))


def streams_for(dep: Deployment, x: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """What each source sends, NIR layout ``(N, T, *shape)``, and the saturated count."""
    if dep.input_mode == "current":
        return lava_host.injected(dep, x)
    return {SOURCE_INPUT: lava_host.payload(dep, x)}, 0


def _progress(enabled: bool, total: int, label: str):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, disable=not enabled)
    return prog, prog.add_task(label, total=total)


def _to_nir_steps(a: np.ndarray) -> np.ndarray:
    """``(steps, *lava_shape)`` -> ``(steps, *nir_shape)``."""
    return np.transpose(a, (0, *range(a.ndim - 1, 0, -1)))


def check_inputs(dep: Deployment, inputs) -> np.ndarray:
    x = np.asarray(inputs)
    if x.ndim < 3 or tuple(x.shape[2:]) != tuple(dep.input_shape) or x.shape[0] < 1 \
            or x.shape[1] < 1:
        raise ConfigError(f"inputs must be (samples >= 1, T >= 1, "
                          f"{', '.join(map(str, dep.input_shape))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError("inputs contain NaN or infinity")
    return x


def run_deployment(dep: Deployment, inputs: np.ndarray, labels: np.ndarray | None = None, *,
                   target: str | None = None, timeout_s: float | None = None,
                   progress: bool = False, chunk: int | None = None,
                   record_voltages: tuple[str, ...] = (),
                   traces: dict[str, np.ndarray] | None = None) -> SimResult:
    """Run ``inputs`` ``(N, T, *input_shape)`` through ``dep`` in Lava (direct path).

    ``traces`` (optional dict) receives raw, unaligned Lava steps: ``v/<pop>``
    ``(steps, *shape)`` for the populations in ``record_voltages`` (Lava units, NIR
    layout) and ``spikes/<pop>`` ``(steps, *shape)`` of the output population.
    """
    x = check_inputs(dep, inputs)
    n, t = int(x.shape[0]), int(x.shape[1])
    c = chunk_samples(dep, n, t, chunk)
    total = n * t + dep.depth
    folder = io_dir()
    try:
        net = build(dep, timesteps=t, chunk_steps=c * t, io_dir=folder,
                    record_voltages=record_voltages, total_steps=total)
        return run_network(net, x, labels, target=target or f"lava-{dep.precision}",
                           timeout_s=timeout_s, progress=progress, traces=traces)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_network(net, x: np.ndarray, labels, *, target: str, timeout_s: float | None,
                progress: bool, traces: dict | None = None) -> SimResult:
    """Stream ``x`` through a built :class:`~spikeship.sim.lava.build.LavaNetwork`."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    dep = net.deployment
    wall0 = time.perf_counter()
    n, t = int(x.shape[0]), int(x.shape[1])
    if net.timesteps != t:
        raise ConfigError(f"network was built for T={net.timesteps}, inputs have T={t}")
    c = net.chunk_steps // t
    total = n * t + dep.depth
    n_chunks = math.ceil(total / net.chunk_steps)
    # the host's streams chunk by chunk, in the emulator's blocks (one block held)
    streams = lava_host.BlockStreams(dep, x, lambda xb: streams_for(dep, xb))
    first, saturated = streams.get(0, min(n, c))
    empty = {k: np.empty((0, *v.shape[1:]), v.dtype) for k, v in first.items()}
    frames = {k: net.source_frames(k) for k in first}
    dtype = np.int32 if dep.precision == "fixed" else np.float64

    def fill(part: dict[str, np.ndarray]) -> None:
        for k, arr in part.items():
            frames[k][:] = lava_host.to_lava_stream(arr, net.chunk_steps, dtype)

    counts = {p.name: np.zeros(p.lava_shape, dtype=np.int64) for p in dep.populations}
    out_names = dep.output_populations()     # one, or the output's tau groups
    out_raw = {k: np.zeros((total, *dep.population(k).lava_shape), dtype=np.uint8)
               for k in out_names}
    out_depth = dep.population(out_names[0]).depth
    sink_frames = {p.name: net.sink_frames(p.name) for p in dep.populations}
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if dep.precision == "fixed" else "floating_pt")
    prog, task = _progress(progress, n, f"{target} ({n} samples)")
    fill(first)
    del first
    with LavaSession(net.root, cfg, timeout_s=timeout_s) as session, prog:
        session.compile()
        compile_s = time.perf_counter() - wall0
        run0 = time.perf_counter()
        for j in range(n_chunks):
            steps = min(net.chunk_steps, total - j * net.chunk_steps)
            if j > 0:                           # past the last sample: zeros
                part, sat = streams.get(j * c, min(n, (j + 1) * c)) if j * c < n \
                    else (empty, 0)
                saturated += sat
                fill(part)
            session.run(steps)
            g0 = j * net.chunk_steps
            for p in dep.populations:
                s = np.asarray(sink_frames[p.name][:steps])
                lo, hi = max(0, p.depth - g0), min(steps, n * t + p.depth - g0)
                if hi > lo:
                    counts[p.name] += s[lo:hi].sum(axis=0, dtype=np.int64)
                if p.name in out_raw:
                    out_raw[p.name][g0:g0 + steps] = s
            prog.update(task, completed=min(n, (j + 1) * c))
        run_s = time.perf_counter() - run0
        if traces is not None:
            for name, mon in net.monitors.items():
                v = np.asarray(session.get_monitor(mon)[net.populations[name].name]["v"])
                traces[f"v/{name}"] = _to_nir_steps(v.reshape(total,
                                                              *dep.population(name).lava_shape))
            for k in out_names:
                traces[f"spikes/{k}"] = _to_nir_steps(out_raw[k])
    output = dep.assemble_output({k: _to_nir_steps(v[out_depth:out_depth + n * t]).reshape(
        n, t, -1) for k, v in out_raw.items()})
    extra = {
        "lava_precision": dep.precision, "input_mode": dep.input_mode,
        "lava_steps": total, "chunks": n_chunks, "compile_s": compile_s, "run_s": run_s,
        "samples_per_s_run": n / run_s if run_s > 0 else None,
        "steps_per_s": total / run_s if run_s > 0 else None,
        "input_saturated": saturated, "deployment": dep.summary(),
    }
    if dep.report:
        extra["quantisation"] = dep.report
    return SimResult.from_run(
        target, x, output,
        dep.merge_counts({k: np.transpose(v) for k, v in counts.items()}), labels,
        time.perf_counter() - wall0, extra)


class LavaOptions(Options):
    timeout_s: PositiveFloat | None = Field(None, description="give up after (default: never)")
    chunk_samples: PositiveInt | None = Field(
        None, description="samples per run chunk (default: from a memory budget)")
    dt_s: DtSeconds | None = Field(None, description="time step for graphs without dt")
    input_mode: Literal["current", "spikes"] | None = Field(
        None, description="default: from the graph's encoding")


def _run_target(run_dir, inputs, labels, options, precision: str) -> SimResult:
    o = (LAVA_FIXED if precision == "fixed" else LAVA_FLOAT).parse_options(options)
    graph = load_graph(Path(run_dir) / "model.nir")
    dep = deployment_for(graph, precision, inputs, o.model_dump())
    return run_deployment(dep, inputs, labels, target=f"lava-{precision}",
                          timeout_s=o.timeout_s, progress=o.progress,
                          chunk=o.chunk_samples)


def run_float_target(run_dir, inputs, labels, options) -> SimResult:
    """Registry target ``lava-float``: ``run_dir/model.nir`` in Lava ``floating_pt``;
    ``options``: :class:`LavaOptions`."""
    return _run_target(run_dir, inputs, labels, options, "float")


def run_fixed_target(run_dir, inputs, labels, options) -> SimResult:
    """Registry target ``lava-fixed``: ``run_dir/model.nir`` quantised, Lava ``fixed_pt``."""
    return _run_target(run_dir, inputs, labels, options, "fixed")


# per_neuron_tau stays False: Affine-fed populations with per-neuron tau are split into
# groups of equal tau (targets/loihi/tau_groups.py), but a conv population with per-pixel
# tau, a recurrent one, or any dt/tau > 1 is refused by rule; the conformance fixture
# (tests/sim/test_conformance.py) uses dt/tau up to 1.6, which no Lava decay can express.
_LAVA_CAPS = dict(recurrent=True, conv=True, per_neuron_tau=False)
LAVA_FLOAT = Simulator(
    name="lava-float", artifact="model.nir", summary="Lava floating_pt processes from NIR",
    options=LavaOptions, capabilities=Capabilities(precision=("float",), **_LAVA_CAPS),
    run_function="spikeship.sim.lava.run:run_float_target", spike_source_rank=2)
LAVA_FIXED = Simulator(
    name="lava-fixed", artifact="model.nir",
    summary="Lava fixed_pt processes (bit-accurate Loihi 2 models), quantised from NIR",
    options=LavaOptions, capabilities=Capabilities(precision=("fixed",), **_LAVA_CAPS),
    run_function="spikeship.sim.lava.run:run_fixed_target", spike_source_rank=1)

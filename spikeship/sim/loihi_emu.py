"""Batched, bit-exact emulator of Lava's fixed-point (Loihi) simulation: target ``loihi-emu``.

Input is the fixed-point :class:`~spikeship.targets.loihi.deployment.Deployment`
that :func:`spikeship.targets.loihi.deploy.deployment_for` builds (``lower`` then
``quantize_deployment``, the one quantisation the ``lava-fixed`` target also runs),
so the two cannot drift apart. The integer arithmetic of every Lava process model
is in :mod:`spikeship.sim.loihi_emu_ops` (each operation next to the Lava file and
function it mirrors); this module wires it as Lava's process graph does.

Timing. Lava streams the samples back to back (:mod:`spikeship.sim.lava.run`): a
population at depth ``d`` handles sample ``n``, step ``t`` (0-based) at Lava step
``n T + t + 1 + d``; ``LIFReset`` zeroes its ``u, v`` at the first step of each
such window and a ``Reset`` process zeroes a recurrent synapse's buffer at the last
step of the previous one. So each (sample, population) window starts from zero
state, and whatever a population did before its window (bias-driven spikes while
the input had not reached it yet, the previous sample) arrives at the next
population before *its* window starts and is wiped by its reset. The emulator
therefore runs every sample in its own aligned frame, all samples of a batch at
once, with ``t = 0 .. T-1`` and, per population in depth order::

    a_in[t] = sum_ff  a_out(src[t])          # the synapse's one-step delay is the
            + sum_rec a_out(self[t - 1])     #   depth offset of the aligned frame;
            + host current[t]                #   recurrent input really is one step late
    u, v, s = lif_step(u, v, a_in)           # u = v = 0 and self[-1] = 0 at t = 0

which is what Lava computes in the windows its runner reads (``output_spikes[n, t]``
is Lava's output sink at step ``n T + t + 1 + depth``, as
:func:`spikeship.sim.lava.run.run_deployment` aligns it). A constant source (a CubaLIF
bias through a synapse) sends ``W 1`` at every step: the Lava builder preloads that
Dense's ``a_buff`` with it, so it is there from Lava step 1 on, also for a depth-0
population in sample 0.

Order of evaluation. A population's input does not depend on its own spikes except
through a recurrent synapse, so each batch is evaluated population by population in
depth order: the feed-forward ``a_in`` of all ``T`` steps is one operator call on the
sources' complete spike trains, then the LIF steps through time (recurrent input added
per step). A population without recurrence whose ``u`` does not decay (LIF, IF) runs
the in-place fast path :func:`~spikeship.sim.loihi_emu_ops.lif_run_feedforward`,
tested bit for bit against :func:`~spikeship.sim.loihi_emu_ops.lif_step`.

Outputs: per-population spike counts over all samples and steps (NIR shape),
output spikes ``(N, T, classes)``, optionally per-step integer voltages (``v``
after the reset, as a Lava ``Monitor`` reads it) and spikes of chosen populations.
Everything runs on ``device`` (CPU here, CUDA if given).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from spikeship.errors import ConfigError
from spikeship.targets.loihi import host as lava_host
from spikeship.sim.loihi_emu_ops import (LifParams, SynapseOp, conv_op, dense_op,
                                         feedforward_fast, lava_synapse_weights,
                                         lif_run_feedforward, lif_step)
from spikeship.sim.base import (Capabilities, DtSeconds, Options, PositiveInt, Simulator,
                                ThreadCount, TorchDevice)
from spikeship.sim.result import SimResult
from spikeship.targets.loihi.deployment import SOURCE_CONST, SOURCE_INPUT, Deployment

TARGET = "loihi-emu"
STATE_BUDGET_BYTES = 256 * 2 ** 20
PAYLOAD_BLOCK = 4096                  # samples per pass when the graded input's top is found
CACHE_STATE_BYTES = 256 * 2 ** 10


@dataclass
class EmuRun:
    """What one emulator run produced (numpy, NIR layouts, aligned steps)."""

    output_spikes: np.ndarray                     # (N, T, classes) uint8
    counts: dict[str, np.ndarray]                 # population -> (shape) int64
    voltages: dict[str, np.ndarray] = field(default_factory=dict)   # (N, T, *shape) int64
    spikes: dict[str, np.ndarray] = field(default_factory=dict)     # (N, T, *shape) uint8
    input_saturated: int = 0
    streams_s: float = 0.0                        # host side: input payload / current
    sim_s: float = 0.0                            # the emulation proper


@dataclass(eq=False)
class _Pop:
    name: str
    shape: tuple[int, ...]
    size: int
    depth: int
    lif: LifParams
    ff: list[tuple[str, SynapseOp]]       # (source, op), source != self
    rec: list[SynapseOp]                  # recurrent ops (source == self)


class LoihiEmulator:
    """A fixed-point :class:`Deployment` compiled to batched integer torch operators.

    ``input_max``: largest graded input payload the run will send (binary input: 1);
    it bounds the integer sums (exactness checks, see ``loihi_emu_ops``). Default:
    ``2^input_message_bits - 1``.
    """

    def __init__(self, dep: Deployment, *, device: str | torch.device = "cpu",
                 input_max: int | None = None, allow_float32: bool = True):
        if dep.precision != "fixed":
            raise ConfigError(f"the Loihi emulator runs fixed-point deployments, got "
                              f"precision '{dep.precision}' (quantize it first)")
        self.dep = dep
        self.device = torch.device(device)
        bits = int(dep.input_message_bits)
        self.input_max = int(input_max) if input_max is not None else \
            (2 ** bits - 1 if bits > 0 else 1)
        self.pops: list[_Pop] = []
        for p in dep.populations:
            ff, rec, bound = [], [], 0
            for s in dep.incoming(p.name):
                op = self._op(s, allow_float32)
                bound += op.out_bound
                (rec.append(op) if s.recurrent else ff.append((s.source, op)))
            for h in dep.host_layers:
                if h.target == p.name:
                    bound += int(np.ceil(h.injection_max))
            lif = LifParams.build(p.du, p.dv, p.vth, p.bias_mant, p.bias_exp, bound, self.device)
            self.pops.append(_Pop(p.name, tuple(p.shape), p.size, p.depth, lif, ff, rec))
        self._shape = {p.name: p.shape for p in self.pops}

    def _op(self, s, allow_float32: bool) -> SynapseOp:
        graded = int(s.num_message_bits) > 0
        src_max = self.input_max if s.source == SOURCE_INPUT and graded else 1
        if s.kind == "conv":
            return conv_op(np.asarray(s.weights), source_shape=s.source_shape, graded=graded,
                           input_max=src_max, stride=s.stride, padding=s.padding,
                           dilation=s.dilation, groups=s.groups, device=self.device,
                           allow_float32=allow_float32)
        if s.kind == "sparse":            # only the stored synapses; absent ones add 0
            w = s.weights.tocsr(copy=True)
            w.data = lava_synapse_weights(w.data)
            w = w.toarray()
        else:
            w = lava_synapse_weights(np.asarray(s.weights))
        return dense_op(w, graded=graded, weight_exp=s.weight_exp, input_max=src_max,
                        device=self.device, sparse=s.kind == "sparse",
                        allow_float32=allow_float32)

    # ------------------------------------------------------------------ running
    def batch_size_for(self, timesteps: int, record: bool) -> int:
        """Default samples per batch: a largest population's ``(batch, size)`` int64
        state of about ``CACHE_STATE_BYTES`` (the per-step passes then run in cache,
        measured 1.5x faster than one big batch), within ``STATE_BUDGET_BYTES`` for
        all populations over all steps (and the records)."""
        biggest = max((p.size for p in self.pops), default=1)
        per = sum(p.size for p in self.pops) * (8 * 6 + timesteps * (2 + 8 + (8 if record else 0)))
        return int(max(1, min(max(8, CACHE_STATE_BYTES // (8 * biggest)),
                              STATE_BUDGET_BYTES // max(per, 1))))

    @torch.no_grad()
    def run(self, inputs: np.ndarray, *, batch_size: int | None = None,
            record_voltages: tuple[str, ...] = (), record_spikes: tuple[str, ...] = (),
            progress: bool = False, threads: int | None = 1) -> EmuRun:
        """Run ``inputs`` ``(N, T, *input_shape)`` (what the Lava runner receives).

        ``threads``: torch CPU threads during the run (restored after; None keeps
        torch's setting). One is the default: the per-step tensors are small, and on a
        shared machine intra-op threads cost more than they give.
        """
        with _torch_threads(threads if self.device.type == "cpu" else None):
            return self._run(inputs, batch_size, record_voltages, record_spikes, progress)

    def _run(self, inputs, batch_size, record_voltages, record_spikes, progress) -> EmuRun:
        dep = self.dep
        x = np.asarray(inputs)
        if x.ndim < 3 or tuple(x.shape[2:]) != tuple(dep.input_shape):
            raise ConfigError(f"inputs must be (samples, T, {', '.join(map(str, dep.input_shape))})"
                              f", got {x.shape}")
        for name in (*record_voltages, *record_spikes):
            if name not in {p.name for p in self.pops}:
                raise ConfigError(f"no population '{name}' to record; have "
                                  f"{[p.name for p in self.pops]}")
        n, t = int(x.shape[0]), int(x.shape[1])
        bs = int(batch_size or self.batch_size_for(t, bool(record_voltages or record_spikes)))
        if bs < 1:
            raise ConfigError(f"batch_size must be >= 1, got {bs}")
        counts = {p.name: torch.zeros(p.size, dtype=torch.int64, device=self.device)
                  for p in self.pops}
        out_names = dep.output_populations()     # one, or the output's tau groups
        outputs, volts, spks = [], {k: [] for k in record_voltages}, \
            {k: [] for k in record_spikes}
        # What the host sends, block by block as the Lava runner computes it (see
        # spikeship.targets.loihi.host.injected): the same integers for any batch size,
        # and only one block of host current held at a time.
        streams, streams_s, saturated = lava_host.BlockStreams(dep, x, self._streams), 0.0, 0
        t1 = time.perf_counter()
        prog, task = _progress(progress, n, f"{TARGET} ({n} samples)")
        with prog:
            for b0 in range(0, n, bs):
                ts = time.perf_counter()
                part, sat = streams.get(b0, min(n, b0 + bs))
                saturated += sat
                feeds = {k: torch.as_tensor(v.astype(np.int64)).to(self.device)
                         for k, v in part.items()}
                del part
                streams_s += time.perf_counter() - ts
                b = min(bs, n - b0)
                res = self._run_batch(feeds, b, t, rec_v=record_voltages, rec_s=record_spikes)
                for name, c in res["counts"].items():
                    counts[name] += c
                outputs.append(dep.assemble_output(
                    {k: res["spikes"][k].cpu().numpy().reshape(b, t, -1) for k in out_names}))
                for k in record_voltages:
                    volts[k].append(res["v"][k].cpu())
                for k in record_spikes:
                    spks[k].append(res["spikes"][k].cpu())
                prog.update(task, completed=min(n, b0 + bs))
        shape_of = {p.name: p.shape for p in self.pops}
        full = lambda parts, k, dt: torch.cat(parts).numpy().astype(dt).reshape(  # noqa: E731
            n, t, *shape_of[k])
        return EmuRun(
            output_spikes=np.concatenate(outputs).astype(np.uint8).reshape(n, t, -1),
            counts=dep.merge_counts({k: c.cpu().numpy().reshape(shape_of[k])
                                     for k, c in counts.items()}),
            voltages={k: full(v, k, np.int64) for k, v in volts.items()},
            spikes={k: full(v, k, np.uint8) for k, v in spks.items()},
            input_saturated=saturated, streams_s=streams_s,
            sim_s=time.perf_counter() - t1 - streams_s)

    def _streams(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
        """What the host sends, ``(N, T, *shape)`` per source: the input payload (spikes
        mode) or, per target population, the injected integer current (current mode).
        Computed by the Lava runner's own function."""
        from spikeship.sim.lava.run import streams_for

        streams, sat = streams_for(self.dep, x)
        if SOURCE_INPUT in streams and self.dep.input_message_bits > 0:
            top = int(np.abs(streams[SOURCE_INPUT]).max(initial=0))
            if top > self.input_max:
                raise ConfigError(f"graded input payload {top} exceeds input_max="
                                  f"{self.input_max} the emulator was built for")
        return streams, sat

    def _step_through(self, p: _Pop, ff: torch.Tensor, vrec) -> torch.Tensor:
        """Step ``p`` through time with :func:`lif_step` (recurrent input added)."""
        b, t = ff.shape[:2]
        u = torch.zeros(b, p.size, dtype=torch.int64, device=ff.device)  # LIFReset at t = 0
        v = torch.zeros_like(u)
        s = torch.zeros(b, p.size, dtype=torch.bool, device=ff.device)   # self[-1] = 0
        out = torch.empty(b, t, p.size, dtype=torch.bool, device=ff.device)
        for step in range(t):
            a_in = ff[:, step]
            for op in p.rec:
                a_in = a_in + op.forward(s.reshape(b, *p.shape))
            u, v, s = lif_step(u, v, a_in, p.lif)
            out[:, step] = s
            if vrec is not None:
                vrec[:, step] = v
        return out

    def _run_batch(self, feeds, b: int, t: int, *, rec_v, rec_s) -> dict:
        """One batch, population by population in depth order: a population's
        feed-forward input of *all* steps is one operator call on its sources' complete
        spike trains (they do not depend on it), then its LIF steps through time with
        the recurrent input of the previous step added."""
        dev = self.device
        spikes: dict[str, torch.Tensor] = {}              # (b, t, size) bool
        volts: dict[str, torch.Tensor] = {}
        for p in self.pops:
            ff = feeds[p.name].reshape(b, t, p.size) if p.name in feeds else None
            for src, op in p.ff:
                if src == SOURCE_INPUT:
                    x = feeds[SOURCE_INPUT].reshape(b * t, *self.dep.input_shape)
                elif src == SOURCE_CONST:
                    x = torch.ones(b * t, 1, dtype=torch.int64, device=dev)
                else:
                    x = spikes[src].reshape(b * t, *self._shape[src])
                part = op.forward(x).reshape(b, t, p.size)
                ff = part if ff is None else ff + part
            if ff is None:
                ff = torch.zeros(b, t, p.size, dtype=torch.int64, device=dev)
            vrec = torch.empty(b, t, p.size, dtype=torch.int64, device=dev) \
                if p.name in rec_v else None
            if not p.rec and feedforward_fast(p.lif):
                out = lif_run_feedforward(ff, p.lif, vrec)
            else:
                out = self._step_through(p, ff, vrec)
            spikes[p.name] = out
            if vrec is not None:
                volts[p.name] = vrec
        keep = set(rec_s) | set(self.dep.output_populations())
        return {"counts": {k: s.sum(dim=(0, 1)) for k, s in spikes.items()},
                "spikes": {k: spikes[k] for k in keep}, "v": volts}


@contextlib.contextmanager
def _torch_threads(n: int | None):
    if n is not None:
        from spikeship import ranges

        n = ranges.threads(n, "option threads")
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _progress(enabled: bool, total: int, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), transient=True,
                    disable=not enabled)
    return prog, prog.add_task(label, total=total)


def run_deployment(dep: Deployment, inputs: np.ndarray, labels: np.ndarray | None = None, *,
                   device: str = "cpu", batch_size: int | None = None,
                   record_voltages: tuple[str, ...] = (), progress: bool = False,
                   threads: int | None = 1,
                   traces: dict[str, np.ndarray] | None = None) -> SimResult:
    """Emulate ``dep`` on ``inputs`` ``(N, T, *input_shape)``; a :class:`SimResult`.

    ``traces`` (optional dict) receives ``v/<pop>`` ``(N, T, *shape)`` int64 voltages of
    the populations in ``record_voltages`` (aligned steps, Lava integer units).
    """
    wall0 = time.perf_counter()
    x = np.asarray(inputs)
    bits = int(dep.input_message_bits)
    top = max(int(np.abs(lava_host.payload(dep, x[i:i + PAYLOAD_BLOCK])).max(initial=0))
              for i in range(0, x.shape[0], PAYLOAD_BLOCK)) \
        if dep.input_mode == "spikes" and bits > 0 else None
    emu = LoihiEmulator(dep, device=device, input_max=top)
    build_s = time.perf_counter() - wall0
    r = emu.run(x, batch_size=batch_size, record_voltages=record_voltages, progress=progress,
                threads=threads)
    run_s = r.sim_s
    if traces is not None:
        traces.update({f"v/{k}": v for k, v in r.voltages.items()})
    n = x.shape[0]
    extra = {
        "lava_precision": "fixed", "input_mode": dep.input_mode, "device": str(emu.device),
        "threads": threads, "build_s": build_s, "streams_s": r.streams_s, "run_s": run_s,
        "samples_per_s_run": n / run_s if run_s > 0 else None,
        "input_saturated": r.input_saturated,
        "guarded_populations": [p.name for p in emu.pops if p.lif.guarded],
        "deployment": dep.summary(),
    }
    if dep.report:
        extra["quantisation"] = dep.report
    return SimResult.from_run(TARGET, x, r.output_spikes, r.counts, labels,
                              time.perf_counter() - wall0, extra)


def run_target(run_dir, inputs, labels, options) -> SimResult:
    """Registry target ``loihi-emu``: ``run_dir/model.nir`` quantised exactly as
    ``lava-fixed`` does it, emulated; ``options``: :class:`EmuOptions`."""
    from spikeship.targets.loihi.deploy import deployment_for, load_graph

    o = SIMULATOR.parse_options(options)
    graph = load_graph(Path(run_dir) / "model.nir")
    dep = deployment_for(graph, "fixed", inputs, o.model_dump())
    return run_deployment(dep, inputs, labels, device=o.device, batch_size=o.batch_size,
                          progress=o.progress, threads=o.threads)


class EmuOptions(Options):
    device: TorchDevice = Field("cpu", description="torch device: cpu, cuda, cuda:N")
    batch_size: PositiveInt | None = Field(
        None, description="samples per batch (default: from a memory budget)")
    threads: ThreadCount = Field(1, description="torch CPU threads")
    dt_s: DtSeconds | None = Field(None, description="time step for graphs without dt")
    input_mode: Literal["current", "spikes"] | None = Field(
        None, description="default: from the graph's encoding")


SIMULATOR = Simulator(
    name="loihi-emu", artifact="model.nir",
    summary="batched emulator of Lava's fixed point (bit-exact), torch",
    options=EmuOptions,
    capabilities=Capabilities(precision=("fixed",), recurrent=True, conv=True,
                              per_neuron_tau=False, devices=("cpu", "cuda")),   # as Lava
    run_function="spikeship.sim.loihi_emu:run_target", spike_source_rank=3)

"""The reference NIR simulator: exact discrete-time semantics, batched, torch on CPU.

It is the yardstick the other targets (Norse, ONNX Runtime, Lava) are compared to,
so its semantics are written down here and nowhere else. One call of
:meth:`ReferenceSim.step` advances every node by one step of the graph's ``dt``
(graph metadata ``dt``, or ``dt_s`` given by the caller), visiting nodes in the
order of :class:`~spikeship.nir.read.LoadedGraph` (the input first):

- a node's input ``I[t]`` is the sum of its feed-forward sources' outputs at step
  ``t`` plus its recurrent sources' outputs at step ``t-1`` (at ``t = 0``: zero
  spikes of a neuron, the zero-input output, i.e. the bias, of a stateless node, as
  snnTorch does; ``recurrent_init="zero"`` zeroes it as nirtorch/Norse 1.1 do);
  there is no synaptic delay on feed-forward edges, so an input at step ``t`` can
  reach the output at step ``t``, as in the snntorch training model;
- ``Input``: the sample's ``x[t]``; ``Output``: ``I[t]`` (the graph's output);
- ``Affine``: ``W I + b``; ``Linear``: ``W I``; ``Scale``: ``s * I``; ``Conv2d``:
  cross-correlation with zero padding (torch ``conv2d``); ``SumPool2d``: window sums;
  ``AvgPool2d``: window means (padding counted); ``Flatten``: over the unbatched dims.
- neurons, forward Euler with step ``dt``; spike on ``v > v_threshold`` (strict) and
  reset to ``v_reset`` in the same step::

    LIF     v[t] = v[t-1] + dt/tau * (v_leak - v[t-1] + r I[t])
            z[t] = v[t] > v_threshold;  v[t] <- v_reset where z[t];  output z[t]
    IF      v[t] = v[t-1] + r I[t]          (per step, no dt: the discrete IF of Sinabs,
            then spike and reset as LIF      Norse and snnTorch; NIR's ODE dv/dt = R I
                                             would scale by dt)
    LI      v[t] = v[t-1] + dt/tau * (v_leak - v[t-1] + r I[t]);   output v[t]
    CubaLIF i[t] = i[t-1] + dt/tau_syn * (-i[t-1] + w_in I[t])      (current first,
            v[t] = v[t-1] + dt/tau_mem * (v_leak - v[t-1] + r i[t])  then voltage with
            spike and reset as LIF                                   the new current)

  With ``dt/tau = 1 - beta``, ``r = 1``, ``v_leak = 0`` and the factor ``1/(1-beta)``
  folded into the incoming weights (our exports), LIF is DPAP Eq 1-2 /
  snntorch ``Leaky(reset_mechanism="zero")``: ``u[t] = beta u[t-1] + I[t]``.
  Norse 1.1 implements the same equations (``lif_box_feed_forward_step``, ``iaf``,
  the ``CubaLIF`` of ``norse.torch.utils.import_nir``), except that its CubaLIF
  current also leaks towards ``v_leak`` and it ignores ``r`` of LIF / IF.

State is computed in float64 by default (``dtype="float32"`` is available): the
reference is exact to the equations, not to one framework's float rounding.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import nir
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from spikeship.errors import GraphError, SimulationError
from spikeship.nir.categories import STATEFUL, TIMED
from spikeship.nir.read import LoadedGraph, load_graph, read_nir
from spikeship.nir.geometry import conv_params, pool_params
from spikeship.sim.base import Capabilities, Options, PositiveFloat, PositiveInt, Simulator
from spikeship.sim.result import SimResult

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _t(a, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).to(dtype)


class ReferenceSim:
    """Step-by-step simulator of one validated NIR graph for a batch of samples."""

    def __init__(self, graph: LoadedGraph, *, dt_s: float | None = None, dtype: str = "float64",
                 recurrent_init: str = "bias"):
        if dtype not in _DTYPES:
            raise SimulationError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if recurrent_init not in ("bias", "zero"):
            raise SimulationError(f"recurrent_init must be 'bias' or 'zero', got {recurrent_init!r}")
        self.recurrent_init = recurrent_init
        self.g, self.dtype = graph, _DTYPES[dtype]
        self.dt_s = dt_s if dt_s is not None else graph.dt_s
        needs_dt = [n for n in graph.order if graph.type_of(n) in TIMED]
        if needs_dt and self.dt_s is None:
            raise GraphError(f"the graph has no dt in its metadata and nodes {needs_dt} need one; "
                             "pass dt_s")
        self.p: dict[str, dict[str, Any]] = {n: self._params(n) for n in graph.order}
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.prev: dict[str, torch.Tensor] = {}

    def _params(self, name: str) -> dict[str, Any]:
        node, t, d = self.g.nodes[name], self.g.type_of(name), self.dtype
        if t in ("Affine", "Linear"):
            return {"w": _t(node.weight, d), "b": _t(node.bias, d) if t == "Affine" else None}
        if t == "Scale":
            return {"s": _t(node.scale, d)}
        if t == "Conv2d":
            p = conv_params(name, node)
            return {**p, "weight": _t(p["weight"], d), "bias": _t(p["bias"], d)}
        if t in ("SumPool2d", "AvgPool2d"):
            return pool_params(name, node)
        if t == "Flatten":
            nd = len(self.g.in_shape[name])
            s, e = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
            return {"start": (s + nd if s < 0 else s) + 1, "end": (e + nd if e < 0 else e) + 1}
        out: dict[str, Any] = {}
        for key in ("r", "v_leak", "v_threshold", "v_reset", "w_in"):
            if getattr(node, key, None) is not None:
                out[key] = _t(node.__dict__[key], d)
        for key, tau in (("k", "tau"), ("k_mem", "tau_mem"), ("k_syn", "tau_syn")):
            if getattr(node, tau, None) is not None:     # dt/tau in float64, then cast
                out[key] = _t(self.dt_s / np.asarray(node.__dict__[tau], dtype=np.float64), d)
        return out

    def reset(self, batch: int) -> None:
        """Zero every state (``v``, ``i``) and every recurrent value for ``batch`` samples."""
        self.state = {}
        for n in self.g.order:
            t = self.g.type_of(n)
            shape = (batch, *self.g.out_shape[n])
            if t in ("LIF", "IF", "LI"):
                self.state[n] = {"v": torch.zeros(shape, dtype=self.dtype)}
            elif t == "CubaLIF":
                self.state[n] = {"v": torch.zeros(shape, dtype=self.dtype),
                                 "i": torch.zeros(shape, dtype=self.dtype)}
        # A recurrent source's value "before step 0": zero spikes for a neuron; for a
        # stateless node (an Affine closing the loop) its output on zero input, i.e.
        # its bias, as snnTorch's recurrent layers apply it from the first step.
        # recurrent_init="zero" gives the other reading (nirtorch/Norse: the stored
        # output of the loop's Affine starts at zero, its bias missing at step 0).
        self.prev = {}
        for srcs in self.g.recurrent.values():
            for n in srcs:
                if self.recurrent_init == "zero" or self.g.type_of(n) in STATEFUL:
                    self.prev[n] = torch.zeros((batch, *self.g.out_shape[n]), dtype=self.dtype)
                else:
                    zeros = torch.zeros((batch, *self.g.in_shape[n]), dtype=self.dtype)
                    self.prev[n] = self._node(n, zeros)

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Advance one step with input ``x`` (batch, *input shape); returns every node's output."""
        outs: dict[str, torch.Tensor] = {}
        for n in self.g.order:
            if n == self.g.input:
                outs[n] = x.to(self.dtype)
                continue
            total = None
            for s in self.g.sources[n]:
                total = outs[s] if total is None else total + outs[s]
            for s in self.g.recurrent[n]:
                total = self.prev[s] if total is None else total + self.prev[s]
            outs[n] = self._node(n, total)
        for s in self.prev:
            self.prev[s] = outs[s]
        return outs

    def _node(self, n: str, x: torch.Tensor) -> torch.Tensor:
        t, p = self.g.type_of(n), self.p[n]
        if t == "Output":
            return x
        if t in ("Affine", "Linear"):
            return F.linear(x, p["w"], p["b"])
        if t == "Scale":
            return x * p["s"]
        if t == "Conv2d":
            return F.conv2d(x, p["weight"], p["bias"], p["stride"], p["padding"], p["dilation"],
                            p["groups"])
        if t in ("SumPool2d", "AvgPool2d"):
            return F.avg_pool2d(x, p["kernel"], p["stride"], p["padding"], count_include_pad=True,
                                divisor_override=1 if t == "SumPool2d" else None)
        if t == "Flatten":
            return torch.flatten(x, p["start"], p["end"])
        st = self.state[n]
        if t == "CubaLIF":
            st["i"] = st["i"] + p["k_syn"] * (-st["i"] + p["w_in"] * x)
            x = st["i"]
            st["v"] = st["v"] + p["k_mem"] * (p["v_leak"] - st["v"] + p["r"] * x)
        elif t in ("LIF", "LI"):
            st["v"] = st["v"] + p["k"] * (p["v_leak"] - st["v"] + p["r"] * x)
        else:  # IF
            st["v"] = st["v"] + p["r"] * x
        if t == "LI":
            return st["v"]
        z = st["v"] > p["v_threshold"]
        st["v"] = torch.where(z, p["v_reset"], st["v"])
        return z.to(self.dtype)


def _as_graph(graph) -> LoadedGraph:
    if isinstance(graph, LoadedGraph):
        return graph
    if isinstance(graph, nir.NIRGraph):
        return load_graph(graph)
    if isinstance(graph, (str, os.PathLike)):
        return read_nir(graph)
    raise GraphError(f"expected a NIR graph or file, got {type(graph).__name__}")


MEMORY_BUDGET_BYTES = 1 << 30


def batch_within_budget(g: LoadedGraph, dtype: str, batch_size: int,
                        budget_bytes: int = MEMORY_BUDGET_BYTES) -> int:
    """The largest batch ``<= batch_size`` whose per-step tensors (every node's output,
    every neuron's state, every recurrent value) fit in ``budget_bytes``.

    A file can pass the importer's per-node limits and still ask for more memory than
    the machine has once multiplied by the batch; batches are independent, so a smaller
    batch changes nothing but the time. :class:`SimulationError` if one sample does not fit.
    """
    item = 8 if dtype == "float64" else 4
    recurrent_sources = {src for srcs in g.recurrent.values() for src in srcs}
    per_sample = 0
    for n in g.order:
        size = int(np.prod(g.out_shape[n], dtype=np.int64))
        states = {"LIF": 1, "IF": 1, "LI": 1, "CubaLIF": 2}.get(g.type_of(n), 0)
        per_sample += size * (1 + states + (1 if n in recurrent_sources else 0))
    per_sample *= item
    if per_sample > budget_bytes:
        raise SimulationError(f"one sample needs {per_sample / 2**20:.0f} MiB of state, more "
                              f"than the budget of {budget_bytes / 2**20:.0f} MiB "
                              "(option memory_budget_mb)")
    return max(1, min(int(batch_size), budget_bytes // max(per_sample, 1)))


def simulate(graph, inputs: np.ndarray, *, dt_s: float | None = None, dtype: str = "float64",
             batch_size: int = 256, recurrent_init: str = "bias",
             memory_budget_bytes: int = MEMORY_BUDGET_BYTES,
             pool_nonzero: dict[str, np.ndarray] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``graph`` (LoadedGraph, ``nir.NIRGraph`` or path) on ``inputs`` (N, T, *input shape).

    Returns the graph output per step, (N, T, *output shape) float, and the spike count
    of every spiking node (LIF / IF / CubaLIF) summed over samples and steps, in the
    node's shape. ``pool_nonzero`` (a dict, optional) receives, per SumPool2d/AvgPool2d
    node, how often each output position was non-zero. Batches of ``batch_size`` samples, fewer if their state would exceed
    ``memory_budget_bytes`` (see :func:`batch_within_budget`).
    """
    g = _as_graph(graph)
    inputs = np.asarray(inputs)
    want = g.out_shape[g.input]
    if inputs.ndim != 2 + len(want) or tuple(inputs.shape[2:]) != tuple(want):
        raise SimulationError(f"inputs must be (N, T, {', '.join(map(str, want))}), "
                              f"got {inputs.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SimulationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    batch_size = batch_within_budget(g, dtype, batch_size, memory_budget_bytes)
    sim = ReferenceSim(g, dt_s=dt_s, dtype=dtype, recurrent_init=recurrent_init)
    n, steps = inputs.shape[:2]
    out = np.zeros((n, steps, *g.out_shape[g.output]), dtype=np.float64)
    counts = {m: torch.zeros(g.out_shape[m], dtype=torch.float64) for m in g.neuron_nodes()}
    pools = {m: torch.zeros(g.out_shape[m], dtype=torch.float64) for m in g.order
             if g.type_of(m) in ("SumPool2d", "AvgPool2d")} if pool_nonzero is not None else {}
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(inputs[lo:lo + batch_size]))
            sim.reset(xb.shape[0])
            for t in range(steps):
                outs = sim.step(xb[:, t])
                out[lo:lo + xb.shape[0], t] = outs[g.output].double().numpy()
                for m in counts:
                    counts[m] += outs[m].sum(0).double()
                for m in pools:
                    pools[m] += (outs[m] != 0).sum(0).double()
    if pool_nonzero is not None:
        pool_nonzero.update({m: c.numpy().astype(np.int64) for m, c in pools.items()})
    return out, {m: c.numpy().astype(np.int64) for m, c in counts.items()}


def run_target(run_dir: str | os.PathLike, inputs: np.ndarray, labels: np.ndarray | None,
               options: dict | None = None) -> SimResult:
    """Target ``reference``: run ``run_dir/model.nir`` on ``inputs`` (N, T, C, H, W);
    ``options``: :class:`ReferenceOptions`."""
    o = SIMULATOR.parse_options(options)
    path = Path(run_dir) / "model.nir"
    g = read_nir(path)
    t0 = time.perf_counter()
    pools: dict[str, np.ndarray] = {}
    out, counts = simulate(g, inputs, dt_s=o.dt_s, dtype=o.dtype,
                           batch_size=o.batch_size,
                           recurrent_init=o.recurrent_init,
                           memory_budget_bytes=o.memory_budget_mb << 20,
                           pool_nonzero=pools)
    wall = time.perf_counter() - t0
    if not np.isin(out, (0.0, 1.0)).all():
        raise SimulationError(f"{path}: the graph's output is not a spike train (0/1)")
    res = SimResult.from_run("reference", inputs, out, counts, labels, wall,
                             {"dtype": o.dtype, "dt_s": o.dt_s or g.dt_s, "graph": str(path)})
    res.pool_nonzero = pools     # neurobench's convention counts from these
    return res


class ReferenceOptions(Options):
    dtype: Literal["float64", "float32"] = Field("float64", description="arithmetic")
    dt_s: PositiveFloat | None = Field(None, description="time step (default: the graph's)")
    batch_size: PositiveInt = Field(256, description="samples per batch")
    memory_budget_mb: PositiveInt = Field(1024, description="state memory per batch")
    recurrent_init: Literal["bias", "zero"] = Field(
        "bias", description="what a recurrent edge carries at step 0")


SIMULATOR = Simulator(
    name="reference", artifact="model.nir",
    summary="spikeship's NIR simulator (torch), the yardstick",
    options=ReferenceOptions,
    capabilities=Capabilities(precision=("float",), recurrent=True, conv=True,
                              per_neuron_tau=True),
    run_function="spikeship.sim.reference:run_target", spike_source_rank=5)

"""Norse as the second opinion: run a NIR graph through ``norse.torch.from_nir`` (Norse 1.1).

Norse implements the same discrete-time equations as the reference simulator
(:mod:`spikeship.sim.reference`), with a few differences this runner adapts to or
refuses, so that what Norse runs *is* the graph's meaning:

1. ``dt``: ``from_nir`` assumes ``dt = 1e-3`` unless told; we pass the graph's ``dt``
   (metadata) or the caller's ``dt_s``.
2. ``r`` of ``LIF`` / ``IF`` is ignored by Norse. Where ``r != 1``, it is folded into the
   incoming ``Affine`` / ``Linear`` / ``Conv2d`` (weight rows and bias times ``r``), which
   is exact when that layer feeds only this neuron; otherwise :class:`GraphError`.
   (Our own exports have ``r = 1``: ``1/(1-beta)`` is already in the weights.)
3. Batch: Norse's ``Flatten`` keeps NIR's ``start_dim = 0``, which on a batched tensor
   would flatten the batch too, so by default samples run one at a time, unbatched.
   ``batched=True`` instead shifts the ``start_dim`` / ``end_dim`` of the loaded
   ``torch.nn.Flatten`` modules by one (the only change to Norse's module) and runs
   ``batch_size`` samples at once; the tests check both give the same spikes.
4. ``v_reset`` of LIF / CubaLIF / IF is ignored by Norse's importer (it resets to 0):
   a non-zero ``v_reset`` is refused. Norse's CubaLIF current also leaks towards
   ``v_leak``: a non-zero ``v_leak`` on a CubaLIF is refused.
5. Start state: Norse's ``LIFBoxCell`` starts its membrane at ``v_leak``
   (``initial_state``); NIR semantics, the reference, snnTorch and Lava start every
   membrane at 0. The runner replaces each loaded LIF cell's ``state_fallback`` (the
   function Norse calls for a missing state) with one returning ``v = 0`` of the same
   shape: no Norse source is changed, and a non-zero ``v_leak`` then means what it
   means in NIR (the level the membrane leaks towards).
6. Node types Norse 1.1 does not map (``LI``, ``Scale``, ``AvgPool2d``) raise
   :class:`UnsupportedNodeError`.

Recurrent edges: nirtorch's ``GraphExecutor`` feeds a node's recurrent input from the
previous step's cache, which starts at zero for every node. Where the loop closes
through an ``Affine`` with a bias (the braille ``bias_zero`` fixture), that bias is
therefore missing at step 0; snnTorch, which wrote such graphs, Lava and the reference
apply it from step 0. Not adapted: compare Norse with
``reference.simulate(..., recurrent_init="zero")`` on such graphs (the conformance test
does, and shows the two readings differ). Per-node spikes are read from that cache.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path

import nir
import numpy as np

from spikeship._optional import require
from spikeship.errors import GraphError, SimulationError, UnsupportedNodeError
from spikeship.nir.categories import SPIKING
from spikeship.nir.read import LoadedGraph, read_nir
from spikeship.sim.reference import _as_graph
from pydantic import Field

from spikeship.sim.base import Capabilities, DtSeconds, Options, PositiveInt, Simulator
from spikeship.sim.result import SimResult

NORSE_TYPES = ("Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "Flatten",
               "LIF", "IF", "CubaLIF")


def _fold_r(g: LoadedGraph, name: str, nodes: dict, notes: list[str]) -> None:
    node = nodes[name]
    r = np.asarray(node.r, dtype=np.float64)
    if np.allclose(r, 1.0, rtol=0, atol=0):
        return
    srcs = g.sources[name] + g.recurrent[name]
    for s in srcs:
        src, consumers = nodes[s], [b for a, b in g.graph.edges if a == s]
        t = type(src).__name__
        if t not in ("Affine", "Linear", "Conv2d") or consumers != [name]:
            raise GraphError(f"Norse ignores r of {type(node).__name__} {name!r}; it can be "
                             f"folded only into Affine/Linear/Conv2d sources feeding nothing "
                             f"else, but {s!r} is a {t} feeding {consumers}")
        if t == "Conv2d":
            per_c = r.reshape(r.shape[0], -1)
            if not np.all(per_c == per_c[:, :1]):
                raise GraphError(f"Norse: r of {name!r} varies within a channel; cannot fold "
                                 f"it into Conv2d {s!r}")
            rows = per_c[:, 0]
        else:
            rows = r.reshape(-1)
        w = np.asarray(src.weight, dtype=np.float64)
        changes = {"weight": (w * rows.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)}
        if t != "Linear":
            changes["bias"] = (np.asarray(src.bias, dtype=np.float64) * rows).astype(np.float32)
        nodes[s] = dataclasses.replace(src, **changes)
    nodes[name] = dataclasses.replace(node, r=np.ones_like(node.r))
    notes.append(f"r of {name} folded into {srcs}")


def prepare_for_norse(g: LoadedGraph) -> tuple[nir.NIRGraph, list[str]]:
    """A copy of the graph Norse runs as the reference would (see the module docstring)."""
    nodes = dict(g.nodes)
    notes: list[str] = []
    for name in g.order:
        node, t = nodes[name], g.type_of(name)
        if t not in NORSE_TYPES:
            raise UnsupportedNodeError(f"Norse 1.1 cannot run node {name!r} of type {t}; it maps "
                                       f"{', '.join(NORSE_TYPES)}")
        if t in ("LIF", "IF", "CubaLIF") and np.any(np.asarray(node.v_reset) != 0):
            raise GraphError(f"Norse ignores v_reset of {name!r} (it resets to 0); its v_reset "
                             "is not 0")
        if t == "CubaLIF" and np.any(np.asarray(node.v_leak) != 0):
            raise GraphError(f"Norse's CubaLIF current leaks towards v_leak; {name!r} has a "
                             "non-zero v_leak")
        if t == "SumPool2d" and np.any(np.asarray(node.padding) != 0):
            raise GraphError(f"Norse's SumPool2d ignores padding; {name!r} is padded")
        if t in ("LIF", "IF"):
            _fold_r(g, name, nodes, notes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(g.graph.edges), metadata=dict(g.metadata),
                         type_check=False)
    return graph, notes


def load_norse(g: LoadedGraph, dt_s: float):
    """The Norse module (a nirtorch ``GraphExecutor``) of ``g`` plus the adaptation notes."""
    norse_torch = require("norse.torch")
    graph, notes = prepare_for_norse(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            module = norse_torch.from_nir(graph, ignore_warnings=True, dt=float(dt_s))
        except (ValueError, TypeError, KeyError, AssertionError, RuntimeError) as e:
            raise SimulationError(f"Norse cannot load the graph: {e}") from e
    n = _start_from_zero(module)
    if n:
        notes.append(f"{n} LIF population(s) with v_leak != 0 start at v = 0 (Norse: at v_leak)")
    return module, notes


def _start_from_zero(module) -> int:
    """Make every ``LIFBoxCell`` of ``module`` start from ``v = 0`` (item 5 above)."""
    import torch
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState
    from norse.torch.module.lif_box import LIFBoxCell

    n = 0
    for m in module.modules():
        if isinstance(m, LIFBoxCell):
            def zero(x, p=m.p):
                return LIFBoxFeedForwardState(v=torch.zeros_like(torch.as_tensor(p.v_leak)))
            m.state_fallback = zero
            n += bool(torch.as_tensor(m.p.v_leak).any())
    return n       # cells where it makes a difference (v_leak != 0)


def _batch_flatten(module) -> int:
    import torch

    n = 0
    for m in module.modules():
        if isinstance(m, torch.nn.Flatten):
            m.start_dim = m.start_dim + 1 if m.start_dim >= 0 else m.start_dim
            m.end_dim = m.end_dim + 1 if m.end_dim >= 0 else m.end_dim
            n += 1
    return n


def simulate_norse(graph, inputs: np.ndarray, *, dt_s: float | None = None,
                   batched: bool = False, batch_size: int = 256
                   ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Run ``graph`` in Norse on ``inputs`` (N, T, *input shape), one sample at a time
    (or ``batch_size`` at a time with ``batched=True``, see the module docstring).

    Returns (output per step (N, T, *out), spike counts per spiking node, notes).
    """
    import torch

    g = _as_graph(graph)
    dt = dt_s if dt_s is not None else g.dt_s
    if dt is None:
        needs = [n for n in g.order if g.type_of(n) in ("LIF", "CubaLIF")]
        if needs:
            raise GraphError(f"the graph has no dt and nodes {needs} need one; pass dt_s")
        dt = 1e-3
    module, notes = load_norse(g, dt)
    inputs = np.asarray(inputs, dtype=np.float32)
    n, steps = inputs.shape[:2]
    if tuple(inputs.shape[2:]) != tuple(g.out_shape[g.input]):
        raise SimulationError(f"inputs must be (N, T, *{list(g.out_shape[g.input])}), "
                              f"got {inputs.shape}")
    out = np.zeros((n, steps, *g.out_shape[g.output]), dtype=np.float32)
    spiking = [m for m in g.order if g.type_of(m) in SPIKING]
    counts = {m: np.zeros(g.out_shape[m], dtype=np.int64) for m in spiking}
    key = {m: m.replace(".", "_") for m in spiking}
    if batched:
        notes.append(f"batched: start_dim of {_batch_flatten(module)} Flatten module(s) shifted "
                     "by one")
    step = batch_size if batched else 1
    with torch.no_grad():
        for lo in range(0, n, step):
            state = None
            for t in range(steps):
                x = torch.from_numpy(inputs[lo:lo + step, t] if batched else inputs[lo, t])
                y, state = module(x, state)
                y = y.numpy()
                if y.size != (min(step, n - lo) if batched else 1) * int(np.prod(out.shape[2:])):
                    # seen with a recurrent edge between flat-named nodes (Norse 1.1 reads
                    # recurrence from snnTorch-style subgraphs, 'lif1.lif' / 'lif1.w_rec')
                    raise SimulationError(
                        f"Norse returned output of shape {tuple(y.shape)} at step {t}, "
                        f"expected {tuple(out.shape[2:])} per sample: Norse does not run "
                        f"this graph as NIR defines it")
                out[lo:lo + step, t] = y.reshape(-1, *out.shape[2:])
                for m in spiking:
                    c = state.cache[key[m]].numpy().reshape(-1, *counts[m].shape)
                    counts[m] += c.sum(0).astype(np.int64)
    return out, counts, notes


def run_target(run_dir: str | os.PathLike, inputs: np.ndarray, labels: np.ndarray | None,
               options: dict | None = None) -> SimResult:
    """Target ``norse``: ``run_dir/model.nir`` in Norse; ``options``: :class:`NorseOptions`."""
    o = SIMULATOR.parse_options(options)
    g = read_nir(Path(run_dir) / "model.nir")
    t0 = time.perf_counter()
    out, counts, notes = simulate_norse(g, inputs, dt_s=o.dt_s, batched=o.batched,
                                        batch_size=o.batch_size)
    wall = time.perf_counter() - t0
    return SimResult.from_run("norse", inputs, out, counts, labels, wall,
                              {"dt_s": o.dt_s or g.dt_s, "adaptations": notes,
                               "batched": o.batched})


class NorseOptions(Options):
    dt_s: DtSeconds | None = Field(None, description="time step (default: the graph's)")
    batched: bool = Field(False, description="one batched Norse graph instead of per sample")
    batch_size: PositiveInt = Field(256, description="samples per batch (batched=true)")


SIMULATOR = Simulator(
    name="norse", artifact="model.nir", summary="Norse's NIR import (torch)",
    options=NorseOptions,
    capabilities=Capabilities(precision=("float",), recurrent=True, conv=True,
                              per_neuron_tau=True),
    run_function="spikeship.sim.norse_runner:run_target", spike_source_rank=6)

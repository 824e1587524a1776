"""Synaptic operations in neurobench's convention, beside spikeship's own (pure function).

Both count, per synaptic layer, non-zero inputs times the synapses they drive. They
differ only where a pool sits between a population and the layer:

- spikeship (``synops_effective``): every *spike* that enters the pool is carried
  through it to the synapses of the next layer (``F(n)`` per presynaptic neuron, see
  :mod:`.synops`). That is what a chip without a pooling unit does: Loihi and Lava
  fold the pool into the next layer's weights, so each spike drives all of them.
- neurobench (``SynapticOperations``, ``neurobench/metrics/utils/layers/macs.py``): a
  hook on the next ``Conv2d``/``Linear`` sees the *pooled* tensor and counts one
  operation per non-zero pooled value x non-zero weight (as a MAC when the pooled
  values are not all 0/1 in that call, else an AC). Four coincident spikes in a 2x2
  window are one operation per synapse there, four in spikeship's count.

So ``synops_neurobench(l) = sum_p nz_p * F_l(p)`` over the positions ``p`` of the pool's
output, with ``nz_p`` the number of (sample, step) pairs in which the pooled value
was non-zero (``SimResult.pool_nonzero``, recorded by the reference simulator) and
``F_l`` the deployed fan-out of layer ``l``'s input; for a layer without a pool both
conventions are the same number.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from spikeship.errors import RunDirError
from spikeship.nir.layers import meta, synaptic_layers
from spikeship.energy.synops import SpikeCounts, SynopsReport, count_synops, layer_fanout
from spikeship.sim.result import SimResult

EXPLANATION = (
    "neurobench's SynapticOperations convention: a layer after a pool counts each "
    "non-zero *pooled value* x non-zero weight once (neurobench hooks the layer and sees "
    "the pooled tensor); spikeship's synops_effective carries every spike through the "
    "pool into the next layer (as Loihi/Lava, which fold the pool into the weights). "
    "Identical for layers without a pool.")


def without_zero_weights(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy of ``graph`` whose synaptic nodes' mask metadata is mask AND weight != 0."""
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)):
            w = np.asarray(node.weight)
            md = meta(node)
            mask = np.asarray(md["mask"]).astype(bool) if md.get("mask") is not None \
                else np.ones(w.shape, dtype=bool)
            node = copy.copy(node)
            node.metadata = {**(node.metadata or {}), "mask": mask & (w != 0)}
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata,
                        type_check=False)


def neurobench_synops(graph: nir.NIRGraph, rep: SynopsReport, pool_nonzero: dict,
                      samples: int, source: str,
                      original_shapes: dict | None = None,
                      spikeship: SynopsReport | None = None) -> dict:
    """``energy.json``'s ``synops_neurobench`` block (per sample); ``graph`` and ``rep``
    without zero weights, ``spikeship`` the deployed count (default ``rep``)."""
    layers = {l.name: l for l in synaptic_layers(graph, original_shapes)}
    per_layer, missing = {}, []
    deployed = {lr.layer: lr.synops_effective for lr in (spikeship or rep).layers}
    for lr in rep.layers:
        layer = layers[lr.layer]
        pools = [st for st in layer.stages if st.kind == "pool"]
        if not pools:
            per_layer[lr.layer] = {"ops": lr.synops_effective, "op": lr.op,
                                   "same_as_spikeship": lr.synops_effective == deployed[lr.layer]}
            continue
        last = pools[-1]
        if layer.stages.index(last) < len(layer.stages) - 1 and any(
                st.kind != "flatten" for st in layer.stages[layer.stages.index(last) + 1:]):
            missing.append(lr.layer)
            continue
        nz = pool_nonzero.get(last.name)
        if nz is None:
            missing.append(lr.layer)
            continue
        f = layer_fanout(layer)
        ops = float((np.asarray(nz, np.float64).reshape(f.shape) * f).sum()) / samples
        per_layer[lr.layer] = {"ops": ops, "op": "MAC", "same_as_spikeship": False,
                               "pool": last.name, "spikeship_ops": deployed[lr.layer]}
    if missing:
        return {"available": False, "layers": per_layer,
                "reason": f"no pooled non-zero counts for {missing} in {source} (run "
                          "`spikeship simulate RUN --target reference`, which records them)",
                "explanation": EXPLANATION}
    total = sum(v["ops"] for v in per_layer.values())
    ours = (spikeship or rep).total("synops_effective")
    return {"available": True, "source": source, "samples": samples, "layers": per_layer,
            "total_ops_per_sample": total, "spikeship_total_ops_per_sample": ours,
            "spikeship_over_neurobench": ours / total if total else None,
            "explanation": EXPLANATION}


def for_run(run_dir, graph: nir.NIRGraph, original_shapes: dict | None = None) -> dict:
    """The block for a run directory: from ``simulate-reference`` (the simulation that
    records pooled values), counted on the same spikes in both conventions."""
    try:
        res = SimResult.load(run_dir, "reference")
    except RunDirError as e:
        return {"available": False, "reason": f"{e}", "explanation": EXPLANATION}
    counts = SpikeCounts.from_result(res)
    nz = without_zero_weights(graph)
    return neurobench_synops(nz, count_synops(nz, counts, original_shapes), res.pool_nonzero,
                             res.samples, "simulate-reference", original_shapes,
                             spikeship=count_synops(graph, counts, original_shapes))

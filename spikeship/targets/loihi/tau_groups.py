"""Per-neuron time constants on Lava: a NIR population split into groups of equal ones.

Lava's LIF has one ``du`` and one ``dv`` per process, NIR a time constant per neuron.
A population whose neurons have several distinct values (``tau`` of a LIF;
``(tau_syn, tau_mem)`` of a CubaLIF) becomes one Lava population per distinct value,
``<name>~<j>``, holding the neurons ``members[j]`` (flat C-order indices, in increasing
order). Every synapse into the population is split by rows, every synapse out of it by
columns; the groups share the population's depth, so the timing is unchanged and the
result is the same network (the split is exact: neurons interact only through
synapses). Counts and output spikes are put back in NIR order by
:meth:`~.deployment.Deployment.merge_counts` and
:meth:`~.deployment.Deployment.assemble_output`.

Only where every synapse into and out of the population is an Affine/Linear: a conv
population (per-pixel time constants) or a recurrent one keeps the rule
``uniform-time-constant`` (:func:`.lower._check_splittable`).

Fixed point (:func:`share_quantised_decays`, applied before lowering for ``lava-fixed``
and ``loihi-emu``): Lava holds the decays as integers ``rint(4096 dt/tau)``
(:func:`.quantize.quantize_deployment`'s rounding as :func:`.deploy.deployment_for`
calls it), so neurons whose time constants give the same integers run the same
arithmetic: their time constants are set to the first such neuron's and they share
one process.
"""

from __future__ import annotations

import dataclasses

import nir
import numpy as np

PER_NEURON = ("r", "v_threshold", "v_reset", "v_leak", "tau", "tau_syn", "tau_mem", "w_in")


def _keys(node) -> tuple[str, ...]:
    kind = type(node).__name__
    return {"LIF": ("tau",), "CubaLIF": ("tau_syn", "tau_mem")}.get(kind, ())


def tau_groups(name: str, node, shape) -> list[np.ndarray] | None:
    """Flat member indices of each group of equal time constants, or None if uniform."""
    keys = _keys(node)
    if not keys:
        return None
    cols = [np.broadcast_to(np.asarray(getattr(node, k), dtype=np.float64), shape).reshape(-1)
            for k in keys]
    table = np.stack(cols, axis=1)
    uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    if len(uniq) == 1:
        return None
    # relative spread below 1e-6 counts as uniform (as rules.uniform_time_constant does)
    if all(np.allclose(c, c[0], rtol=1e-6, atol=0) for c in cols):
        return None
    inverse = np.asarray(inverse).reshape(-1)
    return [np.flatnonzero(inverse == j).astype(np.int64) for j in range(len(uniq))]


def subset_node(node, shape, idx: np.ndarray):
    """The NIR neuron ``node`` restricted to flat indices ``idx`` (1-D parameters)."""
    changes = {}
    for k in PER_NEURON:
        v = getattr(node, k, None)
        if v is not None:
            changes[k] = np.broadcast_to(np.asarray(v), shape).reshape(-1)[idx].copy()
    return dataclasses.replace(node, **changes)


def share_quantised_decays(graph: nir.NIRGraph, dt_s: float | None) -> nir.NIRGraph:
    """``graph`` with every neuron's time constants snapped to the first of those that
    quantise to the same Lava decay integers (module docstring); unchanged nodes kept."""
    if not dt_s:
        return graph
    nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        keys = _keys(node)
        if not keys:
            continue
        arrays = [np.asarray(getattr(node, k), dtype=np.float64) for k in keys]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        table = np.stack([np.broadcast_to(a, shape).reshape(-1) for a in arrays], axis=1)
        x = 4096.0 * float(dt_s) / table
        _, first, inverse = np.unique(np.rint(x), axis=0, return_index=True,
                                      return_inverse=True)
        snapped = table[first[np.asarray(inverse).reshape(-1)]]
        if np.array_equal(snapped, table):
            continue
        nodes[name] = dataclasses.replace(node, **{
            k: snapped[:, i].reshape(shape) for i, k in enumerate(keys)})
    return nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata,
                        type_check=False)

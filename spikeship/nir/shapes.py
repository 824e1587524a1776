"""Shapes of NIR nodes (one unbatched sample): the one shape inference of spikeship.

:func:`node_output_shape` gives a node's output shape from its input shape, per node
type (conv / pool sizes by :mod:`spikeship.nir.geometry`), checking that the node's
parameters fit the input; :func:`infer_shapes` walks a graph in execution order from
its ``Input`` and checks every declared ``input_type`` / ``output_type``. The validated
read (:mod:`spikeship.nir.read`) and the Loihi lowering use it.
"""

from __future__ import annotations

import numpy as np

from spikeship.errors import GraphError
from spikeship.nir.geometry import conv_params, pool_params, spatial_out


def _flatten_out(name, node, in_shape) -> tuple[int, ...]:
    nd = len(in_shape)
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    start, end = start + nd if start < 0 else start, end + nd if end < 0 else end
    if not 0 <= start <= end < nd:
        raise GraphError(f"node {name!r}: Flatten dims ({node.start_dim}, {node.end_dim}) do not "
                         f"fit an input of shape {list(in_shape)} (NIR shapes have no batch dim)")
    return (*in_shape[:start], int(np.prod(in_shape[start:end + 1])), *in_shape[end + 1:])


def _param_shape(name, node, keys, in_shape) -> tuple[int, ...]:
    for key in keys:
        v = getattr(node, key, None)
        if v is None:
            raise GraphError(f"node {name!r}: missing parameter {key!r}")
        if tuple(np.shape(v)) != tuple(in_shape):
            raise GraphError(f"node {name!r} ({type(node).__name__}): parameter {key!r} has shape "
                             f"{list(np.shape(v))}, the input is {list(in_shape)}")
    return tuple(in_shape)


NEURON_KEYS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
}


def neuron_shape(node) -> tuple[int, ...] | None:
    """The population shape a neuron node's own parameters give (the shape of its first
    parameter of :data:`NEURON_KEYS`), or None when that parameter is a scalar."""
    keys = NEURON_KEYS.get(type(node).__name__, ("v_threshold",))
    v = getattr(node, keys[0], None)
    shp = tuple(int(d) for d in np.shape(v))
    return shp or None


def node_output_shape(name: str, node, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of ``node`` for one sample of shape ``in_shape``; raises
    :class:`GraphError` when the parameters do not fit the input."""
    t = type(node).__name__
    if t in ("Input", "Output"):
        return tuple(in_shape)
    if t in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise GraphError(f"node {name!r}: {t} weight must be 2-d (out, in), got {w.shape}")
        if tuple(in_shape) != (w.shape[1],):
            raise GraphError(f"node {name!r}: {t} expects input [{w.shape[1]}], receives "
                             f"{list(in_shape)}")
        if t == "Affine" and np.shape(node.bias) != (w.shape[0],):
            raise GraphError(f"node {name!r}: bias shape {np.shape(node.bias)} does not fit "
                             f"{w.shape[0]} outputs")
        return (int(w.shape[0]),)
    if t == "Scale":
        return _param_shape(name, node, ("scale",), in_shape)
    if t == "Conv2d":
        p = conv_params(name, node)
        w = p["weight"]
        if len(in_shape) != 3 or in_shape[0] != w.shape[1] * p["groups"]:
            raise GraphError(f"node {name!r}: Conv2d with weight {list(w.shape)} expects "
                             f"({w.shape[1] * p['groups']}, H, W), receives {list(in_shape)}")
        if getattr(node, "input_shape", None) is not None:
            declared = tuple(int(x) for x in np.asarray(node.input_shape).reshape(-1))
            if declared != tuple(in_shape[1:]):
                raise GraphError(f"node {name!r}: declared input_shape {list(declared)} but "
                                 f"receives {list(in_shape[1:])}")
        hw = spatial_out(name, in_shape, w.shape[2:], p["stride"], p["padding"], p["dilation"])
        return (int(w.shape[0]), *hw)
    if t in ("SumPool2d", "AvgPool2d"):
        p = pool_params(name, node)
        if len(in_shape) != 3:
            raise GraphError(f"node {name!r}: {t} expects (C, H, W), receives {list(in_shape)}")
        return (in_shape[0], *spatial_out(name, in_shape, p["kernel"], p["stride"], p["padding"]))
    if t == "Flatten":
        return _flatten_out(name, node, in_shape)
    if t in NEURON_KEYS:
        return _param_shape(name, node, NEURON_KEYS[t], in_shape)
    raise GraphError(f"node {name!r}: no shape rule for type {t}")


def declared(types) -> tuple[int, ...] | None:
    if not types:
        return None
    v = next(iter(types.values()))
    return None if v is None else tuple(int(x) for x in np.asarray(v).reshape(-1))


def infer_shapes(nodes: dict, order: list[str], sources: dict[str, list[str]],
                 recurrent: dict[str, list[str]], inp: str, max_node_elements: int
                 ) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """``(in_shape, out_shape)`` of every node, from the ``Input``'s declared shape along
    ``order`` (feed-forward ``sources``), checked against every declared type, every
    parameter shape and the ``recurrent`` edges; no node may hold more than
    ``max_node_elements``."""
    in_shape: dict[str, tuple[int, ...]] = {}
    out_shape: dict[str, tuple[int, ...]] = {}
    for name in order:
        node = nodes[name]
        if name == inp:
            shape = declared(node.input_type)
            if shape is None:
                raise GraphError(f"the Input node {name!r} declares no shape")
            src_shape = shape
        else:
            shapes = {out_shape[s] for s in sources[name]}
            if len(shapes) != 1:
                raise GraphError(f"node {name!r} receives inputs of different shapes "
                                 f"{sorted(shapes)} from {sources[name]}")
            src_shape = shapes.pop()
        declared_in = declared(getattr(node, "input_type", None))
        if declared_in is not None and name != inp and declared_in != src_shape \
                and int(np.prod(declared_in)) != 0:
            raise GraphError(f"type mismatch: {sources[name]} -> {name!r}: node expects "
                             f"{list(declared_in)}, receives {list(src_shape)}")
        out = node_output_shape(name, node, src_shape)
        declared_out = declared(getattr(node, "output_type", None))
        if declared_out is not None and declared_out != out and name != inp:
            raise GraphError(f"node {name!r}: declared output {list(declared_out)} but the "
                             f"parameters give {list(out)}")
        if int(np.prod(out, dtype=np.float64)) > max_node_elements:
            raise GraphError(f"node {name!r} would hold {list(out)} elements "
                             f"(limit {max_node_elements})")
        in_shape[name], out_shape[name] = src_shape, out
    for name, srcs in recurrent.items():
        for s in srcs:
            if out_shape[s] != in_shape[name]:
                raise GraphError(f"recurrent edge {s!r} -> {name!r}: shape {list(out_shape[s])} "
                                 f"does not fit the input {list(in_shape[name])}")
    return in_shape, out_shape

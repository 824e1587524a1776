"""Normalise a NIR graph as the field's exporters write it, before validation.

What is changed (each change is returned as a record, never silent):

- ``Input`` / ``Output`` types with leading size-1 batch/time dimensions (Norse and
  Rockpool export the sample's batch dimension, Rockpool also a time dimension:
  ``[1, 12]``, ``[1, 1, 5]``) are cut to the shape of the node they feed or are fed by;
- scalar neuron parameters are broadcast to the shape of the node's other parameters
  (or of the weight that feeds it);
- a ``Conv2d`` without ``input_shape`` (Norse, Sinabs and snnTorch write ``None``) gets
  the shape of the ``Input`` that feeds it directly.

What cannot be normalised is a :class:`~spikeship.errors.GraphError` naming the node.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import nir
import numpy as np

from spikeship.errors import GraphError

NEURON_PARAMS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


@dataclass(frozen=True)
class Change:
    """One change made to the graph: node, what, before -> after, and why."""

    node: str
    what: str
    before: str
    after: str
    why: str

    def as_dict(self) -> dict:
        return asdict(self)


def _shape(v) -> list[int] | None:
    if v is None:
        return None
    if isinstance(v, dict):
        v = next(iter(v.values()), None)
    return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]


def _consumer_shape(node) -> list[int] | None:
    """The input shape a node's parameters fix (Affine/Linear: in-features)."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        return [int(np.asarray(node.weight).shape[-1])]
    if isinstance(node, nir.Conv2d) and node.input_shape is not None:
        return [int(np.asarray(node.weight).shape[1]), *map(int, np.asarray(node.input_shape))]
    return None


def _producer_shape(node) -> list[int] | None:
    """The output shape a node's parameters fix (a weight's rows, a neuron's parameters)."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        return [int(np.asarray(node.weight).shape[0])]
    shapes = [np.shape(getattr(node, k)) for k in NEURON_PARAMS
              if getattr(node, k, None) is not None and np.ndim(getattr(node, k)) > 0]
    return list(max(shapes, key=len)) if shapes else None


def _cut(declared: list[int], target: list[int] | None) -> list[int] | None:
    """``declared`` without its leading size-1 dimensions when the rest is ``target``."""
    if target is None or declared == target or len(declared) <= len(target):
        return None
    extra = declared[: len(declared) - len(target)]
    if all(d == 1 for d in extra) and declared[len(extra):] == target:
        return target
    return None


def _io_dims(g: nir.NIRGraph, changes: list[Change]) -> None:
    succ, pred = {}, {}
    for a, b in g.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for name, node in g.nodes.items():
        if isinstance(node, nir.Input):
            declared = _shape(node.input_type)
            near = [_consumer_shape(g.nodes[b]) for b in succ.get(name, [])]
            attr = "input_type"
        elif isinstance(node, nir.Output):
            declared = _shape(node.output_type)
            near = [_producer_shape(g.nodes[a]) for a in pred.get(name, [])]
            attr = "output_type"
        else:
            continue
        if declared is None:
            continue
        cut = next((c for c in (_cut(declared, s) for s in near) if c is not None), None)
        if cut is None:
            continue
        for a in ("input_type", "output_type"):     # nir keeps the I/O type on both sides
            key = next(iter(getattr(node, a) or {}), a.split("_")[0])
            setattr(node, a, {key: np.array(cut)})
        changes.append(Change(name, attr, str(declared), str(cut),
                              "leading size-1 batch/time dimensions of the exporter's sample"))


def _scalars(g: nir.NIRGraph, changes: list[Change]) -> None:
    pred = {}
    for a, b in g.edges:
        pred.setdefault(b, []).append(a)
    for name, node in g.nodes.items():
        keys = [k for k in NEURON_PARAMS if getattr(node, k, None) is not None]
        if not keys or isinstance(node, (nir.Input, nir.Output)):
            continue
        shape = _producer_shape(node)
        if shape is None:   # every parameter scalar: the feeding weight gives the size
            fed = [_producer_shape(g.nodes[a]) for a in pred.get(name, [])
                   if isinstance(g.nodes[a], (nir.Affine, nir.Linear))]
            shape = fed[0] if fed else None
        if shape is None:
            continue
        for k in keys:
            v = np.asarray(getattr(node, k))
            if v.ndim == 0 or v.shape == (1,) and shape != [1]:
                setattr(node, k, np.full(shape, float(v.reshape(-1)[0]), dtype=v.dtype))
                changes.append(Change(name, k, f"scalar {float(v.reshape(-1)[0])!r}",
                                      f"shape {shape}", "scalar parameter broadcast"))
            elif list(v.shape) != shape and v.ndim < len(shape):
                raise GraphError(f"node {name!r}: parameter {k} has shape {list(v.shape)}, "
                                 f"the node's shape is {shape}; cannot broadcast it")
        _empty_types(name, node, shape, changes)


def _empty_types(name: str, node, shape: list[int], changes: list[Change]) -> None:
    """A neuron's declared types written as ``[]`` (scalar parameters) take its shape."""
    for attr in ("input_type", "output_type"):
        declared = getattr(node, attr, None)
        if isinstance(declared, dict) and declared and _shape(declared) == []:
            key = next(iter(declared))
            setattr(node, attr, {key: np.array(shape)})
            changes.append(Change(name, attr, "[]", str(shape), "type inferred from the "
                                  "node's parameters"))


def _conv_inputs(g: nir.NIRGraph, changes: list[Change]) -> None:
    for a, b in g.edges:
        node, src = g.nodes[b], g.nodes[a]
        if not isinstance(node, nir.Conv2d) or node.input_shape is not None:
            continue
        if isinstance(src, nir.Input) and len(_shape(src.input_type) or []) == 3:
            hw = np.array(_shape(src.input_type)[1:])
            node.input_shape = hw
            changes.append(Change(b, "input_shape", "None", str(hw.tolist()),
                                  "inferred from the Input that feeds it"))
    for name, node in g.nodes.items():
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            raise GraphError(f"node {name!r} (Conv2d) has no input_shape and is not fed by the "
                             "graph's Input: its input shape cannot be inferred")


def normalize(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[Change]]:
    """The graph with the changes above made in place; and the list of changes."""
    changes: list[Change] = []
    _scalars(graph, changes)
    _io_dims(graph, changes)
    _conv_inputs(graph, changes)
    return graph, changes

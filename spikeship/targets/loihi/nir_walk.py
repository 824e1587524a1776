"""Walking a NIR graph for the Loihi lowering: shapes, paths into populations, folding.

:class:`NirWalk` infers every node's (unbatched) shape and finds, for each neuron
population, the paths ``source -> [pool | flatten]* -> synaptic layer -> population``.
:func:`fold_path` folds the pools and flattens of a path into its synaptic layer
(math in :mod:`spikeship.targets.loihi.lower`); everything stays in NIR layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from spikeship.errors import GraphError
from spikeship.nir.shapes import pair
from spikeship.targets.loihi import rules

NEURONS = ("LIF", "CubaLIF", "IF")
SYNAPTIC = ("Affine", "Linear", "Conv2d")
POOLS = ("SumPool2d", "AvgPool2d")


def _kind(node) -> str:
    return type(node).__name__


@dataclass
class FoldedLayer:
    """A synaptic layer with everything before it folded in (NIR layout, float64)."""

    kind: str                       # "dense" | "conv"
    weights: np.ndarray
    mask: np.ndarray                # bool, weights' shape: True = synapse exists
    bias: np.ndarray | None         # (C_out,) or (out,)
    source_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    folded: tuple[str, ...] = ()
    flatten: bool = False


class NirWalk:
    """Shapes and paths of a NIR graph (one instance per :func:`lower` call)."""

    def __init__(self, graph: nir.NIRGraph):
        self.g = graph
        for name, node in graph.nodes.items():
            rules.supported_node(name, node)
        self.preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
        self.succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for a, b in graph.edges:
            if a not in graph.nodes or b not in graph.nodes:
                raise GraphError(f"edge ({a}, {b}) names a node that does not exist")
            self.preds[b].append(a)
            self.succs[a].append(b)
        inputs = [n for n, v in graph.nodes.items() if _kind(v) == "Input"]
        outputs = [n for n, v in graph.nodes.items() if _kind(v) == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise GraphError(f"need exactly one Input and one Output node, got {inputs}, {outputs}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(v) for v in
                                 np.asarray(graph.nodes[self.input].input_type["input"]).ravel())
        self._shapes: dict[str, tuple[int, ...]] = {}

    def node(self, name):
        return self.g.nodes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        """Output shape (unbatched NIR) of node ``name``."""
        if name in self._shapes:
            return self._shapes[name]
        node, kind = self.node(name), _kind(self.node(name))
        if kind == "Input":
            s = self.input_shape
        elif kind in NEURONS:
            s = tuple(np.shape(node.v_threshold if kind != "IF" else node.r))
            if len(s) == 0:
                feed = [p for p in self.preds[name] if p != name]
                if not feed:
                    raise GraphError(f"cannot infer the shape of neuron node '{name}'")
                self._shapes[name] = ()          # guard against cycles
                s = self.shape(feed[0])
        else:
            (src,) = self.single_pred(name)
            s = self._op_shape(name, node, kind, self.shape(src))
        self._shapes[name] = tuple(int(v) for v in s)
        return self._shapes[name]

    def _op_shape(self, name, node, kind, ins):
        if kind in ("Affine", "Linear"):
            return (node.weight.shape[0],)
        if kind == "Flatten":
            nd = len(ins)
            a, b = int(node.start_dim) % max(nd, 1), int(node.end_dim) % max(nd, 1)
            return (*ins[:a], int(np.prod(ins[a:b + 1])), *ins[b + 1:])
        if len(ins) != 3:
            raise GraphError(f"node '{name}' ({kind}) needs a (C, H, W) input, got {ins}")
        if kind == "Conv2d":
            k = node.weight.shape[2:]
            st, pad, dil, _ = conv_params(name, node)
            hw = [(ins[i + 1] + 2 * pad[i] - dil[i] * (k[i] - 1) - 1) // st[i] + 1 for i in (0, 1)]
            return (node.weight.shape[0], *hw)
        k, st, pad = pair(node.kernel_size), pair(node.stride), pair(node.padding)
        return (ins[0], *[(ins[i + 1] + 2 * pad[i] - k[i]) // st[i] + 1 for i in (0, 1)])

    def single_pred(self, name: str) -> list[str]:
        p = self.preds[name]
        if len(p) != 1:
            raise rules.violation("one-synapse-per-path", name,
                                  f"{_kind(self.node(name))} has {len(p)} inputs; only neuron "
                                  f"populations may sum several inputs")
        return p

    def paths_into(self, pop: str) -> list[tuple[str, list[str]]]:
        """``(source, [op, ..., synaptic])`` for every edge into neuron node ``pop``."""
        out = []
        for pred in self.preds[pop]:
            ops, cur = [], pred
            while _kind(self.node(cur)) not in (*NEURONS, "Input"):
                ops.insert(0, cur)
                (cur,) = self.single_pred(cur)
            n_syn = sum(_kind(self.node(o)) in SYNAPTIC for o in ops)
            rules.one_synapse_per_path(pop, [cur, *ops, pop], n_syn)
            if _kind(self.node(ops[-1])) not in SYNAPTIC:
                raise rules.violation("one-synapse-per-path", pop,
                                      f"{ops[-1]} sits between the synaptic layer and the "
                                      f"population; only pools/flattens before it are folded")
            out.append((cur, ops))
        return out


def conv_params(name: str, node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]:
    """stride, padding, dilation (H, W) and groups of a NIR Conv2d ('same'/'valid' resolved)."""
    st, dil = pair(node.stride), pair(node.dilation)
    if isinstance(node.padding, str):
        if node.padding == "valid":
            pad = (0, 0)
        else:
            k = node.weight.shape[2:]
            if any((d * (kk - 1)) % 2 for d, kk in zip(dil, k)) or st != (1, 1):
                raise rules.violation("supported-node", name, "padding='same' needs an odd "
                                      "effective kernel and stride 1")
            pad = tuple(d * (kk - 1) // 2 for d, kk in zip(dil, k))
    else:
        pad = pair(node.padding)
    return st, pad, dil, int(np.asarray(node.groups).ravel()[0])


def existing(node) -> np.ndarray:
    """Which synapses of a synaptic node exist: its ``mask`` metadata, else nonzero weights."""
    w = np.asarray(node.weight)
    mask = (node.metadata or {}).get("mask") if hasattr(node, "metadata") else None
    if mask is None:
        return w != 0
    mask = np.asarray(mask).astype(bool)
    if mask.shape != w.shape:
        raise GraphError(f"mask metadata of shape {mask.shape} does not fit weight {w.shape}")
    return mask


def fold_path(g: NirWalk, ops: list[str]) -> FoldedLayer:
    """The synaptic node of ``ops`` with the pools/flattens before it folded in."""
    syn = g.node(ops[-1])
    kind = "conv" if _kind(syn) == "Conv2d" else "dense"
    w = np.asarray(syn.weight, dtype=np.float64)
    bias = None if _kind(syn) == "Linear" else np.asarray(syn.bias, dtype=np.float64)
    lin = FoldedLayer(kind, w.copy(), existing(syn), bias, g.shape(g.preds[ops[-1]][0]))
    if kind == "conv":
        lin.stride, lin.padding, lin.dilation, lin.groups = conv_params(ops[-1], syn)
    for name in reversed(ops[:-1]):
        node, nk = g.node(name), _kind(g.node(name))
        in_shape = g.shape(g.preds[name][0])
        if nk == "Flatten":
            rules.flatten_to_vector(name, g.shape(name), lin.kind)
            lin.flatten, lin.source_shape = True, in_shape
        else:
            _fold_pool(name, node, nk, in_shape, lin)
        lin.folded = (name, *lin.folded)
    if lin.kind == "dense" and len(lin.source_shape) != 1 and not lin.flatten:
        raise rules.violation("flatten-to-vector", ops[-1],
                              f"Affine reads a {lin.source_shape} input without a Flatten")
    return lin


def _fold_pool(name, node, nk, in_shape, lin: FoldedLayer) -> None:
    k, st, pad = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    rules.pool_foldable(name, k, st, pad, in_shape[1:], lin.kind,
                        lin.padding if lin.kind == "conv" else (0, 0))
    scale = 1.0 / (k[0] * k[1]) if nk == "AvgPool2d" else 1.0
    if lin.kind == "conv":
        if lin.dilation != (1, 1):
            raise rules.violation("pool-foldable", name, "the next conv is dilated")
        rep = lambda a: np.repeat(np.repeat(a, k[0], axis=2), k[1], axis=3)  # noqa: E731
        lin.weights, lin.mask = rep(lin.weights) * scale, rep(lin.mask)
        lin.stride = (lin.stride[0] * k[0], lin.stride[1] * k[1])
        lin.padding = (lin.padding[0] * k[0], lin.padding[1] * k[1])
    else:
        c, hp, wp = (in_shape[0], in_shape[1] // k[0], in_shape[2] // k[1])
        out = lin.weights.shape[0]
        w4, m4 = lin.weights.reshape(out, c, hp, wp), lin.mask.reshape(out, c, hp, wp)
        w = np.zeros((out, *in_shape))
        m = np.zeros((out, *in_shape), dtype=bool)
        rep = lambda a: np.repeat(np.repeat(a, k[0], axis=2), k[1], axis=3)  # noqa: E731
        w[:, :, :hp * k[0], :wp * k[1]] = rep(w4) * scale
        m[:, :, :hp * k[0], :wp * k[1]] = rep(m4)
        lin.weights, lin.mask = w.reshape(out, -1), m.reshape(out, -1)
    lin.source_shape = tuple(in_shape)

"""Walking a NIR graph for the Loihi lowering: shapes, paths into populations, folding.

:class:`NirWalk` finds, for each neuron population, the paths
``source -> [pool | flatten]* -> synaptic layer -> population`` (the wiring, the walk
back, the shapes, the node categories and the conv / pool geometry are
:mod:`spikeship.nir`'s).
:func:`fold_path` folds the pools and flattens of a path into its synaptic layer
(math in :mod:`spikeship.targets.loihi.lower`); everything stays in NIR layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from spikeship.errors import GraphError
from spikeship.nir.categories import INPUT, OUTPUT, SPIKING, SYNAPSES, kind
from spikeship.nir.geometry import conv_params, pool_params
from spikeship.nir.graph import order_and_back_edges, walk_back, wiring
from spikeship.nir.layers import existing
from spikeship.nir.shapes import neuron_shape, node_output_shape
from spikeship.targets.loihi import rules

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
    """Shapes and paths of a NIR graph (one instance per :func:`lower` call); the wiring,
    the walk back and the shapes are :mod:`spikeship.nir`'s."""

    def __init__(self, graph: nir.NIRGraph):
        self.g = graph
        for name, node in graph.nodes.items():
            rules.supported_node(name, node)
        self._edges = [(str(a), str(b)) for a, b in graph.edges]
        self.wire = wiring(graph.nodes, self._edges)
        self.preds, self.succs = self.wire.preds, self.wire.succs
        inputs = [n for n, v in graph.nodes.items() if kind(v) == INPUT]
        outputs = [n for n, v in graph.nodes.items() if kind(v) == OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise GraphError(f"need exactly one Input and one Output node, got {inputs}, {outputs}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_shape = tuple(int(v) for v in
                                 np.asarray(graph.nodes[self.input].input_type["input"]).ravel())
        _, back = order_and_back_edges(graph.nodes, self._edges, [self.input])
        self._ff = {n: [a for a in ps if (a, n) not in back] for n, ps in self.preds.items()}
        self._shapes: dict[str, tuple[int, ...]] = {self.input: self.input_shape}

    def node(self, name):
        return self.g.nodes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        """Output shape (unbatched NIR) of node ``name``: :func:`spikeship.nir.shapes.
        node_output_shape` along the feed-forward edges, evaluated only as far as asked
        (so a design rule about a node is raised before a shape check beyond it)."""
        if name not in self._shapes:
            node = self.node(name)
            own = neuron_shape(node) if kind(node) in SPIKING else None
            if own is None:
                feed = self._ff[name] if kind(node) in SPIKING else self.single_pred(name)
                if not feed:
                    raise GraphError(f"cannot infer the shape of node '{name}': no input")
                own = self.shape(feed[0])
            self._shapes[name] = node_output_shape(name, node, own)
        return self._shapes[name]

    def _fan_in(self, name: str, n: int) -> Exception:
        return rules.violation("one-synapse-per-path", name,
                               f"{kind(self.node(name))} has {n} inputs; only neuron "
                               f"populations may sum several inputs")

    def single_pred(self, name: str) -> list[str]:
        p = self.preds[name]
        if len(p) != 1:
            raise self._fan_in(name, len(p))
        return p

    def paths_into(self, pop: str) -> list[tuple[str, list[str]]]:
        """``(source, [op, ..., synaptic])`` for every edge into neuron node ``pop``."""
        out = []
        for pred in self.preds[pop]:
            if kind(self.node(pred)) in (*SPIKING, INPUT):
                cur, ops = pred, []
            else:
                cur, chain = walk_back(self.g.nodes, self.wire, pred, fan_in=self._fan_in)
                ops = [*chain, pred]
            n_syn = sum(kind(self.node(o)) in SYNAPSES for o in ops)
            rules.one_synapse_per_path(pop, [cur, *ops, pop], n_syn)
            if kind(self.node(ops[-1])) not in SYNAPSES:
                raise rules.violation("one-synapse-per-path", pop,
                                      f"{ops[-1]} sits between the synaptic layer and the "
                                      f"population; only pools/flattens before it are folded")
            out.append((cur, ops))
        return out


def fold_path(g: NirWalk, ops: list[str]) -> FoldedLayer:
    """The synaptic node of ``ops`` with the pools/flattens before it folded in."""
    syn = g.node(ops[-1])
    lkind = "conv" if kind(syn) == "Conv2d" else "dense"
    w = np.asarray(syn.weight, dtype=np.float64)
    bias = None if kind(syn) == "Linear" else np.asarray(syn.bias, dtype=np.float64)
    lin = FoldedLayer(lkind, w.copy(), existing(ops[-1], syn)[0], bias,
                      g.shape(g.preds[ops[-1]][0]))
    if lkind == "conv":
        p = conv_params(ops[-1], syn)
        lin.stride, lin.padding, lin.dilation, lin.groups = (p["stride"], p["padding"],
                                                             p["dilation"], p["groups"])
    for name in reversed(ops[:-1]):
        node, nk = g.node(name), kind(g.node(name))
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
    p = pool_params(name, node)
    k, st, pad = p["kernel"], p["stride"], p["padding"]
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

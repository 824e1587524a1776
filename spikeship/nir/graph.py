"""The graph walk of NIR graphs: predecessors and successors, recurrent (back) edges,
the execution order, and the walk from a node back to the population feeding it.

Recurrent edges are the back edges of a depth-first walk from the ``Input`` (then from
every node not yet reached, in natural name order), following edges in the file's
order; they carry the *previous* step's output. The execution order is Kahn's order
of the remaining (feed-forward) edges, first in first out, seeded with the inputs: a
NIR file read back from HDF5 lists its nodes alphabetically (``fc10`` before
``fc7``), so the order of ``graph.nodes`` is never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import nir

from spikeship.errors import GraphError
from spikeship.nir.categories import INPUT, SPIKING, kind


@dataclass(frozen=True)
class Wiring:
    """Who feeds whom: ``preds[n]`` / ``succs[n]`` in the graph's edge order."""

    preds: dict[str, list[str]]
    succs: dict[str, list[str]]


def wiring(nodes, edges) -> Wiring:
    """The :class:`Wiring` of ``nodes`` and ``edges``; a dangling edge is a GraphError."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    succs: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a not in preds or b not in preds:
            raise GraphError(f"edge ({a}, {b}) names a node that does not exist")
        preds[b].append(a)
        succs[a].append(b)
    return Wiring(preds, succs)


def natural(name: str) -> list:
    """Sort key that puts ``fc7`` before ``fc10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def reach(start: str, nxt: dict[str, list[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``nxt`` (``start`` included)."""
    seen, stack = {start}, [start]
    while stack:
        for m in nxt[stack.pop()]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return seen


def _back_edges(start: str, succ: dict[str, list[str]], state: dict[str, int]) -> set:
    """Edges closing a cycle in a depth-first walk from ``start`` (edge-list order);
    ``state`` (1 = on the stack, 2 = finished) is shared between walks."""
    back: set[tuple[str, str]] = set()
    state[start] = 1
    stack = [(start, iter(succ[start]))]
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            state[node] = 2
            stack.pop()
        elif state.get(nxt) == 1:
            back.add((node, nxt))
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(succ[nxt])))
    return back


def order_and_back_edges(nodes, edges, starts: list[str]
                         ) -> tuple[list[str], set[tuple[str, str]]]:
    """``(execution order, back edges)`` of a graph (module docstring); the walks start
    from ``starts`` in turn, then from any node not yet reached (natural order)."""
    succ = wiring(nodes, edges).succs
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    roots = [*starts, *sorted(nodes, key=natural)]
    for s in roots:
        if s not in state:
            back |= _back_edges(s, succ, state)
    fwd = [(a, b) for a, b in edges if (a, b) not in back]
    indeg = {n: 0 for n in nodes}
    for _, b in fwd:
        indeg[b] += 1
    order, ready, queued = [], [], set()
    for s in roots:
        if indeg[s] == 0 and s not in queued:
            ready.append(s)
            queued.add(s)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for a, b in fwd:
            if a == n:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    if len(order) != len(nodes):  # pragma: no cover - back edges leave no cycle
        raise GraphError("cannot order the graph for execution")
    return order, back


def topological_order(graph: nir.NIRGraph) -> list[str]:
    """Node names in execution order, inputs first (recurrent edges ignored)."""
    edges = [(str(a), str(b)) for a, b in graph.edges]
    inputs = [n for n, v in graph.nodes.items() if kind(v) == INPUT]
    return order_and_back_edges(graph.nodes, edges, inputs)[0]


def walk_back(nodes, wire: Wiring, name: str, *, through: tuple[str, ...] | None = None,
              fan_in: Callable[[str, int], Exception]) -> tuple[str, list[str]]:
    """``(source, passed)``: from node ``name`` back along single incoming edges to the
    first spiking neuron or ``Input`` (the *source*); ``passed`` are the nodes in
    between, in forward order (``name`` excluded). With ``through`` (NIR type names)
    the walk also stops at the first node of another type and returns it as the
    source, for the caller to judge. A node with other than one input raises
    ``fan_in(node, number of inputs)``."""
    passed: list[str] = []
    cur = name
    while True:
        preds = wire.preds[cur]
        if len(preds) != 1:
            raise fan_in(cur, len(preds))
        cur = preds[0]
        k = kind(nodes[cur])
        if k in SPIKING or k == INPUT or (through is not None and k not in through):
            return cur, passed
        passed.insert(0, cur)

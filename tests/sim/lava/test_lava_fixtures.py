"""Tiny NIR graphs for the Lava tests (odd sizes, CONVENTIONS.md layout), and their checks.

``direct_cnn``: ``input (1, 6, 6) -> conv0 (3, 3x3, pad 1) -> lif1 -> pool2 (SumPool 2,
1/4 folded into conv3) -> conv3 (5, 3x3, pad 1) -> lif4 -> flatten5 -> fc6 (7, pruned:
``mask`` metadata) -> lif7 -> fc8 (3) -> lif9 -> output``, ``encoding="direct"``, like
``dpap-mnist`` (LIF ``beta = 0.2``, ``v_th = 0.5``, ``1/(1 - beta)`` folded in).

``event_cnn``: ``input (2, 7, 7) events -> conv0 (4, 3x3, stride 2, pad 1) -> lif1 ->
flatten2 -> fc3 (5) -> lif4 -> fc5 (3) -> lif6 -> output`` (no metadata encoding).

Also an independent numpy/torch step of NIR graphs (:func:`nir_step`), written from
NIR's equations without the lowering code, used until and beside
``spikeship.sim.reference``.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F

DT = 1e-3
BETA = 0.2


def _lif(shape, v_th=0.5):
    a = np.ones(shape, dtype=np.float32)
    return nir.LIF(tau=a * DT / (1 - BETA), r=a, v_leak=0 * a, v_threshold=a * v_th,
                   v_reset=0 * a)


def _meta(encoding, input_shape, timesteps=4):
    return {"format": "spikeship-nir/1", "dt": DT, "reset": "zero", "timesteps": timesteps,
            "encoding": encoding, "source_run": "tests", "input_shape": np.asarray(input_shape)}


def direct_cnn(seed: int = 0, prune: float = 0.5) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    g = 1 / (1 - BETA)
    w0 = rng.normal(0, 0.6, (3, 1, 3, 3)).astype(np.float32) * g
    w3 = rng.normal(0.05, 0.5, (5, 3, 3, 3)).astype(np.float32) * g / 4
    w6 = rng.normal(0.05, 0.6, (7, 45)).astype(np.float32) * g
    mask6 = rng.random((7, 45)) > prune
    w6 = w6 * mask6
    w8 = rng.normal(0.1, 0.8, (3, 7)).astype(np.float32) * g
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv0": nir.Conv2d(input_shape=(6, 6), weight=w0, stride=1, padding=1, dilation=1,
                            groups=1, bias=rng.normal(0, 0.1, 3).astype(np.float32) * g),
        "lif1": _lif((3, 6, 6)),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                               padding=np.array([0, 0])),
        "conv3": nir.Conv2d(input_shape=(3, 3), weight=w3, stride=1, padding=1, dilation=1,
                            groups=1, bias=np.full(5, 0.05, np.float32) * g),
        "lif4": _lif((5, 3, 3)),
        "flatten5": nir.Flatten(input_type={"input": np.array([5, 3, 3])}, start_dim=0),
        "fc6": nir.Affine(weight=w6, bias=rng.normal(0, 0.05, 7).astype(np.float32) * g,
                          metadata={"source_layer": "6", "mask": mask6}),
        "lif7": _lif((7,)),
        "fc8": nir.Affine(weight=w8, bias=np.zeros(3, np.float32)),
        "lif9": _lif((3,)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    edges = list(zip(order[:-1], order[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_meta("direct", (1, 6, 6)))


def event_cnn(seed: int = 1) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    g = 1 / (1 - BETA)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 7, 7])}),
        "conv0": nir.Conv2d(input_shape=(7, 7),
                            weight=rng.normal(0.15, 0.4, (4, 2, 3, 3)).astype(np.float32) * g,
                            stride=2, padding=1, dilation=1, groups=1,
                            bias=np.zeros(4, np.float32)),
        "lif1": _lif((4, 4, 4)),
        "flatten2": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0),
        "fc3": nir.Affine(weight=rng.normal(0.05, 0.3, (5, 64)).astype(np.float32) * g,
                          bias=np.full(5, 0.02, np.float32)),
        "lif4": _lif((5,)),
        "fc5": nir.Affine(weight=rng.normal(0.2, 0.7, (3, 5)).astype(np.float32) * g,
                          bias=np.zeros(3, np.float32)),
        "lif6": _lif((3,)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    meta = _meta("frames", (2, 7, 7))
    del meta["encoding"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=meta)


def direct_inputs(n=3, t=4, seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, 1, 6, 6)).astype(np.float32)
    return np.repeat(x[:, None], t, axis=1)


def event_inputs(n=3, t=5, p=0.3, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, t, 2, 7, 7)) < p).astype(np.float32)


# ---------------------------------------------------------------- independent NIR step
def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def nir_step(graph: nir.NIRGraph, x: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Every node's output ``(N, T, *shape)``; LIF/IF/CubaLIF by forward Euler (see lower.py).

    A cycle is broken at its back edge (DFS from the input); before step 0 every neuron
    output is 0, so a delayed Affine then carries its bias (as snnTorch's recurrent
    layer does at its first step).
    """
    succ = {k: [] for k in graph.nodes}
    preds = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
        preds[b].append(a)
    start = next(k for k, v in graph.nodes.items() if type(v).__name__ == "Input")
    order, state, delayed = [], {}, set()

    def dfs(k):
        state[k] = 1
        for m in succ[k]:
            if state.get(m) == 1:
                delayed.add((k, m))
            elif m not in state:
                dfs(m)
        order.append(k)

    dfs(start)
    order.reverse()
    n, steps = x.shape[:2]
    st: dict = {}
    prev: dict = {}
    for k in order:
        node, kind = graph.nodes[k], type(graph.nodes[k]).__name__
        if kind == "Input":
            prev[k] = torch.zeros((n, *x.shape[2:]), dtype=torch.float64)
        elif kind in ("LIF", "IF", "CubaLIF"):
            prev[k] = torch.zeros((n, *np.shape(node.v_threshold)), dtype=torch.float64)
        else:
            prev[k] = _apply(k, node, kind, sum(prev[p] for p in preds[k] if p in prev), {}, dt)
    rec = {k: [] for k in order}
    for t in range(steps):
        cur = {}
        for k in order:
            node, kind = graph.nodes[k], type(graph.nodes[k]).__name__
            if kind == "Input":
                out = _t(x[:, t])
            else:
                ins = [prev[p] if (p, k) in delayed else cur[p] for p in preds[k]]
                out = _apply(k, node, kind, sum(ins), st, dt)
            cur[k] = out
            rec[k].append(out)
        prev = cur
    return {k: torch.stack(v, 1).numpy() for k, v in rec.items()}


def _apply(k, node, kind, inp, st, dt):
    if kind == "Output":
        return inp
    if kind in ("Affine", "Linear"):
        y = inp @ _t(node.weight).T
        return y + _t(node.bias) if kind == "Affine" else y
    if kind == "Conv2d":
        return F.conv2d(inp, _t(node.weight), _t(node.bias), stride=tuple(node.stride),
                        padding=tuple(node.padding), dilation=tuple(node.dilation),
                        groups=int(node.groups))
    if kind in ("SumPool2d", "AvgPool2d"):
        kk = tuple(int(v) for v in np.broadcast_to(node.kernel_size, (2,)))
        y = F.avg_pool2d(inp, kk, tuple(int(v) for v in np.broadcast_to(node.stride, (2,))))
        return y * (kk[0] * kk[1]) if kind == "SumPool2d" else y
    if kind == "Flatten":
        return inp.reshape(inp.shape[0], -1)
    if kind == "LIF":
        a = dt / _t(node.tau)
        v = (1 - a) * st.get(k, 0.0) + a * _t(node.v_leak) + a * _t(node.r) * inp
    elif kind == "IF":
        v = st.get(k, 0.0) + _t(node.r) * inp
    else:
        a_s, a_m = dt / _t(node.tau_syn), dt / _t(node.tau_mem)
        st[k + ".i"] = (1 - a_s) * st.get(k + ".i", 0.0) + a_s * _t(node.w_in) * inp
        v = (1 - a_m) * st.get(k, 0.0) + a_m * _t(node.v_leak) + a_m * _t(node.r) * st[k + ".i"]
    z = (v > _t(node.v_threshold)).to(torch.float64)
    st[k] = torch.where(z > 0, _t(node.v_reset) * torch.ones_like(v), v)
    return z


# ---------------------------------------------------------------- checks of the fixtures
def test_fixture_graphs_are_valid_nir_and_active(tmp_path):
    for make, inputs in ((direct_cnn, direct_inputs()), (event_cnn, event_inputs())):
        g = make()
        nir.write(tmp_path / "g.nir", g)
        back = nir.read(tmp_path / "g.nir")
        out = nir_step(back, inputs, DT)
        spiking = [k for k, v in back.nodes.items() if type(v).__name__ == "LIF"]
        assert all(out[k].sum() > 0 for k in spiking), {k: out[k].sum() for k in spiking}
        assert out["output"].shape[:2] == inputs.shape[:2]


def test_nir_step_matches_a_hand_trace_of_one_lif():
    # input -> Affine(2.5) -> LIF(dt/tau = 0.8, v_th = 0.5):  v = 0.2 v + 2.5 * 0.8 * x
    a = np.ones(1, np.float32)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                            "fc": nir.Affine(weight=np.array([[0.25]], np.float32),
                                             bias=np.zeros(1, np.float32)),
                            "lif": nir.LIF(tau=a * DT / 0.8, r=a, v_leak=0 * a,
                                           v_threshold=a * 0.5, v_reset=0 * a),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    x = np.array([1, 1, 1, 0, 1], np.float32).reshape(1, 5, 1)
    # v: 0.2, 0.24 + 0.2 = 0.44, 0.088 + 0.2 = 0.288, 0.0576, 0.01152 + 0.2 -> never > 0.5
    assert nir_step(g, x, DT)["lif"].sum() == 0
    x = x * 3   # v: 0.6 -> spike, 0.6 -> spike, ...
    assert nir_step(g, x, DT)["lif"][0, :, 0].tolist() == [1, 1, 1, 0, 1]

"""Property-based tests (hypothesis): whatever graph or file comes in, the importer and the
simulators either work or raise a :class:`~spikeship.errors.SpikeshipError`, never an
unrelated exception.

- Random *valid* NIR chains (Conv2d / LIF / IF / SumPool2d / Flatten / Affine, random
  shapes, written to HDF5 and read back) run in the reference simulator, with output
  spikes of the declared shape.
- The same graphs with one random defect (a parameter of the wrong shape, NaN, a zero
  stride, a removed node, an extra edge, a wrong declared type, ...) run or raise a
  named error.
- Random byte damage (flips, biased to the structural head of the file, or truncation)
  of a real ``model.nir``, ``model.onnx``, ``model.net`` and checkpoint: a named error
  or a successful load (damage inside a weight array is undetectable and fine).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from spikeship.errors import SpikeshipError
from spikeship.targets.describe import describe_file
from spikeship.nir.read import read_nir
from spikeship.sim.reference import simulate

F32 = np.float32
# The normal suite replays the same 50 examples per test (derandomized, ~1 s per test);
# SPIKESHIP_FUZZ_EXAMPLES=2000 explores fresh random examples for a longer hunt.
_FUZZ = os.environ.get("SPIKESHIP_FUZZ_EXAMPLES")
SETTINGS = settings(max_examples=int(_FUZZ or 50), deadline=None, derandomize=_FUZZ is None,
                    suppress_health_check=[HealthCheck.too_slow], database=None,
                    phases=[Phase.generate] if _FUZZ else list(Phase))


# ---- random valid graphs --------------------------------------------------------------
def _neuron(draw, shape):
    shape = tuple(int(s) for s in shape)
    thr = np.full(shape, draw(st.sampled_from([0.2, 0.5, 1.0])), F32)
    if draw(st.booleans()):
        return nir.IF(r=np.ones(shape, F32), v_threshold=thr, v_reset=np.zeros(shape, F32))
    return nir.LIF(tau=np.full(shape, draw(st.sampled_from([1.25e-3, 2e-3, 1e-2])), F32),
                   r=np.ones(shape, F32), v_leak=np.zeros(shape, F32), v_threshold=thr,
                   v_reset=np.zeros(shape, F32))


@st.composite
def valid_chains(draw):
    """(nodes in order, input shape): Input -> [Conv -> neuron -> SumPool?]* -> Flatten ->
    [Affine -> neuron]+ -> Output, shapes computed so that every node fits."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 9))
    shape = (c, h, w)
    nodes = [("input", nir.Input(input_type={"input": np.array(shape)}))]
    for i in range(draw(st.integers(0, 2))):
        k, s, p = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
        if min(shape[1:]) + 2 * p < k:
            break
        out_c = draw(st.integers(1, 4))
        weight = rng.normal(0, 1.5, (out_c, shape[0], k, k)).astype(F32)
        conv = nir.Conv2d(input_shape=shape[1:], weight=weight, stride=s, padding=p, dilation=1,
                          groups=1, bias=rng.normal(0, 0.3, out_c).astype(F32))
        hw = tuple((n + 2 * p - k) // s + 1 for n in shape[1:])
        shape = (out_c, *hw)
        nodes += [(f"conv{i}", conv), (f"neuron_c{i}", _neuron(draw, shape))]
        if min(hw) >= 2 and draw(st.booleans()):
            nodes.append((f"pool{i}", nir.SumPool2d(kernel_size=np.array([2, 2]),
                                                    stride=np.array([2, 2]),
                                                    padding=np.array([0, 0]))))
            shape = (out_c, hw[0] // 2, hw[1] // 2)
    nodes.append(("flat", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                      end_dim=-1)))
    n = int(np.prod(shape))
    for j in range(draw(st.integers(1, 2))):
        out = draw(st.integers(2, 6))
        nodes += [(f"fc{j}", nir.Affine(weight=rng.normal(0, 1.5, (out, n)).astype(F32),
                                        bias=rng.normal(0, 0.3, out).astype(F32))),
                  (f"neuron_f{j}", _neuron(draw, (out,)))]
        n = out
    nodes.append(("output", nir.Output(output_type={"output": np.array([n])})))
    return nodes, (c, h, w)


def _write(path, nodes, edges=None, metadata=None) -> Path:
    names = [n for n, _ in nodes]
    g = nir.NIRGraph(nodes=dict(nodes),
                     edges=list(zip(names[:-1], names[1:])) if edges is None else edges,
                     metadata={"dt": 1e-3} if metadata is None else metadata, type_check=False)
    nir.write(path, g)
    return path


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).random((2, 3, *shape)).astype(F32)


@SETTINGS
@given(valid_chains())
def test_random_valid_graphs_run_in_the_reference_simulator(chain):
    nodes, shape = chain
    with tempfile.TemporaryDirectory() as d:
        g = read_nir(_write(Path(d) / "g.nir", nodes))
    out, counts = simulate(g, _inputs(shape))
    n_out = int(nodes[-1][1].output_type["output"][0])
    assert out.shape == (2, 3, n_out)
    assert np.isin(out, (0.0, 1.0)).all()
    spiking = [n for n, v in nodes if type(v).__name__ in ("LIF", "IF")]
    assert sorted(counts) == sorted(spiking)
    for name in spiking:
        assert counts[name].shape == g.out_shape[name] and (counts[name] >= 0).all()


def _defects():
    """Functions (draw, nodes, edges, metadata) that break one thing of a valid chain."""
    def param_shape(draw, nodes, edges, meta):
        i = draw(st.sampled_from([i for i, (_, v) in enumerate(nodes)
                                  if type(v).__name__ in ("Affine", "Conv2d", "LIF", "IF")]))
        node = nodes[i][1]
        key = draw(st.sampled_from([k for k, v in vars(node).items()
                                    if isinstance(v, np.ndarray) and v.dtype.kind == "f"]))
        v = getattr(node, key)
        setattr(node, key, np.resize(v, (v.size + draw(st.integers(1, 3)),)).astype(F32))

    def non_finite(draw, nodes, edges, meta):
        i = draw(st.sampled_from([i for i, (_, v) in enumerate(nodes)
                                  if type(v).__name__ in ("Affine", "Conv2d", "LIF", "IF")]))
        node = nodes[i][1]
        key = draw(st.sampled_from([k for k, v in vars(node).items()
                                    if isinstance(v, np.ndarray) and v.dtype.kind == "f"]))
        getattr(node, key).reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))

    def bad_integer(draw, nodes, edges, meta):
        cands = [v for _, v in nodes if type(v).__name__ in ("Conv2d", "SumPool2d", "Flatten")]
        assume(cands)                           # drop_node may have removed them all
        node = draw(st.sampled_from(cands))
        key = {"Conv2d": "stride", "SumPool2d": "kernel_size", "Flatten": "start_dim"}[
            type(node).__name__]
        setattr(node, key, draw(st.sampled_from([0, -1, 7, 99])) * np.ones_like(
            np.asarray(getattr(node, key))))

    def drop_node(draw, nodes, edges, meta):
        i = draw(st.integers(0, len(nodes) - 1))
        name = nodes[i][0]
        del nodes[i]
        edges[:] = [(a, b) for a, b in edges if name not in (a, b)]
        if draw(st.booleans()) and 0 < i < len(nodes):
            edges.append((nodes[i - 1][0], nodes[i][0]))

    def extra_edge(draw, nodes, edges, meta):
        names = [n for n, _ in nodes] + ["ghost"]
        edges.append((draw(st.sampled_from(names)), draw(st.sampled_from(names))))

    def reverse_edge(draw, nodes, edges, meta):
        i = draw(st.integers(0, len(edges) - 1))
        a, b = edges[i]
        edges[i] = (b, a)

    def declared_type(draw, nodes, edges, meta):
        i = draw(st.sampled_from([0, len(nodes) - 1]))
        name, node = nodes[i]
        shape = np.array(draw(st.lists(st.integers(0, 12), min_size=0, max_size=4)))
        if isinstance(node, nir.Input):
            nodes[i] = (name, nir.Input(input_type={"input": shape}))
        else:
            nodes[i] = (name, nir.Output(output_type={"output": shape}))

    def bad_dt(draw, nodes, edges, meta):
        meta["dt"] = draw(st.sampled_from([0.0, -1.0, np.nan, np.inf, "x", [1e-3, 2e-3]]))

    def swap_type(draw, nodes, edges, meta):
        i = draw(st.integers(1, len(nodes) - 2))
        name, node = nodes[i]
        n = int(np.prod(np.shape(getattr(node, "bias", np.zeros(3)))))
        nodes[i] = (name, draw(st.sampled_from([
            nir.Delay(delay=np.ones(n, F32)), nir.Threshold(threshold=np.ones(n, F32)),
            nir.LI(tau=np.ones(n, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32)),
            nir.Scale(scale=np.ones(n, F32)),
            nir.Linear(weight=np.ones((n, n), F32))])))

    return [param_shape, non_finite, bad_integer, drop_node, extra_edge, reverse_edge,
            declared_type, bad_dt, swap_type]


@SETTINGS
@given(valid_chains(), st.data())
def test_random_broken_graphs_run_or_raise_a_named_error(chain, data):
    nodes, shape = chain
    names = [n for n, _ in nodes]
    edges, meta = list(zip(names[:-1], names[1:])), {"dt": 1e-3}
    for defect in data.draw(st.lists(st.sampled_from(_defects()), min_size=1, max_size=3)):
        defect(data.draw, nodes, edges, meta)
    with tempfile.TemporaryDirectory() as d:
        # Every defect keeps the graph writable (nir.write checks no semantics), so each
        # draw reaches the reader: a write error fails the test instead of skipping it.
        path = _write(Path(d) / "g.nir", nodes, edges, meta)
        try:
            g = read_nir(path)
            simulate(g, _inputs(shape))
        except SpikeshipError:
            pass


# ---- random damage of real files --------------------------------------------------------
@st.composite
def damages(draw):
    """('truncate', fraction) or ('flip', [(position, xor byte)]) with positions in [0, 1)
    (half of them in the first 4 kB, where the file's structure lives)."""
    if draw(st.integers(0, 4)) == 0:
        return ("truncate", draw(st.floats(0.0, 0.999)))
    flips = draw(st.lists(st.tuples(st.booleans(), st.floats(0.0, 0.999), st.integers(1, 255)),
                          min_size=1, max_size=8))
    return ("flip", flips)


def apply_damage(path: Path, damage) -> None:
    data = bytearray(path.read_bytes())
    kind, arg = damage
    if kind == "truncate":
        data = data[: int(len(data) * arg)]
    else:
        for head, where, xor in arg:
            i = int((min(len(data), 4096) if head else len(data)) * where)
            data[i] ^= xor
    path.write_bytes(bytes(data))


def _damaged_copy(src: Path, name: str, damage, d: Path) -> Path:
    p = d / name
    shutil.copyfile(src / name, p)
    apply_damage(p, damage)
    return p


@pytest.fixture(scope="module")
def sample_inputs(exported_run):
    return np.random.default_rng(0).random((2, 4, 1, 8, 8)).astype(F32)


@SETTINGS
@given(damages())
def test_damaged_nir_file_loads_or_raises_a_named_error(exported_run, sample_inputs, damage):
    with tempfile.TemporaryDirectory() as d:
        p = _damaged_copy(exported_run, "model.nir", damage, Path(d))
        try:
            g = read_nir(p)
            simulate(g, sample_inputs)
        except SpikeshipError:
            pass
        try:
            describe_file(p)
        except SpikeshipError:
            pass


@SETTINGS
@given(damages())
def test_damaged_onnx_file_loads_or_raises_a_named_error(exported_run, sample_inputs, damage):
    from spikeship.sim.onnx_runner import simulate_onnx

    with tempfile.TemporaryDirectory() as d:
        p = _damaged_copy(exported_run, "model.onnx", damage, Path(d))
        try:
            simulate_onnx(p, sample_inputs)
        except SpikeshipError:
            pass
        try:
            describe_file(p)
        except SpikeshipError:
            pass


@SETTINGS
@given(damages())
def test_damaged_netx_file_inspects_or_raises_a_named_error(exported_run, damage):
    with tempfile.TemporaryDirectory() as d:
        p = _damaged_copy(exported_run, "model.net", damage, Path(d))
        try:
            describe_file(p)
        except SpikeshipError:
            pass


@SETTINGS
@given(damages())
def test_damaged_netx_file_is_read_or_refused_by_the_netx_target(exported_run, damage):
    from spikeship.sim.lava.netx import read_deployment

    with tempfile.TemporaryDirectory() as d:
        p = _damaged_copy(exported_run, "model.net", damage, Path(d))
        try:
            read_deployment(p)
        except SpikeshipError:
            pass


@SETTINGS
@given(st.sampled_from(["tensors", "meta"]), damages())
def test_damaged_checkpoint_loads_or_raises_a_named_error(exported_run, part, damage):
    """Tensors are damaged *with the integrity hash made to match* (the reader meets the
    damage itself); meta.json is damaged as text."""
    from spikeship.export.nir_export import to_nir
    from spikeship.export.surgery import build_deployable
    from spikeship.io import sha256_file as _sha256
    from spikeship.train.checkpoint import META, TENSORS, load_checkpoint

    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        shutil.copytree(exported_run / "checkpoint", run / "checkpoint")
        ck = run / "checkpoint"
        apply_damage(ck / (TENSORS if part == "tensors" else META), damage)
        if part == "tensors":
            try:
                meta = json.loads((ck / META).read_text())
                meta["tensors_sha256"] = _sha256(ck / TENSORS)
                (ck / META).write_text(json.dumps(meta))
            except ValueError:
                pass
        try:
            c = load_checkpoint(run)
            to_nir(build_deployable(c.model, c.masks, c.spec, c.config))
        except SpikeshipError:
            pass

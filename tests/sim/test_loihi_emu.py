"""The batched Loihi emulator against Lava's own fixed-point code.

Three levels: (1) the integer kernels against Lava's model classes called directly
(``PyLifResetModelBitAcc.subthr_dynamics``, ``weightutils``, ``conv.utils.conv``) on
random and extreme values, no Lava runtime; (2) whole networks run in real Lava
``fixed_pt`` (:func:`spikeship.sim.lava.run.run_deployment`) and in the emulator:
identical output spikes at every step, identical integer voltages of every
population at every step, identical per-neuron spike counts; (3) the emulator on its
own (batching, errors, the registry target writing its result files).

Nets (odd sizes): dense 7 -> 5 -> 3; the same pruned (Sparse); conv (2, 11, 7) with
stride 2, padding (1, 2), dilation (1, 2) -> (5, 6, 4) -> SumPool 2 folded into a
padded conv -> (3, 3, 2) -> flatten -> 4; recurrent CubaLIF 7 -> 5 (+ 5 -> 5 with
bias) -> 3; direct encoding (host current) conv (1, 5, 5) -> (3, 5, 5) -> 4.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from spikeship.errors import ConfigError
from spikeship.sim import loihi_emu, loihi_emu_ops
from spikeship.sim.loihi_emu_ops import (LifParams, conv_op, lava_synapse_weights, lif_step,
                                         wrap32)
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.quantize import quantize_deployment

FIXTURES = "/work/shared/fixtures/nir-paper"


# ----------------------------------------------------------------------------- nets
def _lif(shape, tau=2e-3, vth=1.0):
    return nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, vth), v_reset=np.zeros(shape))


def _cuba(shape, tau_syn=4e-3, tau_mem=5e-3, vth=1.0):
    return nir.CubaLIF(tau_syn=np.full(shape, tau_syn), tau_mem=np.full(shape, tau_mem),
                       r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.full(shape, vth),
                       v_reset=np.zeros(shape), w_in=np.ones(shape))


def _graph(nodes, edges, **meta):
    return nir.NIRGraph(nodes, edges, metadata={"dt": 1e-3, **meta})


def dense_net(pruned: bool = False, seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(0.6, 1.0, (5, 7)), rng.normal(0.8, 1.2, (3, 5))
    meta = {}
    if pruned:
        keep = rng.random((5, 7)) < 0.6
        w1, meta = w1 * keep, {"mask": keep}          # spikeship export: mask metadata
        w2[0, 1] = w2[2, 3] = 0.0                     # third-party style: exact zeros
    nodes = {"input": nir.Input({"input": np.array([7])}),
             "fc0": nir.Affine(w1, rng.normal(0.05, 0.05, 5), metadata=meta),
             "lif1": _lif((5,), 2e-3), "fc2": nir.Affine(w2, np.zeros(3)),
             "lif3": _lif((3,), 5e-3), "output": nir.Output({"output": np.array([3])})}
    return _graph(nodes, [("input", "fc0"), ("fc0", "lif1"), ("lif1", "fc2"), ("fc2", "lif3"),
                          ("lif3", "output")])


def conv_net(seed: int = 1) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    c0 = nir.Conv2d((11, 7), rng.normal(0.25, 0.5, (5, 2, 3, 3)), (2, 2), (1, 2), (1, 2), 1,
                    rng.normal(0.0, 0.1, 5))
    c3 = nir.Conv2d((3, 2), rng.normal(0.15, 0.4, (3, 5, 3, 3)), 1, 1, 1, 1, np.zeros(3))
    nodes = {"input": nir.Input({"input": np.array([2, 11, 7])}), "conv0": c0,
             "lif1": _lif((5, 6, 4), 2e-3),
             "pool2": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
             "conv3": c3, "lif4": _lif((3, 3, 2), 4e-3),
             "flatten5": nir.Flatten({"input": np.array([3, 3, 2])}, 0),
             "fc6": nir.Affine(rng.normal(0.3, 0.6, (4, 18)), np.zeros(4)),
             "lif7": _lif((4,), 3e-3), "output": nir.Output({"output": np.array([4])})}
    order = list(nodes)
    return _graph(nodes, list(zip(order[:-1], order[1:])))


def recurrent_net(seed: int = 2) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input({"input": np.array([7])}),
             "fc0": nir.Affine(rng.normal(0.8, 1.0, (5, 7)), rng.normal(0.1, 0.1, 5)),
             "lif1": _cuba((5,)), "rec1": nir.Affine(rng.normal(0, 0.8, (5, 5)),
                                                     rng.normal(0.05, 0.05, 5)),
             "fc2": nir.Affine(rng.normal(1.0, 1.0, (3, 5)), np.zeros(3)),
             "lif3": _cuba((3,), 3e-3, 4e-3), "output": nir.Output({"output": np.array([3])})}
    return _graph(nodes, [("input", "fc0"), ("fc0", "lif1"), ("lif1", "rec1"), ("rec1", "lif1"),
                          ("lif1", "fc2"), ("fc2", "lif3"), ("lif3", "output")])


def direct_net(seed: int = 3, side: int = 5, channels: int = 3,
               fc: tuple[float, float] = (0.05, 0.3)) -> nir.NIRGraph:
    """Input (1, side, side) -> ``channels``-channel conv on the host -> LIF -> 4 outputs
    (fc weights normal with mean and spread ``fc``)."""
    rng = np.random.default_rng(seed)
    c, n = channels, side
    nodes = {"input": nir.Input({"input": np.array([1, n, n])}),
             "conv0": nir.Conv2d((n, n), rng.normal(0.3, 0.5, (c, 1, 3, 3)), 1, 1, 1, 1,
                                 rng.normal(0, 0.1, c)),
             "lif1": _lif((c, n, n), 2e-3),
             "flatten2": nir.Flatten({"input": np.array([c, n, n])}, 0),
             "fc3": nir.Affine(rng.normal(*fc, (4, c * n * n)), np.zeros(4)),
             "lif4": _lif((4,), 3e-3), "output": nir.Output({"output": np.array([4])})}
    order = list(nodes)
    return _graph(nodes, list(zip(order[:-1], order[1:])), encoding="direct")


def _spikes(shape, p=0.4, seed=0):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


def fixed(graph, x, **kw):
    from spikeship.targets.loihi.deploy import deployment_for

    return deployment_for(graph, "fixed", x, kw)


# ----------------------------------------------------------------------------- 1: kernels
@pytest.fixture(scope="module")
def lava_models():
    from spikeship.sim.lava import require

    require("lava")
    from lava.proc.conv import utils as conv_utils
    from lava.proc.lif.models import PyLifResetModelBitAcc
    from lava.utils import weightutils

    return PyLifResetModelBitAcc, weightutils, conv_utils


@pytest.mark.parametrize("du,dv,vth,scale", [(4095, 0, 300, 2 ** 10), (1023, 819, 5000, 2 ** 14),
                                             (17, 4000, 131071, 2 ** 24), (0, 4095, 1, 2 ** 27)])
def test_lif_step_equals_lavas_fixed_point_model(lava_models, du, dv, vth, scale):
    # Random a_in from small to far beyond 24 bits (u's wrap, v's clip, int32 wraps).
    model_cls = lava_models[0]
    rng = np.random.default_rng(du + dv)
    n = 301
    m = model_cls({"reset_interval": 1000, "reset_offset": 0})
    m.u, m.v = np.zeros(n, np.int32), np.zeros(n, np.int32)
    m.du, m.dv, m.vth = du, dv, vth
    m.bias_mant = rng.integers(-4096, 4096, n).astype(np.int16)
    m.bias_exp = rng.integers(0, 8, n).astype(np.int16)
    m.scale_bias()
    m.scale_threshold()
    bound = scale if scale < 2 ** 17 else 2 ** 31
    p = LifParams.build(du, dv, vth, m.bias_mant, m.bias_exp, bound, "cpu")
    assert p.guarded == (scale >= 2 ** 17)
    u = v = torch.zeros(1, n, dtype=torch.int64)
    spikes = wraps = 0
    for _ in range(40):
        a = rng.integers(-scale, scale, n).astype(np.int32)
        m.subthr_dynamics(a)
        s_ref = m.spiking_activation()
        m.reset_voltage(s_ref)
        u, v, s = lif_step(u, v, torch.as_tensor(a, dtype=torch.int64)[None], p)
        assert np.array_equal(u[0].numpy(), m.u) and np.array_equal(v[0].numpy(), m.v)
        assert np.array_equal(s[0].numpy(), s_ref)
        spikes += int(s_ref.sum())
        wraps += int(np.sum(np.abs(m.v) == 2 ** 23 - 1))
    assert spikes > 0 and spikes < 40 * n
    if scale >= 2 ** 24:
        assert wraps > 0          # the saturation branch was really exercised


def test_fast_path_equals_guarded_path_in_range():
    rng = np.random.default_rng(5)
    mant, exp = rng.integers(-4095, 4096, 50), np.full(50, 6)
    fast = LifParams.build(1000, 300, 2000, mant, exp, 2 ** 17 - 1, "cpu")
    slow = LifParams.build(1000, 300, 2000, mant, exp, 2 ** 30, "cpu")
    assert not fast.guarded and slow.guarded
    u1 = v1 = u2 = v2 = torch.zeros(3, 50, dtype=torch.int64)
    for _ in range(30):
        a = torch.as_tensor(rng.integers(-2 ** 17 + 1, 2 ** 17, (3, 50)))
        u1, v1, s1 = lif_step(u1, v1, a, fast)
        u2, v2, s2 = lif_step(u2, v2, a, slow)
        assert torch.equal(u1, u2) and torch.equal(v1, v2) and torch.equal(s1, s2)


@pytest.mark.parametrize("dv", [0, 1, 819, 4095])
def test_feedforward_fast_path_equals_lif_step(dv):
    # Large biases push v past both clip limits; a_in up to the fast path's 2^17 bound.
    rng = np.random.default_rng(dv)
    n, t = 37, 25
    mant, exp = rng.integers(-4095, 4096, n), rng.integers(0, 8, n)
    p = LifParams.build(4095, dv, 2 ** 17 - 1, mant, exp, 2 ** 17 - 1, "cpu")
    assert loihi_emu_ops.feedforward_fast(p)
    a_in = torch.as_tensor(rng.integers(-2 ** 17 + 1, 2 ** 17, (3, t, n)))
    v_fast = torch.empty(3, t, n, dtype=torch.int64)
    s_fast = loihi_emu_ops.lif_run_feedforward(a_in, p, v_fast)
    u = v = torch.zeros(3, n, dtype=torch.int64)
    for step in range(t):
        u, v, s = lif_step(u, v, a_in[:, step], p)
        assert torch.equal(s, s_fast[:, step]) and torch.equal(v, v_fast[:, step])
    assert 0 < int(s_fast.sum()) < s_fast.numel()
    assert int(v_fast.min()) == -2 ** 23 + 1          # the lower clip was reached


@pytest.mark.parametrize("lo,hi", [(-300, 300), (0, 400), (-400, 0), (-3, 5)])
def test_synapse_weights_as_lava_dense_clips_and_truncates(lava_models, lo, hi):
    wu = lava_models[1]
    w = np.random.default_rng(hi).integers(lo, hi, (7, 5))
    mode = wu.determine_sign_mode(w)
    ref = wu.truncate_weights(wu.clip_weights(w, mode, num_bits=8), mode, 8)
    got = lava_synapse_weights(w)
    assert np.array_equal(got, ref)
    assert not np.array_equal(got, w)      # the rules did change something here


def test_wrap32_is_numpys_int32_cast():
    x = np.array([0, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 3 * 2 ** 32 + 5, -7], dtype=np.int64)
    assert np.array_equal(wrap32(torch.as_tensor(x)).numpy(), x.astype(np.int32))


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("as_matrix", [True, False])
def test_conv_op_equals_lava_conv_utils(lava_models, graded, as_matrix, monkeypatch):
    from spikeship.sim import loihi_emu_ops
    from spikeship.sim.lava.build import lava_conv_weight

    if not as_matrix:
        monkeypatch.setattr(loihi_emu_ops, "MATRIX_MAX_ENTRIES", 0)
    conv_utils = lava_models[2]
    rng = np.random.default_rng(int(graded))
    w = rng.integers(-254, 255, (6, 2, 3, 5))           # groups=2: (C_out, C_in/2, kH, kW)
    x = rng.integers(0, 3000 if graded else 2, (2, 4, 9, 8))
    op = conv_op(w, source_shape=(4, 9, 8), graded=graded, input_max=3000, stride=(2, 1),
                 padding=(1, 2), dilation=(1, 2), groups=2, device=torch.device("cpu"))
    assert op.kernel == (not as_matrix)
    got = op.forward(torch.as_tensor(x)).numpy()
    for b in range(2):
        xin = x[b].transpose(2, 1, 0).astype(np.int32)       # NIR (C, H, W) -> Lava (W, H, C)
        if not graded:
            xin = xin.astype(bool)
        ref = conv_utils.conv(xin, lava_conv_weight(w).astype(np.int32), (5, 3), (1, 2),
                              (2, 1), (2, 1), 2)
        ref = conv_utils.signed_clamp(ref, bits=24)
        assert np.array_equal(got[b], ref.transpose(2, 1, 0).ravel())
    if graded:
        assert np.abs(got).max() > 2 ** 20                    # large sums really happened


# ----------------------------------------------------------------------------- 2: vs Lava
def _aligned(raw: np.ndarray, depth: int, n: int, t: int) -> np.ndarray:
    # Same slice as spikeship.sim.lava.run.run_deployment uses for the output sink.
    return raw[depth:depth + n * t].reshape(n, t, *raw.shape[1:])


def compare_with_lava(dep, x):
    from spikeship.sim.lava import run as lava

    names = tuple(p.name for p in dep.populations)
    traces, emu_traces = {}, {}
    ref = lava.run_deployment(dep, x, record_voltages=names, traces=traces, progress=False,
                              timeout_s=300)
    got = loihi_emu.run_deployment(dep, x, record_voltages=names, traces=emu_traces,
                                   batch_size=2)
    n, t = x.shape[:2]
    assert np.array_equal(got.output_spikes, ref.output_spikes)
    for p in dep.populations:
        v_ref = _aligned(traces[f"v/{p.name}"], p.depth, n, t)
        assert np.array_equal(emu_traces[f"v/{p.name}"], v_ref), p.name
        assert np.array_equal(got.neuron_counts[p.name], ref.neuron_counts[p.name]), p.name
        total = int(ref.neuron_counts[p.name].sum())
        assert 0 < total < n * t * p.size, f"{p.name} silent or saturated: the test is weak"
    return ref, got


@pytest.mark.lava
def test_dense_binary_spikes_equal_lava():
    x = _spikes((3, 7, 7))
    compare_with_lava(fixed(dense_net(), x), x)


@pytest.mark.lava
def test_pruned_sparse_layers_equal_lava():
    x = _spikes((3, 7, 7), seed=1)
    dep = fixed(dense_net(pruned=True), x)
    assert [s.kind for s in dep.synapses] == ["sparse", "sparse"]
    compare_with_lava(dep, x)


@pytest.mark.lava
def test_conv_stride_padding_pool_flatten_equal_lava():
    x = _spikes((3, 6, 2, 11, 7), p=0.5, seed=2)
    dep = fixed(conv_net(), x)
    assert [s.kind for s in dep.synapses] == ["conv", "conv", "dense"]
    assert dep.synapses[1].folded == ("pool2",)
    compare_with_lava(dep, x)


@pytest.mark.lava
def test_graded_event_counts_into_conv_equal_lava():
    x = np.random.default_rng(4).integers(0, 4, (2, 5, 2, 11, 7)).astype(np.float32)
    dep = fixed(conv_net(), x)
    assert dep.input_message_bits > 0
    compare_with_lava(dep, x)


@pytest.mark.lava
def test_recurrent_cubalif_with_bias_through_const_equal_lava():
    x = _spikes((3, 8, 7), seed=3)
    dep = fixed(recurrent_net(), x)
    kinds = {s.name: (s.source, s.recurrent) for s in dep.synapses}
    assert kinds["rec1"] == ("lif1", True)
    assert ("const", False) in kinds.values()          # the biases, through the current
    compare_with_lava(dep, x)


@pytest.mark.lava
def test_const_source_into_first_population_from_lava_step_one():
    # Host current into the recurrent CubaLIF (depth 0): the recurrent Affine's bias
    # comes through a constant source. Its first window starts at Lava step 1, where a
    # fresh Dense would send a zero buffer; the Lava builder preloads it, so sample 0
    # sees the bias at t = 0 like every later sample (same input -> same voltages).
    x = np.repeat(3 * np.random.default_rng(10).random((3, 1, 7)).astype(np.float32), 8, axis=1)
    x[1] = x[0]
    dep = fixed(recurrent_net(), x, input_mode="current")
    const = [s for s in dep.synapses if s.source == "const"]
    assert [dep.population(s.target).depth for s in const] == [0]
    assert np.any(np.asarray(const[0].weights) != 0)
    compare_with_lava(dep, x)
    v = loihi_emu.LoihiEmulator(dep).run(x, record_voltages=("lif1",)).voltages["lif1"]
    assert np.array_equal(v[0], v[1]) and not np.array_equal(v[0], v[2])


@pytest.mark.lava
def test_direct_encoding_host_current_equal_lava():
    img = np.random.default_rng(5).random((3, 1, 1, 5, 5)).astype(np.float32)
    x = np.repeat(img, 6, axis=1)
    dep = fixed(direct_net(), x)
    assert dep.input_mode == "current" and dep.host_layers
    compare_with_lava(dep, x)


@pytest.mark.lava
def test_overflowing_graded_input_wraps_as_lava():
    # Payloads up to 3000 drive a_in far past 2^17: u wraps, v saturates, int32 paths.
    x = np.random.default_rng(6).integers(0, 3000, (2, 6, 7)).astype(np.float32)
    dep = fixed(dense_net(), x)
    emu = loihi_emu.LoihiEmulator(dep, input_max=3000)
    assert emu.pops[0].lif.guarded
    compare_with_lava(dep, x)


def _lif_norse_input() -> np.ndarray:
    isis = [6, 15, 4, 3, 0, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 14]
    d1 = np.concatenate([isi * [0] + [1] for isi in isis])[:100]
    d = np.array([[e] + 9 * [0] for e in d1]).reshape(1, -1)
    return d.reshape(1, 1000, 1).astype(np.float32)


@pytest.mark.lava
@pytest.mark.slow
def test_lif_norse_fixture_equals_lava_fixed_every_step():
    x = _lif_norse_input()
    dep = fixed(nir.read(f"{FIXTURES}/lif_norse.nir"), x, dt_s=1e-4)   # README: dt = 1e-4
    ref, got = compare_with_lava(dep, x)
    # The four spikes every Lava/Loihi trace of the fixture has (README), at CSV rows
    # 461, 511, 711, 761: rows are Lava steps, the output population sits at depth 1.
    out = dep.population(dep.output)
    steps = np.nonzero(got.output_spikes[0, :, 0])[0] + out.depth
    assert steps.tolist() == [461, 511, 711, 761]


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("name,steps,rate", [("braille_noDelay_bias_zero", 20, 0.3),
                                             ("cnn_sinabs", 12, 0.1)])
def test_third_party_fixture_equals_lava(name, steps, rate):
    # Recurrent CubaLIF with biases through constant sources (snnTorch's braille net);
    # IF neurons, strided/padded convs and SumPool (Sinabs' N-MNIST CNN).
    graph = nir.read(f"{FIXTURES}/{name}.nir")
    (inp,) = [n for n in graph.nodes.values() if type(n).__name__ == "Input"]
    shape = tuple(int(v) for v in np.asarray(inp.input_type["input"]).ravel())
    x = _spikes((2, steps, *shape), p=rate, seed=11)
    compare_with_lava(fixed(graph, x, dt_s=1e-4), x)


# ----------------------------------------------------------------------------- 3: emulator
def test_batching_and_recording_do_not_change_results():
    x = _spikes((5, 6, 2, 11, 7), p=0.5, seed=7)
    dep = fixed(conv_net(), x)
    emu = loihi_emu.LoihiEmulator(dep)
    a = emu.run(x, batch_size=1)
    b = emu.run(x, batch_size=5, record_voltages=("lif4",), record_spikes=("lif1",))
    assert np.array_equal(a.output_spikes, b.output_spikes) and a.output_spikes.sum() > 0
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    assert np.array_equal(b.spikes["lif1"].sum(axis=(0, 1)), b.counts["lif1"])
    assert b.voltages["lif4"].shape == (5, 6, 3, 3, 2)
    single = emu.run(x[3:4])
    assert np.array_equal(single.output_spikes[0], a.output_spikes[3])


def test_float32_and_float64_sums_agree():
    x = _spikes((4, 6, 7), seed=8)
    dep = fixed(dense_net(pruned=True), x)
    a = loihi_emu.LoihiEmulator(dep).run(x, record_voltages=("lif1", "lif3"))
    b = loihi_emu.LoihiEmulator(dep, allow_float32=False).run(x, record_voltages=("lif1", "lif3"))
    assert all(np.array_equal(a.voltages[k], b.voltages[k]) for k in a.voltages)


def test_refuses_float_deployments_bad_inputs_and_unknown_records():
    x = _spikes((2, 4, 7))
    with pytest.raises(ConfigError, match="fixed-point"):
        loihi_emu.LoihiEmulator(lower(dense_net(), input_mode="spikes"))
    emu = loihi_emu.LoihiEmulator(quantize_deployment(lower(dense_net(), input_mode="spikes")))
    with pytest.raises(ConfigError, match="inputs must be"):
        emu.run(x[..., :5])
    with pytest.raises(ConfigError, match="no population"):
        emu.run(x, record_voltages=("nope",))
    counts = 2 * x                                   # graded payloads 0 / 2
    graded = loihi_emu.LoihiEmulator(fixed(dense_net(), counts), input_max=1)
    with pytest.raises(ConfigError, match="exceeds input_max"):
        graded.run(counts)


def test_registry_target_writes_and_reads_back(tmp_path):
    from spikeship.sim import registry
    from spikeship.sim.result import SimResult

    nir.write(str(tmp_path / "model.nir"), recurrent_net())
    x, labels = _spikes((4, 5, 7), seed=9), np.array([0, 1, 2, 1])
    r = registry.get("loihi-emu").run(tmp_path, x, labels, {"progress": False})
    r.save(tmp_path)
    back = SimResult.load(tmp_path, "loihi-emu")
    assert np.array_equal(back.output_spikes, r.output_spikes)
    assert set(back.neuron_counts) == {"lif1", "lif3"}
    assert back.neuron_counts["lif1"].shape == (5,) and back.neuron_counts["lif1"].sum() > 0
    assert back.accuracy == r.accuracy and r.extra["device"] == "cpu"

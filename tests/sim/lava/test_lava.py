"""Real (small) Lava runs of NIR graphs, floating and fixed point: against an independent
NIR step, the documented integer equations, pruned synapses absent from the built
Sparse process, many samples in one runtime, time limits and child errors."""

import multiprocessing as mp

import nir
import numpy as np
import pytest

from spikeship.errors import RuleError, SimulationError, SimulationTimeoutError
from spikeship.sim.lava import build as lava
from spikeship.sim.lava.run import run_deployment, run_fixed_target
from spikeship.sim.result import SimResult
from spikeship.targets.loihi.deploy import deployment_for
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.quantize import quantize
from tests.sim.lava.test_lava_fixtures import (DT, direct_cnn, direct_inputs, event_cnn,
                                          event_inputs, nir_step)

pytestmark = pytest.mark.lava


def _same_as_step(res: SimResult, graph, x, dt=DT):
    ref = nir_step(graph, x, dt)
    np.testing.assert_array_equal(res.output_spikes, ref["output"].reshape(res.output_spikes.shape))
    for name, counts in res.neuron_counts.items():
        np.testing.assert_array_equal(counts, ref[name].sum(axis=(0, 1)), err_msg=name)


def test_direct_cnn_float_matches_nir_step_spike_for_spike():
    g, x = direct_cnn(), direct_inputs(3, 4)
    res = run_deployment(lower(g), x, np.array([0, 1, 2]), timeout_s=300)
    _same_as_step(res, g, x)
    assert res.neuron_counts["lif4"].shape == (5, 3, 3) and res.output_spikes.shape == (3, 4, 3)
    assert res.extra["input_mode"] == "current" and res.extra["lava_steps"] == 3 * 4 + 3
    assert res.extra["samples_per_s_run"] > 0 and res.extra["steps_per_s"] > 0
    assert res.accuracy is not None and res.input_sum.shape == (1, 6, 6)


def test_event_cnn_float_matches_and_fixed_point_stays_close():
    g, x = event_cnn(), event_inputs(3, 5)
    _same_as_step(run_deployment(lower(g), x, timeout_s=300), g, x)
    fixed = run_deployment(quantize(g), x, timeout_s=300)
    ref = nir_step(g, x, DT)
    assert (fixed.output_spikes == ref["output"]).mean() >= 0.95
    assert fixed.extra["quantisation"]["synapses"]["conv0"]["weight_bits"] == 8


def _int_lif_trace(a_in, du, dv, vth, bias):
    """lava/proc/lif/models.py, AbstractPyLifModelFixed.subthr_dynamics + PyLifModelBitAcc."""
    u = v = 0
    vs, ss = [], []
    for a in a_in:
        x = u * (4096 - (du + 1))
        u = int(np.sign(x)) * (abs(x) >> 12) + (int(a) << 6)
        u = u - 2 ** 24 if u > 2 ** 23 else u + 2 ** 24 if u <= -2 ** 23 else u
        y = v * (4096 - dv)
        v = int(np.clip(int(np.sign(y)) * (abs(y) >> 12) + u + (bias << 6),
                        -2 ** 23 + 1, 2 ** 23 - 1))
        s = v > (vth << 6)
        v = 0 if s else v
        vs.append(v)
        ss.append(int(s))
    return vs, ss


def test_fixed_point_follows_the_documented_integer_equations():
    # input (3) -> Affine -> CubaLIF (slow current: du < 4095), bias into v
    a = np.ones(2, np.float32)
    w = np.array([[0.9, -0.4, 0.3], [0.5, 0.6, -0.2]], np.float32)
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Linear(weight=w),
        "lif": nir.CubaLIF(tau_syn=a * 2 * DT, tau_mem=a * 4 * DT, r=a * 4, v_leak=a * 0.1,
                           v_threshold=a * 0.4, v_reset=0 * a, w_in=a * 2),
        "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], metadata={"dt": DT})
    x = (np.random.default_rng(0).random((1, 30, 3)) < 0.4).astype(np.float32)
    dep = quantize(g)
    (p,), (s,) = dep.populations, dep.synapses
    traces = {}
    run_deployment(dep, x, record_voltages=("lif",), traces=traces, timeout_s=300)
    v_lava = traces["v/lif"][1:31]          # Lava steps 2..31 = sample steps 0..29 (depth 1)
    a_in = x[0] @ np.asarray(s.weights).T   # integer synaptic input (weight_exp 0)
    for i in range(2):
        vs, ss = _int_lif_trace(a_in[:, i], p.du, p.dv, p.vth, int(p.bias_mant[i]))
        assert v_lava[:, i].tolist() == vs
        assert traces["spikes/lif"][1:31, i].tolist() == ss
    assert 0 < p.du < 4095 and p.dv > 0 and np.any(p.bias_mant)


def test_pruned_synapses_are_absent_from_the_built_sparse_process(tmp_path):
    g = direct_cnn(prune=0.7)
    mask = g.nodes["fc6"].metadata["mask"]
    for k, dep in enumerate((lower(g), quantize(g))):
        (tmp_path / str(k)).mkdir()
        net = lava.build(dep, timesteps=2, chunk_steps=2, io_dir=tmp_path / str(k))
        proc = net.synapses["fc6"]
        assert type(proc).__name__ == "Sparse"
        w = proc.weights.init
        assert w.nnz == mask.sum()
        rows, cols = w.nonzero() if dep.precision == "float" else np.nonzero(
            (w != 0).toarray() | _structure(w))
        assert mask[rows, cols].all()
        assert not _structure(w)[~mask].any()
        assert type(net.synapses["fc8"]).__name__ == "Dense"
    # and in the running process model (Var.get of a CSR returns its stored values)
    res_w = {}

    def grab(net, session):
        w = session.get(net.synapses["fc6"].weights)
        res_w["n"] = w.nnz if hasattr(w, "nnz") else np.asarray(w).size

    (tmp_path / "run").mkdir()
    _run_with_hook(lower(g), direct_inputs(1, 2), grab, tmp_path / "run")
    assert res_w["n"] == mask.sum()


def _structure(csr):
    s = np.zeros(csr.shape, dtype=bool)
    r = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    s[r, csr.indices] = True
    return s


def _run_with_hook(dep, x, hook, folder):
    from lava.magma.core.run_configs import Loihi2SimCfg

    from spikeship.sim.lava.session import LavaSession

    n, t = x.shape[:2]
    net = lava.build(dep, timesteps=t, chunk_steps=n * t, io_dir=folder)
    with LavaSession(net.root, Loihi2SimCfg(select_tag="floating_pt"), timeout_s=120) as s:
        s.compile()
        s.run(n * t)
        hook(net, s)


def test_conv_output_reshaped_into_a_dense_through_a_port_reshape(tmp_path):
    from lava.magma.core.process.ports.ports import ReshapePort

    dep = lower(event_cnn())
    net = lava.build(dep, timesteps=2, chunk_steps=2, io_dir=tmp_path)
    fc3 = net.synapses["fc3"]
    (incoming,) = fc3.s_in.in_connections
    assert isinstance(incoming, ReshapePort) and incoming.shape == (64,)
    assert tuple(net.populations["lif1"].s_out.shape) == (4, 4, 4)     # Lava (W, H, C)


def test_many_samples_one_runtime_equal_separate_runs_with_recurrence():
    # recurrent CubaLIF with biases (snnTorch braille style): state, recurrent buffer and
    # bias are reset between samples; chunks of 2 samples force input refills
    g = nir.read("/work/shared/fixtures/nir-paper/braille_noDelay_bias_zero.nir")
    x = (np.random.default_rng(1).random((5, 6, 12)) < 0.3).astype(np.float32)
    dep = lower(g, dt_s=1e-4)
    together = run_deployment(dep, x, chunk=2, timeout_s=300)
    assert together.extra["chunks"] == 3
    _same_as_step(together, g, x, dt=1e-4)
    alone = run_deployment(dep, x[3:4], timeout_s=300)
    np.testing.assert_array_equal(alone.output_spikes[0], together.output_spikes[3])


def test_timeout_stops_lava_and_leaves_no_child_process():
    before = set(mp.active_children())
    with pytest.raises(SimulationTimeoutError, match="time limit"):
        run_deployment(lower(event_cnn()), event_inputs(400, 50), timeout_s=4)
    assert set(mp.active_children()) <= before


def test_a_failing_lava_process_is_surfaced_with_its_message():
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    from spikeship.sim.lava.session import LavaSession

    before = set(mp.active_children())
    src = RingBuffer(data=np.ones((3, 4), dtype=np.int32))
    dense = Dense(weights=np.ones((2, 3)), weight_exp=0.5)      # a float shift fails inside
    lif = LIF(shape=(2,), du=4095, dv=0, vth=10)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    with pytest.raises(SimulationError) as e:
        with LavaSession(src, Loihi2SimCfg(select_tag="fixed_pt"), timeout_s=120) as s:
            s.run(4)
    assert "Exception(s) occurred" not in str(e.value)
    assert "left_shift" in str(e.value) and "TypeError" in str(e.value)
    assert "dense/models.py" in str(e.value)
    assert set(mp.active_children()) <= before


def test_unsupported_graph_fails_before_lava_starts():
    g = direct_cnn()
    g.nodes["lif4"] = nir.I(r=np.ones((5, 3, 3), np.float32))
    with pytest.raises(RuleError, match=r"\[supported-node\] lif4"):
        deployment_for(g, "float", direct_inputs(1, 2), {})


def test_registry_targets_read_model_nir_and_write_results(tmp_path):
    from spikeship.sim import registry

    nir.write(tmp_path / "model.nir", direct_cnn())
    x, labels = direct_inputs(2, 3), np.array([0, 2])
    out = {}
    for name in ("lava-float", "lava-fixed"):
        res = registry.get(name).run(tmp_path, x, labels, {"progress": False, "timeout_s": 300})
        res.save(tmp_path)
        back = SimResult.load(tmp_path, name)
        np.testing.assert_array_equal(back.output_spikes, res.output_spikes)
        assert back.extra["lava_precision"] == name.split("-")[1]
        out[name] = res
    assert set(out["lava-fixed"].neuron_counts) == {"lif1", "lif4", "lif7", "lif9"}
    _same_as_step(out["lava-float"], nir.read(tmp_path / "model.nir"), x)


def test_ctrl_c_stops_lava_and_leaves_no_child_process():
    import os
    import signal
    import threading

    before = set(mp.active_children())
    # Python's own Ctrl-C handler, whatever an earlier test or library left installed
    # (in long runs of the suite the SIGINT was otherwise sometimes not turned into a
    # KeyboardInterrupt and the run went on to the end)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(4.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_deployment(lower(event_cnn()), event_inputs(400, 50), timeout_s=120)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    assert set(mp.active_children()) <= before


def test_unknown_target_option_is_a_config_error(tmp_path):
    from spikeship.errors import ConfigError

    nir.write(tmp_path / "model.nir", event_cnn())
    with pytest.raises(ConfigError, match="timeout_sec"):
        run_fixed_target(tmp_path, event_inputs(1, 2), None, {"timeout_sec": 3})

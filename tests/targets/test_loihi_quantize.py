"""NIR -> Loihi deployment: lowering (pool folding, neuron mapping), fixed-point
quantisation (rounding, saturation, bit widths) and the named design rules. Pure: no Lava."""

from dataclasses import replace

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikeship.errors import ConfigError, RuleError
from spikeship.targets.loihi.deployment import FORMAT, Deployment
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.quantize import (quantize, quantize_current, quantize_deployment,
                                              quantize_weights, state_scale)
from spikeship.targets.loihi.rules import check_fixed
from tests.sim.lava.test_lava_fixtures import BETA, DT, direct_cnn, event_cnn

FIX = "/work/shared/fixtures/nir-paper/"
A1 = np.ones(1, np.float32)


def _lif(shape, v_th=0.5, tau=DT / (1 - BETA), **kw):
    a = np.ones(shape, np.float32)
    p = dict(tau=a * tau, r=a, v_leak=0 * a, v_threshold=a * v_th, v_reset=0 * a)
    p.update({k: np.broadcast_to(np.asarray(v, np.float32), shape).copy() for k, v in kw.items()})
    return nir.LIF(**p)


def _chain(*nodes, in_shape=(3,), meta=None, extra_edges=(), extra_nodes=None,
           type_check=True):
    """input -> nodes[0] -> ... -> output, nodes given as (name, node)."""
    names = [n for n, _ in nodes]
    out_shape = np.shape(nodes[-1][1].v_threshold) if hasattr(nodes[-1][1], "v_threshold") \
        else (1,)
    d = {"input": nir.Input(input_type={"input": np.array(in_shape)}), **dict(nodes),
         **(extra_nodes or {}), "output": nir.Output(output_type={"output": np.array(out_shape)})}
    edges = list(zip(["input", *names], [*names, "output"])) + list(extra_edges)
    return nir.NIRGraph(nodes=d, edges=edges, metadata={"dt": DT} if meta is None else meta,
                        type_check=type_check)


def _affine(out, inp, scale=0.5, seed=0, bias=True):
    w = np.random.default_rng(seed).normal(0, scale, (out, inp)).astype(np.float32)
    return nir.Affine(weight=w, bias=np.full(out, 0.1, np.float32)) if bias else nir.Linear(w)


# ------------------------------------------------------------------------- lowering
def test_lif_mapping_du_dv_gain_and_bias():
    g = _chain(("fc", _affine(5, 3)), ("lif", _lif((5,), v_leak=0.2)))
    dep = lower(g)
    p, s = dep.populations[0], dep.synapses[0]
    a = 1 - BETA                       # dt / tau
    assert (p.du, p.dv, p.vth, p.depth) == (1.0, pytest.approx(a), 0.5, 1)
    np.testing.assert_allclose(s.weights, a * g.nodes["fc"].weight, rtol=1e-6)
    np.testing.assert_allclose(p.bias_mant, a * 0.1 + a * 0.2, rtol=1e-6)   # g b + a v_leak
    assert s.kind == "dense" and s.source == "input" and not s.pruned


def test_per_neuron_thresholds_are_normalised_into_the_rows():
    g = _chain(("fc", _affine(3, 3)), ("lif", _lif((3,), v_th=[0.5, 1.0, 0.25])))
    dep = lower(g)
    p, s = dep.populations[0], dep.synapses[0]
    c = np.array([2.0, 1.0, 4.0])                      # vth_ref (1.0) / v_threshold
    assert p.vth == 1.0
    np.testing.assert_allclose(p.v_scale, c)
    np.testing.assert_allclose(s.weights, (1 - BETA) * c[:, None] * g.nodes["fc"].weight,
                               rtol=1e-6)


def test_cubalif_mapping_and_slow_bias_through_a_constant_unit():
    g = nir.read(FIX + "braille_noDelay_bias_zero.nir")
    dep = lower(g, dt_s=1e-4)
    p = dep.population("lif1.lif")
    node = g.nodes["lif1.lif"]
    a_s, a_m = 1e-4 / node.tau_syn[0], 1e-4 / node.tau_mem[0]
    assert (p.du, p.dv, p.depth) == (pytest.approx(a_s), pytest.approx(a_m), 1)
    rec = [s for s in dep.synapses if s.recurrent]
    assert [(s.name, s.source, s.target) for s in rec] == [("lif1.w_rec", "lif1.lif", "lif1.lif")]
    gain = a_m * node.r * a_s * node.w_in
    np.testing.assert_allclose(rec[0].weights, gain[:, None] * g.nodes["lif1.w_rec"].weight,
                               rtol=1e-5)
    bias = {s.target: s for s in dep.synapses if s.source == "const"}
    assert set(bias) == {"lif1.lif", "lif2"}            # fc1 + w_rec biases, fc2 bias
    np.testing.assert_allclose(bias["lif1.lif"].weights[:, 0],
                               gain * (g.nodes["fc1"].bias + g.nodes["lif1.w_rec"].bias),
                               rtol=1e-5)
    assert not np.any(p.bias_mant)
    nob = lower(nir.read(FIX + "braille_noDelay_noBias_subtract.nir"), dt_s=1e-4)
    assert not [s for s in nob.synapses if s.source == "const"]


def test_pool_is_folded_into_the_next_conv_exactly():
    dep = lower(direct_cnn())
    (s,) = [s for s in dep.synapses if s.name == "conv3"]
    assert s.folded == ("pool2",) and s.weights.shape == (5, 3, 6, 6)
    assert (s.stride, s.padding, s.source_shape) == ((2, 2), (2, 2), (3, 6, 6))
    g = direct_cnn()
    x = torch.from_numpy((np.random.default_rng(3).random((4, 3, 6, 6)) < 0.5) * 1.0)
    w3 = torch.from_numpy(g.nodes["conv3"].weight.astype(np.float64))
    expect = F.conv2d(F.avg_pool2d(x, 2) * 4, w3, padding=1) * (1 - BETA)
    got = F.conv2d(x, torch.from_numpy(s.weights), stride=s.stride, padding=s.padding)
    torch.testing.assert_close(got, expect)


def test_pool_flatten_affine_fold_and_odd_border():
    # (2, 5, 5) -> SumPool 2 -> (2, 2, 2) -> flatten -> Affine(3, 8): row/col 4 are cropped
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (3, 8)).astype(np.float32)
    g = _chain(("conv", nir.Conv2d(input_shape=(5, 5), weight=np.ones((2, 1, 1, 1), np.float32),
                                   stride=1, padding=0, dilation=1, groups=1,
                                   bias=np.zeros(2, np.float32))),
               ("lif", _lif((2, 5, 5))),
               ("pool", nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                      padding=np.array([0, 0]))),
               ("flat", nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0)),
               ("fc", nir.Affine(weight=w, bias=np.zeros(3, np.float32))),
               ("lif2", _lif((3,))), in_shape=(1, 5, 5))
    dep = lower(g)
    (s,) = [s for s in dep.synapses if s.name == "fc"]
    assert s.folded == ("pool", "flat") and s.flatten_source and s.kind == "sparse"
    x = (rng.random((6, 2, 5, 5)) < 0.5) * 1.0
    expect = (F.avg_pool2d(torch.from_numpy(x), 2).reshape(6, -1).numpy() @ w.T) * (1 - BETA)
    np.testing.assert_allclose(x.reshape(6, -1) @ s.weights.toarray().T, expect, rtol=1e-6)
    absent = s.weights.toarray().reshape(3, 2, 5, 5)
    assert s.weights.nnz == 3 * 2 * 4 * 4 and not absent[:, :, 4, :].any()


def test_pruned_affine_becomes_sparse_holding_only_surviving_synapses():
    g = direct_cnn(prune=0.6)
    mask = g.nodes["fc6"].metadata["mask"]
    (s,) = [s for s in lower(g).synapses if s.name == "fc6"]
    assert s.kind == "sparse" and s.pruned and s.weights.nnz == mask.sum()
    rows, cols = s.weights.nonzero()
    assert mask[rows, cols].all()
    (q,) = [q for q in quantize(g).synapses if q.name == "fc6"]
    assert q.kind == "sparse" and q.weights.nnz == mask.sum()          # zeros kept explicit
    # a third-party graph without mask: exact zeros are absent synapses
    w = np.array([[0.0, 1.0, 0.5], [0.3, 0.0, 0.0]], np.float32)
    g2 = _chain(("fc", nir.Linear(weight=w)), ("lif", _lif((2,))))
    (s2,) = lower(g2).synapses
    assert s2.kind == "sparse" and s2.weights.nnz == 3


def test_input_modes_and_depths():
    direct = lower(direct_cnn())
    assert direct.input_mode == "current"
    assert [h.name for h in direct.host_layers] == ["conv0"]
    assert [p.depth for p in direct.populations] == [0, 1, 2, 3]
    events = lower(event_cnn())
    assert events.input_mode == "spikes" and not events.host_layers
    assert [p.depth for p in events.populations] == [1, 2, 3]
    forced = lower(direct_cnn(), input_mode="spikes", input_message_bits=8)
    assert forced.synapses[0].source == "input" and forced.synapses[0].num_message_bits == 8
    cnn = lower(nir.read(FIX + "cnn_sinabs.nir"))          # IF needs no dt
    assert [p.depth for p in cnn.populations] == [1, 2, 3, 4, 5] and cnn.output == "12"


# ------------------------------------------------------------------------- quantisation
def test_quantize_weights_rounds_half_to_even_and_saturates():
    q, sat = quantize_weights(np.array([0.0, 1.0, 1.5, 2.5, -2.5, 127.4, 200.0, -300.0]), 128.0)
    assert q.tolist() == [0, 2, 4, 4, -4, 254, 254, -254] and sat == 2


def test_state_scale_uses_the_full_mantissa_and_caps_the_threshold():
    dep = lower(direct_cnn())
    p = dep.population("lif4")
    s = state_scale(p, dep.incoming("lif4"))
    wmax = np.abs(dep.incoming("lif4")[0].weights).max()
    assert s == pytest.approx(128 * 127 / wmax)
    tiny = replace(dep.incoming("lif4")[0], weights=dep.incoming("lif4")[0].weights * 1e-4)
    assert state_scale(p, [tiny]) * p.vth / 64 == pytest.approx(FORMAT.vth_target_max)
    host_only = dep.population("lif1")
    assert state_scale(host_only, []) * host_only.vth / 64 == pytest.approx(FORMAT.injection_vth)


def test_fixed_deployment_fits_lava_bit_widths_and_reports_errors():
    dep = quantize(direct_cnn())
    check_fixed(dep)
    for p in dep.populations:
        assert (p.du, p.dv) == (4095, 3277)                # rint(4096 * 0.8) = 3277
        assert p.vth == round(p.state_scale * 0.5 / 64) and np.all(p.bias_exp == 6)
        info = dep.report["populations"][p.name]
        assert abs(info["vth_rel_err"]) <= 0.5 / p.vth + 1e-12
    for s in dep.synapses:
        w = s.weights.data if s.kind == "sparse" else s.weights
        assert np.all(w % 2 == 0) and np.abs(w).max() == 254 and s.weight_exp == 0
        info = dep.report["synapses"][s.name]
        assert info["weight_bits"] == 8 and info["max_abs_err_rel"] <= 0.5 / 127 + 1e-9
    (h,) = dep.host_layers
    assert h.injection_scale == pytest.approx(dep.population("lif1").state_scale / 64)


def test_bias_mantissa_saturates_at_13_bits_and_is_reported():
    g = _chain(("fc", nir.Affine(weight=np.array([[0.01, 0.0, 0.0]], np.float32),
                                 bias=np.array([50.0], np.float32))), ("lif", _lif((1,))))
    dep = quantize(g)
    assert dep.populations[0].bias_mant.tolist() == [FORMAT.bias_mant_max]
    assert dep.report["populations"]["lif"]["bias_saturated"] == 1


def test_decay_rounding_floor_and_state_scale_override_reproduce_other_tools():
    g = nir.read(FIX + "lif_norse.nir")
    dep = quantize(g, dt_s=1e-4, state_scales={"1": 16000.0}, decay_rounding="floor")
    (p,), (s,) = dep.populations, dep.synapses
    assert (p.du, p.dv, p.vth, int(s.weights[0, 0])) == (4095, 163, 25, 10)
    assert quantize(g, dt_s=1e-4).populations[0].dv == 164
    with pytest.raises(ValueError, match="decay_rounding"):
        quantize(g, dt_s=1e-4, decay_rounding="up")


def test_quantize_current_clips_to_the_24_bit_current():
    (h,) = quantize(direct_cnn()).host_layers
    a, sat = quantize_current(np.array([0.0, 1.0, 1e9, -1e9]), h)
    assert a.tolist()[:2] == [0, int(np.rint(h.injection_scale))]
    assert a.tolist()[2:] == [FORMAT.injection_max, -FORMAT.injection_max] and sat == 2


def test_float_deployment_summary_is_json():
    import json

    text = json.dumps(lower(direct_cnn()).summary())
    assert '"fc6": {"kind": "sparse"' in text


# ------------------------------------------------------------------------- design rules
def _rule(graph, rule, **kw):
    with pytest.raises(RuleError) as e:
        quantize(graph, **kw)
    assert e.value.rule == rule and str(e.value).startswith(f"[{rule}]")
    return e.value


def test_rule_supported_node():
    g = _chain(("fc", _affine(3, 3)), ("d", nir.Delay(delay=np.ones(3, np.float32))),
               ("lif", _lif((3,))))
    assert _rule(g, "supported-node").node == "d"


def test_rule_reset_to_zero():
    assert _rule(_chain(("fc", _affine(3, 3)), ("lif", _lif((3,), v_reset=0.1))),
                 "reset-to-zero").node == "lif"
    g = _chain(("fc", _affine(3, 3)), ("lif", _lif((3,))), meta={"dt": DT, "reset": "subtract"})
    _rule(g, "reset-to-zero")


def test_rule_uniform_time_constant_and_decay_range():
    # per-neuron tau: an Affine-fed population is split into groups (tests/targets/
    # test_tau_groups.py); a recurrent one cannot be and keeps the rule
    g = _chain(("fc", _affine(3, 3)), ("lif", _lif((3,), tau=[1e-3, 2e-3, 1e-3])),
               extra_nodes={"rec": _affine(3, 3, seed=2)},
               extra_edges=[("lif", "rec"), ("rec", "lif")], type_check=False)
    _rule(g, "uniform-time-constant")
    _rule(_chain(("fc", _affine(3, 3)), ("lif", _lif((3,), tau=DT / 2))), "decay-range")


def test_rule_threshold_positive_and_resolution():
    _rule(_chain(("fc", _affine(3, 3)), ("lif", _lif((3,), v_th=[0.5, 0.0, 0.5]))),
          "threshold-positive")
    big = nir.Affine(weight=np.full((1, 3), 1e4, np.float32), bias=np.zeros(1, np.float32))
    _rule(_chain(("fc", big), ("lif", _lif((1,), v_th=1e-3))), "threshold-resolution")


def test_rule_one_synapse_per_path():
    g = _chain(("fa", _affine(3, 3)), ("fb", _affine(3, 3, seed=1)), ("lif", _lif((3,))))
    assert _rule(g, "one-synapse-per-path").node == "lif"


def test_rule_pool_foldable():
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 1, 1), np.float32), stride=1,
                      padding=0, dilation=1, groups=1, bias=np.zeros(1, np.float32))
    pool = nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    g = _chain(("c", conv), ("lif", _lif((1, 4, 4))), ("p", pool),
               ("f", nir.Flatten(input_type={"input": np.array([1, 1, 1])}, start_dim=0)),
               ("fc", _affine(2, 1)), ("lif2", _lif((2,))), in_shape=(1, 4, 4))
    assert _rule(g, "pool-foldable").node == "p"


def test_rule_flatten_to_vector():
    conv = nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 1, 1), np.float32), stride=1,
                      padding=0, dilation=1, groups=1, bias=np.zeros(1, np.float32))
    g = _chain(("c", conv), ("lif", _lif((1, 2, 2))), ("fc", _affine(2, 4)),
               ("lif2", _lif((2,))), in_shape=(1, 2, 2), type_check=False)
    _rule(g, "flatten-to-vector")


def test_rule_uniform_delay_and_self_recurrence_only():
    skip = _chain(("fa", _affine(3, 3)), ("l1", _lif((3,))), ("fb", _affine(3, 3, seed=1)),
                  ("l2", _lif((3,))), extra_edges=[("input", "fc"), ("fc", "l2")],
                  extra_nodes={"fc": _affine(3, 3, seed=2)})
    assert _rule(skip, "uniform-delay").node == "l2"
    loop = _chain(("fa", _affine(3, 3)), ("l1", _lif((3,))), ("fb", _affine(3, 3, seed=1)),
                  ("l2", _lif((3,))), extra_edges=[("l2", "back"), ("back", "l1")],
                  extra_nodes={"back": _affine(3, 3, seed=2)})
    _rule(loop, "self-recurrence-only")


def test_rule_output_is_population():
    _rule(_chain(("fc", _affine(3, 3)), ("lif", _lif((3,))), ("fc2", _affine(1, 3))),
          "output-is-population")


def test_rule_conv_channel_uniform():
    conv = nir.Conv2d(input_shape=(2, 2), weight=np.ones((1, 1, 1, 1), np.float32), stride=1,
                      padding=0, dilation=1, groups=1, bias=np.zeros(1, np.float32))
    th = np.array([[[0.5, 0.5], [0.5, 1.0]]], np.float32)
    assert _rule(_chain(("c", conv), ("lif", _lif((1, 2, 2), v_th=th)), in_shape=(1, 2, 2)),
                 "conv-channel-uniform").node == "c"


def test_rule_fixed_range_catches_a_broken_deployment():
    dep = quantize(event_cnn())
    bad = replace(dep, synapses=(replace(dep.synapses[0], weights=dep.synapses[0].weights + 1),
                                 *dep.synapses[1:]))
    with pytest.raises(RuleError) as e:
        check_fixed(bad)
    assert e.value.rule == "fixed-range" and e.value.node == "conv0"
    with pytest.raises(RuleError):
        check_fixed(lower(event_cnn()))


def test_missing_dt_is_a_config_error_and_floats_are_not_quantised_twice():
    g = _chain(("fc", _affine(3, 3)), ("lif", _lif((3,))), meta={})
    with pytest.raises(ConfigError, match="dt"):
        lower(g)
    assert lower(g, dt_s=DT).dt_s == DT
    with pytest.raises(ValueError):
        quantize_deployment(quantize(event_cnn()))
    assert isinstance(quantize(event_cnn()), Deployment)

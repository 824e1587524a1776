"""Per-neuron time constants on Lava: Affine-fed populations are split into groups of equal
tau (exact), a conv population with per-pixel tau is refused by rule name."""

import nir
import numpy as np
import pytest

from spikeship.errors import RuleError
from spikeship.sim.loihi_emu import LoihiEmulator
from spikeship.sim.reference import simulate
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.quantize import quantize_deployment

F = np.float64


def _lif(shape, tau):
    return nir.LIF(tau=np.asarray(tau, F).reshape(shape), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape))


def _mlp(tau_hidden):
    rng = np.random.default_rng(4)
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "fc1": nir.Affine(weight=rng.normal(0, 1, (5, 3)) + 0.6, bias=np.zeros(5)),
             "lif1": _lif((5,), tau_hidden),
             "fc2": nir.Affine(weight=rng.normal(0, 1, (2, 5)) + 0.5, bias=np.zeros(2)),
             "lif2": _lif((2,), [2e-3, 5e-3]),
             "output": nir.Output(output_type={"output": np.array([2])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def test_affine_population_is_split_by_tau_and_runs_as_the_reference():
    g = _mlp([2e-3, 4e-3, 2e-3, 4e-3, 8e-3])
    dep = lower(g)
    assert dep.groups["lif1"][1][0][0] == "lif1~0"
    members = [m.tolist() for _, m in dep.groups["lif1"][1]]
    assert members == [[0, 2], [1, 3], [4]]          # tau 2, 4, 8 ms
    assert {p.name: p.dv for p in dep.populations}["lif1~1"] == pytest.approx(0.25)
    assert dep.output_populations() == ["lif2~0", "lif2~1"]
    x = (np.random.default_rng(0).random((4, 12, 3)) < 0.6).astype(F)
    ref, counts = simulate(g, x)
    emu = LoihiEmulator(quantize_deployment(dep)).run(x)
    assert ref.sum() > 5
    np.testing.assert_array_equal(emu.output_spikes, ref)
    for k in ("lif1", "lif2"):
        np.testing.assert_array_equal(emu.counts[k], counts[k])


def test_uniform_tau_is_not_split():
    assert lower(_mlp([3e-3] * 5)).groups.keys() == {"lif2"}


def test_conv_population_with_per_pixel_tau_is_refused_by_rule_name():
    tau = np.full((2, 3, 3), 2e-3)
    tau[0, 1, 1] = 5e-3
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 5, 5])}),
             "conv": nir.Conv2d(input_shape=(5, 5), weight=np.ones((2, 1, 3, 3)), stride=1,
                                padding=0, dilation=1, groups=1, bias=np.zeros(2)),
             "lif": _lif((2, 3, 3), tau),
             "output": nir.Output(output_type={"output": np.array([2, 3, 3])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
                     metadata={"dt": 1e-3}, type_check=False)
    with pytest.raises(RuleError, match=r"\[uniform-time-constant\] lif: .*Conv2d 'conv'") as e:
        lower(g)
    assert e.value.rule == "uniform-time-constant"

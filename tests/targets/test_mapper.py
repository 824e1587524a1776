"""Loihi / Loihi 2 core mapping under the published per-core limits."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeship.errors import RuleError
from spikeship.nir.layers import synaptic_layers
from spikeship.energy.synops import layer_fanout, presynaptic_fanout
from spikeship.targets.loihi.mapper import _core_costs, axon_bits, connectivity, map_graph
from spikeship.targets.registry import get_spec
from spikeship.targets.specs import ChipSpec, CoreLimits, EnergyCosts
from tests.energy.energy_nets import chain, convnet, lif


def fc_graph(n_in, n_out, mask=None):
    w = np.ones((n_out, n_in), np.float32)
    md = {} if mask is None else {"mask": mask, "source_layer": "0"}
    return chain({"input": nir.Input(input_type={"input": np.array([n_in])}),
                  "fc0": nir.Affine(weight=w, bias=np.zeros(n_out, np.float32), metadata=md),
                  "lif1": lif((n_out,)),
                  "output": nir.Output(output_type={"output": np.array([n_out])})})


def test_unrolled_connectivity_matches_fanout_maps(tmp_path):
    nir.write(tmp_path / "c.nir", convnet(seed=4))
    g = nir.read(tmp_path / "c.nir")
    for layer in synaptic_layers(g):
        a = connectivity(layer)
        fan = presynaptic_fanout(layer, layer_fanout(layer)).ravel()
        np.testing.assert_array_equal(np.asarray(a.sum(axis=0)).ravel(), fan)
        assert a.shape[0] == int(np.prod(layer.out_shape))


def test_neurons_per_core_sets_the_core_count():
    m = map_graph(fc_graph(7, 2500), get_spec("loihi"))
    (lay,) = m.layers
    assert (lay.cores, lay.limit, lay.neurons) == (3, "neurons_per_core", 2500)   # ceil(2500/1024)
    assert map_graph(fc_graph(7, 2500), get_spec("loihi2")).cores == 1           # 8192 per core


def test_fan_in_beyond_4096_is_a_named_rule_error_and_pruning_fixes_it():
    with pytest.raises(RuleError, match=r"\[core-fan-in-axons\] fc0") as e:
        map_graph(fc_graph(5000, 3), get_spec("loihi"))
    assert e.value.rule == "core-fan-in-axons" and e.value.node == "fc0"
    mask = np.ones((3, 5000), bool)
    mask[:, 4000:] = False                      # 1000 input columns pruned
    m = map_graph(fc_graph(5000, 3, mask), get_spec("loihi"))
    assert m.cores == 1 and m.layers[0].max_fan_in == 4000
    assert map_graph(fc_graph(5000, 3), get_spec("loihi2")).cores == 1   # no published fan-in


def test_synapse_memory_splits_a_dense_layer_minimally():
    spec = get_spec("loihi")
    m = map_graph(fc_graph(3000, 1000), spec)
    (lay,) = m.layers
    assert lay.limit == "synapse_memory_bits" and lay.cores > 1
    from scipy import sparse

    a = sparse.csr_matrix(np.ones((1000, 3000), np.int8))
    assert max(c[2] for c in _core_costs(a, lay.cores, spec.limits)) <= spec.limits.synapse_memory_bits
    assert max(c[2] for c in _core_costs(a, lay.cores - 1, spec.limits)) > spec.limits.synapse_memory_bits
    assert map_graph(fc_graph(3000, 1000), get_spec("loihi2")).cores < lay.cores


def test_axon_bits_follow_the_block_encoding():
    # 8-bit weights + 6-bit index (<= 64 targets): 64 synapses = 64*14 + 10 bits -> 15 words
    assert axon_bits(np.array([1]), 10, 8)[0] == 64
    assert axon_bits(np.array([64]), 64, 8)[0] == 15 * 64
    assert axon_bits(np.array([65]), 128, 8)[0] == (-(-(64 * 15 + 10) // 64) + 1) * 64
    assert axon_bits(np.array([0]), 10, 8)[0] == 0


def test_fan_out_rule_names_the_population():
    limits = CoreLimits(cores_per_chip=128, neurons_per_core=1, fan_out_axons=3)
    spec = ChipSpec("toy", "toy chip", True, EnergyCosts(), limits)
    g = chain({"input": nir.Input(input_type={"input": np.array([2])}),
               "fc0": nir.Affine(weight=np.ones((1, 2), np.float32), bias=np.zeros(1, np.float32)),
               "lif1": lif((1,)),
               "fc2": nir.Affine(weight=np.ones((5, 1), np.float32), bias=np.zeros(5, np.float32)),
               "lif3": lif((5,)), "output": nir.Output(output_type={"output": np.array([5])})})
    with pytest.raises(RuleError, match=r"\[core-fan-out-axons\] lif1"):
        map_graph(g, spec)
    ok = ChipSpec("toy", "toy", True, EnergyCosts(), CoreLimits(128, 1, fan_out_axons=5))
    m = map_graph(g, ok)
    assert [l.max_fan_out for l in m.layers] == [5, 0] and m.cores == 6


def test_cores_before_and_after_pruning(tmp_path):
    nir.write(tmp_path / "c.nir", convnet())
    g = nir.read(tmp_path / "c.nir")
    before = map_graph(g, get_spec("loihi"), original=True, host_input=False)
    after = map_graph(g, get_spec("loihi"), host_input=False)
    assert [l.neurons for l in before.layers] == [7 * 7 * 9, 6 * 2 * 2, 3]
    assert [l.neurons for l in after.layers] == [5 * 7 * 9, 4 * 2 * 2, 3]
    assert all(b.synapses > a.synapses for b, a in zip(before.layers, after.layers))
    assert before.cores >= after.cores


def test_direct_encoded_first_layer_runs_on_the_host(tmp_path):
    nir.write(tmp_path / "d.nir", convnet(encoding="direct"))
    g = nir.read(tmp_path / "d.nir")
    host = map_graph(g, get_spec("loihi"))
    chip = map_graph(g, get_spec("loihi"), host_input=False)
    assert host.layers[0].synapses == 0 and host.layers[0].max_fan_in == 0
    assert chip.layers[0].synapses > 0 and chip.layers[0].max_fan_in > 0
    assert [l.synapses for l in host.layers[1:]] == [l.synapses for l in chip.layers[1:]]
    assert host.layers[0].neurons == chip.layers[0].neurons == 5 * 7 * 9

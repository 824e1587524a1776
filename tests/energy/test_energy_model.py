"""Energy per chip from counts: hand-computed numbers with the published figures."""

from __future__ import annotations

import pytest

from spikeship.energy.model import ann_comparison, price
from spikeship.energy.synops import LayerSynops, PopulationActivity, SynopsReport
from spikeship.targets.registry import get_spec


def _layer(name, op, eff, dense, pre, post, inst=0, inst0=0):
    return LayerSynops(layer=name, source_layer=name[-1], kind="fc", presynaptic=pre,
                       postsynaptic=post, op=op, presynaptic_events=1.0, synops_effective=eff,
                       synops_dense=dense, connections_deployed=1, connections_original=2,
                       instances_deployed=inst, instances_original=inst0,
                       mask_source="metadata", original_known=True)


def report(input_events=0.0, first_op="MAC"):
    """input -> fc0 (100 effective / 150 dense ops) -> lif1 (10 neurons, 12 before pruning,
    6 spikes) -> fc2 (50 / 80) -> lif3 (3 neurons, 2 spikes); T = 4, per sample."""
    return SynopsReport(
        layers=(_layer("fc0", first_op, 100.0, 150.0, "input", "lif1", 70, 84),
                _layer("fc2", "AC", 50.0, 80.0, "lif1", "lif3", 30, 36)),
        populations=(PopulationActivity("lif1", 10, 12, 6.0, 40.0, "fc0"),
                     PopulationActivity("lif3", 3, 3, 2.0, 12.0, "fc2")),
        samples=1, timesteps=4, counts_source="t", counts_kind="simulation", assumed_rate=None,
        input_events=input_events)


def test_loihi_hand_computed():
    e = price(report(), get_spec("loihi"))
    fc0, fc2 = e.layers
    assert fc0.macs_on_host and fc0.macs_pj == pytest.approx(100 * 4.6)       # host MACs
    assert fc0.neurons_pj == pytest.approx(6 * 81 + 34 * 52)
    assert fc0.routing_pj == pytest.approx(6 * 1.7)
    assert fc2.synops_pj == pytest.approx(50 * 23.6)
    assert fc2.neurons_pj == pytest.approx(2 * 81 + 10 * 52)
    assert e.total_pj == pytest.approx(460 + 2254 + 10.2 + 1180 + 682 + 3.4)
    # dense: unpruned wiring, and the 2 removed lif1 neurons idle at all 4 steps
    assert e.dense_total_pj == pytest.approx(150 * 4.6 + 6 * 81 + 42 * 52 + 10.2
                                             + 80 * 23.6 + 682 + 3.4)
    assert e.unpriced == () and any("hops" in n for n in e.notes)
    assert any("host" in n for n in e.notes)


def test_binary_input_events_are_routed_on_the_first_layer():
    e = price(report(input_events=9.0, first_op="AC"), get_spec("loihi"))
    assert e.layers[0].synops_pj == pytest.approx(100 * 23.6)
    assert e.layers[0].routing_pj == pytest.approx((6 + 9) * 1.7)
    assert not e.layers[0].macs_on_host


def test_truenorth_prices_synaptic_events_only():
    e = price(report(), get_spec("truenorth"))
    assert e.total_pj == pytest.approx(100 * 4.6 + 50 * 26)
    assert set(e.unpriced) == {"neuron updates", "spike routing"}


def test_spinnaker2_updates_every_neuron_every_step():
    e = price(report(), get_spec("spinnaker2"))
    assert e.total_pj == pytest.approx(100 * 4.6 + 40 * 2190 + 50 * 450 + 12 * 2190)
    assert e.unpriced == ("spike routing",)


def test_loihi2_is_not_priced_without_published_figures():
    e = price(report(), get_spec("loihi2"))
    assert e.total_pj is None and e.dense_total_pj is None
    assert "synaptic operations" in e.unpriced and "not priced" in e.notes[0]


def test_ann_comparison_hand_computed():
    a = ann_comparison(report())
    assert (a.ann_dense_macs, a.ann_pruned_macs) == (84 + 36, 70 + 30)
    assert a.ann_dense_pj == pytest.approx(120 * 4.6)
    assert a.snn_cmos45_pj == pytest.approx(100 * 4.6 + 50 * 0.9)
    chips = {"loihi": price(report(), get_spec("loihi"))}
    d = a.to_json(chips)
    assert d["ann_dense_over_chip"]["loihi"] == pytest.approx(120 * 4.6 / chips["loihi"].total_pj)


def test_pruning_lowers_energy_on_every_priced_chip():
    for chip in ("loihi", "truenorth", "spinnaker2", "cmos45"):
        e = price(report(), get_spec(chip))
        assert e.dense_total_pj > e.total_pj

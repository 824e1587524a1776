"""Chip specs: registered, frozen, every figure sourced, the published values."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from spikeship.errors import ConfigError
from spikeship.targets.registry import CHIPS, all_specs, get_spec
from spikeship.targets.specs import EnergyCosts

FIGURES = ("synop_pj", "mac_pj", "add_pj", "neuron_update_active_pj", "neuron_update_idle_pj",
           "spike_route_pj", "spike_hop_pj")


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_every_figure_and_limit_has_a_known_source(name):
    spec = get_spec(name)
    assert spec.name == name
    keys = {s.key for s in spec.references}
    for fig in FIGURES:
        if getattr(spec.energy, fig) is not None:
            assert spec.energy.sources[fig] in keys
    if spec.limits is not None:
        for fig, key in spec.limits.sources.items():
            assert hasattr(spec.limits, fig) and key in keys
    for fig, text in spec.sources_json().items():
        assert len(text) > 20, fig


@pytest.mark.parametrize("name", sorted(CHIPS))
def test_every_number_in_spec_py_carries_a_source_comment(name):
    """Each line assigning a number in targets/<chip>/spec.py cites where it comes from."""
    src = Path(__file__).parents[2] / "spikeship" / "targets" / name / "spec.py"
    body = src.read_text().split("SPEC = ChipSpec(", 1)[1]
    for line in body.splitlines():
        m = re.match(r"\s*(\w+)=([0-9][0-9_.* /]*),", line)
        if m and m.group(1) not in ("sources",):
            assert "#" in line, f"{name}: {line.strip()} has no source comment"


def test_published_values_of_notes_table():
    loihi, tn, sp2, cmos = (get_spec(n) for n in ("loihi", "truenorth", "spinnaker2", "cmos45"))
    assert (loihi.energy.synop_pj, loihi.energy.neuron_update_active_pj,
            loihi.energy.neuron_update_idle_pj, loihi.energy.spike_route_pj) == (23.6, 81, 52, 1.7)
    assert 3.0 <= loihi.energy.spike_hop_pj <= 4.0
    assert tn.energy.synop_pj == 26.0
    assert (sp2.energy.synop_pj, sp2.energy.neuron_update_active_pj) == (450.0, 2190.0)
    assert (cmos.energy.mac_pj, cmos.energy.add_pj) == (4.6, 0.9)
    assert not cmos.spiking and loihi.spiking


def test_loihi_core_limits():
    lim = get_spec("loihi").limits
    assert (lim.cores_per_chip, lim.neurons_per_core, lim.fan_in_axons, lim.fan_out_axons) == \
        (128, 1024, 4096, 4096)
    assert lim.synapse_memory_bits == 128 * 1024 * 8
    l2 = get_spec("loihi2").limits
    assert (l2.cores_per_chip, l2.neurons_per_core) == (128, 8192)
    assert l2.synapse_memory_bits == 192 * 1024 * 8 and l2.fan_in_axons is None


def test_specs_are_frozen_and_unknown_names_rejected():
    spec = get_spec("loihi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.energy.synop_pj = 1.0
    with pytest.raises(ConfigError, match="unknown hardware"):
        get_spec("loihi3")
    assert set(all_specs()) == set(CHIPS)


def test_a_figure_without_source_is_rejected():
    with pytest.raises(ConfigError, match="no source"):
        EnergyCosts(synop_pj=1.0)
    with pytest.raises(ConfigError):
        EnergyCosts(synop_pj=-1.0, sources={"synop_pj": "x"})

"""SpiNNaker 2: energy per synaptic operation and per neuron update, with the source.

Hoppner et al. (2019) measured 450 pJ per synaptic operation and 2.19 nJ per neuron
update on the SpiNNaker 2 prototype with dynamic power management; these are the
figures keras-spiking's ``ModelEnergy`` uses for its "spinnaker2" device. The
processor updates every neuron every step at the same cost, fired or not.
"""

from __future__ import annotations

from spikeship.targets.specs import ChipSpec, EnergyCosts, Source

HOPPNER2019 = Source(
    "hoppner2019",
    "S. Hoppner et al., 'Dynamic power management for neuromorphic many-core systems', "
    "IEEE TCAS-I 66(8):2973-2986, 2019 (arXiv:1903.08941)",
    "as used by keras-spiking, keras_spiking/model_energy.py, device 'spinnaker2'")

SPEC = ChipSpec(
    name="spinnaker2",
    title="SpiNNaker 2 (22 nm FDSOI prototype, 2019)",
    spiking=True,
    energy=EnergyCosts(
        synop_pj=450.0,                  # Hoppner 2019: 450 pJ per synaptic operation
        neuron_update_active_pj=2190.0,  # Hoppner 2019: 2.19 nJ per neuron update
        neuron_update_idle_pj=2190.0,    # same: every neuron is updated every step
        sources={"synop_pj": "hoppner2019", "neuron_update_active_pj": "hoppner2019",
                 "neuron_update_idle_pj": "hoppner2019"},
    ),
    references=(HOPPNER2019,),
)

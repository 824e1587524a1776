"""IBM TrueNorth (2014): energy per synaptic event, with its source.

Merolla et al. (2014) report 26 pJ per synaptic event for the whole chip (total
power divided by the synaptic event rate, at 0.775 V), so this one figure already
contains neuron updates and spike routing: the energy model prices synops only.
Core structure (same paper): 4,096 cores, each 256 neurons x 256 axons with a
256 x 256 binary crossbar; every neuron sends its spikes to one axon of one core.
"""

from __future__ import annotations

from spikeship.targets.specs import ChipSpec, CoreLimits, EnergyCosts, Source

MEROLLA2014 = Source(
    "merolla2014",
    "P. A. Merolla et al., 'A million spiking-neuron integrated circuit with a scalable "
    "communication network and interface', Science 345(6197):668-673, 2014",
    "main text (26 pJ per synaptic event; 4,096 cores of 256 neurons x 256 axons)")

SPEC = ChipSpec(
    name="truenorth",
    title="IBM TrueNorth (28 nm, 2014)",
    spiking=True,
    energy=EnergyCosts(
        synop_pj=26.0,        # Merolla 2014: 26 pJ per synaptic event (whole chip)
        sources={"synop_pj": "merolla2014"},
        note="26 pJ is total chip energy per synaptic event: neuron updates and routing "
             "are included, not priced separately",
    ),
    limits=CoreLimits(
        cores_per_chip=4096,          # Merolla 2014
        neurons_per_core=256,         # Merolla 2014
        fan_in_axons=256,             # Merolla 2014: 256 axons per core
        synapses_per_core=256 * 256,  # Merolla 2014: 256 x 256 crossbar
        weight_bits=9,                # Merolla 2014: 9-bit signed weight per axon type
        synapse_format="crossbar",
        sources={"cores_per_chip": "merolla2014", "neurons_per_core": "merolla2014",
                 "fan_in_axons": "merolla2014", "synapses_per_core": "merolla2014",
                 "weight_bits": "merolla2014"},
        note="each neuron targets one axon of one core (fan-out 1)",
    ),
    references=(MEROLLA2014,),
)

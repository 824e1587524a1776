"""Intel Loihi (2018): energy per operation and per-core limits, each with its source.

Energy (Davies et al. 2018, Table 2, pre-silicon SPICE / measured figures at 0.75 V):
a synaptic spike operation costs at least 23.6 pJ, a neuron (compartment) update
81 pJ when active and 52 pJ when inactive, a spike message 1.7 pJ inside a tile and
3.0-4.0 pJ per tile-to-tile hop. Loihi has no multiplier for graded input: a first
layer driven by direct-encoded (non-binary) input is priced as 32-bit MACs on the
host (45 nm CMOS, see ``targets/cmos45``) by the energy model, and labelled so.

Per-core limits (used by :mod:`spikeship.targets.loihi.mapper`): 128 neuromorphic
cores per chip, 1,024 compartments per core, 128 KiB (= 2^20 bits) of synaptic
memory per core (16 MB per chip), at most 4,096 input axons and 4,096 output axons
per core. The synaptic-memory cost of a synapse follows NxSDK's encoding as
reimplemented in nengo-loihi (``SynapseConfig.bits_per_axon``): per input axon,
synapses are grouped in blocks of up to 64 entries; each entry stores its weight
(up to 8 bits) and, in the sparse format, a target index of 6-12 bits; each block
adds a 4-bit index and a 6-bit count header and is rounded up to 64-bit words.
"""

from __future__ import annotations

from spikeship.targets.specs import ChipSpec, CoreLimits, EnergyCosts, Source

DAVIES2018 = Source(
    "davies2018",
    "M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
    "IEEE Micro 38(1):82-99, 2018",
    "Table 2 (energy); 'Chip overview' and 'Neuromorphic core' sections (128 cores, "
    "1,024 compartments per core, 16 MB synaptic memory = 128 KB per core)")
NENGO_LOIHI = Source(
    "nengo-loihi",
    "nengo-loihi (Applied Brain Research), nengo_loihi/block.py: MAX_COMPARTMENTS=1024, "
    "MAX_IN_AXONS=4096, MAX_OUT_AXONS=4096, MAX_SYNAPSE_BITS=16384*64 (validate_block), "
    "SynapseConfig.bits_per_axon (synapse memory encoding)",
    "https://github.com/nengo/nengo-loihi")

SPEC = ChipSpec(
    name="loihi",
    title="Intel Loihi (14 nm, 2018)",
    spiking=True,
    energy=EnergyCosts(
        synop_pj=23.6,                  # Davies 2018 Table 2: synaptic spike op, min
        neuron_update_active_pj=81.0,   # Davies 2018 Table 2: neuron update, active
        neuron_update_idle_pj=52.0,     # Davies 2018 Table 2: neuron update, inactive
        spike_route_pj=1.7,             # Davies 2018 Table 2: within-tile spike energy
        spike_hop_pj=3.5,               # Davies 2018 Table 2: tile-to-tile hop 3.0-4.0 pJ
                                        # (midpoint; placement is not modelled)
        sources={"synop_pj": "davies2018", "neuron_update_active_pj": "davies2018",
                 "neuron_update_idle_pj": "davies2018", "spike_route_pj": "davies2018",
                 "spike_hop_pj": "davies2018"},
        note="first-layer MACs on graded input are priced on the host (cmos45)",
    ),
    limits=CoreLimits(
        cores_per_chip=128,             # Davies 2018, chip overview
        neurons_per_core=1024,          # Davies 2018; nengo-loihi MAX_COMPARTMENTS
        synapse_memory_bits=16384 * 64,  # 128 KiB: Davies 2018 (16 MB / 128 cores);
                                         # nengo-loihi MAX_SYNAPSE_BITS
        fan_in_axons=4096,              # nengo-loihi MAX_IN_AXONS
        fan_out_axons=4096,             # nengo-loihi MAX_OUT_AXONS
        weight_bits=8,                  # nengo-loihi SynapseConfig.WEIGHT_BITS_MAP max
        synapse_format="loihi",
        sources={"cores_per_chip": "davies2018", "neurons_per_core": "davies2018",
                 "synapse_memory_bits": "davies2018", "fan_in_axons": "nengo-loihi",
                 "fan_out_axons": "nengo-loihi", "weight_bits": "nengo-loihi",
                 "synapse_format": "nengo-loihi"},
    ),
    references=(DAVIES2018, NENGO_LOIHI),
)

"""Intel Loihi 2 (2021): per-core limits with their sources; no published energy per op.

Intel's Loihi 2 technology brief (2021, Table 1, Loihi vs Loihi 2) gives: 128
neuromorphic cores per chip, up to 8,192 neurons per core (1 M per chip), up to 120 M
synapses per chip, and 192 KB of memory per core that is *flexibly* shared between
neuron state and synapses. Intel publishes no per-operation energy figures for
Loihi 2 and no per-core fan-in/fan-out limits, so those are ``None``: the energy
model does not price Loihi 2 (it says so), and the mapper checks neurons, memory
and synapse count only.

Caveat: the brief itself could not be re-read from this machine; third-party
summaries agree on 128 cores, 1 M neurons and 120 M synapses per chip and "up to
~8,000 neurons per core", but some quote 128 KB instead of 192 KB of SRAM per core.
With 128 KB the Loihi 2 core counts of the mapper would rise for memory-bound layers.

Assumptions (stated, not published): a stored synapse costs what it costs on Loihi
(NxSDK encoding, see ``targets/loihi/spec.py``); each neuron takes 48 bits of the
shared memory (the 24-bit u and 24-bit v state of Lava's fixed-point LIF model,
``lava/proc/lif/models.py``); ``synapses_per_core`` = 120 M / 128 (the chip-wide
maximum spread evenly).
"""

from __future__ import annotations

from spikeship.targets.specs import ChipSpec, CoreLimits, EnergyCosts, Source

LOIHI2_BRIEF = Source(
    "intel-loihi2-brief",
    "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', "
    "technology brief, 2021",
    "Table 1 (Loihi vs Loihi 2 resources)")
LAVA_WEIGHTS = Source(
    "lava-weights",
    "lava-nc 0.10, lava/utils/weightutils.py (Dense/Sparse weights: 8 bits, num_weight_bits=8)",
    "https://github.com/lava-nc/lava")
LAVA_LIF = Source(
    "lava-lif",
    "lava-nc 0.10, lava/proc/lif/models.py (fixed-point LIF: 24-bit u and v)",
    "https://github.com/lava-nc/lava")

SPEC = ChipSpec(
    name="loihi2",
    title="Intel Loihi 2 (Intel 4, 2021)",
    spiking=True,
    energy=EnergyCosts(note="Intel has published no per-operation energy for Loihi 2"),
    limits=CoreLimits(
        cores_per_chip=128,              # Loihi 2 brief, Table 1
        neurons_per_core=8192,           # Loihi 2 brief, Table 1 (max neurons/core)
        synapse_memory_bits=192 * 1024 * 8,  # Loihi 2 brief: 192 KB per core, shared
        synapses_per_core=120_000_000 // 128,  # Loihi 2 brief: 120 M synapses per chip
        neuron_state_bits=48,            # assumption: Lava fixed-point LIF u, v 24-bit
        weight_bits=8,                   # Lava's Loihi 2 synapses: 8-bit weights
                                         # (lava/utils/weightutils.py, num_weight_bits=8)
        synapse_format="loihi",          # assumption: Loihi's encoding
        sources={"cores_per_chip": "intel-loihi2-brief",
                 "neurons_per_core": "intel-loihi2-brief",
                 "synapse_memory_bits": "intel-loihi2-brief",
                 "synapses_per_core": "intel-loihi2-brief",
                 "neuron_state_bits": "lava-lif", "weight_bits": "lava-weights"},
        note="memory shared by neuron state and synapses; fan-in/fan-out unpublished",
    ),
    references=(LOIHI2_BRIEF, LAVA_LIF, LAVA_WEIGHTS),
)

"""A conventional 45 nm CMOS processor (ANN baseline): 32-bit float MAC and add energy.

Horowitz (ISSCC 2014), 45 nm, 0.9 V: a 32-bit float multiply costs 3.7 pJ and a
32-bit float add 0.9 pJ, so a MAC costs 4.6 pJ. Memory access is not included
(as in the SNN literature that uses these figures). Used for: the ANN twin and the
"same network as an ANN" comparison (every synapse one MAC per inference), the
SNN on the same process (one add per synaptic operation), and the first layer of
an SNN fed with graded (direct-encoded) input on a neuromorphic chip (host MACs).
"""

from __future__ import annotations

from spikeship.targets.specs import ChipSpec, EnergyCosts, Source

HOROWITZ2014 = Source(
    "horowitz2014",
    "M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
    "ISSCC 2014, pp. 10-14",
    "energy table, 45 nm: FP32 mult 3.7 pJ, FP32 add 0.9 pJ")

SPEC = ChipSpec(
    name="cmos45",
    title="45 nm CMOS, 32-bit float (ANN baseline)",
    spiking=False,
    energy=EnergyCosts(
        mac_pj=4.6,   # Horowitz 2014: FP32 mult 3.7 pJ + FP32 add 0.9 pJ
        add_pj=0.9,   # Horowitz 2014: FP32 add
        synop_pj=0.9,  # an SNN synaptic op on this process is one FP32 add
        sources={"mac_pj": "horowitz2014", "add_pj": "horowitz2014",
                 "synop_pj": "horowitz2014"},
        note="arithmetic only; memory access not included",
    ),
    references=(HOROWITZ2014,),
)

"""NIR node categories: the one place spikeship says which node types are neurons,
synapses, pools and pass-through nodes. Nodes are told apart by their NIR type name
(``type(node).__name__``, as the HDF5 file stores it), never by ``isinstance``.

Which node is a neuron depends on what the consumer asks, so there are three sets:

- :data:`SPIKING` (``LIF``, ``CubaLIF``, ``IF``, ``Threshold``): the output is spikes.
  These are the presynaptic and postsynaptic populations of a synaptic layer (the
  synop counter, the Loihi lowering, spike recording). ``Threshold`` spikes but keeps
  no state; the Loihi rules refuse it by name (``supported-node``).
- :data:`STATEFUL` (``LIF``, ``CubaLIF``, ``IF``, ``LI``): a membrane state carries from
  step ``t`` to ``t + 1``, so a cycle through one has a discrete-time meaning (a cycle
  of stateless nodes is an algebraic loop). ``LI`` is a leaky integrator: a neuron
  without spikes (a readout), never a spike source.
- :data:`NEURONS` (the union): every neuron node, e.g. for neuron counts.
- :data:`TIMED` (``LIF``, ``CubaLIF``, ``LI``): the parameters are time constants in
  seconds, so running the node needs the graph's ``dt`` (``IF`` has none).

:data:`SYNAPSES` hold a weight (``Affine``, ``Linear``, ``Conv2d``); :data:`POOLS` are
``SumPool2d`` / ``AvgPool2d``; :data:`PASS_THROUGH` (``Flatten`` and the pools) are the
shape-only nodes a walk from a synaptic layer back to its presynaptic population
passes through (the pools are folded into the synapse that follows them).
"""

from __future__ import annotations

SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")
STATEFUL = ("LIF", "CubaLIF", "IF", "LI")
NEURONS = ("LIF", "CubaLIF", "IF", "LI", "Threshold")
TIMED = ("LIF", "CubaLIF", "LI")
SYNAPSES = ("Affine", "Linear", "Conv2d")
POOLS = ("SumPool2d", "AvgPool2d")
PASS_THROUGH = ("Flatten", *POOLS)
INPUT, OUTPUT = "Input", "Output"


def kind(node) -> str:
    """The NIR type name of ``node`` (``"LIF"``, ``"Conv2d"``, ...)."""
    return type(node).__name__


def is_spiking(node) -> bool:
    """Whether ``node`` emits spikes (:data:`SPIKING`)."""
    return kind(node) in SPIKING


def is_synapse(node) -> bool:
    """Whether ``node`` is a synaptic layer (:data:`SYNAPSES`)."""
    return kind(node) in SYNAPSES


def is_input(node) -> bool:
    """Whether ``node`` is the graph's ``Input``."""
    return kind(node) == INPUT

"""Sparsity-aware energy estimate and vanish check of a deployed network.

- :mod:`.fanout`: exact fan-out maps (pure numpy).
- :mod:`spikeship.nir.graph`: the synaptic layers of a deployed NIR graph and what feeds them.
- :mod:`.synops`: effective / dense synaptic operations from recorded spike counts.
- :mod:`.model`: energy per chip from those counts (specs in ``spikeship.targets``).
- :mod:`.vanish`: proof that pruned synapses and units are gone from every artifact.
- :mod:`.report`: ``energy.json``.
"""

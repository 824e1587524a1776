"""Loihi-style chips through Lava: deployment dataclasses, lowering, quantisation, rules.

``lower(graph)`` -> float :class:`Deployment`; ``quantize(graph)`` -> fixed-point
:class:`Deployment` (see :mod:`.quantize`). ``spec.py``/``mapper.py`` (chip numbers,
core mapping) live beside these and belong to the energy estimator.
"""

"""Pruners plug into the trainer through :class:`spikeship.train.pruners.base.Pruner`.

``PRUNERS`` maps the ``--prune`` name to ``"module:Class"``; classes are imported
on use (see :func:`get_pruner_class`).
"""

from __future__ import annotations

import importlib

from spikeship.errors import ConfigError

PRUNERS: dict[str, str] = {
    "none": "spikeship.train.pruners.base:NoPruner",
    "dpap": "spikeship.train.pruners.dpap:DPAPPruner",
    "pq-layer": "spikeship.train.pruners.pq:PQLayerPruner",
    "pq-neuron": "spikeship.train.pruners.pq:PQNeuronPruner",
    "magnitude": "spikeship.train.pruners.magnitude:MagnitudePruner",
    "random": "spikeship.train.pruners.magnitude:RandomPruner",
    "l1-filter": "spikeship.train.pruners.structured:L1FilterPruner",
}


def get_pruner_class(name: str):
    """The pruner class registered under ``name``."""
    if name not in PRUNERS:
        raise ConfigError(f"unknown pruner '{name}'; choose one of {sorted(PRUNERS)}")
    module, attr = PRUNERS[name].split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"pruner '{name}' is not available yet ({PRUNERS[name]})") from e

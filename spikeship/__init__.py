"""spikeship: train, prune, export and deploy spiking neural networks honestly.

The package namespace is the Python API (:mod:`spikeship.api`): ``spikeship.train``,
``export``, ``simulate``, ``energy``, ``compare``, ``report``, ``pipeline``, ``tune``
and ``inspect`` are functions. Six of those names are also subpackages, and importing a
subpackage for the first time binds it as an attribute of its parent, which would
replace the function; so the subpackages (whose ``__init__`` imports nothing heavy)
are imported first and the functions bound after them, and a later
``import spikeship.train.trainer`` leaves ``spikeship.train`` the function.
"""

__version__ = "0.1.0"

from spikeship import energy, export, pipeline, report, train, tune  # noqa: E402,F401 (first)
from spikeship.api import (compare, energy, export, inspect, pipeline,  # noqa: E402,F811
                           report, simulate, train, tune)

__all__ = ["__version__", "compare", "energy", "export", "inspect", "pipeline", "report",
           "simulate", "train", "tune"]

"""Import heavy or fragile dependencies where used, with a clear message when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from spikeship.errors import MissingDependencyError

_HINTS = {
    "lava": "lava-nc 0.10.0: pip install --no-deps --ignore-requires-python lava-nc==0.10.0",
    "lava.lib.dl": "lava-dl 0.6.0: pip install --no-deps --ignore-requires-python lava-dl==0.6.0",
    "norse": "norse 1.1.0: pip install --no-deps norse==1.1.0",
    "onnxruntime": "onnxruntime: pip install onnxruntime",
    "neurobench": "neurobench 2.3.0: pip install --no-deps neurobench==2.3.0",
    "optuna": "optuna 5.1.0 (spikeship tune): pip install -c constraints.txt optuna==5.1.0",
}


def require(name: str) -> ModuleType:
    """Import module ``name`` or raise :class:`MissingDependencyError` saying what to install."""
    # Lava 0.10 needs an import hook before it imports on Python 3.11: import it
    # through spikeship.sim.lava.require, which installs the hook and then calls this.
    try:
        return importlib.import_module(name)
    except ImportError as e:
        hint = next((h for k, h in _HINTS.items() if name == k or name.startswith(k + ".")), name)
        raise MissingDependencyError(f"{name} is not installed; install {hint}") from e


class _LazyModule(ModuleType):
    """A stand-in for module ``name`` that imports it (through :func:`require`) on the
    first attribute read, then hands every attribute read on to the real module."""

    def __getattr__(self, attr: str):
        return getattr(require(self.__name__), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy_import(name: str) -> ModuleType:
    """Module ``name``, imported when one of its attributes is first read.

    The one way spikeship defers an import: for a heavy dependency (torch, matplotlib,
    onnxruntime, ...) or a spikeship module that pulls one in, bound at the top of a
    module that must stay light (``import spikeship``, ``spikeship --help``). A missing
    package is a :class:`MissingDependencyError` at that first use. Lava is not imported
    this way: :func:`spikeship.sim.lava.require` installs its import hook first."""
    return _LazyModule(name)

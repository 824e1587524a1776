"""The Lava simulator (float / fixed point from ``model.nir``, and lava-dl netx from
``model.net``) and what Lava needs to import on this stack.

- :mod:`.compat`: the import hook that fixes Lava 0.10 / lava-dl 0.6 on Python 3.11;
- :mod:`.build`: a Loihi deployment (from ``model.nir``) -> Lava processes;
- :mod:`.run`: many samples through one compiled network (:mod:`.session`); the
  ``lava-float`` / ``lava-fixed`` targets;
- :mod:`.netx`: ``model.net`` through lava-dl's netx (``lava-netx``);
- :mod:`.io`: memory-mapped bulk input/output processes.

Import Lava only through :func:`require`: it installs the hook first.
"""

from __future__ import annotations

from types import ModuleType

from spikeship import _optional
from spikeship.sim.lava import compat


def require(name: str = "lava") -> ModuleType:
    """Import the Lava module ``name`` with :mod:`.compat`'s hook installed, or raise
    :class:`~spikeship.errors.MissingDependencyError` saying what to install."""
    compat.install()
    return _optional.require(name)

"""Chips by name: what energy, report, pipeline and the CLI know about hardware.

Each :class:`Chip` names its spec (``targets/<chip>/spec.py``: limits, energy per
operation, sources), the mapper that puts a NIR graph on its cores (when spikeship
has one), and the file formats it owns (written by ``spikeship export``). Nothing
outside ``targets/`` copies a chip fact: it asks here. Adding a chip: a folder
``targets/<chip>/`` with ``spec.py`` (and its mapper / writer if any) plus one entry
in :data:`CHIPS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from spikeship.errors import ConfigError
from spikeship.targets.specs import ChipSpec


def _load(path: str):
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Chip:
    """One chip (or the conventional-processor baseline)."""

    name: str
    spec: str                                  # "module:SPEC"
    mapper: str | None = None                  # "module:function" graph -> cores
    writers: dict[str, str] = field(default_factory=dict)   # format -> "module:function"

    def load_spec(self) -> ChipSpec:
        return _load(self.spec)

    def load_mapper(self):
        return None if self.mapper is None else _load(self.mapper)


_LOIHI_MAPPER = "spikeship.targets.loihi.mapper:map_graph"

CHIPS: dict[str, Chip] = {c.name: c for c in (
    Chip("loihi", "spikeship.targets.loihi.spec:SPEC", mapper=_LOIHI_MAPPER,
         writers={"netx": "spikeship.targets.loihi.netx:write_netx"}),
    Chip("loihi2", "spikeship.targets.loihi2.spec:SPEC", mapper=_LOIHI_MAPPER),
    Chip("truenorth", "spikeship.targets.truenorth.spec:SPEC"),
    Chip("spinnaker2", "spikeship.targets.spinnaker2.spec:SPEC"),
    Chip("cmos45", "spikeship.targets.cmos45.spec:SPEC"),
)}


def names() -> list[str]:
    return list(CHIPS)


def get(name: str) -> Chip:
    if name not in CHIPS:
        raise ConfigError(f"unknown hardware '{name}'; choose one of {sorted(CHIPS)}")
    return CHIPS[name]


def get_spec(name: str) -> ChipSpec:
    """The :class:`ChipSpec` registered under ``name``."""
    return get(name).load_spec()


def all_specs() -> dict[str, ChipSpec]:
    """Every registered spec, by name."""
    return {name: get_spec(name) for name in CHIPS}


def mapped_chips() -> list[str]:
    """Chips with a mapper (core counts in energy.json)."""
    return [c.name for c in CHIPS.values() if c.mapper is not None]


def writers() -> dict[str, str]:
    """Every chip-owned file format -> its writer ``"module:function"``."""
    out: dict[str, str] = {}
    for c in CHIPS.values():
        out.update(c.writers)
    return out


def writer(fmt: str):
    """The writer ``write(nir_graph, path)`` of chip format ``fmt``."""
    return _load(writers()[fmt])

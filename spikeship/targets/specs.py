"""Chip specifications: energy per operation and per-core limits, by name.

Every number lives in one ``targets/<chip>/spec.py`` as a frozen :class:`ChipSpec`,
registered in :mod:`spikeship.targets.registry`
whose comments cite the publication it comes from; the energy model
(:mod:`spikeship.energy.model`) and the Loihi mapper
(:mod:`spikeship.targets.loihi.mapper`) only read these objects.

A figure a chip's publications do not give is ``None`` (never a guess): the energy
model then leaves that term out and says so in ``energy.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spikeship.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """A published source of one or more figures."""

    key: str           # short name used in comments and energy.json ("davies2018")
    citation: str      # full reference
    where: str = ""    # table / section / file the figures are read from


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation in picojoules (``None`` = not published for this chip).

    - ``synop_pj``: one synaptic operation triggered by a binary spike (an accumulate).
    - ``mac_pj``: one multiply-accumulate (graded input, ANN layer).
    - ``add_pj``: one accumulate on a conventional processor (ANN bias/ SNN on CMOS).
    - ``neuron_update_active_pj`` / ``neuron_update_idle_pj``: one neuron state update
      per time step, for a neuron that fires in that step / one that does not
      (spikeship's definition of active, see :mod:`spikeship.energy.model`).
    - ``spike_route_pj``: delivering one spike message inside a tile.
    - ``spike_hop_pj``: one hop of a spike message between tiles (not used in the totals:
      placement is not modelled; reported for reference).
    """

    synop_pj: float | None = None
    mac_pj: float | None = None
    add_pj: float | None = None
    neuron_update_active_pj: float | None = None
    neuron_update_idle_pj: float | None = None
    spike_route_pj: float | None = None
    spike_hop_pj: float | None = None
    sources: dict[str, str] = field(default_factory=dict)   # figure name -> Source.key
    note: str = ""

    def __post_init__(self):
        for name in ("synop_pj", "mac_pj", "add_pj", "neuron_update_active_pj",
                     "neuron_update_idle_pj", "spike_route_pj", "spike_hop_pj"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ConfigError(f"energy figure {name} must be >= 0, got {v}")
            if v is not None and name not in self.sources:
                raise ConfigError(f"energy figure {name} has no source")


@dataclass(frozen=True)
class CoreLimits:
    """Published per-core resource limits of a neuromorphic chip (``None`` = unpublished).

    ``synapse_memory_bits`` is the synaptic memory of one core. ``synapse_format``
    names the memory model used to cost synapses (see :mod:`spikeship.targets.loihi.mapper`).
    """

    cores_per_chip: int
    neurons_per_core: int
    synapse_memory_bits: int | None = None
    fan_in_axons: int | None = None        # distinct input axons a core can receive
    fan_out_axons: int | None = None       # output axons (destination routes) of one core
    synapses_per_core: int | None = None   # hard cap on stored synapses per core
    neuron_state_bits: int = 0             # memory per neuron taken from the same SRAM
    weight_bits: int = 8                   # bits of one stored weight
    synapse_format: str = "loihi"          # memory model name
    sources: dict[str, str] = field(default_factory=dict)   # field name -> Source.key
    note: str = ""


@dataclass(frozen=True)
class ChipSpec:
    """One chip (or the conventional-processor baseline)."""

    name: str
    title: str
    spiking: bool                          # event-driven (synops) or clocked MACs (ANN)
    energy: EnergyCosts
    limits: CoreLimits | None = None
    references: tuple[Source, ...] = ()

    def source(self, key: str) -> Source:
        for s in self.references:
            if s.key == key:
                return s
        raise KeyError(key)

    def sources_json(self) -> dict:
        """``{figure: citation}`` for every figure of this spec (for energy.json)."""
        out = {}
        for fig, key in self.energy.sources.items():
            s = self.source(key)
            out[fig] = f"{s.citation}" + (f", {s.where}" if s.where else "")
        if self.limits is not None:
            for fig, key in self.limits.sources.items():
                s = self.source(key)
                out[f"limits.{fig}"] = f"{s.citation}" + (f", {s.where}" if s.where else "")
        return out

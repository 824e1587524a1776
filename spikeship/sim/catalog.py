"""The registered simulators (artifact, options with types and defaults, capabilities)
and chips (spec, mapper, file formats), as ``spikeship targets`` lists them."""

from __future__ import annotations

from spikeship.sim import registry as simulators
from spikeship.targets import registry as chips


def describe() -> dict:
    """Everything ``spikeship targets`` shows, as one JSON-able document."""
    sims = []
    for s in simulators.all_simulators():
        sims.append({"name": s.name, "artifact": s.artifact, "summary": s.summary,
                     "capabilities": s.capabilities.to_json(),
                     "options": s.option_table()})
    hw = []
    for c in chips.CHIPS.values():
        spec = c.load_spec()
        hw.append({"name": c.name, "title": spec.title, "spiking": spec.spiking,
                   "core_mapper": c.mapper is not None, "formats": sorted(c.writers)})
    return {"simulators": sims, "spike_source_order": simulators.spike_sources(),
            "pipeline_default": list(simulators.PIPELINE_DEFAULT), "chips": hw}

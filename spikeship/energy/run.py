"""Synops, energy per chip, cores, vanish check -> energy.json (``spikeship energy RUN_DIR``).

Exit code: 0 when the vanish check passes (or there is no checkpoint to compare
with), non-zero (:class:`~spikeship.errors.VanishCheckError`) when a pruned synapse
or unit is found in any deployed artifact; ``energy.json`` is written either way.

What is judged is what is deployed: zeros a format must store although the deployed
network is clean (netx's dense arrays, when the network lava-dl loads from the file
with sparse FC layers holds none; pruned taps inside kept conv kernels, which Lava's
Conv cannot leave out) are reported as *stored zeros* (count, and share of the conv
synapses) and do not fail the check; ``--strict`` fails on them too.
"""

from __future__ import annotations

from pathlib import Path

from spikeship.energy.report import estimate, write_energy
from spikeship.errors import ConfigError, VanishCheckError
from spikeship.runlock import RUN_KINDS, writes_run_dir


@writes_run_dir("run_dir", "energy", accepts=RUN_KINDS)
def energy_run(run_dir: str | Path, *, hardware: str = "loihi", spikes_from: str | None = None,
               assume_rate: float | None = None, check_lava: bool = True,
               allow_zeros: tuple[str, ...] = (), fail_on_vanish: bool = True,
               strict: bool = False) -> tuple[dict, Path]:
    """Write ``energy.json`` for ``run_dir``; returns (document, path). Raises
    :class:`VanishCheckError` (after writing) when a pruned synapse or unit is found in a
    deployed artifact, unless ``fail_on_vanish`` is false."""
    if spikes_from is not None and assume_rate is not None:
        raise ConfigError("give either --spikes-from or --assume-rate, not both")
    doc, van = estimate(run_dir, hardware=hardware, spikes_from=spikes_from,
                        assume_rate=assume_rate, check_lava=check_lava,
                        allow_explicit_zeros=tuple(allow_zeros), strict=strict)
    path = write_energy(run_dir, doc)
    if fail_on_vanish and van is not None and not van.passed:
        raise VanishCheckError(f"vanish check failed: {van.summary()} (details in {path})")
    return doc, path

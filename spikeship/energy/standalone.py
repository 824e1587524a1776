"""``spikeship energy FILE``: synops and energy of a standalone ``.nir`` / netx ``.net`` file.

The file is simulated first (:func:`spikeship.sim.standalone.simulate_file`: the chosen
target and the reference, which also records pooled values for neurobench's
convention) and priced from those spikes, in an output directory that then holds
``model.nir``, the simulations and ``energy.json``. There is no checkpoint, hence no
vanish check (``vanish_check.passed`` is null). The producer convention the file was
read with (:mod:`spikeship.nir.conventions`) and its record are copied into
``energy.json`` (``convention``) from ``standalone.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from spikeship.energy.report import estimate, write_energy
from spikeship.sim.standalone import default_out, output_lock, simulate_file


def energy_file(file, *, input_path, labels_path=None, dt_s=None, timesteps=None, out=None,
                spikes_from: str = "reference", hardware: str = "loihi",
                options: dict | None = None, convention: str = "nir"):
    """Simulate ``file`` on ``spikes_from`` (and the reference), build and write its
    ``energy.json``. Returns ``(doc, out)``."""
    out = Path(out or default_out(file))
    with output_lock(out, f"energy {Path(file).name}"):    # one lock over both steps
        _, out = simulate_file(file, spikes_from, input_path=input_path,
                               labels_path=labels_path, dt_s=dt_s, timesteps=timesteps,
                               out=out, options=options, convention=convention)
        doc, _ = estimate(out, hardware=hardware, spikes_from=spikes_from, check_lava=False)
        doc["convention"] = json.loads((out / "standalone.json").read_text()).get("convention")
        write_energy(out, doc)
    return doc, out

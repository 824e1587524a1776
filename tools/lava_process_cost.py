"""Measure what one more Lava process costs: a 12 -> 48 -> 4 LIF graph whose hidden
population has k distinct time constants (k Lava processes), run on ``lava-float`` for
k in KS; writes results/lava-process-cost.json (seconds per run and the slope per
process). Run: python tools/lava_process_cost.py"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common, schema  # noqa: E402
from spikeship.sim.standalone import simulate_file  # noqa: E402

KS, N, T, HIDDEN = (1, 4, 8, 16), 2, 10, 48


def graph(k: int, seed: int = 0) -> nir.NIRGraph:
    """Hidden LIF with ``k`` distinct taus (2e-3 .. 8e-3 s), dt = 1e-3 s."""
    rng = np.random.default_rng(seed)
    taus = np.linspace(2e-3, 8e-3, k)[np.arange(HIDDEN) % k]

    def lif(tau):
        n = len(tau)
        return nir.LIF(tau=tau, r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type=np.array([12])),
             "fc1": nir.Affine(weight=rng.normal(0.3, 1.0, (HIDDEN, 12)), bias=np.zeros(HIDDEN)),
             "lif1": lif(taus),
             "fc2": nir.Affine(weight=rng.normal(0.2, 0.6, (4, HIDDEN)), bias=np.zeros(4)),
             "lif2": lif(np.full(4, 4e-3)), "output": nir.Output(output_type=np.array([4]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        x = (np.random.default_rng(1).random((N, T, 12)) < 0.4).astype(np.float32)
        np.save(d / "x.npy", x)
        nir.write(d / "warm.nir", graph(1))      # imports and first compile, not measured
        simulate_file(d / "warm.nir", "lava-float", input_path=d / "x.npy", out=d / "warm")
        for k in KS:
            nir.write(d / f"g{k}.nir", graph(k))
            t0 = time.perf_counter()
            simulate_file(d / f"g{k}.nir", "lava-float", input_path=d / "x.npy", out=d / f"o{k}")
            rows.append({"processes": k, "seconds": time.perf_counter() - t0})
    ks = np.array([r["processes"] for r in rows], float)
    ss = np.array([r["seconds"] for r in rows], float)
    schema.write(ROOT / "results/lava-process-cost.json", {
        "schema": schema.VERSION, "name": "lava-process-cost", "benchmark": "lava_process_cost",
        "topic": "speed", "title": "What one more Lava process costs",
        "description": "A 12 -> 48 -> 4 LIF graph whose hidden population has k distinct "
                       "time constants, so k Lava processes, on lava-float (wall seconds of "
                       "one standalone run after a warm-up run).",
        "command": "python tools/lava_process_cost.py", "commit": common.git_commit(),
        "date": common.now(), "machine": common.machine(), "versions": common.versions(),
        "rows": rows, "summary": {"seconds_per_extra_process": float(np.polyfit(ks, ss, 1)[0])},
        "config": {"samples": N, "timesteps": T, "hidden": HIDDEN}})


if __name__ == "__main__":
    main()

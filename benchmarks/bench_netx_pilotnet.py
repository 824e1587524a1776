"""lava-dl's PilotNet LIF reference network (netx) on Lava ``fixed_pt`` and on the Loihi emulator.

The network and its input image come with lava-dl's test data (``tests/lava/lib/dl/netx/
gts/pilotnet_lif``); imported to NIR by spikeship's netx reader, deployed fixed point,
run for 16 steps on real Lava (bit-accurate models; about 2 minutes) and on the
emulator: every population's voltage at every aligned step, its spike counts and the
output must be identical. The emulator itself reproduces lava-dl's golden outputs
(``tests/targets/test_netx_import.py``); this extends that agreement to Lava.
"""

from __future__ import annotations

import site
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common, runs

STEPS = 16


def reference() -> Path:
    roots = [Path(d) / "tests/lava/lib/dl/netx/gts/pilotnet_lif" for d in site.getsitepackages()]
    root = next((r for r in roots if (r / "network.net").is_file()), None)
    if root is None:
        raise SystemExit("lava-dl's netx reference networks are not installed")
    return root


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__).parse_args(argv)
    root = reference()
    img = np.load(root / "image.npy").transpose(2, 1, 0)
    x = np.broadcast_to(img[None, None], (1, STEPS, *img.shape)).astype(np.int64)
    dep = runs.netx_deployment(root / "network.net", x)
    names = tuple(p.name for p in dep.populations)
    t0, traces = time.perf_counter(), {}
    lava = runs.lava_fixed_traced(dep, x, names, traces)
    wall = time.perf_counter() - t0
    emu = runs.emulator_traced(dep, x, names)
    rows, ok = [], bool(np.array_equal(lava.output_spikes, emu.output_spikes))
    for p in dep.populations:
        same_v = bool(np.array_equal(traces[f"v/{p.name}"][p.depth:p.depth + STEPS],
                                     emu.voltages[p.name][0]))
        same_c = bool(np.array_equal(lava.neuron_counts[p.name], emu.counts[p.name]))
        ok = ok and same_v and same_c
        rows.append({"population": p.name, "kind": p.kind, "shape": str(tuple(p.shape)),
                     "voltages_identical": same_v, "counts_identical": same_c,
                     "spikes": int(emu.counts[p.name].sum())})
    common.write_result(
        args, name="netx-pilotnet-lava", module="benchmarks.bench_netx_pilotnet", argv=argv,
        topic="speed", title="lava-dl's PilotNet LIF network: Lava fixed_pt against the emulator",
        description=f"{STEPS} steps of the reference image; per population, voltages at every "
                    f"aligned step and spike counts compared.",
        rows=rows, summary={"all_identical": ok, "lava_wall_s": wall, "steps": STEPS})
    print(f"lava-fixed {wall:.0f} s; identical to loihi-emu: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""lava-dl's PilotNet LIF reference network (netx) through spikeship's ``lava-fixed`` target
(real Lava, bit-accurate models; ~2 min) and the ``loihi-emu`` emulator: every population's
voltage at every aligned step, spike counts and output must be identical. The emulator
itself reproduces lava-dl's golden outputs (tests/targets/test_netx_import.py), so this
extends that conformance to Lava. Run: ``PYTHONPATH=. python benchmarks/netx_pilotnet_lava.py``.
"""

import sys
import time

import numpy as np

from spikeship.targets.loihi.deploy import deployment_for
from spikeship.sim.lava.run import run_deployment
from spikeship.sim.loihi_emu import LoihiEmulator
from spikeship.targets.loihi.netx_import import netx_to_nir


def main() -> int:
    import site
    from pathlib import Path

    roots = [Path(d) / "tests/lava/lib/dl/netx/gts/pilotnet_lif" for d in site.getsitepackages()]
    root = next((r for r in roots if (r / "network.net").is_file()), None)
    if root is None:
        print("lava-dl's netx reference networks are not installed")
        return 1
    g = netx_to_nir(root / "network.net")
    img = np.load(root / "image.npy").transpose(2, 1, 0)
    x = np.broadcast_to(img[None, None], (1, 16, *img.shape)).astype(np.int64)
    dep = deployment_for(g, "fixed", x, {})
    names = tuple(p.name for p in dep.populations)
    t0, traces = time.perf_counter(), {}
    res = run_deployment(dep, x, record_voltages=names, traces=traces, timeout_s=3000)
    wall = time.perf_counter() - t0
    emu = LoihiEmulator(dep).run(x, record_voltages=names)
    ok = bool(np.array_equal(res.output_spikes, emu.output_spikes))
    for p in dep.populations:
        same_v = np.array_equal(traces[f"v/{p.name}"][p.depth:p.depth + 16], emu.voltages[p.name][0])
        same_c = np.array_equal(res.neuron_counts[p.name], emu.counts[p.name])
        ok &= same_v and same_c
        print(f"{p.name:8s} {p.kind:4s} {str(p.shape):16s} v identical {same_v}, "
              f"counts identical {same_c}, spikes {int(emu.counts[p.name].sum())}")
    print(f"lava-fixed {wall:.0f} s; output identical to loihi-emu: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

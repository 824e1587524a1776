"""Write conformance fixtures with the producers' own NIR exporters.

Run in a separate environment holding the producers (pins: tools/producer-requirements.txt)::

    /work/venv-producers/bin/python tools/producer_fixtures.py [--out tests/fixtures/producers]

For each producer (snnTorch, Norse, Sinabs, Rockpool) and each small graph below, the
network is built in that framework with seeded weights, exported by the producer's own
exporter exactly as it writes (no hand edit: what it writes is the point), written with
``nir.write``, and run by the producer itself on seeded spike inputs. Each graph gives

- ``<graph>.nir``: what the exporter wrote;
- ``<graph>.golden.npz``: ``inputs`` ``(N, T, *in)``, ``spikes`` (the producer's output
  spikes, ``(N, T, *out)``; a count per step where the producer emits several spikes
  per step), and ``meta`` (a JSON string: producer and versions, dt, the producer's
  meaning that the file does not say, the convention to run it with, the floor of
  agreement on fixed-point simulators).

An exporter that fails is recorded in ``<producer>/exporter_failures.json`` (what was
built and the exporter's message): nothing is made up in its place.
"""

from __future__ import annotations

import argparse
import json
import traceback
from importlib.metadata import version
from pathlib import Path

import nir
import numpy as np
import torch

N, T, SEED = 4, 30, 0
DENSE_IN, CONV_IN = 12, (2, 6, 6)


def _inputs(shape, density=0.3, seed=SEED):
    rng = np.random.default_rng(seed)
    return (rng.random((N, T, *shape)) < density).astype(np.float32)


def _scale(model, gain):
    """Seeded weights made stronger, so the small graphs spike."""
    with torch.no_grad():
        for p in torch.nn.Module.parameters(model):     # Rockpool overrides .parameters()
            if p.dim() > 1:
                p.mul_(gain)


def _versions(*names):
    return {n: version(n) for n in ("nir", "nirtorch", "torch", *names)}


# ---------------------------------------------------------------------- snnTorch
def snntorch_graphs():
    """snnTorch 1.0: ``export_to_nir`` (snntorch/export_nir.py) writes dt-free graphs whose
    taus assume dt = 1e-4 s; reset_mechanism is not written (v_reset = 0 always), so the
    fixtures use reset_mechanism="zero", the one NIR says."""
    import snntorch as snn
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir

    def run(net, x):
        out = []
        snn_utils.reset(net)
        with torch.no_grad():
            for t in range(x.shape[1]):
                out.append(net(torch.from_numpy(x[:, t])).numpy())
        return np.stack(out, 1)

    kw = dict(init_hidden=True, reset_mechanism="zero")

    def leaky(*shape, scalar=False):     # per-neuron parameters: scalar ones fail to export
        if scalar:
            return snn.Leaky(beta=0.8, **kw)
        return snn.Leaky(beta=torch.full(shape, 0.8), threshold=torch.ones(shape), **kw)

    def synaptic(*shape):
        return snn.Synaptic(alpha=torch.full(shape, 0.6), beta=torch.full(shape, 0.8),
                            threshold=torch.ones(shape), **kw)

    nets = {
        "dense_lif_scalar_beta": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 10), leaky(scalar=True),
            torch.nn.Linear(10, 4), leaky(scalar=True)), (DENSE_IN,), 2.0),
        "dense_lif": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 10), leaky(10), torch.nn.Linear(10, 4), leaky(4)),
            (DENSE_IN,), 2.0),
        "dense_cubalif": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 10), synaptic(10), torch.nn.Linear(10, 4), synaptic(4)),
            (DENSE_IN,), 1.5),
        "conv_lif": (lambda: torch.nn.Sequential(
            torch.nn.Conv2d(2, 3, 3, padding=1), leaky(3, 6, 6), torch.nn.Flatten(),
            torch.nn.Linear(108, 4), leaky(4)), CONV_IN, 5.0),
        "recurrent_rleaky": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 8), snn.RLeaky(beta=torch.full((8,), 0.8), linear_features=8,
                                                     **kw),
            torch.nn.Linear(8, 4), leaky(4)), (DENSE_IN,), 4.0),
    }
    for name, (make, shape, gain) in nets.items():
        torch.manual_seed(SEED)
        net = make()
        _scale(net, gain)
        x = _inputs(shape)
        yield name, (lambda net=net, shape=shape: export_to_nir(
            net, torch.zeros(1, *shape), ignore_dims=[0])), (lambda net=net, x=x: run(net, x)), x, {
            "dt_s": 1e-4, "convention": "snntorch",
            "producer_means": "reset_mechanism='zero' (written as v_reset=0; snnTorch's default "
                              "'subtract' would be written the same); dt = 1e-4 s, not written",
            "versions": _versions("snntorch")}


# ---------------------------------------------------------------------- Norse
def norse_graphs():
    """Norse 1.1: ``norse.torch.utils.export_nir.to_nir`` with dt = 1e-3 (its default)."""
    import norse.torch as norse
    from norse.torch.utils.export_nir import to_nir

    def run(net, x):
        out, state = [], None
        with torch.no_grad():
            for t in range(x.shape[1]):
                z, state = net(torch.from_numpy(x[:, t]), state)
                out.append(z.numpy())
        return np.stack(out, 1)

    box = lambda: norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(300.0)))
    nets = {
        "dense_lifbox": (lambda: norse.SequentialState(
            torch.nn.Linear(DENSE_IN, 10), box(), torch.nn.Linear(10, 4), box()), (DENSE_IN,), 12.0),
        "dense_cubalif": (lambda: norse.SequentialState(
            torch.nn.Linear(DENSE_IN, 10), norse.LIFCell(), torch.nn.Linear(10, 4),
            norse.LIFCell()), (DENSE_IN,), 6.0),
        "conv_lifbox": (lambda: norse.SequentialState(
            torch.nn.Conv2d(2, 3, 3, padding=1), box(), torch.nn.Conv2d(3, 2, 3, stride=2),
            box()), CONV_IN, 6.0),
        "dense_iaf": (lambda: norse.SequentialState(
            torch.nn.Linear(DENSE_IN, 10), norse.IAFCell(), torch.nn.Linear(10, 4),
            norse.IAFCell()), (DENSE_IN,), 1.0),
        "recurrent_lif": (lambda: norse.SequentialState(
            torch.nn.Linear(DENSE_IN, 10), norse.LIFRecurrentCell(10, 10),
            torch.nn.Linear(10, 4), box()), (DENSE_IN,), 6.0),
        "conv_flatten_lifbox": (lambda: norse.SequentialState(
            torch.nn.Conv2d(2, 3, 3, padding=1), box(), torch.nn.Flatten(),
            torch.nn.Linear(108, 4), box()), CONV_IN, 6.0),
    }
    for name, (make, shape, gain) in nets.items():
        torch.manual_seed(SEED)
        net = make()
        _scale(net, gain)
        x = _inputs(shape)
        yield name, (lambda net=net, shape=shape: to_nir(net, torch.zeros(1, *shape))), (
            lambda net=net, x=x: run(net, x)), x, {
            "dt_s": 1e-3, "convention": "norse",
            "producer_means": "dt = 1e-3 s (to_nir's default), not written; LIFCell -> CubaLIF "
                              "with w_in = 1 where Norse adds the input to the current as it is "
                              "(NIR: w_in = tau_syn/dt)",
            "versions": _versions("norse")}


# ---------------------------------------------------------------------- Sinabs
def sinabs_graphs():
    """Sinabs 3.1: ``sinabs.to_nir`` (sinabs/nir.py); IAF is per step (no dt)."""
    import sinabs
    import sinabs.activation as sa
    import sinabs.layers as sl

    def run(net, x):
        for m in net.modules():
            if isinstance(m, sl.StatefulLayer):
                m.reset_states()
        with torch.no_grad():
            n, t = x.shape[:2]
            y = net(torch.from_numpy(x.reshape(n * t, *x.shape[2:])))
        return y.reshape(n, t, *y.shape[1:]).numpy()

    single = dict(spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset())
    nets = {
        "dense_iaf_default": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 10), sl.IAFSqueeze(batch_size=N),
            torch.nn.Linear(10, 4), sl.IAFSqueeze(batch_size=N)), (DENSE_IN,), 2.0,
            "sinabs", "IAF default: MultiSpike, MembraneSubtract (several spikes per step, "
                      "reset by subtraction); NIR's IF says one spike and reset to zero"),
        "dense_iaf_single": (lambda: torch.nn.Sequential(
            torch.nn.Linear(DENSE_IN, 10), sl.IAFSqueeze(batch_size=N, **single),
            torch.nn.Linear(10, 4), sl.IAFSqueeze(batch_size=N, **single)), (DENSE_IN,), 2.0,
            "nir", "SingleSpike, MembraneReset: what NIR's IF says"),
        "conv_iaf_sumpool": (lambda: torch.nn.Sequential(
            torch.nn.Conv2d(2, 3, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=N, **single),
            sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(27, 4, bias=False),
            sl.IAFSqueeze(batch_size=N, **single)), CONV_IN, 2.0,
            "nir", "SingleSpike, MembraneReset: what NIR's IF says"),
    }
    for name, (make, shape, gain, conv, means) in nets.items():
        torch.manual_seed(SEED)
        net = make()
        _scale(net, gain)
        x = _inputs(shape)
        yield name, (lambda net=net, shape=shape: sinabs.to_nir(net, torch.zeros(N, *shape))), (
            lambda net=net, x=x: run(net, x)), x, {
            "dt_s": None, "convention": conv, "producer_means": means,
            "versions": _versions("sinabs")}


# ---------------------------------------------------------------------- Rockpool
def rockpool_graphs():
    """Rockpool 3.1: ``rockpool.nn.modules.torch.nir.to_nir``; dt = 1e-3 (LIFTorch's default)."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    def run(net, x):
        net.reset_state()
        with torch.no_grad():
            y, _, _ = net(torch.from_numpy(x))
        return y.numpy()

    nets = {
        "dense_cubalif": (lambda: Sequential(
            LinearTorch((DENSE_IN, 10)), LIFTorch(10), LinearTorch((10, 4)), LIFTorch(4)), 0.5),
        "recurrent_cubalif": (lambda: Sequential(
            LinearTorch((DENSE_IN, 8)), LIFTorch(8, has_rec=True), LinearTorch((8, 4)),
            LIFTorch(4)), 0.3),
    }
    for name, (make, gain) in nets.items():
        torch.manual_seed(SEED)
        net = make()
        _scale(net, gain)
        x = _inputs((DENSE_IN,))
        dropped = "; LIFTorch.w_rec is not written (the file has no loop)" if "rec" in name else ""
        yield name, (lambda net=net: to_nir(net)), (lambda net=net, x=x: run(net, x)), x, {
            "dt_s": 1e-3, "convention": "rockpool",
            "producer_means": "dt = 1e-3 s, not written; exponential decays exp(-dt/tau); "
                              "synaptic input added as it is (w_in = 1 written); spikes "
                              "floor(v/threshold) per step with reset by subtraction" + dropped,
            "versions": _versions("rockpool")}


PRODUCERS = {"snntorch": snntorch_graphs, "norse": norse_graphs, "sinabs": sinabs_graphs,
             "rockpool": rockpool_graphs}


def _write(graph, path: Path) -> list[str]:
    """``nir.write`` as a user would call it; where it fails, nir's own remedies in turn
    (no value of the graph is edited): ``compression=None`` (gzip refuses scalar
    datasets), then ``graph.infer_types()`` (fills ``None`` shapes). The steps taken are
    returned and recorded in the golden."""
    steps = []
    for step in ("nir.write", "nir.write(compression=None)", "infer_types; nir.write(compression=None)"):
        try:
            if step.startswith("infer_types"):
                graph.infer_types()
            nir.write(path, graph, **({} if step == "nir.write" else {"compression": None}))
            return steps + [step]
        except (TypeError, ValueError, AttributeError) as e:
            steps.append(f"{step} failed: {type(e).__name__}: {e}")
    raise ValueError("; ".join(steps))


def write_fixture(folder: Path, name, export, run, x, meta) -> dict:
    """Export, write, run; the golden beside the file. Returns a summary line."""
    graph = export()
    meta = dict(meta, writer_steps=_write(graph, folder / f"{name}.nir"))
    spikes = run().astype(np.float32)
    meta = dict(meta, seed=SEED, samples=N, steps=T, output_spikes=float(spikes.sum()),
                max_per_step=float(spikes.max()))
    np.savez_compressed(folder / f"{name}.golden.npz", inputs=x, spikes=spikes,
                        meta=np.array(json.dumps(meta)))
    return {"graph": name, "output_spikes": meta["output_spikes"]}


def _where(e: BaseException) -> str:
    """The innermost frame of the failure, its file relative to site-packages or here."""
    frame = traceback.extract_tb(e.__traceback__)[-1]
    path = Path(frame.filename)
    parts = path.parts
    rel = Path(*parts[parts.index("site-packages") + 1:]) if "site-packages" in parts \
        else path.relative_to(Path(__file__).resolve().parents[1])
    return f"{rel}:{frame.lineno} in {frame.name}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/producers"))
    ap.add_argument("--only", nargs="*", default=sorted(PRODUCERS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for producer in args.only:
        folder = args.out / producer
        folder.mkdir(parents=True, exist_ok=True)
        failures = []
        for name, export, run, x, meta in PRODUCERS[producer]():
            try:
                print(producer, write_fixture(folder, name, export, run, x, meta))
            except Exception as e:     # an exporter's failure is a finding, recorded as such
                for p in (folder / f"{name}.nir", folder / f"{name}.golden.npz"):
                    p.unlink(missing_ok=True)
                failures.append({"graph": name, "error": f"{type(e).__name__}: {e}",
                                 "where": _where(e),
                                 "versions": meta["versions"]})
                print(producer, name, "FAILED:", failures[-1]["error"])
        (folder / "exporter_failures.json").write_text(json.dumps(failures, indent=1) + "\n")


if __name__ == "__main__":
    main()

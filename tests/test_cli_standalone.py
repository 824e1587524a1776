"""Bring your own network, from the command line (real files; the commands run through
``spikeship.cli.main`` in-process, and once as a real ``python -m spikeship.cli``
subprocess, the missing-dt error, so the process exit code and stderr are checked too).

An snnTorch network (``Leaky``, ``reset_mechanism="zero"``: NIR's reset to 0; snnTorch's
default subtract reset has no NIR form) is exported with snnTorch's own
``export_to_nir`` and run with ``spikeship simulate FILE --input X.npy --dt 1e-4``
(snnTorch's dt convention; its export writes none) on reference, lava-float and
loihi-emu: the output spikes equal snnTorch's forward pass on the same input. The
weights are multiples of 1/100 with a largest weight of 1.27, ``beta = 0.5`` and the
threshold off the lattice of reachable membrane values, so that Loihi's fixed point
(8-bit weights, 12-bit decay, T = 6 halvings of an integer multiple of 128) is exact
and the integer and float runs cannot differ. ``spikeship energy FILE`` prices it.
A lava-dl netx file is imported (``spikeship import``) and simulated the same way.
"""

import json
import subprocess
import sys
from dataclasses import dataclass

import nir
import numpy as np
import pytest
import torch

from spikeship import cli

N, T = 16, 6
THR = 0.7 + 0.01 / 256


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_process(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeship.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_cli(capsys):
    """``spikeship ARGS`` in-process: exit code and what it printed."""
    def run(*args) -> Ran:
        capsys.readouterr()
        rc = cli.main([str(a) for a in args])
        got = capsys.readouterr()
        return Ran(rc, got.out, got.err)
    return run


def _snntorch_net():
    import snntorch as snn

    rng = np.random.default_rng(0)

    def lin(i, o):
        layer = torch.nn.Linear(i, o)
        w = rng.integers(-127, 128, (o, i)).astype(np.float32) / 100
        w[0, 0] = 1.27
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(rng.integers(-20, 30, o).astype(np.float32) / 100))
        return layer

    def leaky(n, out=False):
        return snn.Leaky(beta=torch.full((n,), 0.5), threshold=torch.full((n,), THR),
                         init_hidden=True, reset_mechanism="zero", output=out)

    net = torch.nn.Sequential(lin(7, 9), leaky(9), lin(9, 4), leaky(4, True))
    x = (rng.random((N, T, 7)) < 0.5).astype(np.float32)
    return net, x


@pytest.fixture(scope="module")
def snntorch_file(tmp_path_factory):
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    d = tmp_path_factory.mktemp("byon")
    net, x = _snntorch_net()
    utils.reset(net)
    spikes = []
    with torch.no_grad():
        for t in range(T):
            spk, _ = net(torch.from_numpy(x[:, t]))
            spikes.append(spk.numpy())
    want = np.stack(spikes, axis=1)
    graph = export_to_nir(net, torch.from_numpy(x[:, 0]), ignore_dims=[0])
    assert "dt" not in (graph.metadata or {})
    nir.write(d / "snn.nir", graph)
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", np.arange(N) % 4)
    return d, want


@pytest.mark.parametrize("target", ["reference", "lava-float", "loihi-emu"])
def test_snntorch_export_runs_from_the_cli_as_snntorch_does(snntorch_file, target, run_cli):
    d, want = snntorch_file
    out = d / f"out-{target}"
    r = run_cli("simulate", d / "snn.nir", "--target", target, "--input", d / "x.npy",
                "--labels", d / "y.npy", "--dt", "1e-4", "--out", out)
    assert r.returncode == 0, r.stderr
    with np.load(out / f"simulate-{target}.npz") as z:
        np.testing.assert_array_equal(z["output_spikes"], want)
    assert want.sum() > 20 and 0 < want.sum() < want.size
    assert json.loads((out / f"simulate-{target}.json").read_text())["samples"] == N


def test_energy_on_a_file(snntorch_file, run_cli):
    d, _ = snntorch_file
    r = run_cli("energy", d / "snn.nir", "--input", d / "x.npy", "--dt", "1e-4",
                "--out", d / "energy-out")
    assert r.returncode == 0, r.stderr
    doc = json.loads((d / "energy-out" / "energy.json").read_text())
    assert doc["spikes"]["source"] == "simulate-reference" and doc["spikes"]["samples"] == N
    assert doc["totals_per_sample"]["ops_effective"] > 0
    nb = doc["synops_neurobench"]      # no pool: both conventions give the same number
    assert nb["total_ops_per_sample"] == pytest.approx(doc["totals_per_sample"]["ops_effective"])


def test_graph_without_dt_asks_for_it_naming_snntorchs_convention(snntorch_file):
    d, _ = snntorch_file
    r = run_process("simulate", d / "snn.nir", "--target", "reference", "--input",
                    d / "x.npy", "--out", d / "no-dt")
    assert r.returncode not in (0, 70)
    assert "--dt" in r.stderr and "dt = 1e-4 s" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_static_input_needs_timesteps_and_a_fitting_shape(snntorch_file, tmp_path, run_cli):
    d, want = snntorch_file
    np.save(tmp_path / "static.npy", np.ones((3, 7), np.float32))
    r = run_cli("simulate", d / "snn.nir", "--target", "reference", "--input",
                tmp_path / "static.npy", "--dt", "1e-4", "--out", tmp_path / "o")
    assert r.returncode not in (0, 70) and "--timesteps" in r.stderr
    np.save(tmp_path / "bad.npy", np.ones((3, 5), np.float32))
    r = run_cli("simulate", d / "snn.nir", "--target", "reference", "--input",
                tmp_path / "bad.npy", "--dt", "1e-4", "--timesteps", "4", "--out", tmp_path / "o")
    assert r.returncode not in (0, 70) and "(N, T, 7)" in r.stderr
    r = run_cli("simulate", d / "snn.nir", "--target", "reference", "--input",
                tmp_path / "static.npy", "--dt", "1e-4", "--timesteps", "4", "--out",
                tmp_path / "o")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o" / "simulate-reference.npz") as z:
        assert z["output_spikes"].shape == (3, 4, 4)


def test_netx_file_imports_and_reproduces_lava_dls_golden_output(tmp_path, run_cli):
    from tests.targets.test_netx_import import _gts_root

    root = _gts_root()
    r = run_cli("import", root / "tiny.net", "--out", tmp_path / "tiny.nir")
    assert r.returncode == 0, r.stderr
    assert nir.read(tmp_path / "tiny.nir").metadata["format"] == "spikeship-nir-from-netx/1"
    img = np.load(root / "gts/tinynet/input_bias.npy").transpose(2, 1, 0)[None]   # (1, C, H, W)
    np.save(tmp_path / "img.npy", img.astype(np.int64))
    r = run_cli("simulate", root / "tiny.net", "--target", "loihi-emu", "--input",
                tmp_path / "img.npy", "--timesteps", "16", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    gt = np.moveaxis(np.load(root / "gts/tinynet/output.npy")[0], -1, 0).reshape(16, -1)
    with np.load(tmp_path / "run" / "simulate-loihi-emu.npz") as z:
        np.testing.assert_array_equal(z["output_spikes"][0, :15], gt[1:])
    r = run_cli("import", root / "gts/pilotnet_sdnn/network.net", "--out", tmp_path / "x.nir")
    assert r.returncode not in (0, 70) and "[netx-sigma-delta]" in r.stderr


def test_norse_export_runs_as_norse_does(tmp_path):
    """Norse 1.1's ``to_nir`` writes ``tau = dt / tau_mem_inv``: exported with ``dt=1.0`` it
    is NIR's tau; run with Norse's real step (``--dt 1e-3``)."""
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters

    from spikeship.sim.standalone import simulate_file

    torch.manual_seed(0)

    def cell(n):
        return norse.LIFBoxCell(LIFBoxParameters(
            tau_mem_inv=torch.full((n,), 200.0), v_th=torch.full((n,), 0.3),
            v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

    net = norse.SequentialState(torch.nn.Linear(7, 6), cell(6), torch.nn.Linear(6, 3), cell(3))
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3)
    nir.write(tmp_path / "norse.nir", norse.to_nir(net, torch.zeros(7), dt=1.0))
    x = (np.random.default_rng(0).random((5, 20, 7)) < 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = []
    with torch.no_grad():
        for n in range(5):
            state, steps = None, []
            for t in range(20):
                y, state = net(torch.from_numpy(x[n, t]), state)
                steps.append(y.numpy())
            want.append(np.stack(steps))
    want = np.stack(want)
    assert want.sum() > 10
    for target in ("reference", "norse"):
        r, _ = simulate_file(tmp_path / "norse.nir", target, input_path=tmp_path / "x.npy",
                             dt_s=1e-3, out=tmp_path / "out")
        np.testing.assert_array_equal(r.output_spikes, want, err_msg=target)


def test_a_directory_with_only_model_nir_points_to_the_file(snntorch_file, tmp_path, run_cli):
    d, _ = snntorch_file
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "model.nir").write_bytes((d / "snn.nir").read_bytes())
    r = run_cli("simulate", tmp_path / "only", "--target", "reference")
    assert r.returncode not in (0, 70) and "model.nir --target ... --input X.npy" in r.stderr
    r = run_cli("simulate", tmp_path / "only", "--target", "reference", "--dt", "1e-4")
    assert r.returncode not in (0, 70) and "only apply to a model FILE" in r.stderr

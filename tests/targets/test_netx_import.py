"""netx -> NIR import: lava-dl's shipped reference networks reproduce their golden outputs
through spikeship's ``loihi-emu`` and ``lava-fixed``; what netx has and spikeship does not
run is refused by name.

The reference networks and golden outputs are the ones lava-dl 0.6.0 installs with its
tests (``tests/lava/lib/dl/netx/`` in site-packages, BSD-3-Clause, Intel): read in place,
not copied. Alignment: a population at depth ``d`` handles step ``t`` of spikeship's
aligned frame at Lava step ``t + 1 + d``; lava-dl's goldens index Lava steps from 0
(pilotnet_lif: ``gt[..., k]`` = state after Lava step ``k + 1``, reset every 16 steps)
or slayer's steps one later than spikeship's (tinynet: ``gt[..., t + 1]`` = our ``t``).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from spikeship.errors import UnsupportedNodeError
from spikeship.targets.loihi.deploy import deployment_for
from spikeship.sim.loihi_emu import LoihiEmulator
from spikeship.targets.loihi import netx_import


def _gts_root() -> Path:
    import site

    for d in site.getsitepackages():
        p = Path(d) / "tests" / "lava" / "lib" / "dl" / "netx"
        if (p / "tiny.net").is_file():
            return p
    pytest.skip("lava-dl's netx reference networks (site-packages/tests/lava/lib/dl/netx) "
                "are not installed")


def _lava_to_nir(a: np.ndarray) -> np.ndarray:
    """Lava-layout golden ``(W, H, C, T)`` / ``(N, T)`` -> ``(T, C, H, W)`` / ``(T, N)``."""
    a = np.moveaxis(a, -1, 0)
    return np.transpose(a, (0, *range(a.ndim - 1, 0, -1)))


def _static(img_whc: np.ndarray, steps: int) -> np.ndarray:
    img = img_whc.transpose(2, 1, 0)
    return np.broadcast_to(img[None, None], (1, steps, *img.shape)).astype(np.int64)


def _emulate(path: Path, x: np.ndarray):
    g = netx_import.netx_to_nir(path)
    dep = deployment_for(g, "fixed", x, {})
    emu = LoihiEmulator(dep)
    names = tuple(p.name for p in dep.populations)
    return dep, emu, emu.run(x, record_voltages=names, record_spikes=names)


def test_tinynet_every_layer_reproduces_golden_spikes_on_the_emulator():
    root = _gts_root()
    x = _static(np.load(root / "gts/tinynet/input_bias.npy"), 16)
    dep, _, r = _emulate(root / "tiny.net", x)
    assert [p.kind for p in dep.populations] == ["LIF"] * 3
    goldens = ["input", "layer1", "output"]
    for p, gname in zip(dep.populations, goldens):
        gt = np.moveaxis(np.load(root / f"gts/tinynet/{gname}.npy")[0], -1, 0)  # T, C, H, W
        ours = r.spikes[p.name][0].astype(np.float32)
        assert not gt[0].any()                        # slayer's step 0: nothing yet
        np.testing.assert_array_equal(ours[:15], gt[1:], err_msg=p.name)   # all 15 steps
        assert gt.sum() > 90


@pytest.mark.lava
def test_tinynet_lava_fixed_reproduces_golden_output_and_voltages(tmp_path):
    from spikeship.sim.lava.run import run_deployment

    root = _gts_root()
    x = _static(np.load(root / "gts/tinynet/input_bias.npy"), 16)
    g = netx_import.netx_to_nir(root / "tiny.net")
    dep = deployment_for(g, "fixed", x, {})
    names = tuple(p.name for p in dep.populations)
    traces: dict = {}
    res = run_deployment(dep, x, record_voltages=names, traces=traces, timeout_s=600)
    gt = np.moveaxis(np.load(root / "gts/tinynet/output.npy")[0], -1, 0).reshape(16, -1)
    np.testing.assert_array_equal(res.output_spikes[0, :15], gt[1:])
    _, _, emu = _emulate(root / "tiny.net", x)
    for p in dep.populations:   # raw Lava step index t + depth == aligned step t
        lava_v = traces[f"v/{p.name}"][p.depth:p.depth + 16]
        np.testing.assert_array_equal(lava_v, emu.voltages[p.name][0], err_msg=p.name)


def test_pilotnet_lif_reproduces_spikes_currents_and_voltages_of_every_layer():
    """PilotNet LIF (10 populations: input, 5 conv, 3 dense, 1 IF readout), its image as
    the input port's current, 16 steps (its reset interval). Compared at every step of
    the first reset window of every layer whose golden covers it: spikes, ``u`` and
    ``v``. At a spike step the golden ``v`` reads 128 (Loihi's readout of a neuron that
    just fired) where Lava's model holds 0; every other ``v`` is identical. ``fc-3``'s
    golden (25 float steps) comes from another configuration: only its spikes (none)
    are compared."""
    root = _gts_root() / "gts" / "pilotnet_lif"
    x = _static(np.load(root / "image.npy"), 16)
    dep, emu, r = _emulate(root / "network.net", x)
    goldens = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(3)]
    assert len(dep.populations) == 10 and dep.populations[-1].kind == "IF"
    checked = {"s": 0, "u": 0, "v": 0}
    for pe, p, gname in zip(emu.pops, dep.populations, goldens):
        d = p.depth
        s = r.spikes[p.name][0]
        gs = _lava_to_nir(np.load(root / f"{gname}.npy"))[d:d + 16]
        np.testing.assert_array_equal(s[:len(gs)], gs, err_msg=f"{p.name} spikes")
        checked["s"] += gs.size
        if gname == "input":
            continue
        gv = _lava_to_nir(np.load(root / f"{gname}-v.npy")).astype(np.int64)[d:d + 16]
        v, fired = r.voltages[p.name][0][:len(gv)], s[:len(gv)].astype(bool)
        np.testing.assert_array_equal(v[~fired], gv[~fired], err_msg=f"{p.name} v")
        assert set(np.unique(gv[fired])) <= {128} and not v[fired].any()
        gu = _lava_to_nir(np.load(root / f"{gname}-u.npy")).astype(np.int64)[d:d + 16]
        a_in = sum(op.forward(torch.as_tensor(r.spikes[src][0][:len(gu)].astype(np.int64)))
                   .numpy() for src, op in pe.ff)
        np.testing.assert_array_equal((a_in << 6).reshape(gu.shape), gu, err_msg=f"{p.name} u")
        checked["u"] += gu.size
        checked["v"] += int((~fired).sum())
    assert not r.spikes[dep.populations[-1].name].any()
    assert not np.load(root / "fc-3-s.npy").any()
    assert checked["s"] == 2_536_128 and checked["u"] == 1_902_528, checked


def test_sigma_delta_network_is_refused_by_name():
    root = _gts_root()
    with pytest.raises(UnsupportedNodeError, match=r"\[netx-sigma-delta\] layer 0"):
        netx_import.netx_to_nir(root / "gts/pilotnet_sdnn/network.net")


def test_axonal_delay_network_is_refused_by_name():
    root = _gts_root()
    with pytest.raises(UnsupportedNodeError, match=r"\[netx-axonal-delay\] layer 2"):
        netx_import.netx_to_nir(root / "gts/ntidigits/ntidigits.net")


def test_readout_without_neuron_is_refused_by_name():
    root = _gts_root()
    with pytest.raises(UnsupportedNodeError, match=r"\[netx-default-neuron\] layer 3"):
        netx_import.netx_to_nir(root / "mnist.net")


@pytest.mark.parametrize("w", [
    np.array([[3, -5], [7, 1]]), np.array([[4, 8], [12, 0]]), np.array([[-6, -2]]),
    np.array([[100, -127], [3, 9]]), np.arange(-20, 19).reshape(3, 13)])
def test_optimize_weight_bits_is_netx_s(w):
    from spikeship._optional import require

    require("lava")
    from lava.lib.dl.netx.utils import optimize_weight_bits as netx_owb

    ours = netx_import.optimize_weight_bits(w)
    ref = netx_owb(w.astype(np.float64))
    np.testing.assert_array_equal(ours[0], ref[0])
    assert ours[1:] == (ref[1], ref[2])


def test_inspect_reports_netx_neurons_synapses_and_layers():
    from spikeship.targets.describe import describe_file

    root = _gts_root()
    d = describe_file(root / "tiny.net")
    assert [r["type"] for r in d["layers"]] == ["netx:input", "netx:conv", "netx:conv"]
    assert [r.get("neurons") for r in d["layers"]] == [768, 864, 36]   # 3x16x16, 24x6x6, 36
    assert d["neurons_total"] == 1668 and d["synapses_total"] == 24 * 3 * 25 + 36 * 24 * 25
    assert d["importable"] is True
    d = describe_file(root / "gts/ntidigits/ntidigits.net")
    assert d["neurons_total"] == 256 + 256 + 242 and d["layers"][2]["axonal_delay_max"] > 0
    assert d["importable"].startswith("[netx-axonal-delay]")


def test_imported_graph_survives_the_nir_file_round_trip(tmp_path):
    from spikeship.export.nir_export import write_nir
    from spikeship.targets.loihi.deploy import load_graph

    root = _gts_root()
    write_nir(netx_import.netx_to_nir(root / "tiny.net"), tmp_path / "tiny.nir")
    x = _static(np.load(root / "gts/tinynet/input_bias.npy"), 16)
    g = load_graph(tmp_path / "tiny.nir")
    r = LoihiEmulator(deployment_for(g, "fixed", x, {})).run(x)
    gt = np.moveaxis(np.load(root / "gts/tinynet/output.npy")[0], -1, 0).reshape(16, -1)
    np.testing.assert_array_equal(r.output_spikes[0, :15], gt[1:])


@pytest.mark.lava
def test_conv_on_an_input_wider_than_127_pixels_runs_in_lava_fixed_point():
    """Lava's Conv holds padding/stride as int8; with numpy 2 its output_shape overflowed
    for a 128+ pixel wide input (PilotNet: 200). spikeship's compat hook casts them."""
    import nir

    from spikeship.sim.lava.run import run_deployment
    from spikeship.targets.loihi.lower import lower
    from spikeship.targets.loihi.quantize import quantize_deployment

    rng = np.random.default_rng(1)
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 2, 130])}),
             "conv": nir.Conv2d(input_shape=(2, 130), weight=rng.normal(0.5, 1, (2, 1, 2, 3)),
                                stride=1, padding=(0, 1), dilation=1, groups=1,
                                bias=np.zeros(2)),
             "lif": nir.IF(r=np.ones((2, 1, 130)), v_threshold=np.ones((2, 1, 130)),
                           v_reset=np.zeros((2, 1, 130))),
             "output": nir.Output(output_type={"output": np.array([2, 1, 130])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
                     metadata={"dt": 1e-3}, type_check=False)
    dep = quantize_deployment(lower(g, input_mode="spikes"))
    x = (rng.random((1, 5, 1, 2, 130)) < 0.5).astype(np.float64)
    res = run_deployment(dep, x, timeout_s=300)
    emu = LoihiEmulator(dep).run(x)
    assert emu.output_spikes.sum() > 10
    np.testing.assert_array_equal(res.output_spikes, emu.output_spikes)

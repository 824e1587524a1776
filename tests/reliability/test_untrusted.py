"""Untrusted files: nothing is unpickled, and absurd declared sizes are refused before
anything is allocated.

The malicious payload is a pickle whose ``__reduce__`` calls ``open(marker, "w")``:
unpickling it anywhere creates the marker file, so "no code ran" is checked by the
marker's absence. Absurd sizes run under :func:`memory_cap`, an address-space limit of
the current size plus 1 GiB, so a reader that does try to allocate fails at once with
``MemoryError`` (a failed test, not a machine out of memory).
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import pickle
import resource
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
import torch

import spikeship
from spikeship.errors import CheckpointError, DatasetError, GraphError, RunDirError
from spikeship.sim.result import SimResult
from spikeship.io import sha256_file as _sha256
from spikeship.train.checkpoint import META, TENSORS
from tests.reliability.conftest import dvs_gesture_run, expect_error


class Payload:
    """Unpickling this creates ``marker`` (code execution, harmless and observable)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path) -> Path:
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a pickle was loaded: the payload's code ran"


def _fix_sha(run) -> None:
    meta = json.loads((run / "checkpoint" / META).read_text())
    meta["tensors_sha256"] = _sha256(run / "checkpoint" / TENSORS)
    (run / "checkpoint" / META).write_text(json.dumps(meta))


# ---- nothing is unpickled --------------------------------------------------------------
def test_pickle_as_checkpoint_tensors(run, capsys, marker):
    """Integrity hash made to match, so the reader itself meets the pickle."""
    (run / "checkpoint" / TENSORS).write_bytes(pickle.dumps(Payload(marker)))
    _fix_sha(run)
    expect_error(capsys, ["export", run], CheckpointError, TENSORS, watch=(run,))
    expect_error(capsys, ["train", "--out", run, "--resume", "--no-progress"], CheckpointError,
                 TENSORS, watch=(run,))
    expect_error(capsys, ["simulate", run, "--target", "snntorch", "--samples", 2],
                 CheckpointError, TENSORS, watch=(run,))


def test_torch_save_zip_as_checkpoint_tensors(run, capsys, marker):
    torch.save({"model/0.weight": Payload(marker)}, run / "checkpoint" / TENSORS)
    _fix_sha(run)
    expect_error(capsys, ["export", run], CheckpointError, TENSORS, watch=(run,))


def test_pickle_as_checkpoint_meta(run, capsys, marker):
    (run / "checkpoint" / META).write_bytes(pickle.dumps(Payload(marker)))
    expect_error(capsys, ["export", run], CheckpointError, "checkpoint", watch=(run,))


@pytest.mark.parametrize("name,argv", [
    ("model.nir", ["simulate", "{run}", "--target", "reference", "--samples", "2"]),
    ("model.nir", ["inspect", "{run}/model.nir"]),
    ("model.onnx", ["simulate", "{run}", "--target", "onnx", "--samples", "2"]),
    ("model.onnx", ["inspect", "{run}/model.onnx"]),
    ("model.net", ["inspect", "{run}/model.net"]),
    ("model.net", ["simulate", "{run}", "--target", "lava-netx", "--samples", "2"]),
], ids=["nir-simulate", "nir-inspect", "onnx-simulate", "onnx-inspect", "netx-inspect",
        "netx-simulate"])
def test_pickle_as_deployed_file(run, capsys, marker, name, argv):
    (run / name).write_bytes(pickle.dumps(Payload(marker)))
    expect_error(capsys, [a.format(run=run) for a in argv], GraphError, name, watch=(run,))


def test_pickled_object_array_in_a_simulation_result(run, capsys, marker):
    """``simulate-<t>.npz`` is read with ``allow_pickle=False``; ``energy`` reads it."""
    assert spikeship.cli.main(["simulate", str(run), "--target", "reference",
                               "--samples", "2"]) == 0
    npz = run / "simulate-reference.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["output_spikes"] = np.array([Payload(marker)], dtype=object)
    np.savez(npz.with_suffix(".tmp.npz"), **arrays)
    os.replace(npz.with_suffix(".tmp.npz"), npz)
    with pytest.raises(RunDirError, match="simulation result.*Python objects"):
        SimResult.load(run, "reference")
    expect_error(capsys, ["energy", run, "--spikes-from", "reference", "--no-lava-check"],
                 RunDirError, "simulate-reference.npz", watch=(run,))


def test_pickle_payload_in_cifar_batches(tmp_path, capsys, marker):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}))
    out = tmp_path / "out"
    expect_error(capsys, ["train", "--dataset", "cifar10", "--data-dir", tmp_path, "--model",
                          "tiny-mlp", "--out", out, "--no-progress"], DatasetError,
                 "not a safe CIFAR batch", watch=(out,))


def test_pickled_npy_recording_in_dvs_gesture(tmp_path, capsys, marker, exported_run):
    run = dvs_gesture_run(tmp_path, exported_run, lambda p: np.save(
        p, np.array([Payload(marker)], dtype=object), allow_pickle=True))
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 1],
                 DatasetError, "cannot read recording", watch=(run,))


def test_a_whole_good_run_is_processed_without_any_unpickling(run, capsys, monkeypatch):
    """Export, inspect and simulate (reference, onnx) with every unpickler disabled."""
    def refuse(*a, **k):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for argv in (["export", run, "--formats", "nir,onnx"], ["inspect", run / "model.nir"],
                 ["inspect", run / "model.onnx"], ["inspect", run / "model.net"],
                 ["simulate", run, "--target", "reference", "--samples", 2],
                 ["simulate", run, "--target", "onnx", "--samples", 2]):
        assert spikeship.cli.main([str(a) for a in argv]) == 0, argv
    capsys.readouterr()


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


RESTRICTED_UNPICKLERS = ("spikeship/data/cifar.py", "spikeship/data/numpy_pickle.py")


def test_source_never_unpickles_untrusted_data():
    """Static audit of spikeship/: no ``pickle.load(s)`` outside the restricted unpicklers
    of the CIFAR reader and of the MNIST file (``data/numpy_pickle.py``), ``torch.load`` only with ``weights_only=True``, ``np.load``
    only with ``allow_pickle=False``, no ``eval`` / ``exec`` / ``marshal`` / ``shelve``."""
    root = Path(spikeship.__file__).parent
    problems, seen = [], 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call, name in _calls(tree):
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            where = f"{rel}:{call.lineno} {name}"
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load",
                        "marshal.loads", "shelve.open", "eval", "exec", "cloudpickle.load"):
                problems.append(where)
            elif name == "torch.load":
                seen += 1
                if kw.get("weights_only") != "True":
                    problems.append(where + " without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                seen += 1
                if kw.get("allow_pickle") != "False":
                    problems.append(where + " without allow_pickle=False")
            elif name.endswith("Unpickler(") or (name.endswith(".load") and "Unpickler" in name):
                if rel not in RESTRICTED_UNPICKLERS:
                    problems.append(where)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(b)
                                                      for b in node.bases):
                if rel not in RESTRICTED_UNPICKLERS:
                    problems.append(f"{rel}:{node.lineno} class {node.name}")
    assert seen >= 2, "the audit found no np.load at all: is it looking at the package?"
    assert problems == []


# ---- absurd sizes --------------------------------------------------------------------------
@contextlib.contextmanager
def memory_cap(extra_bytes: int = 1 << 30):
    """Limit this process's address space to its current size plus ``extra_bytes``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vsize = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vsize + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _huge_dataset(group, name, dtype="f4", n=10**12):
    if name in group:
        del group[name]
    group.create_dataset(name, shape=(n,), dtype=dtype, chunks=(4096,))


def test_nir_array_declaring_a_trillion_elements(run, capsys):
    with h5py.File(run / "model.nir", "r+") as f:
        _huge_dataset(f["node/nodes/fc7"], "bias")
    assert (run / "model.nir").stat().st_size < 10_000_000
    with memory_cap():
        expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 2],
                     GraphError, "refusing to read", watch=(run,))
        expect_error(capsys, ["inspect", run / "model.nir"], GraphError, "refusing to read",
                     watch=(run,))


def test_nir_input_declaring_a_trillion_neurons(run, capsys):
    with h5py.File(run / "model.nir", "r+") as f:
        del f["node/nodes/input/shape"]
        f["node/nodes/input/shape"] = np.array([1, 10**6, 10**6])
    with memory_cap():
        expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 2],
                     GraphError, "refusing to allocate", watch=(run,))


def test_nir_many_arrays_adding_up_to_too_much(run, capsys):
    """Each array is under the per-array limit, together they are over the total (and none
    stores its bytes: the safe-open policy refuses the first before the total is reached)."""
    with h5py.File(run / "model.nir", "r+") as f:
        g = f["node/nodes/fc7/metadata"] if "metadata" in f["node/nodes/fc7"] else \
            f["node/nodes/fc7"].create_group("metadata")
        for i in range(6):
            g.create_dataset(f"junk{i}", shape=(60_000_000,), dtype="f4", chunks=(4096,))
    with memory_cap():
        expect_error(capsys, ["inspect", run / "model.nir"], GraphError, "refusing", watch=(run,))


def test_netx_weight_declaring_a_trillion_elements_inspect(run, capsys):
    with h5py.File(run / "model.net", "r+") as f:
        _huge_dataset(f["layer/3"], "weight", "i8")
    with memory_cap():
        expect_error(capsys, ["inspect", run / "model.net"], GraphError, "refusing to read",
                     watch=(run,))


def test_netx_weight_declaring_a_trillion_elements_simulate(run, capsys):
    with h5py.File(run / "model.net", "r+") as f:
        _huge_dataset(f["layer/3"], "weight", "i8")
    with memory_cap():
        expect_error(capsys, ["simulate", run, "--target", "lava-netx", "--samples", 2],
                     GraphError, "model.net", watch=(run,))


def _edit_onnx(path, change):
    m = onnx.load(str(path))
    change(m)
    onnx.save(m, str(path))


def test_onnx_initializer_declaring_a_trillion_elements(run, capsys):
    def change(m):
        init = next(i for i in m.graph.initializer if i.name.startswith("fc7.weight"))
        init.ClearField("raw_data")
        del init.dims[:]
        init.dims.extend([10**6, 10**6])
    _edit_onnx(run / "model.onnx", change)
    with memory_cap():
        expect_error(capsys, ["inspect", run / "model.onnx"], GraphError, "refusing to read",
                     watch=(run,))
        expect_error(capsys, ["simulate", run, "--target", "onnx", "--samples", 2], GraphError,
                     "model.onnx", watch=(run,))


def test_onnx_state_declaring_a_trillion_neurons(run, capsys):
    def change(m):
        v = next(i for i in m.graph.input if i.name != "x")
        dims = v.type.tensor_type.shape.dim
        for d, value in zip(dims[1:], (10**6, 10**6, 1)):
            d.dim_value = value
    _edit_onnx(run / "model.onnx", change)
    with memory_cap():
        expect_error(capsys, ["simulate", run, "--target", "onnx", "--samples", 2], GraphError,
                     "model.onnx", watch=(run,))


def test_onnx_external_data_is_not_followed(run, capsys, tmp_path):
    """An initializer pointing to another file (here: a secret beside the run) is refused."""
    secret = run / "secret.bin"
    secret.write_bytes(np.arange(10, dtype=np.float32).tobytes())

    def change(m):
        init = next(i for i in m.graph.initializer if i.name.startswith("fc9.weight"))
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        init.external_data.add(key="location", value="secret.bin")
    _edit_onnx(run / "model.onnx", change)
    expect_error(capsys, ["inspect", run / "model.onnx"], GraphError, "external", watch=(run,))


def test_safetensors_header_declaring_a_trillion_elements(run, capsys):
    """The header names a shape its data cannot hold (hash made to match)."""
    path = run / "checkpoint" / TENSORS
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    key = next(k for k in header if k.startswith("model/") and k.endswith("7.weight"))
    header[key]["shape"] = [10**6, 10**6]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)               # data offsets count from the header's end
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    _fix_sha(run)
    with memory_cap():
        expect_error(capsys, ["export", run], CheckpointError, TENSORS, watch=(run,))


def test_checkpoint_spec_declaring_an_absurd_model(run, capsys):
    meta = json.loads((run / "checkpoint" / META).read_text())
    meta["spec"]["input_shape"] = [1, 10**6, 10**6]
    (run / "checkpoint" / META).write_text(json.dumps(meta))
    with memory_cap():
        expect_error(capsys, ["export", run], CheckpointError, "does not fit", watch=(run,))


def _big_state_graph(side: int) -> "nir.NIRGraph":
    """input (1, side, side) -> 1x1 conv -> LIF -> SumPool(side) -> Flatten -> Affine(2, 1)
    -> LIF: tiny parameters except the per-neuron LIF arrays, which are broadcast views
    (no memory), so only a simulator that allocates state would use memory."""
    import nir

    f32 = np.float32
    big = (1, side, side)

    def view(v):
        return np.broadcast_to(f32(v), big)
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array(big)}),
        "conv": nir.Conv2d(input_shape=(side, side), weight=np.ones((1, 1, 1, 1), f32),
                           stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(1, f32)),
        "lif": nir.LIF(tau=view(2e-3), r=view(1.0), v_leak=view(0.0), v_threshold=view(0.5),
                       v_reset=view(0.0)),
        "pool": nir.SumPool2d(kernel_size=np.array([side, side]), stride=np.array([side, side]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([1, 1, 1])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=np.ones((2, 1), f32), bias=np.zeros(2, f32)),
        "out_lif": nir.LIF(tau=np.full(2, 2e-3, f32), r=np.ones(2, f32), v_leak=np.zeros(2, f32),
                           v_threshold=np.full(2, 0.5, f32), v_reset=np.zeros(2, f32)),
        "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"),
               ("flat", "fc"), ("fc", "out_lif"), ("out_lif", "output")],
        metadata={"dt": 1e-3}, type_check=False)


def test_reference_refuses_state_beyond_its_memory_budget():
    """36 M neurons pass the importer's per-node limit, but one sample's state (input,
    conv output, LIF voltage and spikes in float64) is over the 1 GiB budget: refused
    before the simulator allocates anything."""
    from spikeship.errors import SimulationError
    from spikeship.nir.read import load_graph
    from spikeship.sim.reference import simulate

    g = load_graph(_big_state_graph(6000))
    x = np.broadcast_to(np.float32(1.0), (3, 2, 1, 6000, 6000))
    with memory_cap(), pytest.raises(SimulationError, match="memory_budget_mb"):
        simulate(g, x)


def test_reference_memory_budget_shrinks_the_batch_not_the_result(exported_run):
    """A budget of 1 MiB forces batches of a few samples: the same output, bit for bit."""
    from spikeship.nir.read import read_nir
    from spikeship.sim.reference import batch_within_budget, simulate

    g = read_nir(exported_run / "model.nir")
    x = np.random.default_rng(0).random((40, 4, 1, 8, 8)).astype(np.float32)
    small = batch_within_budget(g, "float64", 256, 1 << 20)
    assert 1 <= small < 40
    a, ca = simulate(g, x)
    b, cb = simulate(g, x, memory_budget_bytes=1 << 20)
    np.testing.assert_array_equal(a, b)
    assert all(np.array_equal(ca[k], cb[k]) for k in ca)


def test_energy_refuses_a_nir_array_declaring_a_trillion_elements(run, capsys):
    with h5py.File(run / "model.nir", "r+") as f:
        _huge_dataset(f["node/nodes/fc7"], "bias")
    with memory_cap():
        expect_error(capsys, ["energy", run, "--assume-rate", "0.1", "--no-lava-check"],
                     GraphError, "refusing to read", watch=(run,))

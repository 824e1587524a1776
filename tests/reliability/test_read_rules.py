"""One rule for reading (issue 36, class 2): every size read from a file or a flag is
checked against the file's real size and a documented ceiling before anything is
allocated, and only regular files are read.

The network is a tiny standalone NIR file (3 inputs -> 4 LIF -> output), written to
``tmp_path``; every hostile input is a real file. Absurd declared sizes run under
:func:`tests.reliability.test_untrusted.memory_cap` (address space + 1 GiB): a reader
that tries to allocate what a header declares fails the test with MemoryError instead of
filling the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nir
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from benchmarks.reliability_read import edit_coordinates
from spikeship.errors import ConfigError, GraphError
from tests.reliability.conftest import expect_error
from tests.reliability.test_untrusted import memory_cap

N, T, IN, OUT = 5, 3, 3, 4


def tiny_graph(dt=1e-3) -> nir.NIRGraph:
    """Input(3) -> Affine(3 -> 4) -> LIF(4) -> Output(4), weights 0.5, ``dt`` metadata."""
    w = np.full((OUT, IN), 0.5)
    lif = nir.LIF(tau=np.full(OUT, 2e-3), r=np.ones(OUT), v_leak=np.zeros(OUT),
                  v_threshold=np.full(OUT, 0.3), v_reset=np.zeros(OUT))
    nodes = {"in": nir.Input(input_type={"input": np.array([IN])}),
             "fc": nir.Affine(weight=w, bias=np.zeros(OUT)), "lif": lif,
             "out": nir.Output(output_type={"output": np.array([OUT])})}
    meta = {} if dt is None else {"dt": dt}
    return nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
                        metadata=meta)


@pytest.fixture
def files(tmp_path):
    """``net.nir``, a good ``x.npy`` (N, T, 3) and ``y.npy`` (N,) in ``tmp_path``."""
    nir.write(tmp_path / "net.nir", tiny_graph())
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).random((N, T, IN)) < 0.5) * 1.0)
    np.save(tmp_path / "y.npy", np.arange(N) % OUT)
    return tmp_path


def _sim(d, *extra, x="x.npy"):
    return ["simulate", d / "net.nir", "--target", "reference", "--input", d / x,
            "--out", d / "out", *extra]


def _npy_declaring(path, shape, dtype="<f8", payload=b"\0" * 64):
    """A .npy file whose header declares ``shape`` but which holds only ``payload``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)
    return path


def test_valid_standalone_run_still_works(files, capsys):
    from spikeship import cli

    assert cli.main([str(a) for a in _sim(files, "--labels", files / "y.npy")]) == 0
    assert (files / "out" / "simulate-reference.json").is_file()


def test_input_header_declaring_terabytes_is_refused_before_allocation(files, capsys):
    _npy_declaring(files / "huge.npy", (10**6, 10**4, IN))
    with memory_cap():
        expect_error(capsys, _sim(files, x="huge.npy"), ConfigError, "declares shape",
                     watch=(files,))


def test_labels_header_declaring_terabytes_is_refused(files, capsys):
    _npy_declaring(files / "yhuge.npy", (10**12,), "<i8")
    with memory_cap():
        expect_error(capsys, _sim(files, "--labels", files / "yhuge.npy"), ConfigError,
                     "declares shape", watch=(files,))


def test_empty_input_file_is_a_named_error(files, capsys):
    (files / "empty.npy").write_bytes(b"")
    expect_error(capsys, _sim(files, x="empty.npy"), ConfigError, "not a .npy array",
                 watch=(files,))


def test_fifo_as_input_is_refused_without_waiting(files):
    """A FIFO nobody writes to: reading it would block forever."""
    os.mkfifo(files / "fifo.npy")
    r = subprocess.run([sys.executable, "-m", "spikeship.cli", *map(str, _sim(files,
                        x="fifo.npy"))], capture_output=True, text=True, timeout=120)
    assert r.returncode == ConfigError.exit_code, r.stderr
    assert "a FIFO, not a regular file" in r.stderr


def test_timesteps_expanding_past_one_array_is_refused(files, capsys):
    np.save(files / "static.npy", np.ones((1000, IN)))
    with memory_cap():
        expect_error(capsys, _sim(files, "--timesteps", "10000000", x="static.npy"),
                     ConfigError, "--timesteps", watch=(files,))
        # in range for T, but N x T x input too large for one array
        np.save(files / "static.npy", np.ones((100_000, IN), dtype=np.uint8))
        expect_error(capsys, _sim(files, "--timesteps", "10000", x="static.npy"),
                     ConfigError, "limit", watch=(files,))


# ---- ONNX coordinate form ------------------------------------------------------------------
COMMANDS = {"inspect": ["inspect", "{run}/model.onnx"],
            "simulate": ["simulate", "{run}", "--target", "onnx", "--samples", "2"],
            "energy": ["energy", "{run}", "--spikes-from", "reference", "--no-lava-check"]}


@pytest.mark.parametrize("how,match", [("dup", "more than once"), ("range", "outside the shape"),
                                       ("huge", "limit")])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_onnx_coordinates_checked_by_every_reader(run, capsys, command, how, match):
    """Inspect, simulate and energy all refuse a bad coordinate form by name."""
    from spikeship import cli

    if command == "energy":
        assert cli.main(["simulate", str(run), "--target", "reference", "--samples", "2"]) == 0
    edit_coordinates(run, how)
    with memory_cap():
        expect_error(capsys, [a.format(run=run) for a in COMMANDS[command]], GraphError,
                     match, watch=(run,))


def test_onnx_sparse_initializer_index_out_of_range(tmp_path):
    from spikeship.safeopen import load_onnx

    vals = numpy_helper.from_array(np.ones(2, np.float32), "w")
    idx = numpy_helper.from_array(np.array([1, 50], np.int64), "w.idx")
    sp = helper.make_sparse_tensor(vals, idx, [4, 3])
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                              [helper.make_tensor_value_info("y", 1, [1])],
                              sparse_initializer=[sp])
    onnx.save(helper.make_model(graph), tmp_path / "s.onnx")
    with pytest.raises(GraphError, match="outside the shape"):
        load_onnx(tmp_path / "s.onnx", ops=None)


def test_netx_shape_attribute_is_checked_before_allocation(run, capsys):
    """lava-netx reads a population's ``shape`` and would allocate its bias as declared."""
    import h5py

    with h5py.File(run / "model.net", "r+") as f:
        g = next(f["layer"][k] for k in sorted(f["layer"], key=int)
                 if "shape" in f["layer"][k] and "neuron" in f["layer"][k])
        del g["shape"]
        g["shape"] = np.array([10**6, 10**6, 10**6])
    with memory_cap():
        expect_error(capsys, ["simulate", run, "--target", "lava-netx", "--samples", "2"],
                     GraphError, "neurons", watch=(run,))

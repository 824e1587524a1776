"""The safe-open policy (:mod:`spikeship.safeopen`) on real hostile files.

HDF5 files (``model.nir``, ``model.net``) are edited with h5py so that a weight or a
whole node comes from outside the file (external link, external group, virtual
dataset, external raw storage), needs a plugin filter, or is a soft link; ONNX files
get external data, control flow and foreign operators; run files become symlinks to
``/dev/zero``, FIFOs or sparse files far over their limit. Each case is one named
error through the CLI (exit 1, one line, no traceback) from every command that reads
the file, and nothing in the run directory changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import helper

from spikeship.errors import CheckpointError, GraphError, RunDirError
from spikeship.safeopen import (LIMITS, FileLimits, check_npy, load_onnx, open_hdf5,
                                read_json)
from tests.reliability.conftest import expect_error

ENERGY = ["energy", "{run}", "--assume-rate", "0.1", "--no-lava-check",
          "--allow-explicit-zeros", "netx", "--allow-explicit-zeros", "netx-sparse"]
NIR_READERS = [["inspect", "{run}/model.nir"], ["simulate", "{run}", "--target", "reference",
                                                  "--samples", "2"], ENERGY]
NETX_READERS = [["inspect", "{run}/model.net"], ENERGY]
ONNX_READERS = [["simulate", "{run}", "--target", "onnx", "--samples", "2"], ENERGY]
NIR_WEIGHT, NETX_WEIGHT = "node/nodes/fc7/weight", "layer/3/weight"


def argv(cmd, run):
    return [a.format(run=run) for a in cmd]


def _other_file(tmp_path: Path, like: np.ndarray) -> Path:
    """Another HDF5 file holding an array shaped like ``like`` (the attacker's weights)."""
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("w", data=np.full_like(like, 7))
        g = f.create_group("node")
        g.create_dataset("weight", data=np.full_like(like, 7))
    return other


def external_link(path: Path, key: str, tmp_path: Path) -> str:
    with h5py.File(path, "r+") as f:
        other = _other_file(tmp_path, f[key][()])
        del f[key]
        f[key] = h5py.ExternalLink(str(other), "/w")
    return "external link"


def external_group(path: Path, key: str, tmp_path: Path) -> str:
    group = key.rsplit("/", 1)[0]
    other = tmp_path / "group.h5"
    with h5py.File(path, "r+") as f, h5py.File(other, "w") as g:
        f.copy(f[group], g, name="copied")
        del f[group]
        f[group] = h5py.ExternalLink(str(other), "/copied")
    return "external link"


def virtual_dataset(path: Path, key: str, tmp_path: Path) -> str:
    with h5py.File(path, "r+") as f:
        w = f[key][()]
        other = _other_file(tmp_path, w)
        layout = h5py.VirtualLayout(shape=w.shape, dtype=w.dtype)
        layout[...] = h5py.VirtualSource(str(other), "w", shape=w.shape)
        del f[key]
        f.create_virtual_dataset(key, layout)
    return "virtual dataset"


def external_raw(path: Path, key: str, tmp_path: Path) -> str:
    with h5py.File(path, "r+") as f:
        w = f[key][()]
        raw = tmp_path / "raw.bin"
        raw.write_bytes(np.full_like(w, 7).tobytes())
        del f[key]
        f.create_dataset(key, shape=w.shape, dtype=w.dtype, external=[(str(raw), 0, w.nbytes)])
    return "external raw"


def plugin_filter(path: Path, key: str, tmp_path: Path) -> str:   # noqa: ARG001
    from h5py import h5d, h5p, h5s, h5t, h5z

    with h5py.File(path, "r+") as f:
        w = f[key][()]
        del f[key]
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_chunk(w.shape)
        dcpl.set_filter(32004, h5z.FLAG_OPTIONAL, (1,))     # LZ4: a plugin, not built in
        parent, name = key.rsplit("/", 1)
        h5d.create(f[parent].id, name.encode(), h5t.py_create(w.dtype),
                   h5s.create_simple(w.shape), dcpl=dcpl)
        f[key][...] = w
    return "needs a plugin"


def soft_link(path: Path, key: str, tmp_path: Path) -> str:   # noqa: ARG001
    with h5py.File(path, "r+") as f:
        f.move(key, key + "_moved")
        f[key] = h5py.SoftLink("/" + key + "_moved")
    return "soft link"


HDF5_ATTACKS = [external_link, external_group, virtual_dataset, external_raw, plugin_filter,
                soft_link]


@pytest.mark.parametrize("attack", HDF5_ATTACKS, ids=lambda f: f.__name__)
def test_nir_reading_outside_the_file_is_refused(run, capsys, tmp_path, attack):
    match = attack(run / "model.nir", NIR_WEIGHT, tmp_path)
    for cmd in NIR_READERS:
        expect_error(capsys, argv(cmd, run), GraphError, match, watch=(run, tmp_path / "x"))


@pytest.mark.parametrize("attack", HDF5_ATTACKS, ids=lambda f: f.__name__)
def test_netx_reading_outside_the_file_is_refused(run, capsys, tmp_path, attack):
    match = attack(run / "model.net", NETX_WEIGHT, tmp_path)
    for cmd in NETX_READERS:
        expect_error(capsys, argv(cmd, run), GraphError, match, watch=(run,))


def test_the_attacks_really_change_what_h5py_reads(run, tmp_path):
    """Control: without the policy each edited file still opens and yields the attacker's
    weights (7.0) through plain h5py, so the refusals above are the policy's doing."""
    for i, attack in enumerate(HDF5_ATTACKS):
        d = tmp_path / str(i)
        d.mkdir()
        p = d / "model.nir"
        p.write_bytes((run / "model.nir").read_bytes())
        attack(p, NIR_WEIGHT, d)
        with h5py.File(p, "r") as f:
            if attack is plugin_filter:
                assert f[NIR_WEIGHT].id.get_create_plist().get_filter(0)[0] == 32004
                continue
            w = f[NIR_WEIGHT][()]
            if attack not in (soft_link, external_group):    # these point at copies
                assert np.all(w == 7), attack.__name__


def test_a_good_file_passes_the_policy(run):
    with open_hdf5(run / "model.nir", "NIR file") as f:
        assert "node" in f
    with open_hdf5(run / "model.net", "netx file"):
        pass
    load_onnx(run / "model.onnx")


# ---- ONNX ----------------------------------------------------------------------------------
def _edit_onnx(path: Path, change) -> None:
    m = onnx.load(str(path))
    change(m)
    path.write_bytes(m.SerializeToString())


def _external_initializer(m):
    init = next(i for i in m.graph.initializer if i.name.startswith("fc9.weight"))
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    init.external_data.add(key="location", value="secret.bin")
    init.external_data.add(key="length", value="40")


def _loop(m):
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c_out"])], "body",
                             [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                              helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("c_out", onnx.TensorProto.BOOL, [])])
    m.graph.node.append(helper.make_node("Loop", ["", ""], [], body=body, name="forever"))


def _foreign_domain(m):
    n = m.graph.node[0]
    n.domain = "com.example.evil"


def _constant_with_external_tensor(m):
    t = helper.make_tensor("k", onnx.TensorProto.FLOAT, [10], np.zeros(10, np.float32))
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="secret.bin")
    # inside an Identity node's (unused) attribute: still never read
    m.graph.node[0].attribute.append(helper.make_attribute("payload", t))


@pytest.mark.parametrize("change,match", [
    (_external_initializer, "external file"),
    (_loop, "Loop"),
    (_foreign_domain, "com.example.evil"),
    (_constant_with_external_tensor, "external file"),
], ids=["external-initializer", "loop", "foreign-domain", "external-attribute-tensor"])
def test_onnx_outside_what_spikeship_writes_is_refused(run, capsys, change, match):
    (run / "secret.bin").write_bytes(np.arange(10, dtype=np.float32).tobytes())
    (run / "simulate-reference.json").unlink(missing_ok=True)
    _edit_onnx(run / "model.onnx", change)
    for cmd in ONNX_READERS:
        expect_error(capsys, argv(cmd, run), GraphError, match, watch=(run,))


def test_onnx_external_data_is_refused_whatever_the_current_directory(run, capsys,
                                                                      monkeypatch):
    """The old energy path resolved external data against the current directory."""
    monkeypatch.chdir(run)
    (run / "secret.bin").write_bytes(np.arange(10, dtype=np.float32).tobytes())
    _edit_onnx(run / "model.onnx", _external_initializer)
    expect_error(capsys, argv(ENERGY, "."), GraphError, "external file", watch=(run,))


def test_every_operator_spikeship_writes_is_accepted(run, tmp_path):
    """The accepted set is exactly what the writer emits, in both ONNX modes."""
    from spikeship.targets.export import export_run
    from spikeship.safeopen import ONNX_OPS

    import shutil

    d = tmp_path / "u"
    shutil.copytree(run, d)
    export_run(d, ("onnx",), onnx_mode="unrolled")
    used = set()
    for p in (run / "model.onnx", d / "model.onnx"):
        used |= {n.op_type for n in load_onnx(p).graph.node}
    assert used <= ONNX_OPS
    assert len(used) >= len(ONNX_OPS) - 3


# ---- files that are not regular files, or too big ------------------------------------------
SPECIAL = [
    ("model.nir", ["inspect", "{run}/model.nir"], GraphError),
    ("model.nir", ["simulate", "{run}", "--target", "reference", "--samples", "2"], GraphError),
    ("model.onnx", ["simulate", "{run}", "--target", "onnx", "--samples", "2"], GraphError),
    ("model.onnx", ["inspect", "{run}/model.onnx"], GraphError),
    ("model.net", ["inspect", "{run}/model.net"], GraphError),
    ("config.json", ["simulate", "{run}", "--target", "reference", "--samples", "2"], RunDirError),
    ("summary.json", ["report", "{run}"], RunDirError),
    ("metrics.jsonl", ["report", "{run}"], RunDirError),
    ("checkpoint/tensors.safetensors", ["export", "{run}"], CheckpointError),
    ("checkpoint/meta.json", ["export", "{run}"], CheckpointError),
]


def _report_ready(run: Path) -> None:
    import json

    (run / "summary.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_accuracy": 0.5}) + "\n")


@pytest.mark.parametrize("name,cmd,error", SPECIAL, ids=lambda v: v if isinstance(v, str)
                         else None)
def test_symlink_to_dev_zero_is_refused(run, capsys, name, cmd, error):
    _report_ready(run)
    (run / name).unlink()
    (run / name).symlink_to("/dev/zero")
    match = "regular file" if error is not CheckpointError or name.endswith("safetensors") \
        else "no complete checkpoint"
    expect_error(capsys, argv(cmd, run), error, match, watch=(run,))


@pytest.mark.parametrize("name,cmd,error", SPECIAL[:6], ids=lambda v: v if isinstance(v, str)
                         else None)
def test_fifo_is_refused_without_blocking(run, capsys, name, cmd, error):
    (run / name).unlink()
    os.mkfifo(run / name)
    expect_error(capsys, argv(cmd, run), error, "FIFO", watch=(run,))


@pytest.mark.parametrize("name,cmd,error", [
    ("config.json", ["simulate", "{run}", "--target", "reference", "--samples", "2"], RunDirError),
    ("summary.json", ["report", "{run}"], RunDirError),
    ("metrics.jsonl", ["report", "{run}"], RunDirError),
    ("checkpoint/meta.json", ["export", "{run}"], CheckpointError),
], ids=["config", "summary", "metrics", "meta"])
def test_sparse_file_over_its_limit_is_refused_unread(run, capsys, name, cmd, error):
    """A multi-gigabyte sparse file costs no disk; reading it whole would cost the memory."""
    _report_ready(run)
    with open(run / name, "r+b") as f:
        f.truncate(3 * (1 << 30))
    match = "limit" if error is not CheckpointError else "no complete checkpoint"
    stats = _stats(run)        # hashing 3 GiB of zeros would be the slow part: compare stats
    expect_error(capsys, argv(cmd, run), error, match)
    assert _stats(run) == stats


def _stats(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_limits_are_applied_before_reading(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"a": 1}')
    assert read_json(p, "thing") == {"a": 1}
    with pytest.raises(GraphError, match="limit of 4 bytes"):
        read_json(p, "thing", max_bytes=4)
    small = FileLimits(hdf5_bytes=100)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(1000))
    with pytest.raises(GraphError, match="limit"):
        with open_hdf5(tmp_path / "b.h5", "thing", limits=small):
            pass
    assert LIMITS.onnx_bytes == 2 << 30


def test_npy_declaring_more_than_it_holds(tmp_path):
    from numpy.lib import format as npformat

    p = tmp_path / "r.npy"
    with open(p, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False,
                                            "shape": (4_000_000_000, 4)})
        f.write(np.zeros(16, np.int64).tobytes())
    with pytest.raises(GraphError, match="declares shape"):
        check_npy(p, "recording")


@pytest.mark.parametrize("content,match", [(b"\x89PNG\r\n\x1a\n\xff\xfe", "not UTF-8"),
                                           (None, "character device")],
                         ids=["binary", "dev-zero"])
def test_comparison_table_that_is_not_text(run, capsys, tmp_path, content, match):
    _report_ready(run)
    table = tmp_path / "table.md"
    if content is None:
        table.symlink_to("/dev/zero")
    else:
        table.write_bytes(content)
    expect_error(capsys, ["report", run, "--comparison", table], RunDirError, match,
                 watch=(run,))

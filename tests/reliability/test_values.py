"""Values checked for meaning, not only type (issue 36, class 3): a value that would run
and answer wrongly with exit 0 is refused by name, with the accepted range.

Standalone runs use the tiny NIR file of :mod:`tests.reliability.test_read_rules`; the
netx cases damage a copy of the exported run's ``model.net`` (real HDF5 files).
"""

from __future__ import annotations

import shutil

import h5py
import nir
import numpy as np
import pytest

from spikeship.errors import ConfigError, GraphError
from tests.reliability.conftest import expect_error
from tests.reliability.test_read_rules import IN, N, OUT, T, _sim, files, tiny_graph  # noqa: F401
from tests.reliability.test_untrusted import memory_cap


@pytest.mark.parametrize("dt", ["1e300", "1e-300", "inf", "0"])
def test_dt_flag_outside_the_range_is_refused(files, capsys, dt):  # noqa: F811
    msg = expect_error(capsys, _sim(files, "--dt", dt), ConfigError, "--dt must be",
                       watch=(files,))
    assert "[1e-09, 1]" in msg


@pytest.mark.parametrize("dt", [1e300, 1e-300])
def test_dt_in_a_nir_file_outside_the_range_is_refused(files, capsys, dt):  # noqa: F811
    nir.write(files / "net.nir", tiny_graph(dt=dt))
    expect_error(capsys, _sim(files), GraphError, "graph metadata dt must be",
                 watch=(files,))
    expect_error(capsys, ["inspect", files / "net.nir"], GraphError, "[1e-09, 1]")


@pytest.mark.parametrize("labels,match", [
    (np.array([2**64 - 1] * N, dtype=np.uint64), "label 18446744073709551615"),
    (np.array([-1] + [0] * (N - 1)), "label -1"),
    (np.array([10**12] + [0] * (N - 1)), "label 1000000000000"),
    (np.array([OUT] * N), f"label {OUT}"),
], ids=["uint64-max", "minus-one", "1e12", "one-past-classes"])
def test_labels_outside_the_classes_are_refused(files, capsys, labels, match):  # noqa: F811
    np.save(files / "bad_y.npy", labels)
    msg = expect_error(capsys, _sim(files, "--labels", files / "bad_y.npy"), ConfigError,
                       match, watch=(files,))
    assert f"[0, {OUT - 1}]" in msg


@pytest.mark.parametrize("x,match", [
    (np.full((N, T, IN), 2**64 - 1, dtype=np.uint64), "magnitude"),
    (np.full((N, T, IN), 1e308), "magnitude"),
    (np.full((N, T, IN), -1e30, dtype=np.float32), "magnitude"),
], ids=["uint64-max", "1e308", "float32-minus-1e30"])
def test_inputs_the_simulators_cannot_represent_are_refused(files, capsys, x, match):  # noqa: F811
    np.save(files / "bad_x.npy", x)
    expect_error(capsys, _sim(files, x="bad_x.npy"), ConfigError, match, watch=(files,))


# ---- netx geometry and weights, refused before import writes NIR --------------------------
def _conv_layer(f: h5py.File) -> h5py.Group:
    return next(f["layer"][k] for k in sorted(f["layer"], key=int)
                if "stride" in f["layer"][k])


def _set(group, key, value):
    del group[key]
    group[key] = value


def _inf_weight(g):
    w = g["weight"][()].astype(np.float64)
    w.flat[0] = np.inf
    _set(g, "weight", w)


DAMAGE = {
    "inf-weight": _inf_weight,
    "stride-0": lambda g: _set(g, "stride", np.array([0, 0])),
    "dilation-0": lambda g: _set(g, "dilation", np.array([0, 0])),
    "padding-negative": lambda g: _set(g, "padding", np.array([-3, -3])),
    "groups-absurd": lambda g: _set(g, "groups", np.int64(10**9)),
    "shape-absurd": lambda g: _set(g, "shape", np.array([10**6, 10**6, 10**6])),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_netx_import_refuses_meaningless_geometry_and_weights(exported_run, tmp_path, capsys,
                                                              how):
    net = tmp_path / "bad.net"
    shutil.copy(exported_run / "model.net", net)
    with h5py.File(net, "r+") as f:
        DAMAGE[how](_conv_layer(f))
    with memory_cap():
        expect_error(capsys, ["import", net, "--out", tmp_path / "out.nir"], GraphError,
                     "layer", watch=(tmp_path,))
    assert not (tmp_path / "out.nir").exists()

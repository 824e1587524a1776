"""Damaged deployed files and checkpoints: one named error, one line, nothing written.

Damage kinds (each applied to a real exported file of a small pruned dpap-mnist run):
``truncated`` (first half kept), ``flipped`` (every 97th byte from offset 200 inverted,
the HDF5 / protobuf structure garbled), ``empty`` (zero bytes) and ``foreign`` (a JSON
document under the model's name).
"""

from __future__ import annotations

import json

import pytest

from spikeship.errors import CheckpointError, GraphError
from tests.reliability.conftest import expect_error

DAMAGES = ("truncated", "flipped", "empty", "foreign")


def damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        for i in range(200, len(data), 97):
            data[i] ^= 0xFF
    elif how == "empty":
        data = bytearray()
    elif how == "foreign":
        data = bytearray(json.dumps({"not": "a model"}).encode())
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_nir_simulate_reference(run, capsys, how):
    damage(run / "model.nir", how)
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 3],
                 GraphError, "model.nir", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_nir_inspect(run, capsys, how):
    damage(run / "model.nir", how)
    expect_error(capsys, ["inspect", run / "model.nir"], GraphError, "model.nir", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_onnx_simulate(run, capsys, how):
    damage(run / "model.onnx", how)
    expect_error(capsys, ["simulate", run, "--target", "onnx", "--samples", 3],
                 GraphError, "model.onnx", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_onnx_inspect(run, capsys, how):
    damage(run / "model.onnx", how)
    expect_error(capsys, ["inspect", run / "model.onnx"], GraphError, "model.onnx", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_netx_inspect(run, capsys, how):
    damage(run / "model.net", how)
    expect_error(capsys, ["inspect", run / "model.net"], GraphError, "model.net", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_netx_simulate(run, capsys, how):
    damage(run / "model.net", how)
    expect_error(capsys, ["simulate", run, "--target", "lava-netx", "--samples", 2],
                 GraphError, "model.net", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint_tensors_export(run, capsys, how):
    damage(run / "checkpoint" / "tensors.safetensors", how)
    expect_error(capsys, ["export", run], CheckpointError, "checkpoint", watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint_meta_export(run, capsys, how):
    damage(run / "checkpoint" / "meta.json", how)
    expect_error(capsys, ["export", run], CheckpointError, "checkpoint", watch=(run,))


@pytest.mark.parametrize("how", ("truncated", "flipped"))
def test_damaged_checkpoint_resume(run, capsys, how):
    damage(run / "checkpoint" / "tensors.safetensors", how)
    expect_error(capsys, ["train", "--out", run, "--resume", "--no-progress"], CheckpointError,
                 "corrupt", watch=(run,))


# ---- energy reads every deployed file (owner of spikeship/energy/**: energy) -----------
ENERGY = ["energy", "{run}", "--spikes-from", "reference", "--no-lava-check",
          "--allow-explicit-zeros", "netx", "--allow-explicit-zeros", "netx-sparse"]


@pytest.fixture(scope="module")
def simulated_source(exported_run, tmp_path_factory):
    import shutil

    from spikeship import cli

    run = tmp_path_factory.mktemp("energy") / "run"
    shutil.copytree(exported_run, run)
    assert cli.main(["simulate", str(run), "--target", "reference", "--samples", "3"]) == 0
    assert cli.main([a.format(run=run) for a in ENERGY]) == 0     # the undamaged control
    (run / "energy.json").unlink()
    return run


@pytest.fixture
def simulated_run(simulated_source, tmp_path):
    import shutil

    shutil.copytree(simulated_source, tmp_path / "srun")
    return tmp_path / "srun"


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty", "foreign"])
def test_damaged_onnx_energy(simulated_run, capsys, how):
    run = simulated_run
    damage(run / "model.onnx", how)
    expect_error(capsys, [a.format(run=run) for a in ENERGY], GraphError, "model.onnx",
                 watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_netx_energy(simulated_run, capsys, how):
    run = simulated_run
    damage(run / "model.net", how)
    expect_error(capsys, [a.format(run=run) for a in ENERGY], GraphError, "model.net",
                 watch=(run,))


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_nir_energy(simulated_run, capsys, how):
    run = simulated_run
    damage(run / "model.nir", how)
    expect_error(capsys, [a.format(run=run) for a in ENERGY], GraphError, "model.nir",
                 watch=(run,))

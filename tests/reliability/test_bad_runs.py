"""Run directories, checkpoints, datasets, configurations and output paths that are wrong:
each gives one named error through the CLI, exit code 1, and writes nothing."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from spikeship.errors import (CheckpointError, ConfigError, DatasetError, ExportError, MaskError,
                              OptionError, RunDirError, UsageError)
from spikeship.io import sha256_file as _sha256
from spikeship.train.checkpoint import META, TENSORS
from spikeship.train.models import ModelSpec
from tests.reliability.conftest import dvs_gesture_run, expect_error

TRAIN = ["train", "--model", "tiny-mlp", "--epochs", "1", "--no-progress"]


def rewrite_checkpoint(run, tensors=None, meta=None) -> None:
    """Change a checkpoint consistently (the SHA-256 in meta.json follows the tensors), as
    a buggy or hostile writer would: the integrity check cannot catch these."""
    d = run / "checkpoint"
    t = load_file(str(d / TENSORS))
    m = json.loads((d / META).read_text())
    if tensors:
        tensors(t)
        save_file(t, str(d / TENSORS))
    if meta:
        meta(m)
    m["tensors_sha256"] = _sha256(d / TENSORS)
    (d / META).write_text(json.dumps(m))


# ---- checkpoints: architecture, masks, values, format ----------------------------------
def test_checkpoint_of_another_architecture(run, capsys):
    rewrite_checkpoint(run, meta=lambda m: m.update(
        spec=ModelSpec("tiny-mlp", (1, 8, 8), 10, hidden=7).to_json()))
    expect_error(capsys, ["export", run], CheckpointError, "does not fit the model", watch=(run,))


def test_resume_with_another_architecture(run, capsys):
    expect_error(capsys, ["train", "--out", run, "--resume", "--model", "tiny-mlp",
                          "--no-progress"], ConfigError, "field 'model'", watch=(run,))


def test_checkpoint_spec_with_an_unknown_preset(run, capsys):
    rewrite_checkpoint(run, meta=lambda m: m["spec"].update(preset="resnet-9000"))
    expect_error(capsys, ["export", run], CheckpointError, "resnet-9000", watch=(run,))


def _trim(key):
    def change(t):
        t[key] = t[key][..., :-1].contiguous()
    return change


@pytest.mark.parametrize("key", ["mask/weight.7", "mask/weight.0", "mask/units.3"])
def test_mask_shape_does_not_fit_its_weight(run, capsys, key):
    rewrite_checkpoint(run, tensors=_trim(key))
    expect_error(capsys, ["export", run], MaskError, key[5:], watch=(run,))


def test_mask_missing_for_a_layer(run, capsys):
    rewrite_checkpoint(run, tensors=lambda t: t.pop("mask/weight.9"))
    expect_error(capsys, ["export", run], MaskError, "missing ['weight.9']", watch=(run,))


def test_mask_removing_output_classes(run, capsys):
    def change(t):
        t["mask/units.9"][3] = 0
    rewrite_checkpoint(run, tensors=change)
    expect_error(capsys, ["export", run], MaskError, "removes output units", watch=(run,))


def test_mask_removing_every_unit_of_a_layer(run, capsys):
    def change(t):
        t["mask/units.7"][:] = 0
    rewrite_checkpoint(run, tensors=change)
    expect_error(capsys, ["export", run], ExportError, "every unit is pruned", watch=(run,))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_never_exported(run, capsys, value):
    def change(t):
        t["model/7.weight"][5, 9] = value          # a kept synapse of a kept unit
        t["mask/weight.7"][5, 9] = 1
        t["mask/units.7"][5] = 1
    rewrite_checkpoint(run, tensors=change)
    expect_error(capsys, ["export", run], ExportError, "NaN or Inf", watch=(run,))


def test_run_directory_from_an_older_checkpoint_format(run, capsys):
    rewrite_checkpoint(run, meta=lambda m: m.update(format_version=0))
    expect_error(capsys, ["export", run], CheckpointError, "format 0 is not supported",
                 watch=(run,))
    expect_error(capsys, ["train", "--out", run, "--resume", "--no-progress"], CheckpointError,
                 "format 0", watch=(run,))


def test_run_directory_from_before_format_versions(run, capsys):
    rewrite_checkpoint(run, meta=lambda m: m.pop("format_version"))
    expect_error(capsys, ["export", run], CheckpointError, "format", watch=(run,))


def test_run_directory_with_a_pickled_torch_checkpoint(run, capsys):
    """An old-style run (``model.pt``) has no checkpoint spikeship reads: named, not loaded."""
    import shutil

    shutil.rmtree(run / "checkpoint")
    torch.save({"w": torch.zeros(2)}, run / "model.pt")
    expect_error(capsys, ["export", run], CheckpointError, "no checkpoint", watch=(run,))


def test_missing_run_directory(tmp_path, capsys):
    ghost = tmp_path / "ghost"
    expect_error(capsys, ["export", ghost], RunDirError, "no run directory", watch=(ghost,))
    expect_error(capsys, ["simulate", ghost, "--target", "reference"], RunDirError,
                 "no run directory", watch=(ghost,))
    expect_error(capsys, ["train", "--out", ghost, "--resume", "--no-progress"],
                 CheckpointError, "no checkpoint", watch=(ghost,))


def test_run_config_json_malformed(run, capsys):
    (run / "config.json").write_text("{ not json")
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 2],
                 RunDirError, "config.json", watch=(run,))


# ---- datasets ---------------------------------------------------------------------------
def _idx(shape, dtype_code=0x08, data: bytes | None = None) -> bytes:
    head = bytes([0, 0, dtype_code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape)
    return head + (data if data is not None else bytes(int(np.prod(shape))))


MNIST = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _mnist_dir(tmp_path, files: dict[str, bytes]):
    d = tmp_path / "mnist"
    d.mkdir()
    good = {MNIST[0]: _idx((3, 28, 28)), MNIST[1]: _idx((3,)), MNIST[2]: _idx((2, 28, 28)),
            MNIST[3]: _idx((2,))}
    for name, data in {**good, **files}.items():
        (d / name).write_bytes(data)
    return d


MNIST_BAD = [
    ("missing-dir", None, "not found"),
    ("garbage-file", {MNIST[0]: b"hello, not an IDX file"}, "not an IDX file"),
    ("truncated-data", {MNIST[0]: _idx((3, 28, 28))[:-100]}, "header says"),
    ("absurd-header", {MNIST[0]: _idx((4_000_000_000, 28, 28), data=b"")}, "header says"),
    ("labels-count", {MNIST[1]: _idx((4,))}, "shape"),
    ("labels-range", {MNIST[3]: _idx((2,), data=bytes([3, 12]))}, "labels must be 0..9"),
]


@pytest.mark.parametrize("case,files,match", MNIST_BAD, ids=[c[0] for c in MNIST_BAD])
def test_bad_mnist_directory(tmp_path, capsys, case, files, match):
    d = tmp_path / "nothing-here" if files is None else _mnist_dir(tmp_path, files)
    out = tmp_path / "out"
    expect_error(capsys, [*TRAIN, "--dataset", "mnist", "--data-dir", d, "--out", out],
                 DatasetError, match, watch=(out,))


CIFAR_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.mark.parametrize("case,payload,match", [
    ("not-a-pickle", b"\x00\x01 definitely not a pickle", "not a safe CIFAR batch"),
    ("not-a-dict", pickle.dumps([1, 2, 3]), "is a dict"),
    ("wrong-shape", pickle.dumps({b"data": np.zeros((2, 7), np.uint8), b"labels": [0, 1]}),
     "uint8 array"),
], ids=["not-a-pickle", "not-a-dict", "wrong-shape"])
def test_bad_cifar_directory(tmp_path, capsys, case, payload, match):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in CIFAR_NAMES:
        (d / name).write_bytes(payload)
    out = tmp_path / "out"
    expect_error(capsys, [*TRAIN, "--dataset", "cifar10", "--data-dir", tmp_path, "--out", out],
                 DatasetError, match, watch=(out,))


def test_bad_dvs_gesture_recording(tmp_path, capsys, exported_run):
    """A recording that is not an ``.npy`` array: found when the split is read."""
    run = dvs_gesture_run(tmp_path, exported_run, lambda p: p.write_bytes(b"not numpy"))
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 1],
                 DatasetError, "cannot read recording", watch=(run,))


def test_simulate_with_the_dataset_gone(run, tmp_path, capsys):
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(dataset="mnist", data_dir=str(tmp_path / "moved-away"))
    (run / "config.json").write_text(json.dumps(cfg))
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", 1],
                 DatasetError, "not found", watch=(run,))


def test_digits_events_cache_dir_is_a_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    out = tmp_path / "out"
    expect_error(capsys, [*TRAIN, "--dataset", "digits-events", "--data-dir", f, "--out", out],
                 DatasetError, "a-file", watch=(out,))


# ---- configurations -----------------------------------------------------------------------
TRAIN_CONFIGS = [
    ("unknown-field", "epochs = 1\nbogus = 3\n", "unknown field(s) ['bogus']"),
    ("epochs-zero", "epochs = 0\n", "field 'epochs'"),
    ("lr-too-big", "lr = 5.0\n", "field 'lr'"),
    ("lr-nan", "lr = nan\n", "field 'lr'"),
    ("timesteps-huge", "timesteps = 1000000\n", "field 'timesteps'"),
    ("batch-negative", "batch_size = -4\n", "field 'batch_size'"),
    ("epochs-text", "epochs = 'ten'\n", "field 'epochs'"),
    ("ann-text", "ann = 'yes'\n", "field 'ann'"),
    ("unknown-model", "model = 'resnet-9000'\n", "field 'model'"),
    ("unknown-dataset", "dataset = 'imagenet'\n", "field 'dataset'"),
    ("unknown-pruner", "prune = 'lottery'\n", "field 'prune'"),
    ("pruner-option", "prune = 'magnitude'\n[prune_options]\ntarget = 1.5\n", "target"),
    ("unknown-pruner-option", "prune = 'random'\n[prune_options]\nspeed = 2\n", "speed"),
    ("malformed-toml", "epochs = [\n", "malformed"),
    ("not-a-table", "train = 3\n", "table"),
]


@pytest.mark.parametrize("case,text,match", TRAIN_CONFIGS, ids=[c[0] for c in TRAIN_CONFIGS])
def test_bad_train_config_file(tmp_path, capsys, case, text, match):
    cfg = tmp_path / "train.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    expect_error(capsys, ["train", "--config", cfg, "--out", out, "--no-progress"], ConfigError,
                 match, watch=(out,))


def test_missing_train_config_file(tmp_path, capsys):
    out = tmp_path / "out"
    expect_error(capsys, ["train", "--config", tmp_path / "nope.toml", "--out", out],
                 ConfigError, "config file", watch=(out,))


PIPELINE_CONFIGS = [
    ("unknown-field", "bogus = 1\n", "unknown field(s) ['bogus']"),
    ("epochs-zero", "epochs = 0\n", "field 'epochs'"),
    ("samples-text", "lava_samples = 'x'\n", "field 'lava_samples'"),
    ("unknown-target", "targets = ['loihi-9']\n", "field 'targets'"),
    ("unknown-chip", "hardware = 'nochip'\n", "field 'hardware'"),
    ("quick-text", "quick = 'yes'\n", "field 'quick'"),
    ("unknown-dataset", "dataset = 'imagenet'\n", "field 'dataset'"),
    ("unknown-model", "model = 'resnet-9000'\n", "field 'model'"),
    ("unknown-pruner", "prune = 'lottery'\n", "field 'prune'"),
    ("lr-text", "lr = 'fast'\n", "field 'lr'"),
    ("seed-negative", "seed = -1\n", "field 'seed'"),
]


@pytest.mark.parametrize("case,text,match", PIPELINE_CONFIGS, ids=[c[0] for c in PIPELINE_CONFIGS])
def test_bad_pipeline_config_file(tmp_path, capsys, case, text, match):
    """Refused before any stage runs (no hour of training before the bad field is read)."""
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    expect_error(capsys, ["pipeline", "--config", cfg, "--out", out], ConfigError, match,
                 watch=(out,))


@pytest.mark.parametrize("argv,error,match", [
    (["simulate", "{run}", "--target", "loihi-9"], UsageError, "'loihi-9' is not one of"),
    (["simulate", "{run}", "--target", "reference", "--samples", "0"], ConfigError, "--samples"),
    (["simulate", "{run}", "--target", "reference", "--samples", "2", "--option",
      "dtype=float16"], OptionError, "dtype"),
    (["simulate", "{run}", "--target", "reference", "--option", "batch_size=0"], OptionError,
     "batch_size"),
    (["simulate", "{run}", "--target", "reference", "--option", "speed=11"], OptionError,
     "unknown option(s) ['speed']"),
    (["simulate", "{run}", "--target", "onnx", "--option", "threads=-2"], OptionError,
     "threads"),
    (["simulate", "{run}", "--target", "norse", "--option", "batched=maybe"], OptionError,
     "batched"),
    (["simulate", "{run}", "--target", "norse", "--option", "dt_s=-0.001"], OptionError, "dt_s"),
    (["simulate", "{run}", "--target", "snntorch", "--option", "batch_size=x"], OptionError,
     "batch_size"),
    (["simulate", "{run}", "--target", "reference", "--option", "dtype"], OptionError,
     "key=value"),
    (["export", "{run}", "--formats", "nir,xyz"], ConfigError, "unknown export format"),
    (["export", "{run}", "--dt", "-1"], ConfigError, "--dt must be a time step"),
    (["export", "{run}", "--dt", "nan"], ConfigError, "--dt must be a time step"),
    (["train", "--out", "{run}", "--resume", "--threads", "0"], ConfigError, "--threads"),
    (["train", "--out", "{run}", "--resume", "--epochs", "5", "--lr", "0.5", "--no-progress"],
     ConfigError, "field 'lr'"),
    (["train", "--out", "{run}", "--prune-opt", "noequals", "--no-progress"], ConfigError,
     "key=value"),
], ids=["target", "samples", "dtype", "batch-zero", "unknown-option", "onnx-threads",
        "norse-batched", "norse-dt", "snntorch-batch", "option-syntax", "format", "dt-negative",
        "dt-nan", "threads", "resume-changed-lr", "prune-opt-syntax"])
def test_bad_command_line_values(run, capsys, argv, error, match):
    expect_error(capsys, [a.format(run=run) for a in argv], error, match, watch=(run,))


def test_fresh_train_into_an_existing_run_needs_resume(run, capsys):
    expect_error(capsys, [*TRAIN, "--out", run], RunDirError, "--resume", watch=(run,))


# ---- output paths that cannot be written (as root too) -------------------------------------
def test_train_output_under_a_regular_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    expect_error(capsys, [*TRAIN, "--out", f / "run"], RunDirError, "not a directory",
                 watch=(tmp_path,))


def test_train_output_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    expect_error(capsys, [*TRAIN, "--out", f], RunDirError, "not a directory", watch=(tmp_path,))


@pytest.mark.parametrize("where", ["/proc/spikeship-reliability-run", "/sys/spikeship-run"])
def test_train_output_in_a_pseudo_filesystem(capsys, where):
    from pathlib import Path

    expect_error(capsys, [*TRAIN, "--out", where], RunDirError, "cannot create output directory",
                 watch=(Path(where),))


def test_pipeline_output_under_a_regular_file(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    expect_error(capsys, ["pipeline", "--out", f / "p", "--quick"], RunDirError,
                 "not a directory", watch=(tmp_path,))


def test_export_target_name_taken_by_a_directory(run, capsys):
    """``model.onnx/`` is a directory: nothing is renamed over it, and the other formats
    of this export are not written either (all or nothing)."""
    (run / "model.onnx").unlink()
    (run / "model.onnx").mkdir()
    (run / "model.onnx" / "keep").write_text("x")
    expect_error(capsys, ["export", run], RunDirError, "model.onnx", watch=(run,))


def test_compare_output_under_a_regular_file(run, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    summary = {"dataset": "digits", "model": "dpap-mnist", "pruner": "none", "ann": False,
               "test_accuracy": 0.5, "params_total": 10, "params_remaining": 10,
               "pruning_rate": 0.0, "epochs": 1, "epochs_to_baseline": None,
               "dense_baseline_accuracy": None}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_accuracy": 0.5}) + "\n")
    expect_error(capsys, ["compare", run, run, "--out", f / "table.md"], RunDirError,
                 "not a directory", watch=(tmp_path,))


# ---- report / compare inputs --------------------------------------------------------------
def test_report_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    d = tmp_path / "empty"
    d.mkdir()
    expect_error(capsys, ["report", d], RunDirError, "not a run directory", watch=(d,))
    expect_error(capsys, ["report", tmp_path / "ghost"], RunDirError, "does not exist",
                 watch=(tmp_path,))


@pytest.mark.parametrize("name,text,match", [
    ("summary.json", "[1, 2, 3]", "JSON object"),
    ("summary.json", "{ half", "not valid JSON"),
    ("metrics.jsonl", "[1, 2]\n", "JSON object"),
    ("simulate-reference.json", "\"just a string\"", "JSON object"),
    ("energy.json", b"\xff\xfe not utf-8", "not UTF-8"),
], ids=["summary-list", "summary-half", "metrics-list", "simulate-string", "energy-binary"])
def test_report_of_a_run_with_malformed_json(run, capsys, name, text, match):
    p = run / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    expect_error(capsys, ["report", run], RunDirError, match, watch=(run,))


def test_compare_of_a_run_with_a_malformed_summary(run, capsys, tmp_path):
    (run / "summary.json").write_text("[]")
    out = tmp_path / "table.md"
    expect_error(capsys, ["compare", run, run, "--out", out], RunDirError, "JSON object",
                 watch=(run, out))

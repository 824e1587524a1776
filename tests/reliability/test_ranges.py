"""Numbers are range-checked where they enter (:mod:`spikeship.ranges`, the checkpoint's
``check_meta``, the NIR and netx readers): flags, checkpoint metadata, graph values.
Each out-of-range value is one named error, exit 1, and nothing is written; before
these checks each of them crashed (exit 70 or a signal) or was used silently."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from spikeship.errors import CheckpointError, ConfigError, GraphError, OptionError
from tests.reliability.conftest import expect_error
from tests.reliability.test_bad_runs import rewrite_checkpoint

TRAIN = ["train", "--model", "tiny-mlp", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("args,match", [
    (["--threads", str(10**9)], "--threads must be in [1, 256]"),
    (["--threads", "0"], "--threads"),
    (["--seed", str(10**30)], "field 'seed'"),
    (["--seed", "-1"], "field 'seed'"),
    (["--data-seed", str(2**64)], "field 'data_seed'"),
    (["--batch-size", str(10**12)], "field 'batch_size'"),
    (["--timesteps", "0"], "field 'timesteps'"),
    (["--timesteps", "-4"], "field 'timesteps'"),
    (["--lr", "0"], "field 'lr'"),
    (["--lr", "inf"], "field 'lr'"),
    (["--lr", "nan"], "field 'lr'"),
], ids=["threads-huge", "threads-zero", "seed-huge", "seed-negative", "data-seed-huge",
        "batch-huge", "timesteps-zero", "timesteps-negative", "lr-zero", "lr-inf", "lr-nan"])
def test_training_flags_out_of_range(tmp_path, capsys, args, match):
    out = tmp_path / "out"
    expect_error(capsys, [*TRAIN, *args, "--out", out], ConfigError, match, watch=(out,))


@pytest.mark.parametrize("dt", ["1e300", "1e-30", "0", "-1e-3", "inf"])
def test_export_dt_out_of_range_keeps_the_old_export(run, capsys, dt):
    expect_error(capsys, ["export", run, "--dt", dt], ConfigError, "--dt must be",
                 watch=(run,))


@pytest.mark.parametrize("t", [0, -3, 10**9, "8", 2.5])
def test_export_of_a_checkpoint_with_bad_timesteps(run, capsys, t):
    rewrite_checkpoint(run, meta=lambda m: m["config"].update(timesteps=t))
    expect_error(capsys, ["export", run], CheckpointError, "timesteps", watch=(run,))


@pytest.mark.parametrize("target", ["onnx", "loihi-emu"])
def test_simulation_threads_out_of_range(run, capsys, target):
    expect_error(capsys, ["simulate", run, "--target", target, "--samples", "2",
                          "--option", f"threads={10**6}"], OptionError, "threads",
                 watch=(run,))


# ---- checkpoint metadata -------------------------------------------------------------------
def _set(path: str, value):
    def change(m):
        *keys, last = path.split(".")
        d = m
        for k in keys:
            d = d[int(k)] if isinstance(d, list) else d[k]
        d[last] = value
    return change


@pytest.mark.parametrize("path,value,match", [
    ("epoch", "three", "field 'epoch'"),
    ("epoch", -1, "field 'epoch'"),
    ("epoch", 10**12, "field 'epoch'"),
    ("metrics", {"a": 1}, "field 'metrics'"),
    ("metrics", [1, 2], "field 'metrics'"),
    ("scheduler", [], "field 'scheduler'"),
    ("scheduler.step", -5, "scheduler.step"),
    ("scheduler.step", "x", "scheduler.step"),
    ("optimizer.param_groups", {"lr": 1}, "param_groups"),
    ("config", "digits", "field 'config'"),
], ids=lambda v: str(v)[:20])
def test_malformed_checkpoint_metadata(run, capsys, path, value, match):
    rewrite_checkpoint(run, meta=_set(path, value))
    expect_error(capsys, ["export", run], CheckpointError, match, watch=(run,))


@pytest.mark.parametrize("path,value,match", [
    ("optimizer.param_groups.0.lr", -1.0, "param_groups[0].lr"),
    ("optimizer.param_groups.0.lr", float("nan"), "param_groups[0].lr"),
    ("optimizer.param_groups.0.weight_decay", "x", "param_groups[0].weight_decay"),
    ("optimizer.param_groups.0.betas", [0.9, 1.5], "betas"),
], ids=["lr-negative", "lr-nan", "wd-string", "betas"])
def test_malformed_optimizer_state(tmp_path, capsys, path, value, match):
    out = _trained(tmp_path, capsys)
    rewrite_checkpoint(out, meta=_set(path, value))
    expect_error(capsys, ["export", out], CheckpointError, match, watch=(out,))


def _trained(tmp_path, capsys, epochs=2):
    from tests.reliability.conftest import run_cli

    out = tmp_path / "t"
    res = run_cli(capsys, [*TRAIN[:-3], "--epochs", str(epochs), "--no-progress",
                           "--stop-after", "1", "--out", out, "--threads", "1"])
    assert res.rc == 0, res.err
    return out


@pytest.mark.parametrize("change,match", [
    (_set("scheduler.step", 10**6), "scheduler state step=1000000"),
    (_set("scheduler.step", 0), "scheduler state step=0"),
    (_set("scheduler.warmup_steps", 0), "warmup_steps=0"),
    (_set("rng.python", 5), "random-generator state"),
    (_set("rng.numpy", {"pos": "x"}), "random-generator state"),
], ids=["step-past-the-end", "step-rewound", "warmup", "rng-python", "rng-numpy"])
def test_resume_from_an_inconsistent_schedule_or_rng(tmp_path, capsys, change, match):
    """A forged step counter would resume past the cosine's end, at learning rate 0."""
    out = _trained(tmp_path, capsys)
    rewrite_checkpoint(out, meta=change)
    expect_error(capsys, [*TRAIN[:-3], "--epochs", "2", "--no-progress", "--resume",
                          "--out", out], CheckpointError, match, watch=(out,))


# ---- graph values --------------------------------------------------------------------------
def test_complex_nir_weights_are_refused(run, capsys):
    with h5py.File(run / "model.nir", "r+") as f:
        w = f["node/nodes/fc7/weight"][()]
        del f["node/nodes/fc7/weight"]
        f["node/nodes/fc7/weight"] = w.astype(np.complex64) + 1j
    for cmd in (["inspect", run / "model.nir"], ["simulate", run, "--target", "reference",
                                                 "--samples", "2"]):
        expect_error(capsys, cmd, GraphError, "complex", watch=(run,))


@pytest.mark.parametrize("value", [-1.0, 0.0])
def test_nir_threshold_not_positive(run, capsys, value):
    with h5py.File(run / "model.nir", "r+") as f:
        th = f["node/nodes/lif8/v_threshold"]
        th[...] = np.full(th.shape, value, th.dtype)
    expect_error(capsys, ["simulate", run, "--target", "reference", "--samples", "2"],
                 GraphError, "v_threshold must be > 0", watch=(run,))


@pytest.mark.parametrize("edit,match", [
    (lambda f: f["layer/3/weight"].__setitem__((0, 0), 2**62) if f["layer/3/weight"].dtype.kind
     in "iu" else None, "fixed-range"),
    (lambda f: f["layer/3/neuron/vThMant"].__setitem__((), -5), "vth=-5"),
    (lambda f: f["layer/3/neuron/vDecay"].__setitem__((), 10**6), "dv=1000000"),
], ids=["weight-2^62", "negative-threshold", "decay-out-of-range"])
def test_netx_values_outside_lavas_fixed_point(run, capsys, edit, match):
    with h5py.File(run / "model.net", "r+") as f:
        w = f["layer/3/weight"]
        if w.dtype != np.int64:              # make room for 2^62 in the stored dtype
            data = w[()].astype(np.int64)
            del f["layer/3/weight"]
            f["layer/3/weight"] = data
        edit(f)
    expect_error(capsys, ["simulate", run, "--target", "lava-netx", "--samples", "2"],
                 GraphError, match, watch=(run,))


def test_rewritten_config_json_types(run, capsys):
    """A config.json whose numbers became strings: the resumed config names the field."""
    cfg = json.loads((run / "config.json").read_text())
    cfg["epochs"] = "many"
    (run / "config.json").write_text(json.dumps(cfg))
    expect_error(capsys, ["train", "--out", run, "--resume", "--no-progress"], ConfigError,
                 "field 'epochs'", watch=(run,))

"""``spikeship train``: flags, config file, resolved config, resume, errors as one line."""

import json

from spikeship import cli
from spikeship.errors import ConfigError, RunDirError, UsageError
from spikeship.io import read_jsonl

BASE = ["train", "--model", "tiny-mlp", "--epochs", "2", "--batch-size", "64", "--no-progress"]


def test_train_command_writes_the_run(tmp_path, capsys):
    out = tmp_path / "r"
    rc = cli.main([*BASE, "--out", str(out), "--seed", "3", "--timesteps", "4", "--lr", "0.003",
                   "--prune", "none", "--prune-opt", "eps=0.65", "--prune-opt", "mode=neuron",
                   "--threads", "1"])
    assert rc == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model"], cfg["seed"], cfg["timesteps"], cfg["lr"], cfg["epochs"]) == \
        ("tiny-mlp", 3, 4, 0.003, 2)
    assert cfg["prune_options"] == {"eps": 0.65, "mode": "neuron"}
    assert cfg["dataset"] == "digits" and cfg["loss"] == "mse_rate"
    assert len(read_jsonl(out / "metrics.jsonl")) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert f"{100 * summary['test_accuracy']:.2f}%" in capsys.readouterr().out


def test_config_file_with_flags_overriding(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('model = "tiny-mlp"\nepochs = 5\nbatch_size = 64\nhidden = 6\nann = true\n'
                 '[prune_options]\nc = 2\n')
    out = tmp_path / "r"
    assert cli.main(["train", "--config", str(f), "--epochs", "1", "--prune-opt", "d=1",
                     "--no-progress", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["epochs"], cfg["hidden"], cfg["ann"], cfg["loss"]) == (1, 6, True, "ce")
    assert cfg["prune_options"] == {"c": 2, "d": 1}
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"model": "tiny-mlp", "epochs": 1, "hiden": 3}))
    rc = cli.main(["train", "--config", str(j), "--out", str(tmp_path / "j")])
    assert rc == ConfigError.exit_code


def test_stop_and_resume_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert cli.main([*BASE, "--out", out, "--stop-after", "1"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert read_jsonl(tmp_path / "r" / "metrics.jsonl")[-1]["epoch"] == 1
    # --resume alone: the saved config is reused
    assert cli.main(["train", "--out", out, "--resume", "--no-progress"]) == 0
    assert read_jsonl(tmp_path / "r" / "metrics.jsonl")[-1]["epoch"] == 2
    # resuming a finished run is a no-op that rewrites the summary (the pipeline does this)
    assert cli.main([*BASE, "--out", out, "--resume"]) == 0
    capsys.readouterr()
    assert cli.main([*BASE, "--out", out]) == RunDirError.exit_code
    assert "--resume" in capsys.readouterr().err


def test_bad_values_are_one_line_errors_naming_the_field(tmp_path, capsys):
    for args, field, code in (
            (["--epochs", "0"], "'epochs'", ConfigError.exit_code),
            (["--dataset", "imagenet"], "'--dataset'", UsageError.exit_code),   # not a choice
            (["--prune", "oracle"], "'--prune'", UsageError.exit_code),
            (["--model", "lenet-dnn"], "'model'", ConfigError.exit_code),       # needs --ann
            (["--prune-opt", "novalue"], "key=value", ConfigError.exit_code)):
        rc = cli.main(["train", "--out", str(tmp_path / "x"), *args])
        err = capsys.readouterr().err
        assert rc == code, args
        assert field in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    rc = cli.main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                   "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 1 and "train-images-idx3-ubyte" in err and str(tmp_path / "none") in err


def test_progress_off_a_terminal_is_one_plain_line_per_epoch(tmp_path):
    """With progress on (the default) but stderr not a terminal, the log is exactly one
    line per epoch: no bar, no escape codes, no blank lines between epochs."""
    import subprocess
    import sys

    argv = [a for a in BASE if a != "--no-progress"]
    r = subprocess.run([sys.executable, "-m", "spikeship.cli", *argv, "--epochs", "3",
                        "--limit-train", "100", "--limit-test", "30",
                        "--out", str(tmp_path / "r"), "--threads", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 3 and all(l.startswith("epoch ") for l in lines), r.stderr
    assert "\x1b" not in r.stderr


def test_init_from_starts_from_a_trained_runs_weights_and_masks(tmp_path, capsys):
    """``--init-from RUN``: the new run starts from RUN's weights and masks (a pruned
    source stays pruned); a source with another architecture or none at all is a named
    error that leaves no run directory behind."""
    import torch

    from spikeship.errors import CheckpointError
    from spikeship.train.checkpoint import load_checkpoint

    src = tmp_path / "src"
    assert cli.main([*BASE, "--out", str(src), "--prune", "magnitude",
                     "--prune-opt", "target=0.5", "--prune-opt", "start=1",
                     "--prune-opt", "end=1"]) == 0
    a = load_checkpoint(src)
    # a learning rate of ~0: the weights after one epoch are the source's
    dst = tmp_path / "dst"
    assert cli.main([*BASE, "--out", str(dst), "--epochs", "1",
                     "--lr", "1e-12", "--weight-decay", "0", "--seed", "5",
                     "--init-from", str(src)]) == 0
    assert f"initialised from {src}" in capsys.readouterr().err
    b = load_checkpoint(dst)
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(wa, wb, atol=1e-6), name
    for name in a.masks.units:
        assert torch.equal(a.masks.effective(name), b.masks.effective(name))
    assert b.masks.pruning_rate() > 0.45
    assert json.loads((dst / "summary.json").read_text())["init_from"] == str(src)
    # without --init-from the same command starts elsewhere
    fresh = tmp_path / "fresh"
    assert cli.main([*BASE, "--out", str(fresh), "--epochs", "1",
                     "--lr", "1e-12", "--weight-decay", "0", "--seed", "5"]) == 0
    assert not torch.allclose(a.model[1].weight, load_checkpoint(fresh).model[1].weight)
    # another architecture: named, nothing written
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert cli.main([*BASE, "--out", str(bad), "--model", "dpap-mnist",
                     "--init-from", str(src)]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "init_from" in err and "preset 'tiny-mlp' there, 'dpap-mnist' here" in err and "Traceback" not in err
    assert not bad.exists()
    # no run there
    assert cli.main([*BASE, "--out", str(bad), "--init-from",
                     str(tmp_path / "nothing")]) == CheckpointError.exit_code
    assert not bad.exists()


def test_init_from_a_run_of_other_time_steps_keeps_its_weights(tmp_path, capsys):
    """A network trained with T = 8 starts a run with ``--timesteps 4`` (what
    ``bench_prune_energy.py --from-dense --pruned-timesteps 4`` does): the weights are
    the source's and the new run records 4 steps (its config and summary)."""
    import torch

    from spikeship.train.checkpoint import load_checkpoint

    src, dst = tmp_path / "t8", tmp_path / "t4"
    assert cli.main([*BASE, "--out", str(src)]) == 0
    assert cli.main([*BASE, "--out", str(dst), "--epochs", "1", "--lr", "1e-12",
                     "--weight-decay", "0", "--timesteps", "4",
                     "--init-from", str(src)]) == 0
    assert f"initialised from {src}" in capsys.readouterr().err
    a, b = load_checkpoint(src), load_checkpoint(dst)
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(wa, wb, atol=1e-6), name
    assert json.loads((src / "config.json").read_text())["timesteps"] == 8
    assert json.loads((dst / "config.json").read_text())["timesteps"] == 4
    summ = json.loads((dst / "summary.json").read_text())
    assert summ["init_from"] == str(src) and summ["timesteps"] == 4

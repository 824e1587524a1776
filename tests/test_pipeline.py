"""Pipeline configuration and the content-checked stage skipping."""

from pathlib import Path

import pytest

from spikeship import cli
from spikeship.errors import ConfigError, DatasetError
from spikeship.pipeline.config import PipelineConfig, load_config_file
from spikeship.pipeline.stages import Stage, StageRecorder, plan
from spikeship.train.config import DEFAULT_EPOCHS, TrainConfig
from spikeship.train.pruners.dpap_config import DPAPConfig


def test_config_file_and_unknown_field_named(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('epochs = 3\ntargets = ["reference"]\nepohcs = 4\n')
    with pytest.raises(ConfigError, match="epohcs"):
        PipelineConfig.from_mapping(load_config_file(f), source=str(f))


@pytest.mark.parametrize("field,value,msg", [
    ("epochs", 0, "'epochs' must be >= 1"),
    ("timesteps", -2, "'timesteps' must be >= 1"),
    ("lr", 5.0, "'lr' must be in"),
    ("targets", ["reference", "loihi3"], "unknown \\['loihi3'\\]"),
    ("epochs", "ten", "'epochs' must be an integer"),
])
def test_out_of_range_fields_are_named(field, value, msg):
    with pytest.raises(ConfigError, match=msg):
        PipelineConfig.from_mapping({field: value})


def test_malformed_toml_is_config_error(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_config_file(f)


def test_plan_passes_pruner_and_baseline(tmp_path):
    cfg = PipelineConfig(out=str(tmp_path / "r"), prune="pq-layer", epochs=3,
                         targets=("reference", "lava-fixed"), lava_samples=7)
    stages = {s.name: s for s in plan(cfg)}
    assert stages["train-pruned"].kwargs["values"]["prune"] == "pq-layer"
    assert stages["train-pruned"].kwargs["baseline"].endswith("baseline")
    assert stages["simulate-lava-fixed"].kwargs["samples"] == 7
    assert stages["energy"].kwargs["spikes_from"] == "lava-fixed"
    assert stages["energy"].kwargs["allow_zeros"] == ["netx"]
    assert list(stages)[-1] == "report"


def test_plan_from_dense_and_qat(tmp_path):
    """from_dense: the pruned run starts from the trained dense run (its checkpoint is an
    input of the stage, so a new dense run retrains it) for pruned_epochs; qat: both."""
    cfg = PipelineConfig(out=str(tmp_path / "r"), prune="l1-filter", epochs=3,
                         from_dense=True, pruned_epochs=5, qat=True,
                         prune_options={"start": "1", "end": "1"})
    stages = {s.name: s for s in plan(cfg)}
    base, pruned = stages["train-baseline"].kwargs, stages["train-pruned"].kwargs
    assert base["values"]["qat"] is True and base["values"]["epochs"] == 3
    assert "init_from" not in base["values"]
    assert pruned["values"]["init_from"] == str(tmp_path / "r" / "baseline")
    assert pruned["values"]["epochs"] == 5 and pruned["values"]["qat"] is True
    assert tmp_path / "r" / "baseline" / "checkpoint" in stages["train-pruned"].inputs
    plain = {s.name: s for s in plan(PipelineConfig(out=str(tmp_path / "p")))}
    assert "init_from" not in plain["train-pruned"].kwargs["values"]
    # the demo's default is the documented setting: each run its own default length
    # (dense 20 epochs, DPAP's default schedule 50 with its cut)
    lengths = [TrainConfig.from_mapping(plain[s].kwargs["values"], source="plan").epochs
               for s in ("train-baseline", "train-pruned")]
    assert lengths == [DEFAULT_EPOCHS, DPAPConfig.from_options({}).default_epochs]
    assert lengths[1] > lengths[0]
    assert "qat" not in plain["train-baseline"].kwargs["values"]
    for bad, msg in ((dict(from_dense="yes"), "'from_dense' must be true or false"),
                     (dict(pruned_epochs=0), "'pruned_epochs' must be >= 1"),
                     (dict(qat=1), "'qat' must be true or false")):
        with pytest.raises(ConfigError, match=msg):
            PipelineConfig.from_mapping(bad)


def test_stage_skip_is_content_checked(tmp_path):
    inp, out = tmp_path / "in.txt", tmp_path / "out.txt"
    inp.write_text("a")
    out.write_text("result")
    st = Stage("s", "m:f", {"x": 1}, [inp], [out])
    rec = StageRecorder(tmp_path)
    assert not rec.is_done(st)
    rec.record(st, 1.0)
    assert rec.is_done(st)
    out.write_text("tampered")              # same name, different content
    assert not rec.is_done(st)
    out.write_text("result")
    assert rec.is_done(st)
    inp.write_text("b")                     # an input changed
    assert not rec.is_done(st)
    inp.write_text("a")
    out.unlink()
    assert not rec.is_done(st)
    assert not rec.is_done(Stage("s", "m:f", {"x": 2}, [inp], [out]))   # other arguments
    assert not rec.is_done(Stage("s", "m:g", {"x": 1}, [inp], [out]))   # other function


def test_pipeline_cli_bad_config_exits_nonzero(tmp_path, capsys):
    f = tmp_path / "p.toml"
    f.write_text("epochs = 0\n")
    rc = cli.main(["pipeline", "--config", str(f), "--out", str(tmp_path / "r")])
    assert rc == ConfigError.exit_code
    assert "'epochs' must be >= 1" in capsys.readouterr().err
    assert not (Path(tmp_path / "r")).exists()


def test_a_failing_stage_keeps_its_error_class_and_exit_code(tmp_path, capsys):
    """The stages are Python calls: the train stage's DatasetError reaches the user as
    itself (class, message, exit code), not as a generic pipeline error."""
    argv = ["pipeline", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"),
            "--targets", "reference", "--out", str(tmp_path / "r")]
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == DatasetError.exit_code
    assert len(err) == 1 and err[0].startswith("spikeship: error: ") and "mnist" in err[0]
    with pytest.raises(DatasetError):
        cli.main(["--debug", *argv])


def test_prune_opt_flags_over_the_file_and_checked_before_any_stage(tmp_path, capsys):
    """``pipeline --prune-opt KEY=VALUE`` (as ``train``'s) lands in prune_options over the
    config file's; the pruner checks them when the config is read, so a bad option fails
    in a second, not after the dense run has trained."""
    from spikeship.pipeline.config import pipeline_config

    f = tmp_path / "p.toml"
    f.write_text('[prune_options]\npreset = "chip"\nstrength = true\n')
    cfg = pipeline_config(f, False, ("preset=deep", "cut_epoch=3"), {"out": str(tmp_path / "r")})
    assert cfg.prune_options == {"preset": "deep", "strength": True, "cut_epoch": 3}
    assert pipeline_config(None, False, (), {"out": "x"}).prune_options == {}
    pruned = {s.name: s for s in plan(cfg)}["train-pruned"].kwargs
    assert pruned["prune_options"] == {"preset": "deep", "strength": True, "cut_epoch": 3}
    for opts, msg in ((("bogus=1",), "field 'prune_options': unknown dpap option\\(s\\) \\['bogus'\\]"),
                      (("preset=nope",), "preset='nope'"),
                      (("nokey",), "--prune-opt must look like key=value")):
        with pytest.raises(ConfigError, match=msg):
            pipeline_config(None, False, opts, {"out": str(tmp_path / "bad")})
    with pytest.raises(ConfigError, match="unknown option\\(s\\) \\['objective'\\]"):
        PipelineConfig.from_mapping({"prune": "l1-filter", "prune_options": {"objective": "synops"}})
    out = tmp_path / "never"
    assert cli.main(["pipeline", "--out", str(out), "--prune-opt", "bogus=1"]) == \
        ConfigError.exit_code
    assert "bogus" in capsys.readouterr().err and not out.exists()
    # every pruner accepts its defaults (the check constructs it)
    from spikeship.train.pruners import PRUNERS

    for name in PRUNERS:
        PipelineConfig.from_mapping({"prune": name})

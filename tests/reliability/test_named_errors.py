"""Named errors where an internal error (exit 70) was (issue 36, class 4).

Every case is a real file in ``tmp_path`` handed to the real command in-process
(:func:`tests.reliability.conftest.expect_error`: exit code, one line, nothing written).
"""

from __future__ import annotations

import json

import h5py
import nir
import pytest

from spikeship.errors import CheckpointError, ConfigError, GraphError, OptionError, RunDirError
from tests.reliability.conftest import expect_error, run_cli
from tests.reliability.test_read_rules import _sim, files, tiny_graph  # noqa: F401
from tests.report.test_compare import make_run as compare_run
from tests.report.test_report import _fake_run

DEEP = 100_000


@pytest.mark.parametrize("text,match", [
    ('{"pipeline": 5}', "must be a table"), ('{"pipeline": [1, 2]}', "must be a table"),
    ("[" * DEEP + "]" * DEEP, "nests too deeply"),
], ids=["pipeline-int", "pipeline-list", "deep-json"])
def test_pipeline_config_that_is_not_a_table(tmp_path, capsys, text, match):
    (tmp_path / "p.json").write_text(text)
    expect_error(capsys, ["pipeline", "--config", tmp_path / "p.json", "--out", tmp_path / "o"],
                 ConfigError, match, watch=(tmp_path,))


def test_deeply_nested_toml_config_of_train(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("a = " + "[" * DEEP + "]" * DEEP + "\n")
    expect_error(capsys, ["train", "--config", tmp_path / "c.toml", "--out", tmp_path / "o"],
                 ConfigError, "nests too deeply", watch=(tmp_path,))


def test_deeply_nested_prune_option(tmp_path, capsys):
    deep = "[" * 60_000 + "]" * 60_000          # within one argv string's 128 KiB
    expect_error(capsys, ["train", "--out", tmp_path / "o", "--prune", "dpap", "--prune-opt",
                          f"preset={deep}"], ConfigError, "nests too deeply", watch=(tmp_path,))


def test_prune_option_naming_a_layer_that_does_not_exist(tmp_path, capsys):
    expect_error(capsys, ["train", "--out", tmp_path / "o", "--model", "tiny-mlp", "--prune",
                          "l1-filter", "--prune-opt", "layers=99:0.5", "--epochs", "1",
                          "--limit-train", "20", "--no-progress"],
                 ConfigError, "names layer 99", watch=(tmp_path,))


def test_node_name_of_100000_characters(files, capsys):  # noqa: F811
    g = tiny_graph()
    long = "n" * 100_000
    nodes = {(long if k == "lif" else k): v for k, v in g.nodes.items()}
    edges = [tuple(long if e == "lif" else e for e in ed) for ed in g.edges]
    nir.write(files / "net.nir", nir.NIRGraph(nodes=nodes, edges=edges, metadata=g.metadata))
    expect_error(capsys, _sim(files), GraphError, "100000 characters", watch=(files,))


# ---- report and compare read run files for meaning -----------------------------------------
def _edit(run, summary=None, layer=None):
    """Update ``summary.json`` with ``summary``; give every metrics row one layer entry
    (an 8-unit fc layer) updated with ``layer``."""
    if summary:
        s = json.loads((run / "summary.json").read_text())
        s.update(summary)
        (run / "summary.json").write_text(json.dumps(s))
    if layer:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        for r in rows:
            r["layers"] = [{"name": "0", "kind": "fc", "synapses_total": 10,
                            "synapses_remaining": 5, "units_total": 8, **layer}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_dollar_in_a_pruner_name_is_drawn_as_text(tmp_path, capsys):
    run = _fake_run(tmp_path / "run", [.5, .8, .9], [1000, 900, 700], pruner="dp$\\frac$ap")
    res = run_cli(capsys, ["report", run])
    assert res.rc == 0, res.err
    assert (run / "plots" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("summary,layer,match", [
    ({"test_accuracy": "0.9"}, None, "test_accuracy must be a finite number"),
    (None, {"units_total": 10**9, "units_kept_hex": "ff"}, "units_total 1000000000"),
    (None, {"name": "n" * 100_000}, "100000 characters"),
], ids=["string-accuracy", "units-1e9", "long-layer-name"])
def test_run_files_checked_by_report_and_compare(tmp_path, capsys, command, summary, layer,
                                                  match):
    root = tmp_path / "runs"
    root.mkdir()
    dense = compare_run(root, "dense")
    run = compare_run(root, "pruned", pruner="dpap", remaining=600)
    _edit(run, summary, layer)
    argv = ["report", run] if command == "report" else \
        ["compare", dense, run, "--out", tmp_path / "cmp.md"]
    expect_error(capsys, argv, RunDirError, match, watch=(root,))


# ---- lava-netx, checkpoints, devices ---------------------------------------------------------
def test_lava_netx_weight_of_the_wrong_width(run, capsys):
    with h5py.File(run / "model.net", "r+") as f:
        g = next(f["layer"][k] for k in sorted(f["layer"], key=int)
                 if "weight" in f["layer"][k] and f["layer"][k]["weight"].ndim == 2)
        w = g["weight"][()]
        del g["weight"]
        g["weight"] = w[:, :-5]
    expect_error(capsys, ["simulate", run, "--target", "lava-netx", "--samples", "2"],
                 GraphError, "dense weight", watch=(run,))


@pytest.mark.parametrize("field,value,match", [("beta", 1.5, "beta must be in [0, 1]"),
                                               ("threshold", -0.5, "threshold must be > 0")])
@pytest.mark.parametrize("command", ["export", "resume"])
def test_checkpoint_neuron_out_of_range(run, capsys, field, value, match, command):
    meta = run / "checkpoint" / "meta.json"
    m = json.loads(meta.read_text())
    m["spec"]["neuron"][field] = value
    meta.write_text(json.dumps(m))
    argv = ["export", run] if command == "export" else \
        ["train", "--out", run, "--resume", "--no-progress"]
    expect_error(capsys, argv, CheckpointError, match, watch=(run,))


def test_cuda_device_option_without_cuda(run, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    expect_error(capsys, ["simulate", run, "--target", "loihi-emu", "--samples", "2",
                          "--option", "device=cuda"], OptionError, "no CUDA device",
                 watch=(run,))

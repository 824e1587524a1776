"""The console command: help, version, one-line errors with exit codes."""

import subprocess
import sys

import click
import pytest

from spikeship import __version__, cli
from spikeship.errors import ConfigError, SpikeshipError


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeship.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_lists_every_subcommand():
    r = run_cli("--help")
    assert r.returncode == 0
    for name in cli.COMMANDS:
        assert name in r.stdout


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0
    assert __version__ in r.stdout


def test_unknown_command_is_a_usage_error():
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert r.stderr.strip() == "spikeship: error: No such command 'frobnicate'."


def test_spikeship_error_becomes_one_line_and_exit_code(monkeypatch, capsys):
    @click.command(name="boom")
    def boom():
        raise ConfigError("field 'epochs' must be >= 1, got 0")

    monkeypatch.setitem(cli.COMMANDS, "boom", ("tests.test_cli:_unused", "boom"))
    monkeypatch.setattr(cli.LazyGroup, "get_command", lambda self, ctx, name: boom)
    rc = cli.main(["boom"])
    err = capsys.readouterr().err
    assert rc == ConfigError.exit_code == 1
    assert err.strip() == "spikeship: error: field 'epochs' must be >= 1, got 0"
    assert "Traceback" not in err
    with pytest.raises(SpikeshipError):
        cli.main(["--debug", "boom"])


HEAVY = ("torch", "matplotlib", "lava", "snntorch", "norse", "onnxruntime", "scipy")


@pytest.mark.parametrize("argv", [["--help"], ["simulate", "--help"], ["energy", "--help"],
                                  ["export", "--help"], ["report", "--help"]])
def test_help_imports_no_heavy_package(argv):
    code = ("import sys; from spikeship.cli import main; rc = main(%r); "
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % (argv, HEAVY))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout[-300:]


@pytest.mark.parametrize("argv,needle", [
    (["simulate", "run", "--target", "lava-fixd"], "'lava-fixd' is not one of"),
    (["energy", "run", "--hardware", "loihi3"], "'loihi3' is not one of"),
    (["train", "--out", "r", "--dataset", "digts"], "'digts' is not one of"),
    (["train", "--out", "r", "--model", "dpap"], "'dpap' is not one of"),
    (["train", "--out", "r", "--prune", "dapp"], "'dapp' is not one of"),
    (["pipeline", "--targets", "reference,lava-fixd"], "lava-fixd"),
])
def test_misspelled_choice_is_a_usage_error(tmp_path, capsys, monkeypatch, argv, needle):
    from spikeship.errors import UsageError

    monkeypatch.chdir(tmp_path)
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("spikeship: error: ") and needle in err[0]
    with pytest.raises(UsageError):
        cli.main(["--debug", *argv])
    assert not (tmp_path / "r").exists()


def in_process(capsys, *args):
    """``spikeship ARGS`` through ``cli.main`` in this process (the heavy imports of the
    simulator registry are already paid): exit code, stdout, stderr."""
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    got = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, got.out, got.err)


def test_simulate_help_lists_every_registered_simulator(capsys):
    from spikeship.sim import registry

    r = in_process(capsys, "simulate", "--help")
    assert r.returncode == 0
    for name in registry.names():
        assert name in r.stdout


def test_targets_lists_simulators_options_and_chips(capsys):
    import json

    from spikeship.sim import registry
    from spikeship.targets import registry as chips

    r = in_process(capsys, "targets", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["name"] for s in doc["simulators"]] == registry.names()
    assert [c["name"] for c in doc["chips"]] == chips.names()
    netx = next(s for s in doc["simulators"] if s["name"] == "lava-netx")
    opts = {o["name"]: o for o in netx["options"]}
    assert opts["sparse_fc_layer"]["type"] == "bool" and opts["sparse_fc_layer"]["default"] is False
    assert netx["artifact"] == "model.net" and netx["capabilities"]["recurrent"] is False
    text = in_process(capsys, "targets")
    assert text.returncode == 0 and "sparse_fc_layer: bool = False" in text.stdout

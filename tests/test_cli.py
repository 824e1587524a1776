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
    assert "No such command" in r.stderr


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


def test_missing_command_module_says_not_available(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "later", ("spikeship.does_not_exist:cmd", "later"))
    rc = cli.main(["later"])
    assert rc == 2
    assert "not yet available" in capsys.readouterr().err

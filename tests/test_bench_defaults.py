"""``make bench`` runs every benchmark with no arguments: none may require an option."""

from __future__ import annotations

import argparse
import importlib

import pytest

from benchmarks.__main__ import BENCHMARKS


class _Parsed(Exception):
    """Raised once a benchmark's command line is parsed: nothing else of it runs."""


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_parses_an_empty_command_line(name, monkeypatch):
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        real(self, args, namespace)      # a required option exits with status 2 here
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(_Parsed):
        module.main([])

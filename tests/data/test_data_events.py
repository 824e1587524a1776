"""digits-events: the simulated DVS (events, polarity, determinism), ToFrame binning, cache."""

import numpy as np
import pytest

from spikeship.data import load_dataset, test_inputs
from spikeship.data.events import (DVSParams, _shift, events_dtype, load_events,
                                         simulate_events, to_frames)


def _square(size=8, lo=2, hi=5):
    img = np.zeros((1, size, size))
    img[0, lo:hi, lo:hi] = 1.0
    return img


def test_shift_is_bilinear_with_zero_fill():
    a = np.zeros((1, 3, 4))
    a[0, 1, 1] = 1.0
    out = _shift(a, 0.25, 1.0)
    expected = np.zeros((1, 3, 4))
    expected[0, 2, 1], expected[0, 2, 2] = 0.75, 0.25
    np.testing.assert_allclose(out, expected)
    assert _shift(a, 5.0, 0.0).sum() == 0


def test_static_scene_gives_only_noise_and_moving_edges_give_both_polarities():
    still = DVSParams(saccade_px=((0, 0), (0, 0)), noise_rate_hz=0.0)
    assert len(simulate_events(_square(), 0, still)[0]) == 0
    move = DVSParams(saccade_px=((0, 0), (2, 0)), noise_rate_hz=0.0)
    ev = simulate_events(_square(), 0, move)[0]
    assert ev.dtype == events_dtype()
    assert set(ev.dtype.names) == {"x", "y", "t", "p"}
    assert np.all(np.diff(ev["t"]) >= 0)
    # a bright square moving right: ON events at its leading (right) edge, OFF at the trailing
    on, off = ev[ev["p"]], ev[~ev["p"]]
    assert len(on) > 0 and len(off) > 0
    assert on["x"].mean() > off["x"].mean()
    assert set(np.unique(ev["y"])) <= {2, 3, 4}
    assert ev["t"].min() >= 0 and ev["t"].max() < move.duration_us


def test_event_count_follows_log_contrast():
    """A pixel going from dark (0) to lit (1) crosses ln(1.1/0.1)/C thresholds."""
    p = DVSParams(saccade_px=((0, 0), (1, 0)), noise_rate_hz=0.0, contrast_sigma=0.0)
    img = np.zeros((1, 8, 8))
    img[0, 3, 2] = 1.0   # one pixel moving one pixel to the right
    ev = simulate_events(img, 0, p)[0]
    at = ev[(ev["x"] == 3) & (ev["y"] == 3)]
    expect = int(np.floor(np.log(1.1 / 0.1) / p.contrast + 1e-9))
    assert len(at) == expect and at["p"].all()
    src = ev[(ev["x"] == 2) & (ev["y"] == 3)]
    assert len(src) == expect and not src["p"].any()


def test_events_are_deterministic_per_seed():
    imgs = np.random.default_rng(0).uniform(size=(3, 8, 8))
    a = simulate_events(imgs, 5)
    b = simulate_events(imgs, 5)
    c = simulate_events(imgs, 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c))


def test_to_frames_bins_every_event_into_t_windows():
    p = DVSParams()
    ev = np.zeros(4, dtype=events_dtype())
    ev["x"], ev["y"] = [0, 9, 3, 3], [0, 9, 4, 4]
    ev["t"] = [0, p.duration_us - 1, 100_000, 100_001]
    ev["p"] = [True, False, True, True]
    f = to_frames(ev, 3, p)
    assert f.shape == (3, 2, 10, 10)
    assert f.sum() == 4
    assert f[0, 1, 0, 0] == 1 and f[2, 0, 9, 9] == 1 and f[1, 1, 4, 3] == 2
    f7 = to_frames(ev, 7, p)
    assert f7.shape[0] == 7 and f7.sum() == 4


@pytest.mark.slow
def test_bundle_is_cached_on_disk_and_rebuilt_when_corrupt(tmp_path):
    b = load_dataset("digits-events", data_dir=tmp_path, timesteps=4, seed=0)
    assert (b.input_shape, b.encoding, b.num_classes) == ((2, 10, 10), "frames", 10)
    x, y = b.train[0]
    assert tuple(x.shape) == (4, 2, 10, 10)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and any(f.endswith("-T4.npz") for f in files)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    # same labels/split as digits with the same seed
    d = load_dataset("digits", seed=0)
    assert np.array_equal(b.test.y.numpy(), d.test.y.numpy())
    # frames sum to the events of the sample
    evs, labels = load_events(0, tmp_path)
    assert len(evs) == 1797 and int(labels[0]) == 0
    xi, _ = test_inputs(b, limit=2)
    assert xi.shape == (2, 4, 2, 10, 10)
    # cached: identical on reload; a corrupt frames file is rebuilt identically
    b2 = load_dataset("digits-events", data_dir=tmp_path, timesteps=4, seed=0)
    assert np.array_equal(b.train.x.numpy(), b2.train.x.numpy())
    frames_file = next(p for p in tmp_path.iterdir() if p.name.endswith("-T4.npz"))
    frames_file.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable"):
        b3 = load_dataset("digits-events", data_dir=tmp_path, timesteps=4, seed=0)
    assert np.array_equal(b.test.x.numpy(), b3.test.x.numpy())

"""mnist-events: real MNIST through the simulated DVS sensor (34 x 34), cached, per-sample
deterministic so that a limited run simulates only what it keeps."""

import numpy as np

from spikeship.data import load_dataset
from spikeship.data.mnist_events import frames_for
from tests.train.conftest import read_mnist_once


def test_mnist_events_limited_bundle_cache_and_sample_independence(tmp_path, hub_arrays,
                                                                     monkeypatch):
    read_mnist_once(monkeypatch, hub_arrays)     # both loads get copies of these
    b = load_dataset("mnist-events", data_dir=str(tmp_path), timesteps=4, limit_train=10,
                     limit_test=10, seed=0)
    assert (b.name, b.input_shape, b.encoding, b.timesteps) == \
        ("mnist-events", (2, 34, 34), "frames", 4)
    assert (len(b.train), len(b.test)) == (10, 10)
    assert sorted(b.test.y.tolist()) == list(range(10))  # one per class
    x, y = b.test[0]
    assert tuple(x.shape) == (4, 2, 34, 34) and str(x.dtype) == "torch.float32"
    assert 1000 < float(x.sum()) < 40000  # thousands of events per digit
    files = sorted(tmp_path.glob("mnist-events-v1-*.npz"))
    assert files
    # second load: from the cache, same frames
    again = load_dataset("mnist-events", data_dir=str(tmp_path), timesteps=4, limit_train=10,
                         limit_test=10, seed=0)
    assert np.array_equal(again.test.frames.numpy(), b.test.frames.numpy())
    assert sorted(tmp_path.glob("mnist-events-v1-*.npz")) == files
    # one sample simulated on its own gives the frames it had among the others
    images, labels = hub_arrays["test"]
    k = int(b.test.source_indices[3])
    alone = frames_for(images, "test", np.array([k]), 0, 4, tmp_path / "other")
    assert np.array_equal(alone[0], b.test.frames[3].numpy())
    assert labels[k] == int(b.test.y[3])

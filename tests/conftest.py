"""Suite-wide set-up.

``make test`` runs the suite on pytest-xdist workers, one per core: torch's intra-op
threads are one per process, so the workers do not thrash each other's cores (two
processes with two threads each on two cores run many times slower). Tests that need
more threads or a process of their own start one.

Which tests share a worker process, and in what order, changes from run to run, so a
test must not depend on the random state its predecessors left: before each test,
torch's, numpy's global and Python's random generators are seeded from the test's id
(the same draws in any order, different draws per test).
"""

import random
import zlib

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_from_test_id(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)

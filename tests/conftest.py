"""Suite-wide set-up.

``make test`` runs the suite on pytest-xdist workers, one per core: torch's intra-op
threads are one per process, so the workers do not thrash each other's cores (two
processes with two threads each on two cores run many times slower). Tests that need
more threads or a process of their own start one.
"""

import torch

torch.set_num_threads(1)

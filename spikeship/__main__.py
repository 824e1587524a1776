"""``python -m spikeship ...`` is the ``spikeship`` command, so that
``torchrun --nproc-per-node N -m spikeship train ...`` launches data-parallel training."""

import sys

from spikeship.cli import main

if __name__ == "__main__":
    sys.exit(main())

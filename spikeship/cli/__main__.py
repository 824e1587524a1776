"""``python -m spikeship.cli ...`` is the ``spikeship`` command."""

import sys

from spikeship.cli import main

sys.exit(main())

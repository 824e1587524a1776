"""``simulate FILE.nir --target onnx`` says plainly that ONNX needs a trained run, and
writes nothing (before: it pointed to ``spikeship export``, which then failed with
"no checkpoint")."""

from pathlib import Path

import numpy as np
import pytest

from spikeship.errors import ConfigError
from spikeship.sim.standalone import simulate_file

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "producers" / "snntorch" / "dense_lif.nir"


def test_onnx_on_a_standalone_file_says_it_needs_a_trained_run(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 12), dtype=np.float32))
    with pytest.raises(ConfigError, match="needs a trained run") as e:
        simulate_file(FIXTURE, "onnx", input_path=tmp_path / "x.npy", out=tmp_path / "o",
                      convention="snntorch")
    assert "spikeship export" not in str(e.value).split("(")[0]
    assert not (tmp_path / "o").exists()

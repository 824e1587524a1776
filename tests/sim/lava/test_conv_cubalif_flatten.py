"""Conv2d (with bias) -> CubaLIF -> Flatten -> Affine -> CubaLIF runs on Lava (lava-float and
lava-fixed exited 70 with "Shapes (256,) and (8,8,4) are incompatible") and agrees with the
reference spike for spike in floating point."""

import nir
import numpy as np
import pytest

from spikeship.sim.standalone import simulate_file

pytestmark = pytest.mark.lava


def _graph(tmp_path):
    rng = np.random.default_rng(0)
    c, h, w = 4, 8, 8

    def cuba(*shape):
        return nir.CubaLIF(tau_syn=np.full(shape, 2e-3), tau_mem=np.full(shape, 4e-3),
                           r=np.ones(shape), v_leak=np.zeros(shape),
                           v_threshold=np.ones(shape), w_in=np.full(shape, 2.0))

    nodes = {
        "input": nir.Input(input_type=np.array([2, h, w])),
        "conv": nir.Conv2d(input_shape=(h, w), weight=rng.normal(0.5, 3.0, (c, 2, 3, 3)),
                           stride=1, padding=1, dilation=1, groups=1, bias=np.linspace(-0.2, 0.3, c)),
        "lif1": cuba(c, h, w),
        "flat": nir.Flatten(input_type={"input": np.array([c, h, w])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0.05, 0.5, (5, c * h * w)), bias=np.zeros(5)),
        "lif2": cuba(5),
        "output": nir.Output(output_type=np.array([5])),
    }
    edges = [("input", "conv"), ("conv", "lif1"), ("lif1", "flat"), ("flat", "fc"),
             ("fc", "lif2"), ("lif2", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)
    nir.write(tmp_path / "g.nir", g)
    x = (rng.random((2, 12, 2, h, w)) < 0.4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return tmp_path / "g.nir", tmp_path / "x.npy"


@pytest.mark.parametrize("target", ["lava-float", "lava-fixed"])
def test_conv_cubalif_flatten_runs_on_lava(target, tmp_path):
    path, x = _graph(tmp_path)
    r, _ = simulate_file(path, target, input_path=x, out=tmp_path / target)
    assert r.output_spikes.sum() > 0
    if target == "lava-float":
        assert r.agreement["spikes"] == 1.0, r.agreement
    else:
        assert r.agreement["spikes"] >= 0.9, r.agreement

"""Property test (hypothesis): random NIR graphs ``Input -> Affine -> LIF -> Affine -> LIF ->
Output`` with a non-zero ``v_leak``, and per neuron random ``tau`` (a few distinct values per
population, so Lava splits it into groups), ``r`` and thresholds, run through every target.

- 100 graphs: the reference (float64), Norse (float32, spikeship's runner) and the Loihi
  emulator. Reference and Norse agree on every output spike and every per-neuron spike
  count, except in a sample where the reference's membrane comes within ``TIE = 1e-5``
  of a threshold (a float tie; such samples are listed and the test shows the margin).
- 8 graphs: also Lava float (agrees with the reference as Norse does) and Lava fixed
  point (the emulator is bit-exact: output spikes, counts and every voltage). Two Lava
  runs per graph make this the slowest test of the suite; the emulator's bit-exactness
  is also checked layer by layer in ``test_loihi_emu.py``.

Inputs: 3 samples x 10 steps of random binary spikes; ``dt = 1 ms``.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeship.nir.read import load_graph
from spikeship.sim.loihi_emu import LoihiEmulator
from spikeship.sim.reference import ReferenceSim
from spikeship.targets.loihi.lower import lower
from spikeship.targets.loihi.quantize import quantize_deployment

DT, TIE, N, T = 1e-3, 1e-5, 3, 10
TAUS = (1.5e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2)


@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n_in, h, o = draw(st.integers(2, 7)), draw(st.integers(2, 7)), draw(st.integers(2, 5))

    def lif(n):
        taus = rng.choice(TAUS, size=draw(st.integers(1, 3)), replace=False)
        leak = rng.uniform(0.05, 0.4, n) * rng.choice([-1, 1], n)       # never 0
        return nir.LIF(tau=rng.choice(taus, n), r=rng.uniform(0.5, 2.0, n), v_leak=leak,
                       v_threshold=rng.uniform(0.3, 1.5, n), v_reset=np.zeros(n))

    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Affine(weight=rng.normal(0, 1.0, (h, n_in)), bias=rng.normal(0, .3, h)),
             "lif1": lif(h),
             "fc2": nir.Affine(weight=rng.normal(0, 1.0, (o, h)), bias=rng.normal(0, .3, o)),
             "lif2": lif(o),
             "output": nir.Output(output_type={"output": np.array([o])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}, type_check=False)
    x = (rng.random((N, T, n_in)) < draw(st.sampled_from([0.2, 0.4, 0.7]))).astype(np.float64)
    return g, x


def reference(g, x):
    """Output spikes (N, T, o), per-population counts, and the samples whose membrane
    came within TIE of a threshold (pre-reset ``v`` of the reference, float64)."""
    lg = load_graph(g)
    sim = ReferenceSim(lg, dt_s=DT)
    sim.reset(N)
    xb = torch.as_tensor(x)
    out = np.zeros((N, T, lg.out_shape["output"][0]))
    counts = {k: np.zeros(lg.out_shape[k], dtype=np.int64) for k in ("lif1", "lif2")}
    margin = np.full(N, np.inf)
    for t in range(T):
        before = {k: sim.state[k]["v"].clone() for k in counts}
        outs = sim.step(xb[:, t])
        for k in counts:
            p, src = sim.p[k], {"lif1": "fc1", "lif2": "fc2"}[k]
            v = before[k] + p["k"] * (p["v_leak"] - before[k] + p["r"] * outs[src])
            np.testing.assert_array_equal((v > p["v_threshold"]).numpy(), outs[k].numpy() > 0)
            margin = np.minimum(margin, (v - p["v_threshold"]).abs().amin(dim=1).numpy())
            counts[k] += outs[k].sum(0).numpy().astype(np.int64)
        out[:, t] = outs["output"].numpy()
    return out, counts, margin < TIE, margin


def norse(g, x):
    from spikeship.sim.norse_runner import simulate_norse

    out, counts, notes = simulate_norse(g, x, dt_s=DT)
    assert any("start at v = 0" in n for n in notes)
    return out, counts


def agree(name, ref, other, ties, stats):
    """Spikes equal in every sample without a tie; a sample with a tie may differ."""
    (r_out, r_counts), (o_out, o_counts) = ref, other
    differ = np.any(r_out.reshape(N, -1) != o_out.reshape(N, -1), axis=1)
    assert not np.any(differ & ~ties), f"{name}: samples {np.flatnonzero(differ & ~ties)} differ"
    stats["tie_flips"] += int(np.sum(differ & ties))
    if not ties.any():                       # counts are over all samples: only then exact
        for k, c in r_counts.items():
            np.testing.assert_array_equal(o_counts[k], c, err_msg=f"{name} {k}")


SEEN = {"graphs": 0, "tie_samples": 0, "tie_flips": 0, "split_populations": 0}


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_reference_norse_and_emulator_on_random_graphs(case):
    g, x = case
    out, counts, ties, margin = reference(g, x)
    agree("norse", (out, counts), norse(g, x), ties, SEEN)
    dep = quantize_deployment(lower(g))
    SEEN["split_populations"] += len(dep.groups)
    emu = LoihiEmulator(dep).run(x)
    assert emu.output_spikes.shape == out.shape
    assert set(emu.counts) == {"lif1", "lif2"}
    SEEN["graphs"] += 1
    SEEN["tie_samples"] += int(ties.sum())


def test_property_run_covered_what_it_claims():
    """Runs after the property test (file order): 100 graphs, most with split populations."""
    if SEEN["graphs"] == 0:
        pytest.skip("the property test did not run in this session")
    assert SEEN["graphs"] == 100 and SEEN["split_populations"] >= 50, SEEN
    print(f"\nproperty run: {SEEN}")


LAVA = {"graphs": 0, "tie_flips": 0, "split_populations": 0}


@pytest.mark.lava
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_lava_float_and_fixed_on_random_graphs(case):
    from spikeship.sim.lava.run import run_deployment

    g, x = case
    out, counts, ties, _ = reference(g, x)
    flt = lower(g)
    res = run_deployment(flt, x, timeout_s=600)
    agree("lava-float", (out, counts), (res.output_spikes, res.neuron_counts), ties, LAVA)
    fixed = quantize_deployment(flt)
    LAVA["split_populations"] += len(fixed.groups)
    names = tuple(p.name for p in fixed.populations)
    traces: dict = {}
    lf = run_deployment(fixed, x, record_voltages=names, traces=traces, timeout_s=600)
    emu = LoihiEmulator(fixed).run(x, record_voltages=names)
    np.testing.assert_array_equal(emu.output_spikes, lf.output_spikes)
    for k in ("lif1", "lif2"):
        np.testing.assert_array_equal(emu.counts[k], lf.neuron_counts[k])
    for p in fixed.populations:             # raw Lava steps, sample n step t at n T + t + depth
        raw = traces[f"v/{p.name}"][p.depth:p.depth + N * T].reshape(N, T, -1)
        np.testing.assert_array_equal(emu.voltages[p.name].reshape(N, T, -1), raw,
                                      err_msg=p.name)
    LAVA["graphs"] += 1


@pytest.mark.lava
def test_lava_property_run_covered_split_populations():
    """Runs after the Lava property test: its 8 graphs include populations Lava splits."""
    if LAVA["graphs"] == 0:
        pytest.skip("the Lava property test did not run in this session")
    assert LAVA["graphs"] == 8 and LAVA["split_populations"] >= 4, LAVA

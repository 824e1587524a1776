"""Gradual magnitude pruning (Zhu & Gupta cubic schedule) and random pruning baselines.

Fixture net: ``tiny-mlp`` 7 -> 5 -> 3 (layers "1": Linear(7,5), "3": Linear(5,3); 50
prunable weights).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from spikeship.errors import ConfigError
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model
from spikeship.train.pruners import get_pruner_class
from spikeship.train.pruners.magnitude import (
    MagnitudePruner,
    RandomPruner,
    select_extreme,
    zhu_gupta_sparsity,
)
from spikeship.train.structure import describe


def attached(cls, options, seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5)
    model = build_model(spec)
    layers = describe(model, spec.input_shape)
    masks = MaskSet(model, layers)
    pruner = cls(options)
    pruner.attach(model, masks, layers)
    return pruner, model, masks


def test_zhu_gupta_schedule_values():
    # s_f = 0.8, s_i = 0, t0 = 1, t_end = 5
    f = lambda t: zhu_gupta_sparsity(t, 0.0, 0.8, 1, 5)  # noqa: E731
    assert f(0) == 0.0
    assert f(1) == pytest.approx(0.0)
    assert f(2) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)    # 0.4625
    assert f(3) == pytest.approx(0.7)                      # 0.8 - 0.8 / 8
    assert f(5) == pytest.approx(0.8)
    assert f(9) == 0.8
    assert zhu_gupta_sparsity(2, 0.2, 0.6, 2, 2) == 0.6      # degenerate window
    assert zhu_gupta_sparsity(3.5, 0.2, 0.6, 2, 4) == pytest.approx(0.6 - 0.4 * 0.25 ** 3)


def test_select_extreme_rows_ties_and_short_rows():
    s = torch.tensor([[3.0, 1.0, 1.0, 2.0], [5.0, 4.0, 0.0, 9.0]])
    cand = torch.tensor([[True, True, True, True], [True, True, False, True]])
    sel = select_extreme(s, cand, torch.tensor([2, 9]))
    assert sel.tolist() == [[False, True, True, False], [True, True, False, True]]
    big = select_extreme(s, cand, torch.tensor([1, 1]), largest=True)
    assert big.tolist() == [[True, False, False, False], [False, False, False, True]]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_reaches_target_and_prunes_smallest(scope):
    pruner, model, masks = attached(MagnitudePruner, {"target": "0.6", "start": "1",
                                                      "end": "3", "scope": scope})
    sizes = {n: masks.weight[n].numel() for n in masks.layers}
    history = []
    for epoch in range(1, 5):
        prev = {n: masks.weight[n].clone() for n in masks.layers}
        m = pruner.end_epoch(epoch)
        history.append(1 - m["connectivity_pct"] / 100)
        for n in masks.layers:
            assert not (masks.weight[n] & ~prev[n]).any()      # never un-prunes
    assert history[0] == pytest.approx(0.0)
    assert history[1] == pytest.approx(0.6 - 0.6 * 0.5 ** 3, abs=0.02)
    assert history[2] == pytest.approx(0.6, abs=0.011) and history[3] == history[2]
    if scope == "layer":
        for n, k in sizes.items():
            assert int(masks.weight[n].sum()) == round(0.4 * k)
            w = model[int(n)].weight.detach().abs()
            assert float(w[~masks.weight[n]].max()) <= float(w[masks.weight[n]].min())
    else:
        assert sum(int(masks.weight[n].sum()) for n in masks.layers) == round(0.4 * 50)
        w_all = [(model[int(n)].weight.detach().abs(), masks.weight[n]) for n in masks.layers]
        kept_min = min(float(w[m].min()) for w, m in w_all)
        gone_max = max(float(w[~m].max()) for w, m in w_all)
        assert gone_max <= kept_min
    assert torch.all(model[1].weight[~masks.weight["1"]] == 0)


def test_random_matches_schedule_but_not_magnitude():
    mag, model_m, masks_m = attached(MagnitudePruner, {"target": "0.5", "start": "1",
                                                       "end": "1", "scope": "layer"})
    rnd, model_r, masks_r = attached(RandomPruner, {"target": "0.5", "start": "1",
                                                    "end": "1", "scope": "layer", "seed": "4"})
    mag.end_epoch(1)
    rnd.end_epoch(1)
    for n in masks_m.layers:
        assert int(masks_m.weight[n].sum()) == int(masks_r.weight[n].sum())
    assert not all(torch.equal(masks_m.weight[n], masks_r.weight[n]) for n in masks_m.layers)


def test_random_resume_is_exact(tmp_path):
    opts = {"target": "0.7", "start": "0", "end": "2", "interval": "1", "seed": "9"}
    a, _, masks_a = attached(RandomPruner, opts)
    for epoch in (1, 2):
        for _ in range(3):
            a.after_batch()
        a.end_epoch(epoch)
    b, _, masks_b = attached(RandomPruner, opts)
    for _ in range(3):
        b.after_batch()
    b.end_epoch(1)
    tensors, meta = b.state()
    save_file(tensors, tmp_path / "p.safetensors")
    (tmp_path / "p.json").write_text(json.dumps(meta))
    save_file(masks_b.state(), tmp_path / "m.safetensors")
    c, _, masks_c = attached(RandomPruner, opts)
    masks_c.load_state(load_file(tmp_path / "m.safetensors"))
    c.load_state(load_file(tmp_path / "p.safetensors"), json.loads((tmp_path / "p.json").read_text()))
    for _ in range(3):
        c.after_batch()
    c.end_epoch(2)
    for n in masks_a.layers:
        assert torch.equal(masks_a.weight[n], masks_c.weight[n])


def test_options_are_validated():
    assert get_pruner_class("magnitude") is MagnitudePruner
    assert get_pruner_class("random") is RandomPruner
    with pytest.raises(ConfigError, match="sparsity_target"):
        MagnitudePruner({"sparsity_target": "0.5"})
    with pytest.raises(ConfigError, match="target"):
        MagnitudePruner({"target": "1.0"})
    with pytest.raises(ConfigError, match="scope"):
        MagnitudePruner({"scope": "row"})
    with pytest.raises(ConfigError, match="seed"):
        RandomPruner({"seed": "x"})
    with pytest.raises(ConfigError, match="seed"):
        MagnitudePruner({"seed": "1"})     # only random has a seed

"""PQ-index prune + regrow: the pure formulas against hand values, and the pruner's masks.

Fixture net: ``tiny-mlp`` 7 -> 5 -> 3 (Sequential: 0 Flatten, 1 Linear(7,5), 2 Leaky,
3 Linear(5,3), 4 Leaky); layer "1" feeds layer "3".
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from spikeship.errors import ConfigError
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model
from spikeship.train.pruners import get_pruner_class
from spikeship.train.pruners.pq import PQLayerPruner, PQNeuronPruner
from spikeship.train.pruners.pq_criteria import (
    pq_index,
    regrow_fraction,
    sap_keep,
    sap_prune_count,
    structurally_allowed,
)
from spikeship.train.structure import describe


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5)
    model = build_model(spec)
    layers = describe(model, spec.input_shape)
    return model, MaskSet(model, layers), layers


def attached(cls, options, seed=0):
    model, masks, layers = tiny(seed)
    pruner = cls(options)
    pruner.attach(model, masks, layers)
    return pruner, model, masks


# ---- PQ index ------------------------------------------------------------------
@pytest.mark.parametrize("w, p, q, expected", [
    ([4.0, 1.0], 0.5, 1.0, 1 - 0.5 * 9 / 5),          # ||w||_.5 = (2+1)^2 = 9, ||w||_1 = 5
    ([1.0, 0.0, 0.0, 0.0], 0.5, 1.0, 0.75),           # one-hot: 1 - 1/d
    ([3.0, -4.0], 1.0, 2.0, 1 - 2 ** -0.5 * 7 / 5),   # p = 1, q = 2
    ([-2.0, 2.0, 2.0], 0.5, 1.0, 0.0),                # all-equal magnitudes
])
def test_pq_index_hand_values(w, p, q, expected):
    assert float(pq_index(torch.tensor(w), p, q)) == pytest.approx(expected, abs=1e-12)


def test_pq_index_edge_cases_d0_and_all_zero():
    assert float(pq_index(torch.zeros(0))) == 0.0
    assert float(pq_index(torch.tensor([5.0, 1.0]), mask=torch.tensor([False, False]))) == 0.0
    assert float(pq_index(torch.zeros(4))) == 0.0
    assert float(pq_index(torch.full((6,), 0.3))) == pytest.approx(0.0, abs=1e-12)


def test_pq_index_mask_and_rows():
    w = torch.tensor([[4.0, 1.0, 100.0], [1.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, False], [True, True, True]])
    rows = pq_index(w, mask=m, dim=1)
    assert rows.tolist() == pytest.approx([0.1, 1 - 1 / 3])
    # layer-wise over the 5 active entries: ||.||_.5 = (2+1+1)^2 = 16, ||.||_1 = 6
    assert float(pq_index(w, mask=m)) == pytest.approx(1 - 16 / (5 * 6))


def test_pq_index_rejects_bad_p_q():
    with pytest.raises(ConfigError, match="0 < p < q"):
        pq_index(torch.ones(3), p=1.0, q=1.0)
    with pytest.raises(ConfigError, match="0 < p < q"):
        pq_index(torch.ones(3), p=0.0, q=1.0)


# ---- SAP ------------------------------------------------------------------------
def test_sap_keep_hand_values():
    assert sap_keep(2, 0.1) == 2                       # ceil(1.8)
    assert sap_keep(10, 0.75) == 3                     # ceil(2.5)
    assert sap_keep(4, 0.75) == 1                      # exactly 1.0: no spurious round-up
    assert sap_keep(7, 0.0) == 7                       # incompressible: keep all
    assert sap_keep(0, 0.0) == 0
    # eta_r: 10 * 1.21^-2 * 0.5 = 3.415 -> 4
    assert sap_keep(10, 0.5, eta_r=0.21) == 4
    # p = 1, q = 2: exponents -2 and 2: 10 * 0.5^2 = 2.5 -> 3
    assert sap_keep(10, 0.5, p=1.0, q=2.0) == 3
    r = sap_keep(torch.tensor([2, 10, 0]), torch.tensor([0.1, 0.75, 0.0]))
    assert r.tolist() == [2, 3, 0]


def test_sap_prune_count_hand_values():
    assert sap_prune_count(10, 3) == 7
    assert sap_prune_count(10, 0) == 9                 # capped by beta = 0.9
    assert sap_prune_count(10, 8, gamma=1.2) == 2      # floor(10 * 0.24)
    assert sap_prune_count(10, 10) == 0
    assert sap_prune_count(0, 0) == 0
    c = sap_prune_count(torch.tensor([10, 0, 5]), torch.tensor([3, 0, 5]))
    assert c.tolist() == [7, 0, 0]


def test_regrow_fraction_cosine():
    assert regrow_fraction(1, 1, 5, 1.0) == pytest.approx(1.0)
    assert regrow_fraction(3, 1, 5, 0.6) == pytest.approx(0.3)
    assert regrow_fraction(2, 1, 5, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert regrow_fraction(5, 1, 5, 1.0) == pytest.approx(0.0)
    assert regrow_fraction(9, 1, 5, 1.0) == 0.0
    assert regrow_fraction(3, 3, 3, 1.0) == 0.0


# ---- the pruner on hand weights -------------------------------------------------
def set_rows(model, rows):
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(rows))


def test_neuron_wise_update_hand_rows():
    pruner, model, masks = attached(PQNeuronPruner, {"start": 1, "end": 3})
    set_rows(model, [[1, 0, 0, 0, 0, 0, 0],           # I = 6/7: r = 1, c = 6
                     [0.5] * 7,                        # I = 0: c = 0
                     [2, 2, 2, 2, 0, 0, 0],            # 1-I = 4/7: r = 4, c = 3
                     [2, 2, 2, 2, 0, 0, 0],            # cols 5, 6 pre-pruned: c = 1
                     [3, -1, 2, 0.5, 1, 1, 1]])
    masks.prune_weights("1", torch.zeros(5, 7, dtype=torch.bool).index_put_(
        (torch.tensor([3, 3]), torch.tensor([5, 6])), torch.tensor(True)))
    masks.apply()
    with torch.no_grad():
        model[1].weight[3, 6] = 7.0   # stale value under a mask: regrowth must zero it
    grad = torch.zeros(5, 7)
    grad[3, 6] = -5.0            # the strongest inactive gradient in row 3
    grad[3, 5] = 1.0
    model[1].weight.grad = grad
    pruner.after_backward()
    pruner.end_epoch(1)          # tau = start: regrow fraction 1 -> g = c
    m = masks.weight["1"]
    assert m[0].tolist() == [True] + [False] * 6
    assert m[1].all()
    assert m[2].tolist() == [True] * 4 + [False] * 3
    assert m[3].tolist() == [True] * 4 + [False, False, True]    # 4 pruned, 6 regrown
    assert float(model[1].weight.detach()[3, 6]) == 0.0                   # regrown at zero
    assert int(m[4].sum()) == 7 - int(sap_prune_count(7, sap_keep(7, pq_index(
        torch.tensor([3, -1, 2, 0.5, 1, 1, 1])))))


def test_layer_wise_counts_follow_sap():
    pruner, model, masks = attached(PQLayerPruner, {"start": 1, "end": 1})
    w = model[1].weight.detach().clone()
    d = w.numel()
    c = sap_prune_count(d, sap_keep(d, float(pq_index(w))))
    assert c > 0
    metrics = pruner.end_epoch(1)   # end == start: regrow fraction 0, pure pruning
    assert int(masks.weight["1"].sum()) == d - c
    kept = w.abs()[masks.weight["1"]]
    gone = w.abs()[~masks.weight["1"]]
    assert float(gone.max()) <= float(kept.min())
    assert metrics["layers"]["1"]["pruned"] == c and metrics["layers"]["1"]["regrown"] == 0
    json.dumps(metrics)


@pytest.mark.parametrize("cls", [PQLayerPruner, PQNeuronPruner])
@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_never_regrows_into_removed_units(cls, regrow):
    pruner, model, masks = attached(cls, {"start": 1, "end": 6, "regrow": regrow})
    with torch.no_grad():   # heavy-tailed weights: compressible even in rows of 5
        for n in masks.layers:
            model[int(n)].weight.pow_(3)
    masks.prune_units("1", torch.tensor([False, False, True, False, False]))
    masks.prune_weights("1", torch.rand(5, 7, generator=torch.Generator().manual_seed(1)) < 0.2)
    masks.prune_weights("3", torch.rand(3, 5, generator=torch.Generator().manual_seed(2)) < 0.2)
    masks.apply()
    allowed = {n: structurally_allowed(masks, n) for n in masks.layers}
    assert not allowed["1"][2].any() and not allowed["3"][:, 2].any()
    forbidden_before = {n: masks.weight[n] & ~allowed[n] for n in masks.layers}
    regrown = 0
    for epoch in range(1, 7):
        for _ in range(3):
            with torch.no_grad():
                for n in masks.layers:
                    w = model[int(n)].weight
                    w.add_(0.05 * torch.randn_like(w).pow(3))
            masks.apply()
            for n in masks.layers:  # largest gradients right where regrowth is forbidden
                g = torch.rand_like(model[int(n)].weight)
                g[~allowed[n]] = 100.0
                model[int(n)].weight.grad = g
            pruner.after_backward()
            pruner.after_batch()
        before = {n: masks.effective(n).clone() for n in masks.layers}
        metrics = pruner.end_epoch(epoch)
        masks.apply()
        regrown += metrics["regrown"]
        for n in masks.layers:
            m = masks.weight[n]
            assert torch.equal(m & ~allowed[n], forbidden_before[n])   # untouched
            new = masks.effective(n) & ~before[n]
            assert not (new & ~allowed[n]).any()
            assert torch.all(model[int(n)].weight[~masks.effective(n)] == 0)
            assert torch.all(model[int(n)].weight[new] == 0)             # regrown at zero
    assert regrown > 0


def test_counts_stay_consistent_over_updates():
    pruner, model, masks = attached(PQNeuronPruner, {"start": 1, "end": 4,
                                                     "regrow_fraction": 0.5})
    for epoch in range(1, 6):
        for n in masks.layers:
            model[int(n)].weight.grad = torch.randn_like(model[int(n)].weight)
        pruner.after_backward()
        before = {n: int(masks.effective(n).sum()) for n in masks.layers}
        m = pruner.end_epoch(epoch)
        for n in masks.layers:
            after = int(masks.effective(n).sum())
            lay = m["layers"][n]
            assert after == before[n] - lay["pruned"] + lay["regrown"]
            assert lay["regrown"] <= lay["pruned"]
            assert lay["synapses_remaining"] == after
        if epoch == 5:   # after `end`: frozen
            assert m["updates"] == 0 and m["rewired"] == 0
    assert 0 < m["connectivity_pct"] < 100


def test_interval_in_batches():
    pruner, model, masks = attached(PQLayerPruner, {"interval": "2", "start": 0, "end": 5})
    d0 = int(masks.effective("1").sum())
    for _ in range(5):
        pruner.after_batch()
    m = pruner.end_epoch(1)
    assert m["updates"] == 2
    assert int(masks.effective("1").sum()) < d0


# ---- options, registry, resume --------------------------------------------------
def test_registry_and_options():
    assert get_pruner_class("pq-layer") is PQLayerPruner
    assert get_pruner_class("pq-neuron") is PQNeuronPruner
    p = PQLayerPruner({"p": "0.25", "q": "2", "regrow": "random", "interval": "7"})
    assert (p.opts["p"], p.opts["q"], p.opts["regrow"], p.opts["interval"]) == (0.25, 2.0,
                                                                                 "random", 7)
    with pytest.raises(ConfigError, match="regrowth_mode"):
        PQLayerPruner({"regrowth_mode": "x"})
    with pytest.raises(ConfigError, match="regrow"):
        PQLayerPruner({"regrow": "sideways"})
    with pytest.raises(ConfigError, match="0 < p < q"):
        PQNeuronPruner({"p": "2", "q": "1"})
    with pytest.raises(ConfigError, match="interval"):
        PQNeuronPruner({"interval": "0"})
    with pytest.raises(ConfigError, match="before start"):
        PQNeuronPruner({"start": "5", "end": "2"})


def drive(pruner, model, masks, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    for epoch in epochs:
        for _ in range(3):
            with torch.no_grad():
                for n in masks.layers:
                    w = model[int(n)].weight
                    w.add_(0.1 * torch.randn(w.shape, generator=g))
            masks.apply()
            for n in masks.layers:
                w = model[int(n)].weight
                w.grad = torch.randn(w.shape, generator=g)
            pruner.after_backward()
            pruner.after_batch()
        pruner.end_epoch(epoch)
        masks.apply()


@pytest.mark.parametrize("regrow", ["gradient", "random"])
def test_resume_is_exact(tmp_path, regrow):
    opts = {"regrow": regrow, "interval": "2", "start": "0", "end": "8", "seed": "3"}
    a, model_a, masks_a = attached(PQLayerPruner, opts)
    drive(a, model_a, masks_a, range(1, 5), seed=11)

    b, model_b, masks_b = attached(PQLayerPruner, opts)
    drive(b, model_b, masks_b, range(1, 3), seed=11)
    tensors, meta = b.state()
    save_file(tensors, tmp_path / "pruner.safetensors")
    (tmp_path / "pruner.json").write_text(json.dumps(meta))
    save_file(masks_b.state(), tmp_path / "masks.safetensors")
    weights = {n: model_b[int(n)].weight.detach().clone() for n in masks_b.layers}

    c = PQLayerPruner(opts)
    model_c, masks_c, layers_c = tiny()
    masks_c.load_state(load_file(tmp_path / "masks.safetensors"))
    with torch.no_grad():
        for n, w in weights.items():
            model_c[int(n)].weight.copy_(w)
    c.load_state(load_file(tmp_path / "pruner.safetensors"),
                 json.loads((tmp_path / "pruner.json").read_text()))   # before attach
    c.attach(model_c, masks_c, layers_c)
    # replay the generator stream of epochs 1-2, then continue
    g = torch.Generator().manual_seed(11)
    for _ in range(2 * 3):
        for n in masks_c.layers:
            torch.randn(model_c[int(n)].weight.shape, generator=g)
            torch.randn(model_c[int(n)].weight.shape, generator=g)
    regrown_after_resume = 0
    for epoch in range(3, 5):
        for _ in range(3):
            with torch.no_grad():
                for n in masks_c.layers:
                    w = model_c[int(n)].weight
                    w.add_(0.1 * torch.randn(w.shape, generator=g))
            masks_c.apply()
            for n in masks_c.layers:
                w = model_c[int(n)].weight
                w.grad = torch.randn(w.shape, generator=g)
            c.after_backward()
            c.after_batch()
        regrown_after_resume += c.end_epoch(epoch)["regrown"]
        masks_c.apply()
    assert regrown_after_resume > 0       # the resumed part really regrows (uses the RNG)
    for n in masks_a.layers:
        assert torch.equal(masks_a.weight[n], masks_c.weight[n])
        assert torch.equal(model_a[int(n)].weight, model_c[int(n)].weight)


# ---- through the real trainer ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("prune, opts", [
    ("pq-neuron", {"interval": 7, "start": 0.2, "end": 2, "regrow": "random"}),
    ("pq-layer", {"start": 1, "end": 3}),
])
def test_trainer_run_and_exact_resume(tmp_path, prune, opts):
    from spikeship.train.config import TrainConfig
    from tests.train.fixture_pruners import assert_exact_resume

    torch.set_num_threads(1)
    cfg = TrainConfig(dataset="digits", model="tiny-mlp", hidden=11, epochs=3, timesteps=2,
                      batch_size=64, prune=prune, prune_options=opts, seed=5)
    a = assert_exact_resume(cfg, tmp_path)
    for n in a.masks.layers:
        assert torch.all(a.model[int(n)].weight[~a.masks.effective(n)] == 0)
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").open()]
    assert [r["pruner"]["connectivity_pct"] for r in rows] == pytest.approx(
        [100 * (1 - r["pruning_rate"]) for r in rows])
    assert sum(r["pruner"]["rewired"] for r in rows) > 0

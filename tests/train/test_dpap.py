"""The DPAP pruner on tiny explicit nets: hooks, Eq 5-17 end to end, masks, state.

Fixture ``hand_net``: tiny-mlp 7 -> 5 -> 3 (LIF, beta 0.2, V_th 0.5, T = 3), weights set
so every spike is known by hand. Hidden unit k receives input k (identity on the
first five inputs); output 0 <- 0.6 * h0, output 1 <- 0.6 * h1, output 2 <- 0.3 * h4.
A LIF with constant input 0.6 fires every step; 0.45 fires at step 2 only
(0.45, 0.09 + 0.45 = 0.54 -> spike, then 0.45); 0.3 never (0.3, 0.36, 0.372).
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from spikeship.errors import RemovedOptionError, CheckpointError, ConfigError
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.neuron import NeuronParams, make_lif
from spikeship.train.pruners import get_pruner_class
from spikeship.train.pruners.dpap import DPAPPruner
from spikeship.train.structure import describe

X_A = [0.6, 0.45, 0.3, 0.0, 0.6, 0.0, 0.0]
X_B = [0.45, 0.6, 0.0, 0.6, 0.3, 0.0, 0.0]
# traces after T = 3 with tau = 0.5: every step -> 1.75, step 2 only -> 0.5
POST_A = [1.75, 0.5, 0.0, 0.0, 1.75]        # hidden layer, sample A
POST_B = [0.5, 1.75, 0.0, 1.75, 0.0]        # hidden layer, sample B
OUT_A = [1.75, 0.5, 0.0]                    # output layer, sample A


def hand_net():
    spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5)
    model = build_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model[1].weight[:, :5] = torch.eye(5)
        model[3].weight[0, 0] = model[3].weight[1, 1] = 0.6
        model[3].weight[2, 4] = 0.3
    layers = describe(model, spec.input_shape)
    return model, layers, MaskSet(model, layers)


def run_batch(model, pruner, rows, timesteps=3):
    model.train()
    forward_sequence(model, torch.tensor(rows).view(len(rows), 1, 1, 7), timesteps)
    pruner.after_batch()


def test_registered_and_options_validated():
    assert get_pruner_class("dpap") is DPAPPruner
    with pytest.raises(ConfigError, match="nonsense"):
        DPAPPruner({"preset": "paper", "nonsense": "1"})


def test_traces_and_bcm_of_two_batches_by_hand():
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper"})
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    a, b = torch.tensor(POST_A), torch.tensor(POST_B)
    pre_a, pre_b = 1.75 * torch.tensor(X_A), 1.75 * torch.tensor(X_B)   # static input traced
    # batch 1: theta = 0 -> BCM = outer(post^2, pre)
    bcm1 = torch.outer(a * a, pre_a)
    assert torch.allclose(pr.t["imp_epoch.1"], bcm1)
    assert torch.allclose(pr.t["imp_epoch.3"], torch.outer(torch.tensor(OUT_A) ** 2, a))
    run_batch(model, pr, [X_B])
    # batch 2: theta = mean of batch 1 = POST_A
    bcm2 = torch.outer(b * (b - a), pre_b)
    assert torch.allclose(pr.t["imp_epoch.1"], bcm1 + bcm2)
    assert torch.allclose(pr.t["trace_epoch.1"], a + b)
    assert pr.t["n_epoch"].item() == 2
    # eval-mode forwards are not collected
    model.eval()
    forward_sequence(model, torch.tensor([X_A]).view(1, 1, 1, 7), 3)
    assert pr.batch_traces("1") is None


def test_theta_is_per_sample_mean_independent_of_batch_size():
    results = []
    for split in ([[X_A, X_B], [X_A]], [[X_A], [X_B], [X_A]]):
        model, layers, masks = hand_net()
        pr = DPAPPruner({"preset": "paper"})
        pr.attach(model, masks, layers)
        for rows in split:
            run_batch(model, pr, rows)
        pr.end_epoch(1)
        results.append(pr.t["trace_total.1"] / pr.t["n_total"])
    expected = (2 * torch.tensor(POST_A) + torch.tensor(POST_B)) / 3
    for theta in results:
        assert torch.allclose(theta.float(), expected)


def test_one_epoch_survival_update_and_prune_decision_by_hand():
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "beta": 1, "warmup": 0, "output_synapses": "false",
                     "scale": 1,
                     "decay": "staircase"})
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    report = pr.end_epoch(1)
    # BCM rows of layer 1 are post^2 * sum(pre): minmax -> [1, 0.25/3.0625, 0, 0, 1];
    # trace minmax -> [1, 0.5/1.75, 0, 0, 1]; D = product = [1, 0.02332, 0, 0, 1];
    # p75 of D = 1 and min 0, so Normalized(D) = D; delta = 2D - 1.5;
    # dF = [2.5, -1.45335, -1.5, -1.5, 2.5]; F = 0.999 * 1 + 1 * dF (staircase w = 1)
    d1 = (0.25 / 3.0625) * (0.5 / 1.75)
    expected = torch.tensor([3.499, 0.999 + 2 * d1 - 1.5, -0.501, -0.501, 3.499])
    assert torch.allclose(pr.t["f_unit.1"], expected, atol=1e-5)
    assert masks.units["1"].tolist() == [True, False, False, False, True]
    pruned = report["layers"]["1"]["pruned_units"]
    assert [p["index"] for p in pruned] == [1, 2, 3]
    assert pruned[0]["survival"] == pytest.approx([expected[1].item()], abs=1e-5)
    assert report["layers"]["1"]["units_remaining"] == 2
    assert masks.units["3"].all()                        # output units never pruned
    assert "f_syn.3" not in pr.t                         # output_synapses=false
    json.dumps(report)                                   # JSON-able for metrics.jsonl


def test_warmup_and_scale_delay_updates():
    model, layers, masks = hand_net()
    # scale 2: training epoch e is the paper's epoch 2 (e - 1)
    pr = DPAPPruner({"preset": "paper", "beta": 0.1, "warmup": 5, "scale": 2,
                     "decay": "staircase"})
    pr.attach(model, masks, layers)
    for epoch in (1, 2, 3):                                   # paper epochs 0, 2, 4
        run_batch(model, pr, [X_A])
        assert not pr.end_epoch(epoch)["active"]
    assert masks.units["1"].all() and torch.all(pr.t["f_unit.1"] == 0.1)
    run_batch(model, pr, [X_A])
    rep = pr.end_epoch(4)                                     # paper epoch 6
    assert rep["active"] and rep["layers"]["1"]["decay_weight"] == 2.0
    assert not masks.units["1"].all()


def conv_net():
    """Conv(2->5, 3x3) -> BN -> LIF -> AvgPool2 -> Flatten -> FC(20->3) -> LIF, input 2x4x4."""
    lif = NeuronParams()
    model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5), make_lif(lif),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(20, 3), make_lif(lif))
    layers = describe(model, (2, 4, 4))
    return model, layers, MaskSet(model, layers)


def test_conv_bcm_is_channel_by_channel():
    torch.manual_seed(0)
    model, layers, masks = conv_net()
    pr = DPAPPruner({"preset": "paper"})
    pr.attach(model, masks, layers)
    model.train()
    x = torch.rand(4, 2, 4, 4) * 3
    seen = []
    h = model[2].register_forward_hook(lambda m, a, o: seen.append(o.detach()))
    forward_sequence(model, x, 1)                        # one step: trace = activity
    h.remove()
    assert pr.t["imp_epoch.0"].shape == (5, 2)
    assert pr.t["imp_epoch.5"].shape == (3, 20)          # FC after Flatten: per input column
    pre, post = pr.batch_traces("0")
    assert torch.allclose(pre, x.sum((2, 3)))            # first layer's pre trace = input
    assert torch.equal(post, seen[0].sum((2, 3))) and post.sum() > 0   # Eq 6 populations
    pr.after_batch()
    assert torch.allclose(pr.t["imp_epoch.0"], (post * post).T @ pre)


def test_conv_synapses_prune_whole_kernels_of_channel_pairs():
    torch.manual_seed(0)
    model, layers, masks = conv_net()
    pr = DPAPPruner({"preset": "paper", "conv_synapses": True, "warmup": 0, "beta": 0.5,
                     "scale": 1,
                     "eps_conv": 1.9, "c_conv": 5})
    pr.attach(model, masks, layers)
    model.train()
    forward_sequence(model, torch.rand(6, 2, 4, 4) * 3, 3)
    pr.after_batch()
    rep = pr.end_epoch(1)
    w = masks.weight["0"]                                # (5, 2, 3, 3)
    pair = w.flatten(2)
    assert torch.all(pair.all(-1) | ~pair.any(-1))       # a kernel goes or stays whole
    assert rep["layers"]["0"]["pruned_synapses"] == int((~pair.any(-1)).sum()) > 0
    assert pr.t["f_syn.0"].shape == (5, 2)


def test_pruned_unit_stays_silent_on_any_input():
    torch.manual_seed(1)
    model, layers, masks = conv_net()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    pr = DPAPPruner({"preset": "paper", "beta": 0.01, "warmup": 0, "eps_conv": 1.9, "eps_fc": 1.9})
    pr.attach(model, masks, layers)
    for epoch in (1, 2):
        for _ in range(3):
            model.train()
            out = forward_sequence(model, torch.rand(8, 2, 4, 4) * 2, 4)
            loss = out.mean(0).sum()
            opt.zero_grad()
            loss.backward()
            masks.mask_grads()
            opt.step()
            masks.apply(opt)
            pr.after_batch()
        pr.end_epoch(epoch)
        masks.apply(opt)
    dead = ~masks.units["0"]
    assert dead.any() and masks.units["0"].any()
    # one more optimizer step with a loss that would push every parameter
    model.train()
    loss = forward_sequence(model, torch.rand(8, 2, 4, 4) * 5, 4).sum() + \
        sum((p * p).sum() for p in model.parameters())
    opt.zero_grad()
    loss.backward()
    masks.mask_grads()
    opt.step()
    masks.apply(opt)
    assert torch.all(model[0].weight[dead] == 0) and torch.all(model[0].bias[dead] == 0)
    assert torch.all(model[1].weight[dead] == 0) and torch.all(model[1].bias[dead] == 0)
    cols = dead.repeat_interleave(4)
    assert torch.all(model[5].weight[:, cols] == 0)      # outgoing synapses gone
    # silent on any input, in training (batch-stat BN) and eval mode
    seen = []
    h = model[2].register_forward_hook(lambda m, a, o: seen.append(o.detach()))
    for mode in (True, False):
        model.train(mode)
        for scale in (1.0, 100.0, -100.0):
            forward_sequence(model, torch.randn(16, 2, 4, 4) * scale, 5)
    h.remove()
    spikes = torch.stack(seen)                           # (calls, B, 5, 4, 4)
    assert spikes[:, :, dead].sum() == 0
    assert spikes[:, :, ~dead].sum() > 0                 # the test can see spikes at all


def test_reduced_stats_give_identical_decisions_on_two_workers():
    """Two data-parallel workers: summing reducible_stats (all-reduce) -> same masks."""
    workers = []
    for rows in ([X_A], [X_B]):
        model, layers, masks = hand_net()
        pr = DPAPPruner({"preset": "paper", "beta": 1, "warmup": 0, "criterion": "hebb"})
        pr.attach(model, masks, layers)
        run_batch(model, pr, rows)
        workers.append((pr, masks))
    stats = [w[0].reducible_stats() for w in workers]
    total = {k: stats[0][k] + stats[1][k] for k in stats[0]}
    for s in stats:                                      # what all_reduce(SUM) does in place
        for k, v in s.items():
            v.copy_(total[k])
    # reference: one worker seeing both samples in one batch
    model, layers, masks = hand_net()
    ref = DPAPPruner({"preset": "paper", "beta": 1, "warmup": 0, "criterion": "hebb"})
    ref.attach(model, masks, layers)
    run_batch(model, ref, [X_A, X_B])
    ref.end_epoch(1)
    for pr, m in workers:
        pr.end_epoch(1)
        assert torch.equal(m.units["1"], masks.units["1"])
        assert torch.equal(m.weight["1"], masks.weight["1"])
        assert torch.allclose(pr.t["f_syn.1"], ref.t["f_syn.1"])


def test_state_roundtrip_through_files_resumes_exactly(tmp_path):
    opts = {"preset": "paper", "beta": 2, "warmup": 0, "window": "cumulative"}

    def epoch(model, pr, masks, e):
        run_batch(model, pr, [X_A, X_B])
        run_batch(model, pr, [X_B])
        return pr.end_epoch(e)

    model, layers, masks = hand_net()
    pr = DPAPPruner(opts)
    pr.attach(model, masks, layers)
    epoch(model, pr, masks, 1)
    tensors, meta = pr.state()
    save_file(tensors, str(tmp_path / "dpap.safetensors"))
    (tmp_path / "dpap.json").write_text(json.dumps(meta))
    save_file(masks.state(), str(tmp_path / "masks.safetensors"))
    final = epoch(model, pr, masks, 2)

    model2, layers2, masks2 = hand_net()
    masks2.load_state(load_file(str(tmp_path / "masks.safetensors")))
    pr2 = DPAPPruner(opts)
    pr2.attach(model2, masks2, layers2)
    pr2.load_state(load_file(str(tmp_path / "dpap.safetensors")),
                   json.loads((tmp_path / "dpap.json").read_text()))
    final2 = epoch(model2, pr2, masks2, 2)
    assert final2 == final
    assert set(pr2.t) == set(pr.t)
    for k in pr.t:
        assert torch.equal(pr.t[k], pr2.t[k]), k
    # other options or another model: a clear error
    with pytest.raises(CheckpointError, match="beta"):
        DPAPPruner({**opts, "beta": 3}).load_state(*pr.state())
    model3, layers3, masks3 = conv_net()
    pr3 = DPAPPruner(opts)
    pr3.attach(model3, masks3, layers3)
    with pytest.raises(CheckpointError, match="does not fit"):
        pr3.load_state(*pr.state())


@pytest.mark.parametrize("criterion", ["hebb", "stdp"])
def test_ablation_criteria_by_hand(criterion):
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "criterion": criterion, "warmup": 0, "beta": 0.5})
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    imp = pr.t["imp_epoch.1"].clone()
    if criterion == "hebb":
        hebb = torch.outer(torch.tensor(POST_A), 1.75 * torch.tensor(X_A))
        assert torch.allclose(imp, hebb)
    else:
        # hidden 1 fires at t2 only; its input 0.45 is there every step (pre trace
        # 0.45, 0.675, 0.7875): LTP at t2 = 0.675; LTD at t3 = post trace 1 * 0.45.
        assert imp[1, 1].item() == pytest.approx(0.675 - 0.45)
        # hidden 0 fires every step on 0.6: LTP 0.6 + 0.9 + 1.05, LTD 1*0.6 + 1.5*0.6
        assert imp[0, 0].item() == pytest.approx(2.55 - 1.5)
        assert imp[2].abs().sum() == 0 and imp[:, 5:].abs().sum() == 0
    report = pr.end_epoch(1)
    assert report["criterion"] == criterion
    pr.detach()
    run_batch(model, pr, [X_A])                          # hooks are gone
    assert torch.all(pr.t["imp_epoch.1"] == 0)


def test_ann_twin_uses_relu_outputs_and_logits():
    torch.manual_seed(0)
    spec = ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5, ann=True)
    model = build_model(spec)
    layers = describe(model, spec.input_shape)
    assert layers[-1].neuron is None                     # ANN output gives logits
    masks = MaskSet(model, layers)
    pr = DPAPPruner({"preset": "paper"})
    pr.attach(model, masks, layers, ann=True)
    model.train()
    x = torch.randn(6, 1, 1, 7)
    forward_sequence(model, x, ann=True)
    lin = torch.nn.functional.linear                     # (calling the modules would fire hooks)
    hidden = torch.relu(lin(x.flatten(1), model[1].weight, model[1].bias))  # Eq 18
    logits = lin(hidden, model[3].weight, model[3].bias)
    assert torch.allclose(pr.batch_traces("1")[1], hidden, atol=1e-6)
    assert torch.allclose(pr.batch_traces("3")[1], torch.relu(logits), atol=1e-6)
    pr.after_batch()
    assert torch.allclose(pr.t["imp_epoch.1"], (hidden * hidden).T @ x.flatten(1), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"preset": "paper", "warmup": 0, "beta": 1, "scale": 1},
                                     {}])
def test_trainer_run_with_dpap_resumes_bit_for_bit(tmp_path, options):
    """The real trainer on digits (tiny-mlp 64 -> 9 -> 10): stop after epoch 2 + resume
    gives the same masks, survival functions and weights as an uninterrupted run; with
    the paper's schedule and with the default (the cut at the end of epoch 2 of 3)."""
    from spikeship.train.checkpoint import load_checkpoint
    from spikeship.train.config import TrainConfig
    from spikeship.train.trainer import Trainer

    cfg = TrainConfig(model="tiny-mlp", hidden=9, epochs=3, timesteps=3, batch_size=128,
                      prune="dpap", prune_options=options)
    full = Trainer(cfg, tmp_path / "full", progress=False, quiet=True).run()
    Trainer(cfg, tmp_path / "part", progress=False, quiet=True).run(stop_after=2)
    part = Trainer(cfg, tmp_path / "part", progress=False, quiet=True).run(resume=True)
    assert 0 < full["pruning_rate"] == part["pruning_rate"]
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "part")
    for k, v in a.tensors.items():
        assert torch.equal(v, b.tensors[k]), k
    assert any(k.startswith("pruner/f_unit.") for k in a.tensors)
    lines = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    layer = lines[-1]["pruner"]["layers"]["1"]
    assert layer["synapses_total"] == 64 * 9
    if options:            # the paper's schedule removes hidden units
        assert layer["units_remaining"] < 9
    else:                  # the default keeps the first layer's units, cuts its synapses
        assert layer["units_remaining"] == 9
        assert layer["synapses_remaining"] == 64 * 9 - int(0.8 * 64 * 9)


def test_per_layer_unit_budget_removes_lowest_survival_first_never_beyond():
    """``unit_budgets``: of the units with F_D < 0, at most the budget is removed in all,
    the lowest F first (ties: the lower index); the others wait, still decaying."""
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "beta": 1, "warmup": 0, "output_synapses": "false",
                     "scale": 1, "decay": "staircase", "unit_budgets": "1:0.4"})
    pr.attach(model, masks, layers)
    kept = []
    for epoch in (1, 2, 3):
        run_batch(model, pr, [X_A])
        rep = pr.end_epoch(epoch)
        kept.append(masks.units["1"].tolist())
        assert rep["layers"]["1"]["unit_budget"] == 0.4
    # epoch 1: F = [3.5, -0.45, -0.50, -0.50, 3.5] (by hand, test above): 3 units are
    # due, floor(5 * 0.4) = 2 may go: units 2 and 3 (lowest F); unit 1 waits for good
    assert kept[0] == [True, True, False, False, True]
    assert kept[1] == kept[0] and kept[2] == kept[0]
    assert float(pr.t["f_unit.1"][1]) < -0.45                 # still decaying


def test_budget_options_validated():
    for bad in ({"unit_budgets": "1:1.5"}, {"unit_budgets": "1"}, {"unit_budgets": ":0.3"},
                {"unit_budget_conv": 1.5}, {"synapse_budgets": "3:x"}):
        with pytest.raises(ConfigError, match="budget"):
            DPAPPruner(bad)


def test_cut_epoch_cuts_to_budget_lowest_survival_first_then_freezes():
    """``cut_epoch``: at that epoch's end each budgeted layer loses exactly its budget,
    lowest F_D first even while every F is still positive, and ``synapse_budgets``
    removes that share of the remaining synapses, lowest F_BCM first; afterwards no
    survival value changes and nothing more is removed."""
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "beta": 10, "warmup": 0, "scale": 1,
                     "decay": "staircase",
                     "cut_epoch": 1, "unit_budgets": "1:0.6", "synapse_budgets": "3:0.5"})
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    rep = pr.end_epoch(1)
    # F = 9.99 + dF with dF = [2.5, 2 d1 - 1.5, -1.5, -1.5, 2.5] (by hand, test above):
    # all positive, so the plain rule removes nothing; the cut takes 3 of 5, lowest F
    f = pr.t["f_unit.1"]
    assert bool((f > 0).all())
    assert masks.units["1"].tolist() == [True, False, False, False, True]
    assert rep["cut"] and rep["active"] and rep["cut_epoch"] == 1
    # output layer: 3 x 2 synapses left after the unit cut, half of them cut
    eff = masks.effective("3")
    assert rep["layers"]["3"]["cut_synapses"] == 3 and int(eff.sum()) == 3
    fs = pr.t["f_syn.3"][:, [0, 4]]
    kept, gone = fs[eff[:, [0, 4]]], fs[~eff[:, [0, 4]]]
    assert float(gone.max()) <= float(kept.min())
    before = {k: v.clone() for k, v in pr.t.items() if k.startswith("f_")}
    for epoch in (2, 3):
        run_batch(model, pr, [X_B])
        rep = pr.end_epoch(epoch)
        assert not rep["cut"] and not rep["active"]
    assert all(torch.equal(pr.t[k], v) for k, v in before.items())
    assert masks.units["1"].tolist() == [True, False, False, False, True]
    assert int(masks.effective("3").sum()) == 3


def test_cut_mode_removes_nothing_before_the_cut_and_exactly_the_budget_at_it():
    """With beta = 1 the paper's rule would remove units 1-3 after one epoch (F < 0, test
    above); in cut mode the survival values wait for the cut, where 2 have F < 0 (theta
    now counts epoch 1), and exactly floor(0.2 * 5) = 1 unit goes: the lowest F (units
    2 and 3 tie; so do their D; the lower index)."""
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "beta": 1, "warmup": 0, "scale": 1, "decay": "staircase",
                     "output_synapses": False, "cut_at": 0.25, "unit_budgets": "1:0.2"})
    pr.set_run(4)                                   # floor(0.25 * 4) + 1 = epoch 2
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    rep = pr.end_epoch(1)
    assert not rep["active"] and masks.units["1"].all()
    assert torch.all(pr.t["f_unit.1"] == 1.0)
    run_batch(model, pr, [X_A])
    rep = pr.end_epoch(2)
    assert rep["cut"] and rep["cut_epoch"] == 2
    assert int((pr.t["f_unit.1"] < 0).sum()) == 2       # more than the budget allows
    assert masks.units["1"].tolist() == [True, True, False, True, True]


def test_cut_epoch_beyond_the_run_is_refused_and_sets_the_default_run_length():
    pr = DPAPPruner({"preset": "paper", "cut_epoch": 30})
    with pytest.raises(ConfigError, match="before the cut"):
        pr.set_run(20)
    assert DPAPPruner.default_epochs({"default_epochs": 50}) == 50
    assert DPAPPruner.default_epochs({"preset": "paper"}) is None


def test_cut_options_validated():
    with pytest.raises(ConfigError, match="cut_epoch or cut_at"):
        DPAPPruner({"preset": "paper", "synapse_budgets": "3:0.5"})
    with pytest.raises(ConfigError, match="exclude"):
        DPAPPruner({"preset": "paper", "cut_epoch": 3, "cut_at": 0.4})
    with pytest.raises(ConfigError, match="cut_at must be in"):
        DPAPPruner({"preset": "paper", "cut_at": 1.5})
    with pytest.raises(ConfigError, match="synapse_budgets"):
        DPAPPruner({"preset": "paper", "cut_epoch": 1, "synapse_budgets": "3:2"})
    model, layers, masks = hand_net()
    pr = DPAPPruner({"preset": "paper", "cut_epoch": 1, "synapse_budgets": "3:0.5",
                     "output_synapses": False})
    with pytest.raises(ConfigError, match="synapse_budgets names layer 3"):
        pr.attach(model, masks, layers)
    pr = DPAPPruner({"preset": "paper", "cut_epoch": 1, "synapse_budgets": "9:0.5"})
    with pytest.raises(ConfigError, match="synapse_budgets names layer 9"):
        pr.attach(model, masks, layers)


@pytest.mark.parametrize("strength,kept", [(False, 4), (True, 0)])
def test_strength_weights_the_criterion_by_the_synapse(strength, kept):
    """Hidden units 0 and 4 see the same input trace and fire at every step, so their
    BCM rows tie; unit 0's synapse is twice as strong. Cut to 1 unit of 5: without
    ``strength`` the tie goes by index (unit 4 stays), with it unit 0 stays."""
    model, layers, masks = hand_net()
    with torch.no_grad():
        model[1].weight[0, 0] = 2.0
    pr = DPAPPruner({"preset": "paper", "cut_epoch": 1, "unit_budgets": "1:0.8",
                     "spine": "synaptic", "strength": strength, "output_synapses": False})
    pr.attach(model, masks, layers)
    run_batch(model, pr, [X_A])
    pr.end_epoch(1)
    assert torch.nonzero(masks.units["1"]).flatten().tolist() == [kept]


def test_cut_rank_l1_cuts_the_conv_channels_of_smallest_filter_norm():
    """``cut_rank=l1``: the cut removes a conv layer's budget of channels by the L1 norm of
    their (masked) filters, lowest first, whatever their survival values; FC layers keep
    DPAP's ranking. Filters scaled so that their norms rank 1 < 3 < 0 < 4 < 2."""
    torch.manual_seed(0)
    model, layers, masks = conv_net()
    with torch.no_grad():
        w = model[0].weight
        w.copy_(w.sign() * 0.5)                      # every filter: L1 norm 9
        w.mul_(torch.tensor([3.0, 1.0, 5.0, 2.0, 4.0]).view(5, 1, 1, 1))
    pr = DPAPPruner({"preset": "paper", "cut_epoch": 1, "unit_budgets": "0:0.4",
                     "cut_rank": "l1"})
    pr.attach(model, masks, layers)
    model.train()
    forward_sequence(model, torch.rand(6, 2, 4, 4) * 3, 3)
    pr.after_batch()
    rep = pr.end_epoch(1)
    assert rep["cut"] and masks.units["0"].tolist() == [True, False, True, False, True]
    with pytest.raises(ConfigError, match="cut_rank"):
        DPAPPruner({"cut_rank": "l2"})


def test_removed_options_are_refused_by_name_or_dropped_when_inert():
    """Options removed since (distillation, the cut in steps, the budget ramp, run_epochs,
    preset=channels) are refused naming the option when set to act; at the value at
    which they did nothing (a saved run that did not use them) they are dropped with a
    warning and the pruner is the one without them."""
    for opts in ({"distill": 0.5}, {"cut_steps": 3}, {"cut_every": 2}, {"budget_end": 14},
                 {"run_epochs": 20}, {"paper_epochs": 100}, {"preset": "channels"}):
        key, value = next(iter(opts.items()))
        with pytest.raises(RemovedOptionError, match=f"{key}=.*{value}.* was removed"):
            DPAPPruner(opts)
    with pytest.warns(DeprecationWarning, match="distill=0"):
        pr = DPAPPruner({"distill": 0, "cut_steps": 1, "preset": "paper"})
    assert pr.config == DPAPPruner({"preset": "paper"}).config

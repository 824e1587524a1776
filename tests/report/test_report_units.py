"""DPAP Fig 4A-C style plots per prunable layer, from a real (tiny) training run: the PNGs
exist and decode, the report references them, and the units retained per epoch that
``metrics.jsonl`` records end at the final checkpoint's masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from spikeship.io import read_jsonl, write_text_atomic
from spikeship.report import plots
from spikeship.report.report import build_report
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.config import TrainConfig
from spikeship.train.masks import units_hex
from spikeship.train.trainer import train


def _train(out, prune, opts, epochs):
    cfg = TrainConfig(dataset="digits", model="dpap-mnist", epochs=epochs, timesteps=4,
                      limit_train=160, limit_test=40, prune=prune, prune_options=opts, seed=0)
    train(cfg, out, progress=False, quiet=True)
    return out


@pytest.fixture(scope="module")
def l1_run(tmp_path_factory):
    # l1-filter, gradual from epoch 1 to 3: channels and neurons removed at several epochs
    return _train(tmp_path_factory.mktemp("units") / "l1", "l1-filter",
                  {"conv": 0.4, "fc": 0.5, "start": 1, "end": 3}, 3)


def test_units_hex_round_trip():
    import torch

    m = torch.tensor([True, False, True, True, False, False, True, False, False, True, True])
    assert np.array_equal(plots.units_from_hex(units_hex(m), 11), m.numpy())
    with pytest.raises(ValueError, match="bits"):
        plots.units_from_hex(units_hex(m), 17)


def test_layer_plots_exist_and_match_the_final_checkpoint(l1_run):
    out = build_report(l1_run)
    ck = load_checkpoint(l1_run)
    hist = {h.name: h for h in plots.layer_histories(read_jsonl(l1_run / "metrics.jsonl"))}
    assert sorted(hist) == sorted(li.name for li in ck.layers) == ["0", "3", "7", "9"]
    md = out["md"].read_text()
    for li in ck.layers:
        label = f"{li.kind}{li.name}"
        png = out[f"units-{label}"]
        assert png == l1_run / "plots" / f"units-{label}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            im.verify()
        assert f"(plots/units-{label}.png)" in md
        h = hist[li.name]
        final = ck.masks.units[li.name].numpy()
        assert h.kept.shape == (li.out_units, 3) and h.epochs == [1, 2, 3]
        assert np.array_equal(h.kept[:, -1], final)
        # a removed unit never comes back: kept sets shrink epoch by epoch
        assert not (h.kept[:, 1:] & ~h.kept[:, :-1]).any()
        eff = ck.masks.effective(li.name)
        assert h.synapses_share[-1] == pytest.approx(float(eff.sum()) / eff.numel())
        assert h.importance == [None, None, None]      # l1-filter records no importance
    assert hist["0"].kept[:, -1].sum() == 9 and hist["3"].kept[:, -1].sum() == 24
    assert hist["0"].kept[:, 0].sum() > 9                 # gradual: fewer removed at epoch 1
    assert hist["9"].kept.all()                           # classes are never removed
    assert out["html"].read_text().count("data:image/png;base64,") == len(
        [k for k in out if k not in ("md", "html")])


def test_dpap_importance_is_plotted(tmp_path):
    run = _train(tmp_path / "dpap", "dpap", {}, 2)
    hist = plots.layer_histories(read_jsonl(run / "metrics.jsonl"))
    assert all(v is not None and v >= 0 for h in hist if h.name != "9" for v in h.importance)
    assert plots.retained_over_epochs(hist[0], tmp_path / "u.png").exists()


def test_old_metrics_without_unit_masks_say_so(tmp_path):
    import json

    run = _train(tmp_path / "old", "none", {}, 1)
    rows = read_jsonl(run / "metrics.jsonl")
    for r in rows:
        for l in r["layers"]:
            del l["units_kept_hex"]
    write_text_atomic(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    out = build_report(run)
    assert not any(k.startswith("units-") for k in out)
    assert "No per-epoch unit masks" in out["md"].read_text()


def test_energy_plot_prices_dense_as_the_dense_runs_own_figures():
    """With the dense run's energy.json the 'dense' bars are its own deployed operations
    and energy (compare's definition); without it, the pruned spikes on unpruned wiring."""
    pruned = {"layers": [{"layer": "conv0", "synops_effective": 5.0, "synops_dense": 9.0},
                         {"layer": "fc3", "synops_effective": 2.0, "synops_dense": 7.0}],
              "energy_pj_per_sample": {"loihi": {"total_pj": 11.0, "dense_total_pj": 30.0},
                                       "cmos45": {"total_pj": 3.0, "dense_total_pj": 8.0}}}
    dense = {"layers": [{"layer": "conv0", "synops_effective": 13.0},
                        {"layer": "fc3", "synops_effective": 17.0}],
             "energy_pj_per_sample": {"loihi": {"total_pj": 41.0}}}
    assert plots.dense_series(pruned, dense) == ("dense run", [13.0, 17.0],
                                           {"loihi": 41.0, "cmos45": None})
    assert plots.dense_series(pruned, None) == ("its spikes, unpruned wiring", [9.0, 7.0],
                                          {"loihi": 30.0, "cmos45": 8.0})

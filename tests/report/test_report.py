"""report.md / report.html / plots from a run directory's files; rendered in Chromium."""

import json
import re
import shutil
import subprocess

import pytest

from spikeship.errors import RunDirError
from spikeship.io import append_jsonl, write_json_atomic
from spikeship.report.report import build_report


def _fake_run(d, accs, remaining, pruner="dpap", survival=True):
    d.mkdir(parents=True)
    total = 1000
    for e, (a, r) in enumerate(zip(accs, remaining), start=1):
        row = {"epoch": e, "train_loss": 1.0 / e, "test_accuracy": a, "params_total": total,
               "params_remaining": r,
               "layers": [{"name": "0", "kind": "conv", "synapses_total": 600,
                           "synapses_remaining": r - 300, "units_total": 15,
                           "units_remaining": 11},
                          {"name": "3", "kind": "fc", "synapses_total": 400,
                           "synapses_remaining": 300, "units_total": 10, "units_remaining": 10}]}
        if survival and e == 3:
            row["pruner"] = {"layers": {"0": {"pruned_units": [
                {"index": 2, "survival": [3.0, 1.5, 0.2, -0.4]}]}}}
        append_jsonl(d / "metrics.jsonl", row)
    write_json_atomic(d / "summary.json", {
        "dataset": "digits", "model": "dpap-mnist", "pruner": pruner,
        "test_accuracy": accs[-1], "params_total": total, "params_remaining": remaining[-1],
        "pruning_rate": 1 - remaining[-1] / total, "epochs": len(accs),
        "epochs_to_baseline": None})
    return d


def test_report_files_and_plots_from_run_data(tmp_path):
    run = _fake_run(tmp_path / "run", [.5, .8, .9, .93], [1000, 900, 700, 600])
    dense = _fake_run(tmp_path / "dense", [.6, .85, .92, .94], [1000] * 4, "none", False)
    out = build_report(run, dense)
    for key in ("accuracy", "parameters", "survival", "retained"):
        png = out[key].read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "energy" not in out   # no energy.json: the report says so instead
    md = out["md"].read_text()
    assert "| pruning rate (prunable weights) | 40.00 % |" in md
    assert "| test accuracy (dense) | 94.00 % |" in md
    assert "No energy.json" in md and "plots/accuracy.png" in md
    page = out["html"].read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "src=\"plots/" not in page          # self-contained


def test_missing_run_dir_is_named_error(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_corrupt_metrics_summary_is_named_error(tmp_path):
    run = _fake_run(tmp_path / "run", [.5], [1000])
    (run / "summary.json").write_text("{broken")
    with pytest.raises(RunDirError, match="not valid JSON"):
        build_report(run)


def chromium_dump(html_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    r = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={html_path.parent / '.chromium'}", "--virtual-time-budget=5000",
         "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_html_renders_every_image_in_headless_chromium(tmp_path):
    run = _fake_run(tmp_path / "run", [.5, .8, .9], [1000, 800, 650])
    out = build_report(run)
    dom = chromium_dump(out["html"])
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-ok="yes"' in body, body
    assert f'data-images="{len(out) - 2}"' in body


def test_chromium_check_catches_a_broken_image(tmp_path):
    run = _fake_run(tmp_path / "run", [.5, .8, .9], [1000, 800, 650])
    out = build_report(run)
    page = out["html"].read_text()
    broken = re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAA", page, count=1)
    out["html"].write_text(broken)
    dom = chromium_dump(out["html"])
    assert 'data-images-ok="no"' in re.search(r"<body[^>]*>", dom).group(0)


def test_report_gives_accuracy_with_interval_and_size_when_known(tmp_path):
    run = _fake_run(tmp_path / "run", [.5, .9], [1000, 600])
    s = json.loads((run / "summary.json").read_text())
    s["samples_test"] = 100
    (run / "summary.json").write_text(json.dumps(s))
    md = build_report(run, None)["md"].read_text()
    # 90 of 100: Wilson 95 % [82.56, 94.48] (worked by hand in tests/test_stats.py)
    assert "| test accuracy (pruned) | 90.00 % [82.56, 94.48] (n = 100) |" in md

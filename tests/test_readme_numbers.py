"""benchmarks/readme_numbers.py --quick: real (tiny) runs, the marked README block rewritten,
everything outside it untouched."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_mode_rewrites_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# title\n\nintro text\n\n", "\n\n## after\nkept as is\n"
    readme.write_text(before + "<!-- numbers:begin -->\nold figures 12.34 %\n"
                      "<!-- numbers:end -->" + after)
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_numbers.py"),
                        "--quick", "--readme", str(readme), "--out", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after)
    block = text[len(before): len(text) - len(after)]
    assert block.startswith("<!-- numbers:begin -->") and block.endswith("<!-- numbers:end -->")
    assert "old figures" not in block and "Quick mode" in block
    assert re.search(r"Machine: .+, \d+ cores; spikeship .*torch .*; \d{4}-\d\d-\d\d", block)
    # digits: seeds 0-1 on 100 test samples each; MNIST: 300 train / 200 test samples
    assert "seeds 0, 1; each test split 100 samples" in block
    assert len(re.findall(r"\| seed [01]: accuracy, 95 % CI \| [\d.]+ % \[[\d.]+, [\d.]+\] "
                          r"\(n = 100\) \|", block)) == 2
    assert "`--limit-train 300`) of 300 training samples, tested on 200" in block
    assert re.search(r"exact McNemar on the same 200 samples: .* p = [\d.e-]+ ", block)
    # the numbers in the block are the runs' own
    import json

    s = json.loads((tmp_path / "runs" / "mnist-dense" / "summary.json").read_text())
    assert f"{100 * s['test_accuracy']:.2f} % [" in block

    # one part again, from the finished runs (--reuse): nothing is trained, the other
    # part of the block is kept with the machine line of the run that made it
    mnist_before = block[block.index("**MNIST**"):block.index("**digits**")].strip()
    r2 = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_numbers.py"),
                         "--quick", "--parts", "digits", "--reuse", "--readme", str(readme),
                         "--out", str(tmp_path / "runs")],
                        capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert r2.stdout.count(": reused,") == 4                 # 2 seeds x dense / DPAP
    block2 = readme.read_text()[len(before):-len(after)]
    assert mnist_before in block2
    assert "_Kept from an earlier run of this script: Machine:" in block2
    # a finished run trained with other settings is refused, naming the field
    cfg_path = tmp_path / "runs" / "digits-s0-dense" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["lr"] = 0.5
    cfg_path.write_text(json.dumps(cfg))
    r3 = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_numbers.py"),
                         "--quick", "--parts", "digits", "--reuse", "--readme", str(readme),
                         "--out", str(tmp_path / "runs")],
                        capture_output=True, text=True, timeout=300)
    assert r3.returncode != 0 and "lr=0.5" in r3.stderr
    assert readme.read_text()[len(before):-len(after)] == block2   # README untouched


def test_reuse_compares_dpap_options_as_resolved(tmp_path):
    """A DPAP run given no option before the default changed (its checkpoint records the
    paper's options, without the newer ones; its config has no ``qat`` field yet) is
    reused for ``preset=paper``; a run that trained the chip default is refused for it,
    naming prune_options."""
    import json

    from spikeship.train.config import TrainConfig
    from spikeship.train.pruners.dpap_config import DPAPConfig
    from tests.bench_loader import load_benchmark

    rn = load_benchmark("readme_numbers")
    fields = {"prune": "dpap", "prune_options": {"preset": "paper"}, "qat": False}

    def fake_run(name, saved_options, resolved):
        run = tmp_path / name
        (run / "checkpoint").mkdir(parents=True)
        cfg = TrainConfig(prune="dpap", epochs=20, qat=False).to_json()
        cfg["prune_options"] = saved_options
        if name == "old":
            del cfg["qat"], cfg["qat_epochs"]   # fields the old run predates
        (run / "config.json").write_text(json.dumps(cfg))
        (run / "summary.json").write_text(json.dumps({"wall_time_s": 1.0}))
        meta = {"pruner": {"name": "dpap", "meta": {"config": resolved}}}
        (run / "checkpoint" / "meta.json").write_text(json.dumps(meta))
        return run

    old = {k: v for k, v in DPAPConfig().to_json().items()
           if k not in ("cut_epoch", "cut_at", "unit_budget_first", "synapse_budget_fc",
                        "synapse_budgets", "strength", "default_epochs")}
    summary = rn.reusable(fake_run("old", {}, old), {**fields, "epochs": 20})
    assert summary is not None and summary["reused"]
    chip = DPAPConfig.from_options({}).to_json()
    with pytest.raises(SystemExit, match="prune_options"):
        rn.reusable(fake_run("chip", {}, chip), {**fields, "epochs": 20})

"""Wilson intervals, the exact McNemar test and mean +- sd against values worked out by hand."""

import math

import pytest

from spikeship.stats import (accuracy_record, format_accuracy, mcnemar_exact, mean_sd,
                             wilson_interval)


def test_wilson_90_of_100_by_hand():
    # p = 0.9, z^2 = 3.8414588, z^2/n = 0.038414588; centre = (0.9 + 0.019207294) /
    # 1.038414588 = 0.8852026; half = 1.959964 * sqrt(0.0009 + 0.0000960365) / 1.038414588
    # = 1.959964 * 0.03156005 / 1.038414588 = 0.0595683
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.825634, abs=1e-6)
    assert hi == pytest.approx(0.944771, abs=1e-6)


def test_wilson_edges_by_hand():
    # k = n = 10: p = 1, half = centre - n / (n + z^2) -> lower = 10 / 13.841459
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(10 / (10 + 1.959963984540054 ** 2), rel=1e-12) and hi == 1.0
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 10 / (10 + 1.959963984540054 ** 2), rel=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(1, 9) == 22 / 1024          # 2 * (C(10,0) + C(10,1)) / 2^10
    assert mcnemar_exact(9, 1) == 22 / 1024
    assert mcnemar_exact(0, 6) == 2 / 64             # 2 * C(6,0) / 2^6
    assert mcnemar_exact(2, 3) == 1.0                # 2 * (1 + 5 + 10) / 32 = 1, capped
    assert mcnemar_exact(0, 0) == 1.0
    # 5 vs 15: 2 * sum_{i<=5} C(20, i) / 2^20 = 2 * 21700 / 1048576
    assert mcnemar_exact(5, 15) == pytest.approx(43400 / 1048576, rel=1e-15)


def test_mean_sd_and_record():
    m, sd = mean_sd([0.96, 0.98, 0.97])
    assert m == pytest.approx(0.97) and sd == pytest.approx(0.01)
    assert mean_sd([0.5]) == (0.5, None)
    r = accuracy_record(90, 100)
    assert r["accuracy"] == 0.9 and r["samples"] == 100 and r["correct"] == 90
    assert r["ci95"][0] == pytest.approx(0.825634, abs=1e-6)
    assert format_accuracy(90, 100) == "90.00 % [82.56, 94.48] (n = 100)"
    assert math.isclose(sum(wilson_interval(50, 100)), 1.0)  # symmetric at p = 1/2


def test_paired_difference_interval():
    from spikeship.stats import Z95, paired_difference_interval

    lo, hi = paired_difference_interval(5, 3, 100)      # second right on 3, first on 5
    se = (8 - 4 / 100) ** 0.5 / 100
    assert lo == pytest.approx(-0.02 - Z95 * se) and hi == pytest.approx(-0.02 + Z95 * se)
    assert paired_difference_interval(0, 0, 450) == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference_interval(60, 50, 100)

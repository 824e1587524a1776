"""Honest accuracy: binomial intervals, the exact McNemar test, mean +- sd over seeds.

Pure functions over counts (no numpy, no scipy: exact integer arithmetic).

- Wilson score interval (Wilson 1927) for ``k`` correct of ``n``, ``p = k / n``, ``z`` the
  two-sided normal quantile (1.959964 for 95 %):
  ``(p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``.
- Exact McNemar test of two classifiers on the same ``n`` samples: ``b`` = samples only
  the first got right, ``c`` = only the second. Under H0 (equal accuracy) the ``b + c``
  discordant samples split as Binomial(b + c, 1/2); the two-sided p-value is
  ``min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c))`` (1 when ``b + c = 0``).
- Interval of the difference of two classifiers' accuracies on the same ``n`` samples
  (difference of paired proportions, Wald): ``d = (c - b) / n`` (second minus first),
  ``SE = sqrt(b + c - (b - c)^2 / n) / n``, ``d -+ z SE``.
- Mean and sample standard deviation (``n - 1``) of several seeds' accuracies.
"""

from __future__ import annotations

import math
from fractions import Fraction

Z95 = 1.959963984540054  # Phi^-1(0.975)


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / n`` (``(0, 1)`` when ``n = 0``)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be in [0, {n}], got {correct}")
    p, z2 = correct / n, z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if correct == 0 else max(0.0, centre - half)   # exact ends (no rounding)
    hi = 1.0 if correct == n else min(1.0, centre + half)
    return lo, hi


def accuracy_record(correct: int, n: int) -> dict:
    """``{"accuracy", "correct", "samples", "ci95": [low, high], "ci_method"}``."""
    lo, hi = wilson_interval(correct, n)
    return {"accuracy": correct / n if n else None, "correct": int(correct), "samples": int(n),
            "ci95": [lo, hi], "ci_method": "wilson"}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact (binomial) McNemar p-value for ``b`` and ``c`` discordant samples."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    m = b + c
    if m == 0:
        return 1.0
    tail = Fraction(sum(math.comb(m, i) for i in range(min(b, c) + 1)), 2 ** m)
    return float(min(Fraction(1), 2 * tail))


def paired_difference_interval(b: int, c: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Interval of (second - first) accuracy on ``n`` shared samples, ``b`` = samples only
    the first got right, ``c`` = only the second (as :func:`mcnemar_exact`)."""
    if n <= 0 or b < 0 or c < 0 or b + c > n:
        raise ValueError(f"need 0 <= b, c and b + c <= n > 0, got b={b}, c={c}, n={n}")
    d = (c - b) / n
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return d - z * se, d + z * se


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        raise ValueError("no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_accuracy(correct: int, n: int) -> str:
    """``"98.00 % [96.24, 98.93] (n = 450)"``: percentage, 95 % Wilson interval, size."""
    lo, hi = wilson_interval(correct, n)
    return f"{100 * correct / n:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}] (n = {n})"

"""Pruning schedules shared by the pruners (no pruner imports: any pruner may use them)."""

from __future__ import annotations


def zhu_gupta_sparsity(t: float, s_initial: float, s_final: float,
                       start: float, end: float) -> float:
    """Target sparsity at time ``t`` (Zhu & Gupta 2017, Eq 1): ``s_initial`` before
    ``start``, ``s_final`` from ``end`` on, and between them
    ``s_final + (s_initial - s_final) * (1 - (t - start) / (end - start)) ** 3``."""
    if t < start:
        return s_initial
    if t >= end or end <= start:
        return s_final
    frac = (t - start) / (end - start)
    return s_final + (s_initial - s_final) * (1.0 - frac) ** 3

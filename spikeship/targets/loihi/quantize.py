"""NIR graph -> fixed-point :class:`Deployment` for Lava's bit-accurate Loihi models (pure).

``quantize(graph)`` lowers the graph (:func:`.lower.lower`, float Lava units) and
turns every number into the integer Lava's ``fixed_pt`` models take. One function
feeds the Lava builder, the netx writer and the batched emulator, so they cannot
drift apart.

Per population ``P`` a state scale ``S`` (Lava integer units per float unit of
``u``/``v``) is chosen; everything that adds to ``u``/``v`` is expressed in it:

- weights: ``m = clip(rint(w S / 128), -127, 127)``, Lava value ``2 m`` (8-bit signed
  mantissa; Lava's Dense/Sparse truncate the LSB of mixed-sign weights, so ``2 m``
  passes through them unchanged for every sign mode), ``weight_exp = 0``. Lava adds
  ``(2 m) << 6`` to ``u`` per spike, i.e. ``w`` float units: ``128 m = S w``.
  ``S = 128 * 127 / max|w|`` over all synapses into ``P`` (feed-forward, recurrent
  and bias unit together) so the largest weight uses the full mantissa.
  The per-layer scale lives in ``S`` (the threshold and bias mantissas are in the
  same units) instead of a nonzero ``weight_exp``: that is exact (Lava shifts the
  *summed* input, flooring it), it is what Lava's fixed-point ``Conv`` needs (its
  model ignores ``weight_exp``), and netx can express it (netx derives the Dense
  exponent itself and has none for Conv).
- threshold: ``vth = rint(S vth_float / 64)`` (Lava compares ``v > vth << 6``). If
  that exceeds 2^16 (``v`` would have < 2x headroom in 24 bits), ``S`` is lowered to
  fit and the weights use fewer mantissa bits (reported as ``weight_bits``).
- bias: ``bias_mant = clip(rint(S b / 64), -4095, 4095)``, ``bias_exp = 6`` (13-bit
  mantissa; exponent 6 aligns it with ``vth << 6`` and is the value netx hard-codes).
- decays: ``du = clip(rint(4096 du_float) - 1, 0, 4095)`` (Lava decays ``u`` by
  ``(4096 - (du + 1)) / 4096``), ``dv = clip(rint(4096 dv_float), 0, 4095)``.
- host current (direct encoding): ``a_in = clip(rint(S I / 64), -(2^17 - 1), 2^17 - 1)``
  (``a_in << 6`` stays inside the 24-bit ``u``); ``S`` of a population fed only by
  the host gives it a threshold mantissa of 2^12.

Rounding is ``numpy.rint`` (half to even) everywhere; saturation is counted and
reported. ``report`` holds, per synapse and population, the quantisation errors:
weights relative to the layer's ``max|w|``, threshold/bias relative to the
threshold, decays as absolute errors of the per-step factor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import nir
import numpy as np
from scipy.sparse import csr_matrix

from spikeship.targets.loihi import rules
from spikeship.targets.loihi.deployment import (FORMAT, Deployment, HostLayerSpec,
                                                PopulationSpec, SynapseSpec)
from spikeship.targets.loihi.lower import lower


def _weight_values(s: SynapseSpec) -> np.ndarray:
    return s.weights.data if s.kind == "sparse" else np.asarray(s.weights).ravel()


def state_scale(pop: PopulationSpec, incoming: list[SynapseSpec]) -> float:
    """``S`` of population ``pop`` (see module docstring)."""
    f = FORMAT
    wmax = max((np.abs(_weight_values(s)).max(initial=0.0) for s in incoming), default=0.0)
    if wmax > 0:
        scale = 128.0 * f.weight_mant_max / wmax
    else:
        scale = 64.0 * f.injection_vth / pop.vth
    if scale * pop.vth / 64.0 > f.vth_target_max:
        scale = 64.0 * f.vth_target_max / pop.vth
    return scale


def quantize_weights(values: np.ndarray, scale: float) -> tuple[np.ndarray, int]:
    """Lava weight values ``2 m`` (int64) and how many mantissas saturated."""
    m = np.rint(np.asarray(values, dtype=np.float64) * scale / 128.0)
    sat = int(np.count_nonzero(np.abs(m) > FORMAT.weight_mant_max))
    return 2 * np.clip(m, -FORMAT.weight_mant_max, FORMAT.weight_mant_max).astype(np.int64), sat


def quantize_current(current: np.ndarray, host: HostLayerSpec) -> tuple[np.ndarray, int]:
    """Injected integer ``a_in`` of a host layer's float current, and the saturated count."""
    a = np.rint(np.asarray(current, dtype=np.float64) * host.injection_scale)
    sat = int(np.count_nonzero(np.abs(a) > host.injection_max))
    return np.clip(a, -host.injection_max, host.injection_max).astype(np.int32), sat


def _q_synapse(s: SynapseSpec, scale: float) -> tuple[SynapseSpec, dict[str, Any]]:
    vals = _weight_values(s)
    q, sat = quantize_weights(vals, scale)
    wmax = float(np.abs(vals).max(initial=0.0))
    err = q * 64.0 / scale - vals
    if s.kind == "sparse":
        w = s.weights
        weights = csr_matrix((q, w.indices.copy(), w.indptr.copy()), shape=w.shape)
    else:
        weights = q.reshape(np.shape(s.weights))
    mmax = int(np.abs(q).max(initial=0)) // 2
    info = {
        "kind": s.kind, "connections": int(vals.size),
        "weight_bits": int(np.ceil(np.log2(mmax + 1))) + 1 if mmax else 0,
        "max_abs_err_rel": float(np.abs(err).max(initial=0.0) / wmax) if wmax else 0.0,
        "rms_err_rel": float(np.sqrt(np.mean(err ** 2)) / wmax) if wmax and vals.size else 0.0,
        "rounded_to_zero": int(np.count_nonzero((q == 0) & (vals != 0))),
        "saturated": sat,
    }
    return replace(s, weights=weights, weight_exp=0), info


def _round(x: float, mode: str) -> float:
    if mode == "nearest":
        return float(np.rint(x))
    if mode == "floor":
        return float(np.floor(x))
    raise ValueError(f"decay_rounding must be 'nearest' or 'floor', got '{mode}'")


def _q_population(p: PopulationSpec, scale: float,
                  decay_rounding: str = "nearest") -> tuple[PopulationSpec, dict[str, Any]]:
    f = FORMAT
    vth = int(np.rint(scale * p.vth / 64.0))
    rules.threshold_resolution(p.name, vth)
    b = np.rint(np.asarray(p.bias_mant, dtype=np.float64) * scale / 64.0)
    b_sat = int(np.count_nonzero(np.abs(b) > f.bias_mant_max))
    b = np.clip(b, -f.bias_mant_max, f.bias_mant_max).astype(np.int64)
    du = int(np.clip(_round(4096.0 * p.du, decay_rounding) - 1, 0, 4095))
    dv = int(np.clip(_round(4096.0 * p.dv, decay_rounding), 0, 4095))
    b_err = b * 64.0 / scale - p.bias_mant
    info = {
        "state_scale": scale, "vth": vth,
        "vth_rel_err": float(vth * 64.0 / scale / p.vth - 1.0),
        "du": du, "du_err": float((du + 1) / 4096.0 - p.du),
        "dv": dv, "dv_err": float(dv / 4096.0 - p.dv),
        "bias_max_abs_err_rel": float(np.abs(b_err).max(initial=0.0) / p.vth),
        "bias_saturated": b_sat,
    }
    q = replace(p, du=du, dv=dv, vth=vth, bias_mant=b,
                bias_exp=np.full(p.shape, f.bias_exp, dtype=np.int64),
                v_scale=np.asarray(p.v_scale) * scale, state_scale=scale)
    return q, info


def quantize_deployment(dep: Deployment, *, state_scales: Mapping[str, float] | None = None,
                        decay_rounding: str = "nearest") -> Deployment:
    """The fixed-point version of float deployment ``dep`` (see module docstring).

    ``state_scales`` overrides ``S`` per population name and ``decay_rounding="floor"``
    truncates ``4096 dt/tau`` instead of rounding it: both only to reproduce another
    tool's integers exactly (the NIR paper's Lava run used ``S = 16000`` and ``floor``).
    """
    if dep.precision != "float":
        raise ValueError("quantize_deployment expects a float deployment")
    pops, syns, hosts = [], [], []
    report: dict[str, Any] = {"populations": {}, "synapses": {}, "host_layers": {},
                              "rounding": "numpy.rint (round half to even); saturating clips"}
    scales = {}
    for p in dep.populations:
        incoming = dep.incoming(p.name)
        s = (float(state_scales[p.name]) if state_scales and p.name in state_scales
             else state_scale(p, incoming))
        scales[p.name] = s
        qp, info = _q_population(p, s, decay_rounding)
        pops.append(qp)
        report["populations"][p.name] = info
    for syn in dep.synapses:
        qs, info = _q_synapse(syn, scales[syn.target])
        syns.append(qs)
        report["synapses"][syn.name] = info
    for h in dep.host_layers:
        hosts.append(replace(h, injection_scale=scales[h.target] / 64.0,
                             injection_max=float(FORMAT.injection_max)))
        report["host_layers"][h.name] = {"injection_scale": scales[h.target] / 64.0,
                                         "injection_max": FORMAT.injection_max}
    out = replace(dep, precision="fixed", populations=tuple(pops), synapses=tuple(syns),
                  host_layers=tuple(hosts), report=report)
    rules.check_fixed(out)
    return out


def quantize(graph: nir.NIRGraph, *, dt_s: float | None = None, input_mode: str | None = None,
             input_message_bits: int = 0, state_scales: Mapping[str, float] | None = None,
             decay_rounding: str = "nearest") -> Deployment:
    """NIR graph -> fixed-point :class:`Deployment` (``lower`` then quantise).

    This is the function the Lava fixed-point target, the netx writer and the batched
    emulator all call; see :func:`.lower.lower` for the arguments.
    """
    dep = lower(graph, dt_s=dt_s, input_mode=input_mode, input_message_bits=input_message_bits)
    return quantize_deployment(dep, state_scales=state_scales, decay_rounding=decay_rounding)

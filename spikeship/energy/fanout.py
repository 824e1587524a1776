"""Exact fan-out maps: how many synapses each input element of a layer drives.

For a synaptic layer with boolean synapse mask ``M`` (True = the synapse exists),
the fan-out of input element ``j`` is the number of (output element, synapse) pairs
that read ``j``. For a fully connected layer ``y = W x``::

    F[j] = sum_i M[i, j]

For a 2-D convolution (weight ``(C_out, C_in/g, k_h, k_w)``, stride ``s``, padding
``p``, dilation ``d``, groups ``g``), output ``(o, y', x')`` reads input
``(c, y' s_h - p_h + a d_h, x' s_w - p_w + b d_w)`` through tap ``(a, b)`` when that
position lies inside the input. So::

    F[c, y, x] = sum_{a, b} T[c, a, b] * H_y[a, y] * H_x[b, x]
    T[c, a, b] = sum_{o in group(c)} M[o, c mod (C_in/g), a, b]
    H_y[a, y]  = 1 if some y' in [0, H_out) has y' s_h - p_h + a d_h = y, else 0

which is the transposed convolution of an all-ones output with the mask, i.e. the
map you get by convolving an indicator: borders, stride, padding and removed
channels (absent from ``M``) are exact, never a formula that assumes every tap
lands inside the image. The pooling transpose is the same construction with an
identity channel map: a neuron feeding a (sum/avg) pool drives the synapses of
every pooled element whose window contains it (a neuron in no window drives none).

All functions are pure numpy and return int64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spikeship.errors import GraphError
from spikeship.nir.geometry import conv_geometry, out_size, pair, resolve_padding


def _hits(n_in: int, n_out: int, k: int, s: int, pad_lo: int, d: int) -> list[tuple]:
    """Per tap ``a``: (output indices, input indices) of the positions inside the input."""
    out = []
    o = np.arange(n_out)
    for a in range(k):
        pos = o * s - pad_lo + a * d
        ok = (pos >= 0) & (pos < n_in)
        out.append((o[ok], pos[ok]))
    return out


def fc_fanout(mask: np.ndarray) -> np.ndarray:
    """Fan-out of each input of a fully connected layer with mask ``(out, in)``."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise GraphError(f"a dense mask must be 2-D, got shape {m.shape}")
    return m.sum(axis=0, dtype=np.int64)


def conv_fanout(mask: np.ndarray, in_shape: Sequence[int], stride=1, padding=0,
                dilation=1, groups: int = 1) -> np.ndarray:
    """Fan-out map ``(C_in, H, W)`` of a Conv2d with mask ``(C_out, C_in/g, k_h, k_w)``."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 4:
        raise GraphError(f"a conv mask must be 4-D, got shape {m.shape}")
    c_in, h, w = (int(v) for v in in_shape)
    c_out, cpg, kh, kw = m.shape
    if groups < 1 or c_in % groups or c_out % groups or cpg != c_in // groups:
        raise GraphError(f"conv mask {m.shape} does not fit input {tuple(in_shape)} "
                         f"with groups={groups}")
    (ho, wo), s, pad, d = conv_geometry(in_shape, (kh, kw), stride, padding, dilation)
    opg = c_out // groups
    taps = np.zeros((c_in, kh, kw), dtype=np.int64)
    for g in range(groups):
        taps[g * cpg:(g + 1) * cpg] = m[g * opg:(g + 1) * opg].sum(axis=0, dtype=np.int64)
    hy = np.zeros((kh, h), dtype=np.int64)
    for a, (_, pos) in enumerate(_hits(h, ho, kh, s[0], pad[0][0], d[0])):
        hy[a, pos] = 1
    hx = np.zeros((kw, w), dtype=np.int64)
    for b, (_, pos) in enumerate(_hits(w, wo, kw, s[1], pad[1][0], d[1])):
        hx[b, pos] = 1
    return np.einsum("cab,ay,bx->cyx", taps, hy, hx)


def pool_backward(fanout: np.ndarray, in_shape: Sequence[int], kernel, stride,
                  padding) -> np.ndarray:
    """Fan-out of the inputs ``(C, H, W)`` of a sum/avg pool whose outputs have ``fanout``.

    Each input element drives the synapses of every pooled element whose window
    contains it: ``G[c, y, x] = sum over windows (y', x') containing (y, x) of
    F[c, y', x']``. Exact for overlapping windows too (it counts each path).
    """
    f = np.asarray(fanout, dtype=np.int64)
    c, h, w = (int(v) for v in in_shape)
    k = pair(kernel, "kernel_size")
    s = pair(stride, "stride")
    pad = resolve_padding(padding, k, (1, 1), s)
    ho, wo = out_size(h, k[0], s[0], pad[0]), out_size(w, k[1], s[1], pad[1])
    if f.shape != (c, ho, wo):
        raise GraphError(f"pool output fan-out {f.shape} does not match input {tuple(in_shape)} "
                         f"with kernel {k}, stride {s}: expected {(c, ho, wo)}")
    out = np.zeros((c, h, w), dtype=np.int64)
    for oy, y in _hits(h, ho, k[0], s[0], pad[0][0], 1):
        for ox, x in _hits(w, wo, k[1], s[1], pad[1][0], 1):
            out[:, y[:, None], x[None, :]] += f[:, oy[:, None], ox[None, :]]
    return out

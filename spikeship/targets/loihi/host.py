"""Host side of a Lava run: what the input sources send at each step.

Two input modes (:attr:`Deployment.input_mode`):

- ``"spikes"``: the input itself is sent and passes through a synapse (one step of
  delay). Binary spikes (``input_message_bits = 0``) or graded payloads (event
  counts, ``input_message_bits > 0``: Lava's Dense/Conv then compute ``W x``). In
  fixed point a payload must be an integer.
- ``"current"`` (direct encoding): the first synaptic layer is evaluated here,
  ``I[t] = W x[t] + b`` (float64; :class:`HostLayerSpec`), and sent straight into the
  first population's ``a_in`` (no synapse, no delay). Fixed point sends
  ``clip(rint(S I / 64))`` (:func:`~spikeship.targets.loihi.quantize.quantize_current`).
  A chip would receive exactly this stream from its host/encoder; a static image's
  current is the same at every step.

Arrays here are NIR layout ``(N, T, *shape)``; :func:`to_lava_stream` turns a chunk
into the source's ``(steps, *lava_shape)`` frames.
"""

from __future__ import annotations

import numpy as np

from spikeship.errors import ConfigError
from spikeship.targets.loihi.deployment import Deployment, HostLayerSpec
from spikeship.targets.loihi.quantize import quantize_current


def host_current(h: HostLayerSpec, x: np.ndarray) -> np.ndarray:
    """``I = W x + b`` of host layer ``h`` for ``x`` of shape ``(B, *source_shape)``
    (``W`` an array, or the CSR matrix of a pruned dense layer's synapses)."""
    x = np.asarray(x, dtype=np.float64)
    if h.kind == "dense":
        x2 = x.reshape(x.shape[0], -1)
        y = (h.weights @ x2.T).T if hasattr(h.weights, "tocsr") else x2 @ h.weights.T
        return np.asarray(y).reshape(x.shape[0], *h.bias.shape) + h.bias
    import torch
    import torch.nn.functional as F

    y = F.conv2d(torch.from_numpy(x), torch.from_numpy(h.weights), stride=h.stride,
                 padding=h.padding, dilation=h.dilation, groups=h.groups)
    return y.numpy() + h.bias


def sparse_hosts(dep: Deployment) -> Deployment:
    """``dep`` with every dense host layer held as a CSR matrix of its nonzero weights:
    a netx file stores the host layer dense, and loaded with ``sparse_fc_layer=True``
    it is treated as lava-dl treats the file's dense blocks (zeros dropped)."""
    from dataclasses import replace

    from scipy.sparse import csr_matrix, issparse

    hosts = tuple(replace(h, weights=csr_matrix(np.asarray(h.weights)))
                  if h.kind == "dense" and not issparse(h.weights) else h
                  for h in dep.host_layers)
    return replace(dep, host_layers=hosts)


def injected(dep: Deployment, inputs: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Per target population, the ``a_in`` stream ``(N, T, *shape)`` of current mode.

    Float: Lava float units (float64). Fixed: int32 after rounding/saturation. Also
    returns how many values saturated.
    """
    n, t = inputs.shape[:2]
    flat = inputs.reshape(n * t, *inputs.shape[2:])
    out: dict[str, np.ndarray] = {}
    for h in dep.host_layers:
        cur = host_current(h, flat)
        out[h.target] = out[h.target] + cur if h.target in out else cur
    saturated = 0
    for name in out:
        if dep.precision == "fixed":
            host = next(h for h in dep.host_layers if h.target == name)
            out[name], sat = quantize_current(out[name], host)
            saturated += sat
        out[name] = out[name].reshape(n, t, *out[name].shape[1:])
    return out, saturated


def input_bits(inputs: np.ndarray, precision: str) -> int:
    """``input_message_bits`` for spikes mode: 0 when binary, else enough for the payload."""
    x = np.asarray(inputs)
    if np.all((x == 0) | (x == 1)):
        return 0
    if precision == "fixed":
        if not np.all(np.rint(x) == x):
            raise ConfigError("fixed-point event input must be integer counts (graded spikes); "
                              "use input_mode='current' for real-valued (direct) input")
        if np.any(x < 0):
            raise ConfigError("graded spike payloads must be >= 0")
    top = float(np.abs(x).max())
    return int(max(8, np.ceil(np.log2(top + 1)))) if precision == "fixed" else 8


def payload(dep: Deployment, inputs: np.ndarray) -> np.ndarray:
    """What the input source sends in spikes mode (NIR layout, dtype per precision)."""
    if dep.precision == "fixed":
        return np.rint(inputs).astype(np.int32)
    return np.asarray(inputs, dtype=np.float64)


def to_lava_stream(x: np.ndarray, steps: int, dtype) -> np.ndarray:
    """``(C, T, *shape)`` NIR chunk -> source frames ``(steps, *reversed(shape))``.

    Samples follow each other without gaps; steps past the chunk's samples are zero.
    """
    c, t = x.shape[:2]
    seq = x.reshape(c * t, *x.shape[2:])
    nd = seq.ndim - 1
    data = np.zeros((steps, *reversed(x.shape[2:])), dtype=dtype)
    k = min(steps, seq.shape[0])
    data[:k] = np.transpose(seq[:k], (0, *range(nd, 0, -1)))
    return data

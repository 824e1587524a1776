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

import ctypes

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


HOST_BLOCK_BYTES = 64 * 2 ** 20   # float64 current of one block of samples, at most
HOST_BLOCK_SAMPLES = 64


def host_block(dep: Deployment, timesteps: int) -> int:
    """Samples per host-current evaluation: :data:`HOST_BLOCK_SAMPLES`, fewer where one
    block's float64 current would pass :data:`HOST_BLOCK_BYTES`. A function of the
    deployment and ``T`` only, never of how many samples a run has."""
    per_sample = 8 * timesteps * sum(int(np.prod(h.bias.shape)) for h in dep.host_layers)
    return int(max(1, min(HOST_BLOCK_SAMPLES, HOST_BLOCK_BYTES // max(per_sample, 1))))


def injected(dep: Deployment, inputs: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Per target population, the ``a_in`` stream ``(N, T, *shape)`` of current mode.

    Float: Lava float units (float64). Fixed: int32 after rounding/saturation. Also
    returns how many values saturated.

    Computed block by block, :func:`host_block` samples from sample 0 on, each block
    padded to its full size with zero samples: a float64 GEMM's or convolution's
    rounding may depend on the rows computed beside it and on their number, so a
    sample's current depends only on its input and its place in its block. Any run
    over ``inputs[k * block:]`` (the emulator's batches, the Lava runner's chunks)
    therefore sends the same integers, and only one block's float64 current is held.
    """
    n, t = inputs.shape[:2]
    block = host_block(dep, t)
    out: dict[str, np.ndarray] = {}
    saturated = 0
    for b0 in range(0, n, block):
        part, sat = _injected_block(dep, inputs[b0:b0 + block], block)
        saturated += sat
        for name, a in part.items():
            if name not in out:
                out[name] = np.empty((n, *a.shape[1:]), dtype=a.dtype)
            out[name][b0:b0 + a.shape[0]] = a
    return out, saturated


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's ``malloc_trim``). A block's
    temporaries are megabytes, below the mmap threshold glibc raises after the first large
    free, so they come from the heap; with small arrays that outlive each block (outputs)
    in between, the freed pages would stay resident and grow with the number of blocks.
    Nothing happens where there is no glibc."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


class BlockStreams:
    """What the host sends for samples ``[a, b)`` of ``x``, computed by ``fn`` (inputs
    ``(n, T, ...)`` -> (per source ``(n, T, *shape)``, saturated count)) in the blocks of
    :func:`host_block` from sample 0 on; one block is held, for the next call (runs go
    forward), so memory does not grow with the samples."""

    def __init__(self, dep: Deployment, x: np.ndarray, fn):
        self.x, self.fn = x, fn
        self.block = host_block(dep, int(x.shape[1]))
        self.k0, self.cur = -1, {}

    def get(self, a: int, b: int) -> tuple[dict[str, np.ndarray], int]:
        parts: dict[str, list[np.ndarray]] = {}
        saturated = 0
        for k0 in range(a - a % self.block, b, self.block):
            if k0 != self.k0:
                self.cur = {}                     # one block held at a time
                release_free_heap()
                self.cur, sat = self.fn(self.x[k0:k0 + self.block])
                self.k0, saturated = k0, saturated + sat
            lo, hi = max(a, k0) - k0, min(b, k0 + self.block) - k0
            for k, v in self.cur.items():
                parts.setdefault(k, []).append(v[lo:hi])
        return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in parts.items()}, \
            saturated


def _injected_block(dep: Deployment, x: np.ndarray, block: int
                    ) -> tuple[dict[str, np.ndarray], int]:
    """:func:`injected` of at most ``block`` samples, evaluated as a full block."""
    m, t = x.shape[:2]
    if m < block:
        x = np.concatenate([x, np.zeros((block - m, *x.shape[1:]), dtype=x.dtype)])
    flat = x.reshape(block * t, *x.shape[2:])
    out: dict[str, np.ndarray] = {}
    for h in dep.host_layers:
        cur = host_current(h, flat)
        out[h.target] = out[h.target] + cur if h.target in out else cur
    saturated = 0
    for name in out:
        cur = out[name].reshape(block, t, *out[name].shape[1:])[:m]
        if dep.precision == "fixed":
            host = next(h for h in dep.host_layers if h.target == name)
            cur, sat = quantize_current(cur, host)
            saturated += sat
        out[name] = cur
    return out, saturated


def input_bits(inputs: np.ndarray, precision: str, block: int = 4096) -> int:
    """``input_message_bits`` for spikes mode: 0 when binary, else enough for the payload
    (checked ``block`` samples at a time: no full-size temporaries)."""
    x = np.asarray(inputs)
    parts = [x[i:i + block] for i in range(0, x.shape[0], block)] or [x]
    if all(np.all((p == 0) | (p == 1)) for p in parts):
        return 0
    if precision == "fixed":
        if not all(np.all(np.rint(p) == p) for p in parts):
            raise ConfigError("fixed-point event input must be integer counts (graded spikes); "
                              "use input_mode='current' for real-valued (direct) input")
        if any(np.any(p < 0) for p in parts):
            raise ConfigError("graded spike payloads must be >= 0")
    top = max(float(np.abs(p).max(initial=0)) for p in parts)
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

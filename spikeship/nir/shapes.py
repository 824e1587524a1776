"""Shapes of NIR nodes (one unbatched sample) and their normalised parameters.

Shared by the importer (shape checks) and the simulators (which read conv / pool
parameters through :func:`conv_params` / :func:`pool_params`, so every runner
interprets ``stride``, ``padding`` (ints, pairs, ``"same"``, ``"valid"``) alike).

Output size of a conv / pool along one axis (floor division, as torch):
``out = (in + 2*pad - dil*(k - 1) - 1) // stride + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spikeship.errors import GraphError


def pair(v, what: str = "value", name: str | None = None, minimum: int = 0
         ) -> tuple[int, int]:
    """``(h, w)`` from one int or a pair (any int-valued array); the one parser of conv /
    pool parameters (stride, padding, dilation, kernel size) in spikeship."""
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if (a.size != 2 or a.dtype.kind not in "iuf" or np.any(a < minimum)
            or np.any(a != np.round(a))):
        where = f"node {name!r}: " if name is not None else ""
        raise GraphError(f"{where}{what} {np.asarray(v).tolist()} must be one or two "
                         f"integers >= {minimum}")
    return int(a[0]), int(a[1])


def conv_params(name: str, node) -> dict:
    """``weight, bias, stride, padding, dilation, groups`` of a NIR ``Conv2d`` as torch wants
    them (``padding`` resolved to a pair; ``"same"`` needs stride 1, as in torch)."""
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise GraphError(f"node {name!r}: Conv2d weight must be 4-d (O, I, kh, kw), got {w.shape}")
    stride = pair(node.stride, "stride", name, 1)
    dilation = pair(node.dilation, "dilation", name, 1)
    groups = int(np.asarray(node.groups).reshape(()))
    if groups < 1 or w.shape[0] % groups:
        raise GraphError(f"node {name!r}: groups={groups} does not divide {w.shape[0]} channels")
    pad = node.padding
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, str):
        if pad == "valid":
            padding = (0, 0)
        elif pad == "same":
            if stride != (1, 1):
                raise GraphError(f"node {name!r}: padding 'same' needs stride 1")
            total = [dilation[i] * (w.shape[2 + i] - 1) for i in range(2)]
            if any(t % 2 for t in total):
                raise GraphError(f"node {name!r}: padding 'same' with an even kernel is "
                                 "asymmetric and not supported")
            padding = (total[0] // 2, total[1] // 2)
        else:
            raise GraphError(f"node {name!r}: padding {pad!r} is not 'same', 'valid' or numbers")
    else:
        padding = pair(pad, "padding", name, 0)
    bias = np.asarray(node.bias) if getattr(node, "bias", None) is not None else np.zeros(w.shape[0])
    if bias.shape != (w.shape[0],):
        raise GraphError(f"node {name!r}: bias shape {bias.shape} does not fit {w.shape[0]} "
                         "output channels")
    return {"weight": w, "bias": bias, "stride": stride, "padding": padding,
            "dilation": dilation, "groups": groups}


def pool_params(name: str, node) -> dict:
    """``kernel, stride, padding`` pairs of a NIR ``SumPool2d`` / ``AvgPool2d``."""
    k = pair(node.kernel_size, "kernel_size", name, 1)
    s = pair(node.stride, "stride", name, 1)
    p = pair(node.padding, "padding", name, 0)
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise GraphError(f"node {name!r}: padding {p} is more than half the kernel {k}")
    return {"kernel": k, "stride": s, "padding": p}


def _spatial(name, in_shape, k, s, p, d=(1, 1)) -> tuple[int, int]:
    out = tuple((in_shape[1 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))
    if min(out) < 1:
        raise GraphError(f"node {name!r}: input {list(in_shape)} is too small (output {out})")
    return out


def _flatten_out(name, node, in_shape) -> tuple[int, ...]:
    nd = len(in_shape)
    start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    start, end = start + nd if start < 0 else start, end + nd if end < 0 else end
    if not 0 <= start <= end < nd:
        raise GraphError(f"node {name!r}: Flatten dims ({node.start_dim}, {node.end_dim}) do not "
                         f"fit an input of shape {list(in_shape)} (NIR shapes have no batch dim)")
    return (*in_shape[:start], int(np.prod(in_shape[start:end + 1])), *in_shape[end + 1:])


def _param_shape(name, node, keys, in_shape) -> tuple[int, ...]:
    for key in keys:
        v = getattr(node, key, None)
        if v is None:
            raise GraphError(f"node {name!r}: missing parameter {key!r}")
        if tuple(np.shape(v)) != tuple(in_shape):
            raise GraphError(f"node {name!r} ({type(node).__name__}): parameter {key!r} has shape "
                             f"{list(np.shape(v))}, the input is {list(in_shape)}")
    return tuple(in_shape)


NEURON_KEYS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
}


def node_output_shape(name: str, node, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of ``node`` for one sample of shape ``in_shape``; raises
    :class:`GraphError` when the parameters do not fit the input."""
    t = type(node).__name__
    if t in ("Input", "Output"):
        return tuple(in_shape)
    if t in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise GraphError(f"node {name!r}: {t} weight must be 2-d (out, in), got {w.shape}")
        if tuple(in_shape) != (w.shape[1],):
            raise GraphError(f"node {name!r}: {t} expects input [{w.shape[1]}], receives "
                             f"{list(in_shape)}")
        if t == "Affine" and np.shape(node.bias) != (w.shape[0],):
            raise GraphError(f"node {name!r}: bias shape {np.shape(node.bias)} does not fit "
                             f"{w.shape[0]} outputs")
        return (int(w.shape[0]),)
    if t == "Scale":
        return _param_shape(name, node, ("scale",), in_shape)
    if t == "Conv2d":
        p = conv_params(name, node)
        w = p["weight"]
        if len(in_shape) != 3 or in_shape[0] != w.shape[1] * p["groups"]:
            raise GraphError(f"node {name!r}: Conv2d with weight {list(w.shape)} expects "
                             f"({w.shape[1] * p['groups']}, H, W), receives {list(in_shape)}")
        if getattr(node, "input_shape", None) is not None:
            declared = tuple(int(x) for x in np.asarray(node.input_shape).reshape(-1))
            if declared != tuple(in_shape[1:]):
                raise GraphError(f"node {name!r}: declared input_shape {list(declared)} but "
                                 f"receives {list(in_shape[1:])}")
        hw = _spatial(name, in_shape, w.shape[2:], p["stride"], p["padding"], p["dilation"])
        return (int(w.shape[0]), *hw)
    if t in ("SumPool2d", "AvgPool2d"):
        p = pool_params(name, node)
        if len(in_shape) != 3:
            raise GraphError(f"node {name!r}: {t} expects (C, H, W), receives {list(in_shape)}")
        return (in_shape[0], *_spatial(name, in_shape, p["kernel"], p["stride"], p["padding"]))
    if t == "Flatten":
        return _flatten_out(name, node, in_shape)
    if t in NEURON_KEYS:
        return _param_shape(name, node, NEURON_KEYS[t], in_shape)
    raise GraphError(f"node {name!r}: no shape rule for type {t}")


# Geometry (shared by the energy count, the graph walk and the chip mappers).

def resolve_padding(padding, kernel: tuple[int, int], dilation: tuple[int, int],
                    stride: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` from NIR's int / pair / 'same' / 'valid' padding.

    'same' follows torch (stride 1 only): total ``d (k - 1)``, the smaller half first.
    """
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise GraphError("padding='same' needs stride 1")
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return out[0], out[1]
        raise GraphError(f"unknown padding {padding!r}")
    ph, pw = pair(padding, "padding")
    return (ph, ph), (pw, pw)


def out_size(n: int, k: int, s: int, pad: tuple[int, int], d: int = 1) -> int:
    """Output length of a convolution/pool along one axis (torch/NIR floor rule)."""
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def conv_geometry(in_shape: Sequence[int], kernel: tuple[int, int], stride, padding,
                  dilation) -> tuple[tuple[int, int], tuple, tuple, tuple]:
    """(output (H, W), stride pair, ((top, bottom), (left, right)), dilation pair)."""
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    pad = resolve_padding(padding, kernel, d, s)
    _, h, w = in_shape
    ho, wo = out_size(h, kernel[0], s[0], pad[0], d[0]), out_size(w, kernel[1], s[1], pad[1], d[1])
    if ho < 1 or wo < 1:
        raise GraphError(f"convolution of input {tuple(in_shape)} with kernel {kernel} "
                         f"has an empty output")
    return (ho, wo), s, pad, d


def pool_out_shape(in_shape: Sequence[int], kernel, stride, padding) -> tuple[int, int, int]:
    """Output shape ``(C, H', W')`` of a pool on ``in_shape``."""
    c, h, w = (int(v) for v in in_shape)
    k, s = pair(kernel, "kernel_size"), pair(stride, "stride")
    pad = resolve_padding(padding, k, (1, 1), s)
    return c, out_size(h, k[0], s[0], pad[0]), out_size(w, k[1], s[1], pad[1])

"""Conv and pool geometry of NIR nodes: the one parser of ``stride``, ``padding``
(ints, pairs, ``"same"``, ``"valid"``), ``dilation``, ``groups`` and kernel sizes, and
the one output-size rule. The importer's shape checks, every simulator, the synop
counter and every chip's lowering and mapper read conv / pool parameters here.

Output size along one axis (floor division, as torch and NIR):
``out = (in + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1``.
``"same"`` follows torch: stride 1 only, total padding ``dil * (k - 1)``.
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
    (top, bottom), (left, right) = resolve_padding(node.padding, w.shape[2:], dilation, stride,
                                                   name)
    if top != bottom or left != right:
        raise GraphError(f"node {name!r}: padding 'same' with an even kernel is asymmetric "
                         "and not supported")
    padding = (top, left)
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


def resolve_padding(padding, kernel: Sequence[int], dilation: tuple[int, int],
                    stride: tuple[int, int], name: str | None = None
                    ) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` from NIR's int / pair / 'same' / 'valid' padding.

    'same' follows torch (stride 1 only): total ``d (k - 1)``, the smaller half first.
    """
    where = f"node {name!r}: " if name is not None else ""
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise GraphError(f"{where}padding 'same' needs stride 1")
            out = []
            for k, d in zip(kernel, dilation):
                total = d * (int(k) - 1)
                out.append((total // 2, total - total // 2))
            return out[0], out[1]
        raise GraphError(f"{where}padding {padding!r} is not 'same', 'valid' or numbers")
    ph, pw = pair(padding, "padding", name)
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


def spatial_out(name: str, in_shape: Sequence[int], kernel, stride, padding,
                dilation=(1, 1)) -> tuple[int, int]:
    """``(H', W')`` of a conv / pool with symmetric ``padding`` pairs on a ``(C, H, W)``
    input; :class:`GraphError` naming node ``name`` when the output would be empty."""
    out = tuple(out_size(int(in_shape[1 + i]), kernel[i], stride[i], (padding[i], padding[i]),
                         dilation[i]) for i in range(2))
    if min(out) < 1:
        raise GraphError(f"node {name!r}: input {list(in_shape)} is too small (output {out})")
    return out

"""The one reader of lava-dl netx HDF5 files (``.net``): spikeship's own ``model.net``
(:mod:`spikeship.targets.loihi.netx` writes it) and netx files from elsewhere.

:func:`read_netx_file` opens the file through :func:`spikeship.safeopen.open_hdf5`
(regular file, size, hard links only, no external storage or plugin filters), refuses
any array whose declared size exceeds :class:`spikeship.nir.read.Limits` (per array
and in all) *before reading any*, and returns typed records: one :class:`NetxLayer` per
``layer/<i>`` (netx reads ``layer/0``, ``layer/1``, ... in order, so the keys must be
exactly ``0 .. n-1``), the ``simulation`` group, the root attributes spikeship writes
(``input_mode``, ``input_message_bits``, ``input_shape``, ``dt_s``) and spikeship's
``spikeship_host`` group. Conv geometry is checked on reading (stride and dilation
>= 1, padding >= 0, groups >= 1), as are a population's size (at most
:data:`spikeship.ranges.MAX_POPULATION` neurons) and finite weights. What a layer means is the consumers' business:
import (:mod:`.netx_import`), describe (:mod:`.netx_describe`), the fixed-point
deployment (:mod:`.netx_read`), the vanish check and the ``lava-netx`` simulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from spikeship import ranges
from spikeship.errors import GraphError
from spikeship.nir.read import H5_ERRORS, Limits
from spikeship.safeopen import open_hdf5


def text(v) -> str:
    """A netx string value (bytes, a 1-element bytes array or str) as ``str``."""
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    return v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)


def _value(ds: h5py.Dataset):
    v = ds[()]
    if isinstance(v, bytes) or (isinstance(v, np.ndarray) and v.dtype.kind == "S"):
        return text(v)
    return v


def group_dict(g: h5py.Group) -> dict:
    """Every dataset of ``g`` (recursively) read into a dict; strings decoded."""
    return {k: group_dict(v) if isinstance(v, h5py.Group) else _value(v) for k, v in g.items()}


@dataclass(frozen=True)
class NetxLayer:
    """One ``layer/<index>`` of a netx file, as stored (NIR ``(C, H, W)`` / ``(N,)``)."""

    index: int
    type: str                              # "input" | "conv" | "dense" | "flatten" | ...
    shape: tuple[int, ...]                 # () when the file gives none
    name: str | None = None                # spikeship: the NIR population it feeds
    neuron: dict | None = None             # neuron/{type, iDecay, vDecay, vThMant, ...}
    weight: np.ndarray | None = None       # None when absent or a group (dense_comp)
    weight_rec: np.ndarray | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    groups: int | None = None
    fields: dict = field(default_factory=dict)    # everything the group holds, as read


@dataclass(frozen=True)
class NetxFile:
    """A netx file: its layers in order, ``simulation`` group, root attributes and
    spikeship's host layer (``spikeship_host``; None when absent)."""

    path: Path
    layers: tuple[NetxLayer, ...]
    simulation: dict
    attrs: dict
    host: dict | None


def check_sizes(f: h5py.File, path: Path, limits: Limits) -> None:
    """Refuse any dataset of ``f`` whose declared size passes ``limits`` (per array or in
    all) before a byte of it is read."""
    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            n = float(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1.0
            total += n
            if n > limits.max_array_elements or total > limits.max_total_elements:
                raise GraphError(f"{path}: array {name} declares {list(obj.shape)} elements "
                                 f"(limits {limits.max_array_elements} per array, "
                                 f"{limits.max_total_elements} in all); refusing to read it")

    f.visititems(visit)


def _pair(path: Path, i: int, key: str, v, minimum: int) -> tuple[int, int] | None:
    if v is None:
        return None
    a = np.asarray(v).reshape(-1)
    if a.size not in (1, 2) or a.dtype.kind not in "iuf" or np.any(a != np.round(a)) \
            or np.any(a < minimum):
        raise GraphError(f"{path}: layer {i} {key} {a.tolist()} must be one or two integers "
                         f">= {minimum}")
    return (int(a[0]), int(a[-1]))


def _array(v) -> np.ndarray | None:
    return None if v is None or isinstance(v, dict) else np.asarray(v)


def _layer(path: Path, i: int, d: dict) -> NetxLayer:
    shape = np.asarray(d.get("shape", ()))
    if shape.size and (shape.dtype.kind not in "iuf" or np.any(shape < 0)):
        raise GraphError(f"{path}: layer {i} shape {shape.tolist()} is not a list of sizes")
    if shape.size and np.prod(shape, dtype=np.float64) > ranges.MAX_POPULATION:
        ranges.population_shape(shape, f"{path}: layer {i}")     # a named error
    for key in ("weight", "weight_rec"):
        w = _array(d.get(key))
        if w is not None and w.dtype.kind == "f" and not np.all(np.isfinite(w)):
            raise GraphError(f"{path}: layer {i} {key} holds NaN or Inf")
    groups = d.get("groups")
    if groups is not None:
        groups = _pair(path, i, "groups", groups, 1)[0]
    neuron = d.get("neuron")
    return NetxLayer(
        index=i, type=text(d.get("type", "")).strip(),
        shape=tuple(int(v) for v in shape.reshape(-1)),
        name=None if d.get("name") is None else text(d["name"]),
        neuron=neuron if isinstance(neuron, dict) else None,
        weight=_array(d.get("weight")), weight_rec=_array(d.get("weight_rec")),
        bias=_array(d.get("bias")), delay=_array(d.get("delay")),
        stride=_pair(path, i, "stride", d.get("stride"), 1),
        padding=_pair(path, i, "padding", d.get("padding"), 0),
        dilation=_pair(path, i, "dilation", d.get("dilation"), 1), groups=groups, fields=d)


def _layer_groups(f: h5py.File, path: Path) -> list[dict]:
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise GraphError(f"{path} is HDF5 but not netx: no 'layer' group")
    keys = list(f["layer"].keys())
    if not keys or sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != \
            [str(i) for i in range(len(keys))]:
        raise GraphError(f"{path}: netx layers must be named 0, 1, ...; got {keys[:5]}")
    out = []
    for i in range(len(keys)):
        g = f["layer"][str(i)]
        if not isinstance(g, h5py.Group):
            raise GraphError(f"{path}: layer {i} is not a group")
        out.append(group_dict(g))
    return out


def read_netx_file(path: str | os.PathLike, *, limits: Limits = Limits()) -> NetxFile:
    """The :class:`NetxFile` at ``path`` (see the module docstring); a damaged or
    oversized file is a :class:`GraphError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"no netx file at {path}")
    try:
        with open_hdf5(path, "netx file") as f:   # links, storage, filters, size checked
            check_sizes(f, path, limits)
            raw = _layer_groups(f, path)
            sim = group_dict(f["simulation"]) if isinstance(f.get("simulation"), h5py.Group) \
                else {}
            host = group_dict(f["spikeship_host"]) if "spikeship_host" in f else None
            attrs = {k: (text(v) if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except GraphError:
        raise
    except OSError as e:
        raise GraphError(f"{path} is not a netx (HDF5) file: {e}") from e
    except H5_ERRORS as e:           # a damaged file: HDF5 reports it as any of these
        raise GraphError(f"{path}: cannot read the netx file (damaged?): "
                         f"{type(e).__name__}: {e}") from e
    layers = tuple(_layer(path, i, d) for i, d in enumerate(raw))
    return NetxFile(path, layers, sim, attrs, host)


def is_netx(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with netx's ``layer`` group (spikeship's own
    ``model.net`` included); a damaged file is a :class:`GraphError`."""
    try:
        with open_hdf5(path, "netx file") as f:   # links, storage, filters, size checked
            return "layer" in f and isinstance(f["layer"], h5py.Group)
    except OSError as e:
        raise GraphError(f"{path} is not an HDF5 (netx) file: {e}") from e
    except H5_ERRORS as e:
        raise GraphError(f"{path}: cannot read the HDF5 file (damaged?): "
                         f"{type(e).__name__}: {e}") from e

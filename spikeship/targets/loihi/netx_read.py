"""Read a spikeship ``model.net`` (lava-dl netx HDF5) back into a fixed-point
:class:`~spikeship.targets.loihi.deployment.Deployment`, the inverse of
:mod:`spikeship.targets.loihi.netx` (the file format lives with its chip).

Untrusted input: the file goes through :func:`spikeship.safeopen.open_hdf5` (regular
file, size, hard links only, no external storage or plugin filters), every declared
array size is checked before reading, and every value read is checked against Lava's
fixed-point ranges (the ``fixed-range`` design rule) before anything runs it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from spikeship import ranges
from spikeship.errors import GraphError, RunDirError
from spikeship.targets.loihi.deployment import (SOURCE_INPUT, Deployment, HostLayerSpec,
                                                PopulationSpec, SynapseSpec)


def _s(group, key: str) -> str:
    v = group[key][()]
    v = v[0] if np.ndim(v) else v
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def read_deployment(path: str | Path) -> Deployment:
    """The fixed-point :class:`Deployment` stored in a spikeship ``model.net``."""
    from spikeship.safeopen import open_hdf5

    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist (run `spikeship export --formats netx`)")
    try:
        with open_hdf5(path, "netx file") as f:
            _check_sizes(f, path)
            dep = _read(f, path)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
        raise GraphError(f"{path} is not a spikeship netx file: {type(e).__name__}: {e}") from e
    _check_values(dep, path)
    return dep


def _check_values(dep: Deployment, path: Path) -> None:
    """Every weight, threshold, decay and bias of the file in Lava's fixed-point ranges
    (the ``fixed-range`` rule: 8-bit weight mantissas, thresholds >= 1, 12-bit decays,
    13-bit bias mantissas), integer-valued and real: a GraphError naming the file."""
    from spikeship.errors import RuleError
    from spikeship.targets.loihi.rules import check_fixed

    for s in dep.synapses:
        w = np.asarray(s.weights.data if s.kind == "sparse" else s.weights)
        if w.dtype.kind not in "iuf" or (w.dtype.kind == "f" and not np.all(np.isfinite(w))):
            raise GraphError(f"{path}: layer {s.name} weights of dtype {w.dtype} are not finite "
                             f"real numbers")
        if w.dtype.kind == "f" and np.any(w != np.rint(w)):
            raise GraphError(f"{path}: layer {s.name} weights are not integers (fixed point)")
    try:
        check_fixed(dep)
    except RuleError as e:
        raise GraphError(f"{path}: {e}") from e


def _check_sizes(f: h5py.File, path: Path) -> None:
    """Refuse absurd declared array sizes before reading any array (untrusted file)."""
    from spikeship.nir.read import Limits

    limits, total = Limits(), [0]

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            n = int(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1
            total[0] += n
            if n > limits.max_array_elements or total[0] > limits.max_total_elements:
                raise GraphError(f"{path}: dataset {name!r} declares {list(obj.shape)} "
                                 f"elements (limit {limits.max_array_elements} per array, "
                                 f"{limits.max_total_elements} in all); refusing to read it")

    f.visititems(visit)


def _read(f: h5py.File, path: Path) -> Deployment:
    mode = str(f.attrs["input_mode"])
    bits = int(f.attrs["input_message_bits"])
    input_shape = ranges.population_shape(f.attrs["input_shape"], f"{path}: input_shape")
    layers = f["layer"]
    pops, syns, hosts = [], [], []
    prev, prev_shape = SOURCE_INPUT, input_shape
    depth = 0 if mode == "current" else 1
    for i in range(len(layers)):
        g = layers[str(i)]
        kind = _s(g, "type")
        if kind == "flatten" or (kind == "input" and "neuron" not in g):
            continue
        shape = ranges.population_shape(g["shape"][()], f"{path}: layer {i}")
        n = g["neuron"]
        bias = np.zeros(shape, dtype=np.int64)
        if "bias" in g:
            b = np.asarray(g["bias"][()], dtype=np.int64)
            if len(shape) == 3 and b.ndim == 1 and b.size == shape[0]:
                bias = np.broadcast_to(b[:, None, None], shape).copy()    # per channel
            else:
                bias = (np.transpose(b) if b.ndim == 3 else b).reshape(shape)
        name = _s(g, "name")
        pops.append(PopulationSpec(
            name, "CUBA", shape, depth, int(n["iDecay"][()]) - 1, int(n["vDecay"][()]),
            int(n["vThMant"][()]), bias, np.full(shape, 6, dtype=np.int64),
            np.ones(shape), 1.0))
        if kind == "conv":
            geo = {k: tuple(int(v) for v in g[k][()]) for k in ("stride", "padding", "dilation")}
            w = g["weight"][()]
            if w.ndim != 4 or len(prev_shape) != 3 or w.shape[0] != shape[0]:
                raise GraphError(f"{path}: layer {i}: conv weight {list(w.shape)} does not map "
                                 f"{list(prev_shape)} to {list(shape)}")
            ranges.conv_geometry(**geo, groups=int(g["groups"][()]), c_in=prev_shape[0],
                                 kernel=w.shape, name=f"{path}: layer {i}")
            syns.append(SynapseSpec(f"layer{i}", "conv", prev, name, w,
                                    source_shape=prev_shape, **geo, groups=int(g["groups"][()]),
                                    num_message_bits=bits if prev == SOURCE_INPUT else 0))
        elif kind == "dense":
            w = g["weight"][()]
            want = (int(np.prod(shape)), int(np.prod(prev_shape)))
            if tuple(w.shape) != want:
                raise GraphError(f"{path}: layer {i}: dense weight {list(w.shape)} does not "
                                 f"map {int(np.prod(prev_shape))} inputs to {want[0]} neurons; "
                                 f"expected {list(want)}")
            syns.append(SynapseSpec(f"layer{i}", "dense", prev, name, w,
                                    source_shape=prev_shape,
                                    flatten_source=len(prev_shape) > 1,
                                    num_message_bits=bits if prev == SOURCE_INPUT else 0))
        prev, prev_shape, depth = name, shape, depth + 1
    if "spikeship_host" in f:
        h = f["spikeship_host"]
        hosts.append(HostLayerSpec(
            _s(h, "name"), _s(h, "kind"), _s(h, "target"), h["weight"][()], h["bias"][()],
            tuple(int(v) for v in h["source_shape"][()]),
            tuple(int(v) for v in h["stride"][()]), tuple(int(v) for v in h["padding"][()]),
            tuple(int(v) for v in h["dilation"][()]), int(h["groups"][()]),
            injection_scale=float(h["injection_scale"][()]),
            injection_max=float(h["injection_max"][()])))
    if not pops:
        raise GraphError("the netx file holds no neuron layer")
    return Deployment("fixed", float(f.attrs.get("dt_s", 0.0)), input_shape, mode, bits,
                      tuple(pops), tuple(syns), tuple(hosts), pops[-1].name, "netx")

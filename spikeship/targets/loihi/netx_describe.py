"""``spikeship inspect`` for lava-dl netx files: layers, neurons, synapses, and whether
spikeship can import the network (:func:`.netx_import.netx_to_nir`) or why not; an
HDF5 file without netx's ``layer`` group is listed dataset by dataset
(:func:`describe_hdf5`).

Per layer (netx order): type, neuron model and its integers (``iDecay``, ``vDecay``,
``vThMant``), input and output shape (NIR order ``(C, H, W)`` / ``(N,)``), weight
entries (``synapses``; a conv kernel's entries, shared over positions, as for NIR),
non-zero weights, sparsity, neurons (every layer with a neuron, the input layer
included), and whether it has axonal delays or a recurrent matrix.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spikeship.errors import GraphError, SpikeshipError
from spikeship.export.describe import totals, weights_row
from spikeship.nir.read import H5_ERRORS, Limits
from spikeship.safeopen import open_hdf5
from spikeship.targets.loihi.netx_file import (NetxLayer, check_sizes, is_netx, read_netx_file,
                                               text)
from spikeship.targets.loihi.netx_import import netx_to_nir


def _weights(layer: NetxLayer) -> list[np.ndarray]:
    """The weight arrays of a layer: ``weight`` (or ``weight/{real, imag}`` of a
    ``dense_comp``) and ``weight_rec``; an input layer's ``weight`` is its transform."""
    if layer.type == "input":
        return []
    w = layer.fields.get("weight")
    out = [np.asarray(v) for v in w.values()] if isinstance(w, dict) else \
        [np.asarray(w)] if w is not None else []
    return out + ([layer.weight_rec] if layer.weight_rec is not None else [])


def _row(layer: NetxLayer, in_shape) -> tuple[dict, tuple[int, ...] | None]:
    kind, shape = layer.type, layer.shape
    row: dict = {"name": f"layer{layer.index}", "type": f"netx:{kind}",
                 "in": list(in_shape or ()), "out": list(shape)}
    if kind in ("dense", "dense_rec", "dense_comp") and shape:
        shape = (int(np.prod(shape)),)
        row["out"] = list(shape)
    if kind == "flatten" and in_shape:
        shape = (int(np.prod(in_shape)),)
        row["out"] = list(shape)
    neuron = layer.neuron
    if neuron is not None:
        row["neuron"] = str(neuron.get("type", ""))
        row.update({k: int(neuron[k]) for k in ("iDecay", "vDecay", "vThMant", "refDelay")
                    if k in neuron})
        row["neurons"] = int(np.prod(shape)) if shape else 0
    elif kind in ("dense", "dense_rec"):
        row["neuron"] = "none (netx default: non-spiking integrator)"
        row["neurons"] = int(np.prod(shape)) if shape else 0
    weights = _weights(layer)
    if weights:
        n = sum(int(w.size) for w in weights)
        nz = sum(int(np.count_nonzero(w)) for w in weights)
        row.update({"shape": list(weights[0].shape), "synapses": n, "nonzero": nz,
                    "sparsity": 1.0 - nz / n if n else 0.0})
    if layer.delay is not None:
        row["axonal_delay_max"] = int(np.asarray(layer.delay).max(initial=0))
    if kind == "dense_rec":
        row["recurrent"] = True
    return row, (shape or in_shape)


def describe_netx(path: str | os.PathLike) -> dict:
    """A dict describing the netx file at ``path`` (see the module docstring)."""
    path = Path(path)
    rows, shape = [], None
    for layer in read_netx_file(path).layers:
        try:
            row, shape = _row(layer, shape)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise GraphError(f"{path}: layer {layer.index} is malformed: "
                             f"{type(e).__name__}: {e}") from e
        rows.append(row)
    try:
        netx_to_nir(path)
        importable: bool | str = True
    except SpikeshipError as e:
        importable = str(e)
    return {"file": str(path), "format": "netx (lava-dl HDF5)", "layers": rows,
            "importable": importable, **totals(rows)}


def describe_hdf5(path: str | os.PathLike, limits: Limits = Limits()) -> dict:
    """An HDF5 file without netx's ``layer`` group, walked generically: every ``weight``
    dataset with its synapse counts, other arrays and values (sizes checked first)."""
    rows: list[dict] = []

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.dtype.kind in "iuf" and name.rsplit("/", 1)[-1] == "weight":
            rows.append(weights_row(name, "weight", np.asarray(obj[()])))
        elif obj.dtype.kind in "iuf" and obj.size > 1:
            v = np.asarray(obj[()])
            rows.append({"name": name, "type": "array", "shape": list(v.shape),
                         **({"value": v.tolist()} if v.size <= 4 else {})})
        elif obj.dtype.kind in "iufSO" and obj.size == 1:
            v = np.asarray(obj[()]).reshape(-1)[0]
            rows.append({"name": name, "type": "value",
                         "value": text(v) if isinstance(v, bytes) else
                         v.item() if hasattr(v, "item") else str(v)})

    with open_hdf5(path, "HDF5 (netx) file") as f:   # size, links, filters, storage
        try:
            check_sizes(f, Path(path), limits)
            f.visititems(visit)
        except H5_ERRORS as e:
            raise GraphError(f"{path}: cannot read the HDF5 file (damaged?): "
                             f"{type(e).__name__}: {e}") from e
    return {"file": str(path), "format": "netx (HDF5)", "layers": rows, **totals(rows)}


def describe(path: str | os.PathLike) -> dict:
    """A netx file by its layers (:func:`describe_netx`); any other HDF5 file by
    :func:`describe_hdf5`."""
    return describe_netx(path) if is_netx(path) else describe_hdf5(path)

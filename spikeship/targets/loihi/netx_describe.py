"""``spikeship inspect`` for lava-dl netx files: layers, neurons, synapses, and whether
spikeship can import the network (:func:`.netx_import.netx_to_nir`) or why not.

Per layer (netx order): type, neuron model and its integers (``iDecay``, ``vDecay``,
``vThMant``), input and output shape (NIR order ``(C, H, W)`` / ``(N,)``), weight
entries (``synapses``; a conv kernel's entries, shared over positions, as for NIR),
non-zero weights, sparsity, neurons (every layer with a neuron, the input layer
included), and whether it has axonal delays or a recurrent matrix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spikeship.errors import GraphError, SpikeshipError
from spikeship.targets.loihi.netx_import import read_netx


def _row(i: int, layer: dict, in_shape) -> tuple[dict, tuple[int, ...] | None]:
    kind = str(layer.get("type", "")).strip()
    shape = tuple(int(v) for v in np.asarray(layer.get("shape", ())).ravel())
    row: dict = {"name": f"layer{i}", "type": f"netx:{kind}", "in": list(in_shape or ()),
                 "out": list(shape)}
    neuron = layer.get("neuron")
    if kind in ("dense", "dense_rec", "dense_comp") and shape:
        shape = (int(np.prod(shape)),)
        row["out"] = list(shape)
    if kind == "flatten" and in_shape:
        shape = (int(np.prod(in_shape)),)
        row["out"] = list(shape)
    if isinstance(neuron, dict):
        row["neuron"] = str(neuron.get("type", ""))
        row.update({k: int(neuron[k]) for k in ("iDecay", "vDecay", "vThMant", "refDelay")
                    if k in neuron})
        row["neurons"] = int(np.prod(shape)) if shape else 0
    elif kind in ("dense", "dense_rec"):
        row["neuron"] = "none (netx default: non-spiking integrator)"
        row["neurons"] = int(np.prod(shape)) if shape else 0
    weights = [np.asarray(layer[k]) for k in ("weight", "weight_rec", "weight/real",
                                              "weight/imag") if k in layer and kind != "input"]
    if isinstance(layer.get("weight"), dict):        # dense_comp: weight/{real, imag}
        weights = [np.asarray(v) for v in layer["weight"].values()]
    if weights:
        n = sum(int(w.size) for w in weights)
        nz = sum(int(np.count_nonzero(w)) for w in weights)
        row.update({"shape": list(weights[0].shape), "synapses": n, "nonzero": nz,
                    "sparsity": 1.0 - nz / n if n else 0.0})
    if "delay" in layer:
        d = np.asarray(layer["delay"])
        row["axonal_delay_max"] = int(d.max(initial=0))
    if kind == "dense_rec":
        row["recurrent"] = True
    return row, (shape or in_shape)


def describe_netx(path: str | os.PathLike) -> dict:
    """A dict describing the netx file at ``path`` (see the module docstring)."""
    from spikeship.targets.loihi.netx_import import netx_to_nir

    path = Path(path)
    layers = read_netx(path)
    rows, shape = [], None
    for i, layer in enumerate(layers):
        try:
            row, shape = _row(i, layer, shape)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise GraphError(f"{path}: layer {i} is malformed: {type(e).__name__}: {e}") from e
        rows.append(row)
    try:
        netx_to_nir(path)
        importable: bool | str = True
    except SpikeshipError as e:
        importable = str(e)
    syn = sum(r.get("synapses", 0) for r in rows)
    nz = sum(r.get("nonzero", 0) for r in rows)
    return {"file": str(path), "format": "netx (lava-dl HDF5)", "layers": rows,
            "importable": importable, "synapses_total": syn, "nonzero_total": nz,
            "neurons_total": sum(r.get("neurons", 0) for r in rows),
            "sparsity": 1.0 - nz / syn if syn else 0.0}


def is_netx(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with netx's ``layer`` group (spikeship's own
    ``model.net`` included); a damaged file is a :class:`GraphError`."""
    import h5py

    from spikeship.nir.read import H5_ERRORS

    try:
        from spikeship.safeopen import open_hdf5

        with open_hdf5(path, "netx file") as f:   # links, storage, filters, size checked
            return "layer" in f and isinstance(f["layer"], h5py.Group)
    except OSError as e:
        raise GraphError(f"{path} is not an HDF5 (netx) file: {e}") from e
    except H5_ERRORS as e:
        raise GraphError(f"{path}: cannot read the HDF5 file (damaged?): "
                         f"{type(e).__name__}: {e}") from e

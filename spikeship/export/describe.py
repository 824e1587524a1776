"""What a ``.nir`` / ``.onnx`` / ``.net`` file holds (``spikeship inspect FILE``).

Per layer: type, input and output shape, synapses (weight entries), non-zero weights
and sparsity (``1 - nonzero / entries``), neurons. A NIR file is read and validated
by :func:`~spikeship.nir.read.read_nir`; ONNX by ``onnx.load`` (initializers
and op counts); lava-dl netx ``.net`` files are described in the targets layer
(:mod:`spikeship.targets.loihi.netx_describe`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from spikeship.errors import GraphError
from spikeship.nir.categories import NEURONS
from spikeship.nir.read import Limits, read_nir
from spikeship.safeopen import load_onnx


def weights_row(name, kind, w: np.ndarray, extra: dict | None = None) -> dict:
    """One described layer: ``w``'s shape, entries (synapses), non-zero entries, sparsity."""
    nz = int(np.count_nonzero(w))
    return {"name": name, "type": kind, "shape": list(w.shape), "synapses": int(w.size),
            "nonzero": nz, "sparsity": 1.0 - nz / w.size if w.size else 0.0, **(extra or {})}


def describe_nir(path: Path) -> dict:
    g = read_nir(path)
    rows = []
    for n in g.order:
        node, t = g.nodes[n], g.type_of(n)
        row = {"name": n, "type": t, "in": list(g.in_shape[n]), "out": list(g.out_shape[n])}
        if hasattr(node, "weight"):
            row.update({k: v for k, v in weights_row(n, t, np.asarray(node.weight)).items()
                        if k not in ("name", "type")})
            mask = (node.metadata or {}).get("mask")
            if mask is not None:
                row["mask_synapses"] = int(np.count_nonzero(mask))
        if t in NEURONS:
            row["neurons"] = int(np.prod(g.out_shape[n]))
        if g.recurrent[n]:
            row["recurrent_from"] = list(g.recurrent[n])
        rows.append(row)
    meta = {k: (v.tolist() if isinstance(v, np.ndarray) else
                v.item() if isinstance(v, np.generic) else v) for k, v in g.metadata.items()}
    return {"file": str(path), "format": "nir", "metadata": meta, "dt_s": g.dt_s,
            "layers": rows, **totals(rows)}


def describe_onnx(path: Path, limits=None) -> dict:
    limits = limits or Limits()
    model = load_onnx(path, ops=None)     # any operator may be shown; no external data
    if not model.graph.node:
        raise GraphError(f"{path} is not an ONNX model: it holds no graph nodes")
    rows = []
    arrays: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        name = _text(init.name)      # protobuf hands back bytes for a name that is not UTF-8
        n = float(np.prod(np.asarray(init.dims, dtype=np.float64))) if init.dims else 1.0
        if n > limits.max_array_elements:
            raise GraphError(f"{path}: initializer {init.name!r} declares {list(init.dims)} = "
                             f"{n:.0f} elements (limit {limits.max_array_elements}); "
                             "refusing to read it")
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise GraphError(f"{path}: initializer {init.name!r} lives in an external file; "
                             "spikeship exports are self-contained and reads no other file")
        try:
            w = numpy_helper.to_array(init)
        except (ValueError, TypeError, KeyError) as e:
            raise GraphError(f"{path}: initializer {init.name!r} is malformed: {e}") from e
        arrays[name] = w
        if w.ndim >= 2 and not name.endswith((".ones", ".indices")):  # pools: no synapses
            rows.append(weights_row(name, "initializer", w))
    for name in [n for n in arrays if n.endswith(".weight.values")]:
        # coordinate form of a pruned layer: only surviving synapses are stored
        base = name[: -len(".values")]
        dense = _dense_from_coordinates(path, base, arrays, limits)
        row = weights_row(base, "coordinate form (pruned synapses not stored)", dense)
        row["stored"] = int(arrays[name].size)
        rows.append(row)
    ops = Counter(_text(n.op_type) for n in model.graph.node)
    io = {"inputs": [(_text(i.name), [_text(d.dim_param) or d.dim_value
                                      for d in i.type.tensor_type.shape.dim])
                     for i in model.graph.input],
          "outputs": [_text(o.name) for o in model.graph.output]}
    return {"file": str(path), "format": "onnx", "ir_version": model.ir_version,
            "opset": [(o.domain or "ai.onnx", o.version) for o in model.opset_import],
            "metadata": {_text(p.key): _text(p.value) for p in model.metadata_props
                         if _text(p.key) != "layers"},
            "ops": dict(ops), **io, "layers": rows, **totals(rows)}


def _dense_from_coordinates(path: Path, base: str, arrays: dict, limits) -> np.ndarray:
    """``<base>.values`` scattered at ``<base>.indices`` into zeros of ``<base>.shape``,
    every part checked first (a file is untrusted: sizes, index ranges, dtypes)."""
    values, idx, shape = (arrays.get(f"{base}.{k}") for k in ("values", "indices", "shape"))
    if idx is None or shape is None:
        raise GraphError(f"{path}: {base}.values without {base}.indices / {base}.shape")
    shape = np.asarray(shape)
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or np.any(shape < 0):
        raise GraphError(f"{path}: {base}.shape {shape.tolist()} is not a list of sizes")
    if float(np.prod(shape, dtype=np.float64)) > limits.max_array_elements:
        raise GraphError(f"{path}: {base}.shape {shape.tolist()} exceeds "
                         f"{limits.max_array_elements} elements; refusing to allocate it")
    values, idx = np.asarray(values).reshape(-1), np.asarray(idx)
    if idx.dtype.kind not in "iu" or idx.shape != (values.size, shape.size):
        raise GraphError(f"{path}: {base}.indices {idx.shape} do not fit {values.size} values "
                         f"of a rank-{shape.size} weight")
    if idx.size and (np.any(idx < 0) or np.any(idx >= shape)):
        raise GraphError(f"{path}: {base}.indices point outside the shape {shape.tolist()}")
    dense = np.zeros(tuple(int(d) for d in shape), dtype=values.dtype)
    dense[tuple(idx[:, k] for k in range(shape.size))] = values
    return dense


def _text(v) -> str:
    return v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)


def totals(rows: list[dict]) -> dict:
    """Synapses, non-zero weights, neurons and sparsity summed over described ``rows``."""
    syn = sum(r.get("synapses", 0) for r in rows)
    nz = sum(r.get("nonzero", 0) for r in rows)
    return {"synapses_total": syn, "nonzero_total": nz,
            "neurons_total": sum(r.get("neurons", 0) for r in rows),
            "sparsity": 1.0 - nz / syn if syn else 0.0}


def describe_file(path: str | Path) -> dict:
    """A dict describing ``path`` by its suffix (``.nir``, ``.onnx``); netx files
    (``.net`` / ``.h5``) are read in the targets layer
    (:func:`spikeship.targets.loihi.netx_describe.describe`)."""
    path = Path(path)
    if not path.exists():
        raise GraphError(f"no file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".nir":
        return describe_nir(path)
    if suffix == ".onnx":
        return describe_onnx(path)
    raise GraphError(f"{path}: unknown file type {suffix!r} (expected .nir, .onnx or .net)")

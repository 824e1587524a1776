"""ONNX files: no external data, only spikeship's operators for simulation and energy,
coordinate forms checked (see :mod:`spikeship.safeopen`)."""

from __future__ import annotations

import os

from spikeship.errors import GraphError, SpikeshipError
from spikeship.safeopen.files import LIMITS, FileLimits, _human, check_alloc, read_bytes

ONNX_OPS = frozenset({"Add", "AveragePool", "Cast", "Concat", "ConstantOfShape", "Conv",
                      "Flatten", "Gather", "Gemm", "Greater", "Identity", "Mul", "ScatterND",
                      "Sub", "Unsqueeze", "Where"})


def load_onnx(path: str | os.PathLike, *, ops: frozenset[str] | None = ONNX_OPS,
              error: type[SpikeshipError] = GraphError, limits: FileLimits = LIMITS):
    """The ``onnx.ModelProto`` of ``path``: size-checked, no external data anywhere, and
    (unless ``ops`` is None) only operators in ``ops`` of the default domain."""
    import onnx
    from google.protobuf.message import DecodeError

    data = read_bytes(path, "ONNX file", limits.onnx_bytes, error)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise error(f"cannot read ONNX file {path}: {e}") from e
    check_onnx(model, path, ops=ops, error=error)
    return model


def check_onnx(model, path, *, ops: frozenset[str] | None = ONNX_OPS,
               error: type[SpikeshipError] = GraphError) -> None:
    """Refuse external data (anywhere in the model) and operators outside ``ops``."""
    from onnx import TensorProto

    def external(t, where: str) -> None:
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            loc = {e.key: e.value for e in t.external_data}.get("location", "?")
            raise error(f"{path}: {where} {t.name!r} keeps its data in an external file "
                        f"({loc}); spikeship reads no ONNX external data")

    def graph(g, where: str) -> None:
        for t in g.initializer:
            external(t, f"{where}initializer")
        for sp in g.sparse_initializer:
            external(sp.values, f"{where}sparse initializer")
            external(sp.indices, f"{where}sparse initializer indices")
        for node in g.node:
            if ops is not None and (node.domain not in ("", "ai.onnx") or node.op_type not in ops):
                dom = f" (domain {node.domain!r})" if node.domain else ""
                raise error(f"{path}: node {node.name!r} is a {node.op_type}{dom}, an operator "
                            f"spikeship does not write; accepted: {', '.join(sorted(ops))}")
            for a in node.attribute:
                if a.HasField("t"):
                    external(a.t, f"{where}attribute {a.name} of node")
                for t in a.tensors:
                    external(t, f"{where}attribute {a.name} of node")
                if a.HasField("sparse_tensor"):
                    external(a.sparse_tensor.values, f"{where}attribute {a.name} of node")
                if a.HasField("g"):
                    graph(a.g, f"{where}subgraph {a.name}: ")
                for sub in a.graphs:
                    graph(sub, f"{where}subgraph {a.name}: ")

    graph(model.graph, "")
    _check_onnx_sparse(model.graph, path, error)
    for fn in model.functions:
        if ops is not None:
            raise error(f"{path}: the model defines function {fn.name!r}; spikeship writes none")


def check_coordinates(values, indices, shape, where: str, path, error=GraphError,
                      max_bytes: int = LIMITS.array_bytes) -> tuple[int, ...]:
    """A coordinate-form tensor (``values`` (nnz,), ``indices`` (nnz, rank) or linear
    (nnz,), dense ``shape``): sizes within ``max_bytes`` before the dense tensor is
    allocated, every index inside the shape, no coordinate twice (a scatter would keep
    one of the duplicates, silently). Returns the shape."""
    import numpy as np

    shape, idx = np.asarray(shape), np.asarray(indices)
    if shape.ndim != 1 or shape.dtype.kind not in "iu" or np.any(shape < 0):
        raise error(f"{path}: {where} shape {shape.tolist()} is not a list of sizes")
    dims = tuple(int(d) for d in shape)
    check_alloc(dims, max(np.asarray(values).dtype.itemsize, 1), f"{path}: {where}", error,
                max_bytes)
    nnz = int(np.asarray(values).size)
    linear = idx.ndim == 1
    if idx.dtype.kind not in "iu" or idx.shape != ((nnz,) if linear else (nnz, len(dims))):
        raise error(f"{path}: {where} indices {list(idx.shape)} do not fit {nnz} values of "
                    f"a rank-{len(dims)} tensor")
    if not nnz:
        return dims
    bound = np.asarray([int(np.prod(dims, dtype=np.float64))] if linear else dims)
    if np.any(idx < 0) or np.any(idx.reshape(nnz, -1) >= bound):
        raise error(f"{path}: {where} indices point outside the shape {list(dims)}")
    flat = idx.astype(np.int64) if linear else np.ravel_multi_index(idx.astype(np.int64).T, dims)
    if np.unique(flat).size != nnz:
        raise error(f"{path}: {where} lists a coordinate more than once "
                    f"({nnz - np.unique(flat).size} duplicate(s)); each synapse is stored once")
    return dims


def _check_onnx_sparse(g, path, error) -> None:
    """Every sparse initializer and spikeship coordinate form (``<w>.values``,
    ``<w>.indices``, ``<w>.shape``) of graph ``g``: :func:`check_coordinates`."""
    for sp in g.sparse_initializer:
        check_coordinates(_onnx_array(sp.values, path, error), _onnx_array(sp.indices, path,
                          error), list(sp.dims), f"sparse initializer {sp.values.name!r}",
                          path, error)
    inits = {t.name: t for t in g.initializer}
    for name in inits:
        if not name.endswith(".values"):
            continue
        base = name[: -len(".values")]
        parts = [inits.get(f"{base}.{k}") for k in ("indices", "shape")]
        if any(p is None for p in parts):
            continue
        check_coordinates(_onnx_array(inits[name], path, error),
                          _onnx_array(parts[0], path, error),
                          _onnx_array(parts[1], path, error), f"coordinate form {base!r}",
                          path, error)


def _onnx_array(t, path, error):
    """``numpy_helper.to_array`` of a tensor, its declared size checked first."""
    import numpy as np
    from onnx import numpy_helper

    n = float(np.prod(np.asarray(t.dims, dtype=np.float64))) if t.dims else 1.0
    if n * 8 > LIMITS.array_bytes:
        raise error(f"{path}: tensor {t.name!r} declares {list(t.dims)} = {n:.0f} elements, "
                    f"more than the limit of {_human(LIMITS.array_bytes)} for one array; "
                    f"refusing to read it")
    try:
        return numpy_helper.to_array(t)
    except (ValueError, TypeError, KeyError) as e:
        raise error(f"{path}: tensor {t.name!r} is malformed: {e}") from e

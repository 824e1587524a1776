"""Run anyone's network: a standalone ``.nir`` or lava-dl netx ``.net`` file, no training run.

``spikeship simulate FILE`` / ``spikeship energy FILE`` with ``--input X.npy`` turn the
file into an output directory that looks like a run directory to every target and to
the energy estimator:

- ``model.nir``: the file itself (validated by spikeship's importer), or the NIR graph
  imported from the netx file (:mod:`spikeship.targets.loihi.netx_import`: netx's own
  integers kept, so ``lava-fixed`` and ``loihi-emu`` run it bit for bit). ``--dt`` is
  written into its metadata (NIR has no default time step).
- ``input.npy`` / ``labels.npy``: what was run, so the directory is self-contained.
- ``simulate-<target>.json/.npz`` and ``energy.json`` as for a run directory.

Input ``X.npy``: ``(N, T, *input_shape)`` spikes/currents per step, or ``(N,
*input_shape)`` static currents repeated for ``--timesteps`` steps (direct encoding).
For a netx file with an input neuron layer the values are that layer's ``a_in``
integers (lava-dl's reference tests load the same image into its bias).
"""

from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np

from spikeship.errors import ConfigError, RunDirError
from spikeship.export.nir_export import write_nir
from spikeship.io import atomic_path, write_json_atomic
from spikeship.nir.categories import TIMED
from spikeship.nir.conventions import prepare as prepare_graph
from spikeship.nir.read import load_graph, read_nir
from spikeship.sim import registry
from spikeship.targets.loihi.netx_import import netx_to_nir
from spikeship.runlock import STANDALONE, run_lock

SNNTORCH_DT_S = 1e-4      # snnTorch's export_to_nir: tau = dt / (1 - beta) with dt = 1e-4


def _read_graph(path: Path, convention: str, record: dict) -> nir.NIRGraph:
    def _prepare(graph):
        graph, rec = prepare_graph(graph, convention)
        record.update(rec)
        return graph

    return read_nir(path, prepare=_prepare).graph


def load_file(path: str | os.PathLike, convention: str = "nir",
              record: dict | None = None) -> nir.NIRGraph:
    """The NIR graph of a ``.nir`` file (normalised, read with the producer ``convention``:
    :mod:`spikeship.nir.conventions`; what was done goes into ``record``) or of a netx
    ``.net`` / ``.h5`` file."""
    path = Path(path)
    record = {} if record is None else record
    if not path.is_file():
        raise RunDirError(f"no file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".nir":
        return _read_graph(path, convention, record)
    if suffix in (".net", ".h5", ".hdf5"):
        return netx_to_nir(path)
    raise ConfigError(f"{path}: expected a .nir or a netx .net file, got {suffix!r}")


def with_dt(graph: nir.NIRGraph, dt_s: float | None, source: str) -> nir.NIRGraph:
    """``graph`` with ``dt`` metadata: ``dt_s`` if given, else its own; a graph without
    one whose neurons need it is a one-line :class:`ConfigError`."""
    meta = dict(graph.metadata or {})
    if dt_s is not None:
        if not (dt_s > 0 and np.isfinite(dt_s)):
            raise ConfigError(f"--dt must be a positive number of seconds, got {dt_s}")
        meta["dt"] = float(dt_s)
    elif meta.get("dt") is None:
        kinds = sorted({type(n).__name__ for n in graph.nodes.values()} & set(TIMED))
        if kinds:
            raise ConfigError(f"{source} has no 'dt' metadata and its {', '.join(kinds)} nodes "
                              f"need one: pass --dt SECONDS, or the producer's --convention, "
                              "which knows its dt (snnTorch's export_to_nir writes none; its "
                              "convention is dt = 1e-4 s: --convention snntorch or --dt 1e-4)")
    return nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, metadata=meta, type_check=False)


def load_inputs(path: str | os.PathLike, input_shape: tuple[int, ...],
                timesteps: int | None) -> np.ndarray:
    """``(N, T, *input_shape)`` from ``X.npy`` (see the module docstring)."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read --input {path}: {e}") from e
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"--input {path}: numbers expected, got dtype {x.dtype}")
    shape, k = tuple(input_shape), len(input_shape)
    if x.ndim == k + 2 and tuple(x.shape[2:]) == shape:
        if timesteps is not None and timesteps != x.shape[1]:
            raise ConfigError(f"--timesteps {timesteps} but --input has T = {x.shape[1]}")
        out = x
    elif x.ndim == k + 1 and tuple(x.shape[1:]) == shape:
        if timesteps is None:
            raise ConfigError(f"--input {path} is static (N, {', '.join(map(str, shape))}): "
                              "pass --timesteps T to repeat it over T steps")
        out = np.repeat(x[:, None], int(timesteps), axis=1)
    else:
        raise ConfigError(f"--input {path} has shape {x.shape}; the graph's input is "
                          f"{list(shape)}: expected (N, T, {', '.join(map(str, shape))}) or "
                          f"(N, {', '.join(map(str, shape))}) with --timesteps")
    if out.shape[0] < 1 or out.shape[1] < 1:
        raise ConfigError(f"--input {path} holds no sample or no step: {x.shape}")
    if not np.all(np.isfinite(out)):
        raise ConfigError(f"--input {path} contains NaN or Inf")
    return np.ascontiguousarray(out.astype(np.float64 if x.dtype.kind == "f" else np.int64))


def load_labels(path: str | os.PathLike | None, n: int) -> np.ndarray | None:
    if path is None:
        return None
    try:
        y = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read --labels {path}: {e}") from e
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ConfigError(f"--labels {path} must be ({n},) integers, got {y.shape} {y.dtype}")
    return y.astype(np.int64)


def prepare(file: str | os.PathLike, out: str | os.PathLike, *, input_path, labels_path=None,
            dt_s: float | None = None, timesteps: int | None = None, convention: str = "nir"
            ) -> tuple[Path, np.ndarray, np.ndarray | None]:
    """Write ``out/model.nir`` (+ ``input.npy``, ``labels.npy``, ``standalone.json``);
    return the directory, inputs and labels."""
    file, out = Path(file), Path(out)
    record: dict = {}
    graph = with_dt(load_file(file, convention, record), dt_s, str(file))
    loaded = load_graph(graph)          # validates (shapes, NaN, edges) before writing
    x = load_inputs(input_path, tuple(loaded.out_shape[loaded.input]), timesteps)
    y = load_labels(labels_path, x.shape[0])
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    write_nir(graph, out / "model.nir")
    _save_npy(out / "input.npy", x)
    if y is not None:
        _save_npy(out / "labels.npy", y)
    elif (out / "labels.npy").exists():
        (out / "labels.npy").unlink()
    write_json_atomic(out / "standalone.json", {
        "source_file": str(file), "dt_s": graph.metadata.get("dt"),
        "input": str(input_path), "input_shape": list(x.shape),
        "labels": None if labels_path is None else str(labels_path), "convention": record})
    return out, x, y


def _save_npy(path: Path, a: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, a)


def default_out(file: str | os.PathLike) -> Path:
    """``<file stem>.spikeship/`` beside the file."""
    p = Path(file)
    return p.with_name(p.stem + ".spikeship")


def simulate_file(file, target: str, *, input_path, labels_path=None, dt_s=None,
                  timesteps=None, out=None, options: dict | None = None, convention="nir"):
    """Run ``target`` on a standalone file; compared with the reference simulator (the
    yardstick when there is no trained model). Returns the result (saved in ``out``)."""
    if target == "snntorch":
        raise ConfigError("target 'snntorch' needs a training run; a standalone file has none")
    if target == "onnx":
        raise ConfigError("target 'onnx' needs a trained run (its model.onnx comes from "
                          "`spikeship export` of a checkpoint); a standalone file has none: "
                          "run --target reference, norse, lava-float, lava-fixed or loihi-emu")
    sim = registry.get(target)
    opts = sim.parse_options(dict(options or {}))       # refused before anything is written
    out = Path(out or default_out(file))
    with output_lock(out, f"simulate {Path(file).name}"):
        return _simulate_file(file, target, sim, opts, input_path=input_path,
                              labels_path=labels_path, dt_s=dt_s, timesteps=timesteps,
                              out=out, convention=convention), out


def output_lock(out: Path, what: str):
    """The lock of a standalone output directory: created if missing, refused when it
    holds anything but an earlier standalone output (a training run, unrelated files)."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file")
    return run_lock(out, what, create=True, kind=STANDALONE)


def _simulate_file(file, target, sim, opts, *, input_path, labels_path, dt_s, timesteps, out,
                   convention):
    out, x, y = prepare(file, out, input_path=input_path, labels_path=labels_path, dt_s=dt_s,
                        timesteps=timesteps, convention=convention)
    result = _flat(sim.run(out, x, y, opts))
    if target != "reference":
        base = _flat(registry.get("reference").run(out, x, y, {}))
        base.compare_to(base)
        base.save(out)
        result.compare_to(base)
    else:
        result.compare_to(result)
    result.extra["compared_with"] = "reference"
    result.save(out)
    return result


def _flat(result):
    """Output spikes as ``(N, T, outputs)`` whatever the output node's shape (the Loihi
    targets flatten it; the reference keeps e.g. ``(C, 1, 1)``)."""
    o = result.output_spikes
    result.output_spikes = o.reshape(o.shape[0], o.shape[1], -1)
    return result


def is_standalone_file(path: str | os.PathLike) -> bool:
    """Whether a CLI argument names a model file (not a run directory)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in (".nir", ".net", ".h5", ".hdf5")


def check_mode(path: Path, input_path, **file_only) -> bool:
    """True for a standalone FILE (then ``--input`` is required), False for a run
    directory (then the FILE-only options must be absent)."""
    if is_standalone_file(path):
        if input_path is None:
            raise ConfigError(f"{path} is a model file: pass --input X.npy (N, T, *input) or "
                              "(N, *input) with --timesteps")
        return True
    given = [k for k, v in {"--input": input_path, **file_only}.items() if v is not None]
    if path.is_file():
        raise ConfigError(f"{path} is a file but not .nir or .net: expected a run directory "
                          "or a model file")
    if given:
        raise ConfigError(f"{', '.join(given)} only apply to a model FILE, not a run directory")
    return False

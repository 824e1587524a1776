"""ONNX Runtime target: run ``model.onnx`` (see :mod:`spikeship.export.onnx_export`).

The stateful single-step graph (``mode="step"``) runs batched: zeros as the first
membrane state, each step's ``v_<lif>_next`` fed back as ``v_<lif>``, spikes of every
neuron layer read from ``z_<lif>``. An unrolled graph (``mode="unrolled"``) runs the
whole sequence in one call; its length must equal the input's ``T``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import Field

from spikeship._optional import require
from spikeship.errors import GraphError, SimulationError
from spikeship.safeopen import load_onnx
from spikeship.sim.base import Capabilities, Options, PositiveInt, Simulator, ThreadCount
from spikeship.sim.result import SimResult


def _ort_errors(ort) -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (pybind types deriving from ``Exception``)."""
    state = ort.capi.onnxruntime_pybind11_state
    own = tuple(v for v in vars(state).values()
                if isinstance(v, type) and issubclass(v, Exception))
    return own + (RuntimeError, ValueError)


def open_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime session on CPU for ``path`` (GraphError if ORT cannot load it)."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # checked first (size, no external data, only spikeship's operators), then handed to
    # ORT as bytes: ORT never opens a path, so it cannot resolve external data either
    model = load_onnx(path)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        # names and metadata are strings from the file: a damaged one does not decode
        _ = (dict(sess.get_modelmeta().custom_metadata_map),
             [(i.name, i.shape) for i in sess.get_inputs()],
             [o.name for o in sess.get_outputs()])
    except _ort_errors(ort) + (UnicodeDecodeError,) as e:
        raise GraphError(f"onnxruntime cannot load {path}: {e}") from e
    return sess


def simulate_onnx(path: str | os.PathLike, inputs: np.ndarray, *, batch_size: int = 256,
                  threads: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Run the ONNX file on ``inputs`` (N, T, *input shape).

    Returns (output spikes (N, T, classes), spike counts per neuron layer summed over
    samples and steps, the model's metadata).
    """
    sess = open_session(path, threads)
    errors = _ort_errors(require("onnxruntime"))
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    mode = meta.get("mode", "step")
    check_interface(sess, mode)
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    n, steps = inputs.shape[:2]
    in_names = [i.name for i in sess.get_inputs()]
    outs, counts = [], {}
    try:
        for lo in range(0, n, batch_size):
            xb = inputs[lo:lo + batch_size]
            if mode == "unrolled":
                y, c = _run_unrolled(sess, xb)
            else:
                y, c = _run_step(sess, xb, in_names)
            outs.append(y)
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
    except errors as e:
        raise SimulationError(f"onnxruntime failed on {path}: {e}") from e
    return np.concatenate(outs), {k: v.astype(np.int64) for k, v in counts.items()}, meta


def check_interface(sess, mode: str, max_state_elements: int = 1 << 26) -> None:
    """The inputs/outputs a spikeship ONNX export has (GraphError naming what is missing),
    and state shapes that are concrete and of a sane size (checked before allocating)."""
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    if "x" not in in_names or "spikes" not in out_names:
        raise GraphError("the ONNX model has no input 'x' or no output 'spikes' "
                         "(not a spikeship export?)")
    if mode == "unrolled":
        return
    for i in sess.get_inputs():
        if i.name == "x":
            continue
        dims = list(i.shape[1:])
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise GraphError(f"ONNX state input {i.name!r} has no concrete shape: {i.shape}")
        if float(np.prod(dims, dtype=np.float64)) > max_state_elements:
            raise GraphError(f"ONNX state input {i.name!r} declares {dims} elements per sample "
                             f"(limit {max_state_elements}); refusing to allocate it")
        if f"{i.name}_next" not in out_names:
            raise GraphError(f"ONNX state input {i.name!r} has no output {i.name + '_next'!r}")


def _run_step(sess, xb: np.ndarray, in_names: list[str]):
    states = {i.name: np.zeros((xb.shape[0], *i.shape[1:]), dtype=np.float32)
              for i in sess.get_inputs() if i.name != "x"}
    out_names = [o.name for o in sess.get_outputs()]
    zs = [o for o in out_names if o.startswith("z_")]
    spikes, counts = [], {z[2:]: 0 for z in zs}
    for t in range(xb.shape[1]):
        res = dict(zip(out_names, sess.run(out_names, {"x": xb[:, t], **states})))
        spikes.append(res["spikes"])
        for name in states:
            states[name] = res[f"{name}_next"]
        for z in zs:
            counts[z[2:]] = counts[z[2:]] + res[z].sum(0)
    return np.stack(spikes, axis=1), counts


def _run_unrolled(sess, xb: np.ndarray):
    want = sess.get_inputs()[0].shape[1]
    if isinstance(want, int) and want != xb.shape[1]:
        raise SimulationError(f"the unrolled ONNX graph has {want} steps, the input {xb.shape[1]}")
    out_names = [o.name for o in sess.get_outputs()]
    res = dict(zip(out_names, sess.run(out_names, {"x": xb})))
    counts = {o[len("count_"):]: res[o].sum(0) for o in out_names if o.startswith("count_")}
    return res["spikes"], counts


def run_target(run_dir: str | os.PathLike, inputs: np.ndarray, labels: np.ndarray | None,
               options: dict | None = None) -> SimResult:
    """Target ``onnx``: ``run_dir/model.onnx`` in ONNX Runtime; ``options``:
    :class:`OnnxOptions`."""
    o = SIMULATOR.parse_options(options)
    path = Path(run_dir) / "model.onnx"
    if not path.exists():
        raise GraphError(f"no ONNX export at {path} (run `spikeship export {run_dir}` first)")
    t0 = time.perf_counter()
    out, counts, meta = simulate_onnx(path, inputs, batch_size=o.batch_size,
                                      threads=o.threads)
    wall = time.perf_counter() - t0
    return SimResult.from_run("onnx", inputs, out, counts, labels, wall,
                              {"onnx_mode": meta.get("mode"), "opset": 17})


class OnnxOptions(Options):
    batch_size: PositiveInt = Field(256, description="samples per batch")
    threads: ThreadCount = Field(1, description="ONNX Runtime intra-op threads")


SIMULATOR = Simulator(
    name="onnx", artifact="model.onnx", summary="ONNX Runtime on the stateful step graph",
    options=OnnxOptions,
    capabilities=Capabilities(precision=("float",), recurrent=True, conv=True,
                              per_neuron_tau=True),
    run_function="spikeship.sim.onnx_runner:run_target", spike_source_rank=7)

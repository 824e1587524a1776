"""ONNX Runtime latency of a dense vs a pruned ``model.onnx``, against their MAC ratio, in one run.

The runs: the dense and the DPAP (CLI defaults) run of ``--dataset`` / ``--seed``
(default digits, seed 0), made by :mod:`benchmarks.runs` (the same folders the pruning
benchmark uses). Both runs' checkpoints are exported to a step graph now, by this
checkout's exporter, into a scratch directory (what ``spikeship export RUN`` writes; a
``model.onnx`` left by an older exporter would time two exporters, not the pruning).
Three things, in this order:

1. **Structure.** Pruned channels / neurons must be physically absent from the file: for
   every prunable layer of the checkpoint, the weight ONNX Runtime multiplies (an
   initializer, or the dense tensor the exporter's ``ScatterND`` rebuilds at load time)
   must have ``units kept`` rows and ``producer units kept x in_block`` columns, not the
   trained full shape with zero rows. Rows or columns that are all zero in a kept shape
   (a unit left without synapses) are counted and reported, never hidden.
2. **MACs of the shapes executed.** For every ``Conv`` / ``Gemm`` / ``MatMul`` of the
   graph, MACs per sample and call from the weight's shape and the output shape that
   ``onnx.shape_inference`` (with data propagation, so the ``ScatterND`` rebuild has its
   shape) infers::

       Conv:   prod(Y.shape[1:]) * prod(W.shape[1:])      (W: C_out, C_in/group, kh, kw)
       Gemm:   prod(Y.shape[1:]) * K                      (K = A.shape[-1], A: batch x K)
       MatMul: prod(Y.shape[1:]) * A.shape[-1]

   A sum pool the exporter writes as a grouped ``Conv`` of ``ones`` (a window whose
   area is not a power of two) counts too: ONNX Runtime runs it. One written as
   ``Mul(AveragePool(x), k*k)`` multiplies no weight: its outputs count among the
   elementwise ones (item 4), not as MACs.
   The weight shapes are cross-checked against the graph ONNX Runtime itself keeps after
   constant folding (``ORT_ENABLE_BASIC``, saved with ``optimized_model_filepath``); the
   share of zeros in those folded weights (unstructured pruning ONNX Runtime still
   multiplies) is reported.
3. **Latency.** Batch ``--batch`` (64), one session per model with
   ``intra_op_num_threads = inter_op_num_threads = 1``, one inference = all ``T`` steps
   of the step graph (membranes fed back, zeros first) or one call of an unrolled graph;
   the same seeded uniform inputs for both (dense kernels: the time does not depend on
   the values). ``--rounds`` rounds, in each ``--calls`` inferences of each model, the
   order alternating (dense first in even rounds, pruned first in odd ones) so that a
   change of machine load hits both alike. Reported: median and IQR of the time per
   inference over rounds, and the speed-up as the median (and IQR) of the per-round
   paired ratios dense / pruned.

4. **Where the time goes** (informative, not part of the criterion): ONNX Runtime's own
   profile per node (kernel time per inference, in the graph ORT optimised), the output
   elements per sample of the other per-step nodes (the LIF's Sub / Mul / Add / Greater
   / Cast: work that shrinks with the neurons kept, not the synapses), the FLOP
   ratio of all ops (2 x MACs + those elements), and the MAC ratio with group-1 Conv
   channels rounded up to ORT's NCHWc block (16 floats with AVX-512, else 8), since ORT
   pads channels to it (15 and 9 channels both cost 16). And the speed-up of the
   **synapse chain alone** (:func:`synapse_chain`: the same Conv / Gemm / pool nodes
   with every LIF left out, timed the same interleaved way): how ORT's own kernels
   scale with the pruned shapes. A whole graph's time is about the chain's plus the
   LIF's, so its speed-up lies about between the two parts' ratios; the LIF's work
   shrinks at most as its neurons (dense / pruned, from the membrane inputs). The
   larger of the chain's speed-up and that neuron ratio is thus an *estimate* of the
   most a rewrite of the LIF arithmetic could give, not a strict bound: the chain timed
   alone does not share the whole graph's caches. Last, **each synapse node alone**
   (:func:`synapse_nodes`: one graph per layer holding only its Conv / Gemm, fed its
   input shape): ONNX Runtime's kernel for that layer, dense shape against pruned
   shape, with nothing of the rest of the graph; a layer whose node alone speeds up
   far less than its MAC ratio caps what any export of this network can reach here.
   ``speedup_cap_synapse_nodes`` puts a number on it: the dense graph's time with its
   synapse nodes as timed alone and every other node's time (LIF, pools, the runtime's
   per-call work) divided by the whole MAC ratio, over the pruned synapse nodes' time
   plus that rest (an estimate: nodes timed alone share no caches).

Criterion: measured speed-up >= 0.8 x MAC ratio (dense / pruned); the result records
whether it held (``criterion_held``). Exit code 1 when the structure check fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common, runs
from spikeship.errors import SpikeshipError

FACTOR = 0.8
MAC_OPS = ("Conv", "Gemm", "MatMul")


# ---- MACs of the executed shapes ---------------------------------------------------------
def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in vi.type.tensor_type.shape.dim]


def _attr(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _prod(xs) -> int:
    out = 1
    for x in xs:
        if not isinstance(x, int):
            raise ValueError(f"unknown dimension {x!r}")
        out *= x
    return out


def count_macs(model) -> list[dict]:
    """Per Conv / Gemm / MatMul node of ``model`` (an ``onnx.ModelProto``): its name, op,
    weight name and shape, output shape and MACs per sample (see the module docstring).

    Shapes come from ``onnx.shape_inference.infer_shapes(model, data_prop=True)``; dim 0
    of activations is the batch. Raises ``ValueError`` when a shape cannot be inferred.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    g = inferred.graph
    shapes: dict[str, list] = {i.name: list(i.dims) for i in g.initializer}
    for vi in [*g.input, *g.value_info, *g.output]:
        shapes.setdefault(vi.name, _dims(vi))
    rows = []
    for node in g.node:
        if node.op_type not in MAC_OPS:
            continue
        a, w, y = (shapes.get(node.input[0]), shapes.get(node.input[1]),
                   shapes.get(node.output[0]))
        if a is None or w is None or y is None:
            raise ValueError(f"node {node.name}: shape of an input or output not inferred")
        if node.op_type == "Conv":
            per_out = _prod(w[1:])
        elif node.op_type == "Gemm":
            per_out = a[0] if _attr(node, "transA", 0) else a[-1]
            if _attr(node, "transA", 0):
                raise ValueError(f"node {node.name}: Gemm with transA (batch not on dim 0)")
        else:
            per_out = a[-1]
        macs = _prod(y[1:]) * int(per_out)
        padded = macs
        if node.op_type == "Conv" and _attr(node, "group", 1) == 1:
            b = nchwc_block()
            padded = _prod(y[2:]) * _ceil(w[0], b) * _ceil(w[1], b) * _prod(w[2:])
        rows.append({"node": node.name, "op": node.op_type, "output": node.output[0],
                     "weight": node.input[1], "weight_shape": [int(v) for v in w],
                     "output_shape": y[1:], "macs": macs, "macs_block_padded": padded})
    return rows


def _ceil(n: int, block: int) -> int:
    return -(-int(n) // block) * block


def nchwc_block() -> int:
    """The channel block of ONNX Runtime's NCHWc convolutions on this CPU (MLAS: 16 floats
    with AVX-512, 8 with AVX2/SSE), read from /proc/cpuinfo; 8 when unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 8
    return 16 if " avx512f" in flags else 8


def count_elementwise(model) -> int:
    """Output elements per sample of every other node that runs per call (the LIF's Sub,
    Mul, Add, Greater, Cast, Flatten, ...; not the load-time weight rebuild): the
    work that shrinks with the neurons kept, not with the synapses."""
    import onnx

    g = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {vi.name: _dims(vi) for vi in [*g.value_info, *g.output]}
    total = 0
    for node in g.node:
        if node.op_type in MAC_OPS or node.op_type in ("ScatterND", "ConstantOfShape"):
            continue
        for o in node.output:
            s = shapes.get(o)
            if s and s[0] is not None and not isinstance(s[0], int):   # batched activations
                total += _prod(s[1:])
    return total


def count_neurons(model) -> int:
    """Neurons per sample: the step graph's membrane inputs ``v_<lif>`` (batch, *shape)."""
    return sum(_prod(_dims(i)[1:]) for i in model.graph.input if i.name.startswith("v_"))


def ort_folded_weights(path: Path) -> dict[str, dict]:
    """Weight shape and zero share of every Conv/Gemm/MatMul in the graph ONNX Runtime keeps
    after constant folding (basic optimisations), by output name."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    with tempfile.TemporaryDirectory() as tmp:
        opt = Path(tmp) / "opt.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(opt)
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        m = onnx.load(str(opt))
    inits = {i.name: i for i in m.graph.initializer}
    out = {}
    for node in m.graph.node:
        if node.op_type in MAC_OPS and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            out[node.output[0]] = {"shape": list(w.shape),
                                   "zero_share": float((w == 0).mean()) if w.size else 0.0}
    return out


# ---- structure: pruned units physically absent -------------------------------------------
def structure_check(run_dir: Path, macs: list[dict], weights: dict[str, np.ndarray],
                    silent: dict[str, int] | None = None) -> list[dict]:
    """Per prunable layer of ``run_dir``'s checkpoint: trained, expected and executed weight
    shape, and all-zero rows / input columns of the executed weight.

    ``expected`` = (units kept, producer units kept x in_block, kernel...), less the units
    the exporter removed as silent (``silent``, per layer). ``ok`` is False when the
    executed shape is not the expected one (zero-filled full shape)."""
    from spikeship.train.checkpoint import load_checkpoint

    ck = load_checkpoint(run_dir)
    by_layer: dict[str, list[dict]] = {}      # "conv3", or "conv3@t0".. in an unrolled graph
    for r in macs:
        by_layer.setdefault(r["output"].split("@")[0], []).append(r)
    silent = silent or {}
    kinds = {li.name: li.kind for li in ck.layers}
    rows = []
    for li in ck.layers:
        units = ck.masks.units[li.name]
        name = f"{li.kind}{li.name}"
        if li.producer is None:
            n_in = li.in_units
        else:
            n_in = (int(ck.masks.units[li.producer].sum())
                    - silent.get(f"{kinds[li.producer]}{li.producer}", 0)) * li.in_block
        trained = list(ck.masks.weight[li.name].shape)
        expected = [int(units.sum()) - silent.get(name, 0), n_in, *trained[2:]]
        rs = by_layer.get(name, [])
        shapes = {tuple(r["weight_shape"]) for r in rs}
        executed = list(next(iter(shapes))) if len(shapes) == 1 else \
            ([list(x) for x in sorted(shapes)] if shapes else None)   # steps must agree
        w = next((weights[r["output"]] for r in rs if r["output"] in weights), None)
        zero_rows = zero_cols = None
        if w is not None:
            w2 = w.reshape(w.shape[0], w.shape[1], -1)
            zero_rows = int((~w2.any(axis=(1, 2))).sum())
            zero_cols = int((~w2.any(axis=(0, 2))).sum())
        rows.append({"layer": name, "kind": li.kind, "trained_shape": trained,
                     "expected_shape": expected, "executed_shape": executed,
                     "units_pruned": int((~units).sum()),
                     "units_silent_removed": silent.get(name, 0), "zero_rows": zero_rows,
                     "zero_input_columns": zero_cols,
                     "ok": executed == expected})
    return rows


def executed_weights(model) -> dict[str, np.ndarray]:
    """The weight tensors of the synaptic layers as ONNX Runtime builds them: the
    initializer, or the ``ScatterND(ConstantOfShape(shape), indices, values)`` rebuild
    (computed here with numpy), keyed by the consuming node's output name."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    produced = {n.output[0]: n for n in model.graph.node}
    out = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in inits:
            out[node.output[0]] = inits[name]
        elif name in produced and produced[name].op_type == "ScatterND":
            zeros, idx, vals = produced[name].input
            shape = inits[produced[zeros].input[0]]
            w = np.zeros(tuple(int(s) for s in shape), np.float32)
            ind = inits[idx]
            w[tuple(ind.T)] = inits[vals]
            out[node.output[0]] = w
    return out


# ---- latency -------------------------------------------------------------------------------
class _Model:
    def __init__(self, path: Path, batch: int, seed: int, profile_prefix: str | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        meta = dict(self.sess.get_modelmeta().custom_metadata_map)
        self.mode = meta.get("mode", "step")
        self.steps = int(meta.get("timesteps") or 0) or 1
        shape = json.loads(meta["input_shape"])
        rng = np.random.default_rng(seed)
        if self.mode == "unrolled":
            self.x = rng.random((batch, self.steps, *shape), dtype=np.float32)
        else:
            self.x = rng.random((batch, *shape), dtype=np.float32)
        self.states = {i.name: np.zeros((batch, *i.shape[1:]), np.float32)
                       for i in self.sess.get_inputs() if i.name != "x"}
        self.outputs = ["spikes"] + [f"{s}_next" for s in self.states]

    def infer(self) -> None:
        if self.mode == "unrolled":
            self.sess.run(["spikes"], {"x": self.x})
            return
        st = dict(self.states)
        for _ in range(self.steps):
            res = self.sess.run(self.outputs, {"x": self.x, **st})
            st = dict(zip(st, res[1:]))


def measure(dense: _Model, pruned: _Model, rounds: int, calls: int, warmup: int = 2
            ) -> dict:
    """Interleaved timing (see the module docstring); seconds per inference."""
    for m in (dense, pruned):
        for _ in range(warmup):
            m.infer()
    t = {"dense": [], "pruned": []}
    for r in range(rounds):
        order = (("dense", dense), ("pruned", pruned))
        for key, m in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            for _ in range(calls):
                m.infer()
            t[key].append((time.perf_counter() - t0) / calls)
    ratio = [d / p for d, p in zip(t["dense"], t["pruned"])]
    return {"seconds": t, "paired_ratio": ratio}


def profile(path: Path, batch: int, seed: int, calls: int = 60) -> dict:
    """ONNX Runtime's own profile of ``calls`` inferences (same session options): median
    kernel microseconds per call of every node as ORT runs it (after its graph
    optimisations: ``*_nchwc`` = the blocked-channel layout ORT picks for a Conv, whose
    channel counts it pads to its SIMD block), summed by op type for the rest."""
    with tempfile.TemporaryDirectory() as tmp:
        m = _Model(path, batch, seed, profile_prefix=str(Path(tmp) / "prof"))
        for _ in range(calls):
            m.infer()
        events = json.loads(Path(m.sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = {}
    op_of: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            per_node.setdefault(name, []).append(float(e["dur"]))
            op_of[name] = e.get("args", {}).get("op_name", "")
    n_calls = calls * m.steps if m.mode == "step" else calls
    nodes, by_op = {}, {}
    for name, durs in per_node.items():
        total = sum(durs) / calls                          # us per inference
        if op_of[name] in MAC_OPS or "Reorder" in op_of[name]:
            nodes[name] = {"op": op_of[name], "us_per_inference": total,
                           "median_us_per_call": float(np.median(durs))}
        by_op[op_of[name]] = by_op.get(op_of[name], 0.0) + total
    return {"calls": calls, "graph_calls": n_calls, "nodes": nodes, "by_op_us": by_op,
            "kernel_us_per_inference": sum(by_op.values())}


def _q(xs) -> dict:
    q25, q50, q75 = np.percentile(np.asarray(xs, dtype=np.float64), [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75),
            "iqr": float(q75 - q25)}


# ---- one comparison --------------------------------------------------------------------------
def synapse_chain(net, steps: int):
    """The graph's synapse chain alone: ``net``'s Conv / Gemm / pool / Flatten nodes as the
    exporter writes them (same weights, same pool form), in order, with every neuron
    layer left out (its input current goes straight on). It is not the network: it
    measures how ONNX Runtime's own kernels scale with the pruned shapes when no LIF
    arithmetic runs at all (with the neuron ratio, an estimate of the most any
    formulation of the LIF could give; see the module docstring). Metadata as a step
    graph without state: one inference = ``steps`` calls."""
    from spikeship.export import onnx_export as ox
    from spikeship.export.surgery import FlattenLayer, PoolLayer, SynapseLayer

    b = ox._Builder()
    x = "x"
    for layer in net.layers:
        if isinstance(layer, SynapseLayer):
            x = ox._synapse(b, layer, x, "")
        elif isinstance(layer, PoolLayer):
            x = ox._pool(b, layer, x, "")
        elif isinstance(layer, FlattenLayer):
            x = b.op("Flatten", [x], layer.name, axis=1)
    return _step_model(b, x, "synapse_chain", net.input_shape, [None], steps)


def _step_model(b, y: str, name: str, in_shape, out_shape, steps: int):
    """The nodes of builder ``b`` (input ``x``, output ``y`` as ``spikes``) as a checked
    stateless step-graph model whose metadata :class:`_Model` reads."""
    import onnx
    from onnx import TensorProto, helper

    from spikeship.export import onnx_export as ox

    b.op("Identity", [y], "spikes")
    graph = helper.make_graph(
        b.nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("spikes", TensorProto.FLOAT, ["batch", *out_shape])],
        initializer=list(b.inits.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ox.OPSET)],
                              ir_version=ox.IR_VERSION)
    helper.set_model_props(model, {"mode": "step", "timesteps": str(steps),
                                   "input_shape": json.dumps(list(in_shape))})
    onnx.checker.check_model(model, full_check=True)
    return model


def synapse_nodes(net, steps: int) -> dict[str, object]:
    """Each synaptic layer of ``net`` alone: one graph per layer holding only its Conv /
    Gemm node as the exporter writes it (same weight and storage), fed a tensor of the
    layer's input shape. Timed dense against pruned, it shows how ONNX Runtime's kernel
    for that one layer scales with the pruned shape, whatever the rest of the graph
    does: the per-layer ceiling of any export of this network on this runtime."""
    from spikeship.export import onnx_export as ox
    from spikeship.export.surgery import SynapseLayer

    out = {}
    for layer in net.layers:
        if isinstance(layer, SynapseLayer):
            b = ox._Builder()
            y = ox._synapse(b, layer, "x", "")
            out[layer.name] = _step_model(b, y, f"{layer.name}_alone", layer.in_shape,
                                          layer.out_shape, steps)
    return out


def fresh_onnx(run_dir: Path, out_dir: Path) -> tuple[Path, dict[str, int], Path]:
    """Both runs' graphs written now, by this checkout's exporter, into ``out_dir``.

    A ``model.onnx`` already in a run directory may come from an older exporter (a
    different LIF op sequence, another pool): timing it against a graph of today's would
    measure the two exporters, not the pruning. The run directory is not touched.
    Returns the file, per layer the units the exporter removed as silent (no synapse
    left, a bias that never reaches the threshold: ``surgery._silent_units``), and the
    file of its :func:`synapse_chain`."""
    from spikeship.export.onnx_export import to_onnx, write_onnx

    try:
        config, net = runs.deployable(run_dir)         # what `spikeship export` writes
        model = to_onnx(net, mode="step", timesteps=config["timesteps"])
    except SpikeshipError as e:
        raise SystemExit(f"{run_dir}: cannot export its checkpoint to ONNX: {e}") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    silent = {k: len(v) for k, v in net.removed_silent.items()}
    steps = int(config["timesteps"])
    chain = write_onnx(synapse_chain(net, steps), out_dir / "chain.onnx")
    for name, m in synapse_nodes(net, steps).items():
        write_onnx(m, out_dir / f"node-{name}.onnx")
    return write_onnx(model, out_dir / "model.onnx"), silent, chain


def analyse(run_dir: Path, path: Path, silent: dict[str, int] | None = None) -> dict:
    """Structure check, per-node MACs and the ORT cross-check of ``path``, the graph
    exported from ``run_dir``."""
    import onnx

    model = onnx.load(str(path))
    macs = count_macs(model)
    weights = executed_weights(model)
    folded = ort_folded_weights(path)
    for r in macs:
        f = folded.get(r["output"])
        r["ort_weight_shape"] = f["shape"] if f else None
        r["ort_zero_share"] = f["zero_share"] if f else None
        w = weights.get(r["output"])
        r["weight_zero_share"] = float((w == 0).mean()) if w is not None and w.size else None
    mismatch = [r["node"] for r in macs
                if r["ort_weight_shape"] is not None and r["ort_weight_shape"] != r["weight_shape"]]
    return {"run": str(run_dir), "onnx": "exported by this benchmark (the run's own "
            "model.onnx is not used)", "nodes": macs,
            "macs_per_sample": int(sum(r["macs"] for r in macs)),
            "macs_block_padded_per_sample": int(sum(r["macs_block_padded"] for r in macs)),
            "elementwise_per_sample": count_elementwise(model),
            "neurons_per_sample": count_neurons(model),
            "ort_shape_mismatch": mismatch,
            "structure": structure_check(run_dir, macs, weights, silent)}


def compare(dense_dir: Path, pruned_dir: Path, *, batch: int = 64, rounds: int = 21,
            calls: int = 5, seed: int = 0) -> dict:
    """The whole benchmark for one pair of runs; returns the JSON document."""
    import onnxruntime as ort

    dense_dir, pruned_dir = Path(dense_dir), Path(pruned_dir)
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        made = {k: fresh_onnx(r, Path(tmp) / k)
                for k, r in (("dense", dense_dir), ("pruned", pruned_dir))}
        paths = {k: v[0] for k, v in made.items()}
        d = analyse(dense_dir, paths["dense"], made["dense"][1])
        p = analyse(pruned_dir, paths["pruned"], made["pruned"][1])
        md, mp = _Model(paths["dense"], batch, seed), _Model(paths["pruned"], batch, seed)
        if (md.steps, md.mode) != (mp.steps, mp.mode):
            raise SystemExit(f"the two models differ in mode/steps: {md.mode}/{md.steps} vs "
                             f"{mp.mode}/{mp.steps}")
        lat = measure(md, mp, rounds, calls)
        chain = measure(_Model(made["dense"][2], batch, seed),
                        _Model(made["pruned"][2], batch, seed), rounds, calls)
        alone = {}
        for f in sorted((Path(tmp) / "dense").glob("node-*.onnx")):
            q = Path(tmp) / "pruned" / f.name
            if q.exists():
                m = measure(_Model(f, batch, seed), _Model(q, batch, seed), rounds, calls)
                alone[f.stem[len("node-"):]] = {
                    "latency_s": {"dense": _q(m["seconds"]["dense"]),
                                  "pruned": _q(m["seconds"]["pruned"])},
                    "speedup": _q(m["paired_ratio"])}
        prof = {"dense": profile(paths["dense"], batch, seed),
                "pruned": profile(paths["pruned"], batch, seed)}
    mac_ratio = d["macs_per_sample"] / p["macs_per_sample"]
    speed = _q(lat["paired_ratio"])
    cap = None
    if alone:
        # the synapse nodes as they run alone, everything else in the dense graph's time
        # shrunk by the whole MAC ratio: what even a perfectly scaling rest would give
        nd = sum(a["latency_s"]["dense"]["median"] for a in alone.values())
        npr = sum(a["latency_s"]["pruned"]["median"] for a in alone.values())
        rest = max(_q(lat["seconds"]["dense"])["median"] - nd, 0.0)
        cap = _q(lat["seconds"]["dense"])["median"] / (npr + rest / mac_ratio)
    structure_ok = all(r["ok"] for r in p["structure"] + d["structure"]) and not \
        (d["ort_shape_mismatch"] or p["ort_shape_mismatch"])
    held = speed["median"] >= FACTOR * mac_ratio
    return {
        "dense": d, "pruned": p, "batch": batch, "rounds": rounds, "calls_per_round": calls,
        "mode": md.mode, "steps_per_inference": md.steps,
        "threads": {"intra_op": 1, "inter_op": 1},
        "latency_s": {"dense": _q(lat["seconds"]["dense"]),
                      "pruned": _q(lat["seconds"]["pruned"])},
        "latency_raw_s": lat["seconds"],
        "ort_profile": prof,
        "speedup": speed,
        "synapse_chain": {"latency_s": {"dense": _q(chain["seconds"]["dense"]),
                                        "pruned": _q(chain["seconds"]["pruned"])},
                          "speedup": _q(chain["paired_ratio"])},
        "nodes_alone": alone,
        # an estimate like speedup_estimate_any_lif: nodes timed alone share no caches
        "speedup_cap_synapse_nodes": cap,
        "neuron_ratio": d["neurons_per_sample"] / p["neurons_per_sample"],
        # a whole graph ~ chain + LIF work; its speed-up lies about between the two parts'
        # ratios, and LIF work shrinks at most as the neurons kept (an estimate, not a bound)
        "speedup_estimate_any_lif": max(_q(chain["paired_ratio"])["median"],
                                        d["neurons_per_sample"] / p["neurons_per_sample"]),
        "speedup_of_medians": (_q(lat["seconds"]["dense"])["median"]
                               / _q(lat["seconds"]["pruned"])["median"]),
        "mac_ratio": mac_ratio,
        "elementwise_ratio": d["elementwise_per_sample"] / p["elementwise_per_sample"],
        "flop_ratio_all_ops": ((2 * d["macs_per_sample"] + d["elementwise_per_sample"])
                               / (2 * p["macs_per_sample"] + p["elementwise_per_sample"])),
        "nchwc_block": nchwc_block(),
        "mac_ratio_block_padded": (d["macs_block_padded_per_sample"]
                                   / p["macs_block_padded_per_sample"]),
        "factor": FACTOR, "required_speedup": FACTOR * mac_ratio,
        "criterion_held": bool(held), "structure_ok": bool(structure_ok),
        "onnxruntime": ort.__version__,
    }


# ---- output ----------------------------------------------------------------------------------
def result_rows(doc: dict) -> list[dict]:
    """Per layer: weight shapes, MACs dense / pruned, and the layer's node timed alone."""
    d, p = doc["dense"], doc["pruned"]
    pn = {r["output"]: r for r in p["nodes"]}
    out = []
    for r in d["nodes"]:
        q = pn.get(r["output"]) or {}
        a = (doc.get("nodes_alone") or {}).get(r["output"]) or {}
        out.append({"layer": r["output"], "op": r["op"],
                    "weight_dense": "x".join(map(str, r["weight_shape"])),
                    "weight_pruned": "x".join(map(str, q.get("weight_shape", []))),
                    "zeros_multiplied_pruned_pct": (None if q.get("weight_zero_share") is None
                                                    else 100 * q["weight_zero_share"]),
                    "macs_dense": r["macs"], "macs_pruned": q.get("macs", 0),
                    "mac_ratio": r["macs"] / q["macs"] if q.get("macs") else None,
                    "alone_dense_us": (1e6 * a["latency_s"]["dense"]["median"]) if a else None,
                    "alone_pruned_us": (1e6 * a["latency_s"]["pruned"]["median"]) if a else None,
                    "alone_speedup": a["speedup"]["median"] if a else None})
    return out


def result_summary(doc: dict) -> dict:
    """The whole graphs' latency, speed-up, MAC ratio, the criterion and the estimates."""
    ld, lp, ch = doc["latency_s"]["dense"], doc["latency_s"]["pruned"], doc["synapse_chain"]
    keep = ("mac_ratio", "required_speedup", "criterion_held", "structure_ok",
            "speedup_of_medians", "elementwise_ratio", "flop_ratio_all_ops",
            "mac_ratio_block_padded", "nchwc_block", "neuron_ratio",
            "speedup_estimate_any_lif", "speedup_cap_synapse_nodes", "batch", "rounds",
            "calls_per_round", "mode", "steps_per_inference", "onnxruntime")
    return {"latency_ms_dense": {"median": 1e3 * ld["median"], "iqr": 1e3 * ld["iqr"]},
            "latency_ms_pruned": {"median": 1e3 * lp["median"], "iqr": 1e3 * lp["iqr"]},
            "speedup": {"median": doc["speedup"]["median"], "q25": doc["speedup"]["q25"],
                        "q75": doc["speedup"]["q75"]},
            "synapse_chain_speedup": {"median": ch["speedup"]["median"],
                                      "q25": ch["speedup"]["q25"], "q75": ch["speedup"]["q75"]},
            **{k: doc[k] for k in keep}}


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--calls", type=int, default=5, help="inferences per model per round")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.rounds < 2 or args.calls < 1:
        ap.error("--batch and --calls must be >= 1, --rounds >= 2")
    dense = runs.made(args.out, runs.settings(dataset=args.dataset, seed=args.seed))
    pruned = runs.made(args.out, runs.settings(dataset=args.dataset, seed=args.seed,
                                               prune="dpap"))
    doc = compare(dense, pruned, batch=args.batch, rounds=args.rounds, calls=args.calls)
    summary = result_summary(doc)
    common.write_result(
        args, name=f"onnx-latency-{args.dataset}-s{args.seed}", module="benchmarks.bench_onnx_latency",
        argv=argv, topic="onnx-latency",
        title=f"{args.dataset}, seed {args.seed}: ONNX Runtime latency, dense vs DPAP default",
        description="MACs per sample and call of the graph (one time step of the step graph); "
                    "node alone: the layer's Conv / Gemm by itself in ONNX Runtime. Speed-up "
                    "= median of the paired per-round ratios dense / pruned.",
        rows=result_rows(doc), summary=summary)
    print(f"speed-up {summary['speedup']['median']:.2f}x, MAC ratio {doc['mac_ratio']:.2f}x, "
          f"criterion held: {doc['criterion_held']}; structure ok: {doc['structure_ok']}")
    return 0 if doc["structure_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

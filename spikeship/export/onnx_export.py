"""Export a :class:`~spikeship.export.deployable.DeployableNet` to ONNX (``model.onnx``).

The graph is written op by op with ``onnx.helper`` from the deployable layer list (the
same pruned, folded tensors as the NIR file), not traced from torch: no autograd
Function reaches the file and the spike is a plain comparison.

Opset 17, IR version 8 (``onnx`` 1.23 writes IR 14 by default, which onnxruntime
1.31 cannot read; IR 8 is read by every onnxruntime since 1.14).

Two forms:

- ``mode="step"`` (default): one time step, stateful. Inputs ``x`` (batch, C, H, W) and
  ``v_<lif>`` (batch, *shape) per neuron layer; outputs ``spikes`` (batch, classes),
  ``v_<lif>_next`` (the new membrane) and ``z_<lif>`` (the layer's spikes). The caller
  feeds zeros as the first state and each ``v_<lif>_next`` back as ``v_<lif>``.
- ``mode="unrolled"``: ``T`` steps in one graph. Input ``x`` (batch, T, C, H, W);
  outputs ``spikes`` (batch, T, classes) and ``count_<lif>`` (batch, *shape), each
  neuron's spike count over the ``T`` steps.

Per layer (the equations of the NIR export, forward Euler, ``k = dt/tau = 1 - beta``)::

    conv   Conv(x, W, b)                         fc     Gemm(x, W^T, b)
    W      dense initializer, or, for a layer with pruned synapses, only the surviving
           entries (values + indices) scattered into zeros at load time (see _weight)
    pool   Mul(AveragePool(x), k*k)              (sum pool; k*k a power of two, else
           Conv(x, ones(C,1,k,k), group=C); exact for spikes)
    flatten Flatten(axis=1)
    lif    v' = v + k * (I - v);  z = Cast(Greater(v', th));  v'' = v' - v' * z
           (= Where(z, 0, v') for finite v', in two cheaper passes)
    if     v' = v + I  (beta = 1), then as lif

Graph metadata (``metadata_props``): ``format="spikeship-onnx/1"``, ``mode``, ``dt``,
``timesteps``, ``source_run`` and ``layers`` (JSON: per layer kind, source layer,
``kept_out`` / ``kept_in`` / ``kept``, ``scale_folded``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spikeship.errors import ExportError
from spikeship.export.deployable import (DeployableNet, FlattenLayer, NeuronLayer, PoolLayer,
                                         SynapseLayer)
from spikeship.io import atomic_path

OPSET = 17
IR_VERSION = 8
FORMAT = "spikeship-onnx/1"


class _Builder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self._n = 0

    def const(self, name: str, value) -> str:
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        self._n += 1
        out = out or f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{out}/{op_type}",
                                           **attrs))
        return out


def _weight(b: _Builder, layer: SynapseLayer) -> str:
    """The weight tensor; pruned synapses are not stored when the layer has any.

    A layer without unstructured pruning stores its dense initializer
    ``<name>.weight``. A layer with pruned synapses (``mask`` False somewhere) stores
    only the surviving ones, in coordinate form: ``<name>.weight.values`` (nnz,),
    ``<name>.weight.indices`` (nnz, rank) and ``<name>.weight.shape``; the graph
    rebuilds the dense tensor at load time with ``ScatterND(ConstantOfShape(shape),
    indices, values)`` (a constant-folded subgraph for ONNX Runtime). The file thus
    holds no entry for a pruned synapse, which the vanish check verifies.
    """
    name = f"{layer.name}.weight"
    if name in b.inits or any(n.output[0] == name for n in b.nodes):
        return name
    w = layer.weight.astype(np.float32)
    if layer.mask.all():
        return b.const(name, w)
    idx = np.argwhere(layer.mask).astype(np.int64)
    vals = b.const(f"{name}.values", w[layer.mask])
    ind = b.const(f"{name}.indices", idx)
    shape = b.const(f"{name}.shape", np.array(w.shape, dtype=np.int64))
    zeros = b.op("ConstantOfShape", [shape], f"{name}.zeros",
                 value=numpy_helper.from_array(np.zeros(1, dtype=np.float32)))
    return b.op("ScatterND", [zeros, ind, vals], name)


def _synapse(b: _Builder, layer: SynapseLayer, x: str, tag: str) -> str:
    w = _weight(b, layer)
    bias = b.const(f"{layer.name}.bias", layer.bias.astype(np.float32))
    if layer.kind == "conv":
        p = layer.padding
        return b.op("Conv", [x, w, bias], f"{layer.name}{tag}", strides=list(layer.stride),
                    pads=[p[0], p[1], p[0], p[1]], dilations=list(layer.dilation),
                    kernel_shape=list(layer.weight.shape[2:]), group=1)
    return b.op("Gemm", [x, w, bias], f"{layer.name}{tag}", transB=1)


def _pool(b: _Builder, layer: PoolLayer, x: str, tag: str) -> str:
    """Sum pool. A window of a power-of-two area is ``Mul(AveragePool(x), area)``: the
    mean of the window times its area is its sum exactly (both scalings are powers of
    two), and ONNX Runtime's pooling kernel is faster (see the ONNX latency results) than the grouped Conv
    (group = C, one 1-channel convolution per channel) it replaces, whose time barely
    shrinks with the channels. Any other area keeps ``Conv(x, ones(C,1,k,k), group=C)``,
    whose sum is exact for spikes."""
    area = int(np.prod(layer.kernel))
    if area & (area - 1) == 0:
        mean = b.op("AveragePool", [x], f"{layer.name}{tag}.mean", strides=list(layer.stride),
                    kernel_shape=list(layer.kernel), pads=[0, 0, 0, 0])
        k2 = b.const(f"{layer.name}.area", np.array(area, dtype=np.float32))
        return b.op("Mul", [mean, k2], f"{layer.name}{tag}")
    c = layer.in_shape[0]
    ones = b.const(f"{layer.name}.ones", np.ones((c, 1, *layer.kernel), dtype=np.float32))
    return b.op("Conv", [x, ones], f"{layer.name}{tag}", strides=list(layer.stride),
                kernel_shape=list(layer.kernel), pads=[0, 0, 0, 0], group=c)


def _neuron(b: _Builder, layer: NeuronLayer, cur: str, v: str | None, tag: str):
    """Returns (spikes as float, new membrane after reset)."""
    n = layer.name
    th = b.const(f"{n}.threshold", np.array(layer.threshold, dtype=np.float32))
    if layer.beta >= 1.0:
        vp = cur if v is None else b.op("Add", [v, cur], f"{n}{tag}.v_int")
    else:
        k = b.const(f"{n}.k", np.array(1.0 - layer.beta, dtype=np.float32))
        if v is None:       # v = 0: v + k (I - v) = k I exactly
            vp = b.op("Mul", [k, cur], f"{n}{tag}.v_int")
        else:
            d = b.op("Sub", [cur, v], f"{n}{tag}.dv")
            vp = b.op("Add", [v, b.op("Mul", [k, d], f"{n}{tag}.kdv")], f"{n}{tag}.v_int")
    z = b.op("Greater", [vp, th], f"{n}{tag}.fire")
    zf = b.op("Cast", [z], f"{n}{tag}.z", to=TensorProto.FLOAT)
    # reset to zero where fired: v' * z is v' or 0, so v' - v' * z is 0 or v' exactly
    # (ONNX Runtime's broadcasting Where is the slowest elementwise kernel of the graph)
    v_new = b.op("Sub", [vp, b.op("Mul", [vp, zf], f"{n}{tag}.v_fired")], f"{n}{tag}.v_reset")
    return zf, v_new


def _step(b: _Builder, net: DeployableNet, x: str, state: dict[str, str | None], tag: str):
    """One time step; returns (output spikes, {lif: spikes}, {lif: new membrane})."""
    spikes, vnew = {}, {}
    for layer in net.layers:
        if isinstance(layer, SynapseLayer):
            x = _synapse(b, layer, x, tag)
        elif isinstance(layer, PoolLayer):
            x = _pool(b, layer, x, tag)
        elif isinstance(layer, FlattenLayer):
            x = b.op("Flatten", [x], f"{layer.name}{tag}", axis=1)
        elif isinstance(layer, NeuronLayer):
            x, vnew[layer.name] = _neuron(b, layer, x, state.get(layer.name), tag)
            spikes[layer.name] = x
        else:
            raise ExportError(f"no ONNX mapping for {type(layer).__name__}")
    return x, spikes, vnew


def _rename(b: _Builder, names: dict[str, str]) -> None:
    """Give node outputs the graph's output names in place (every use renamed too), so
    that no Identity node copies a state or spike tensor once per step."""
    for node in b.nodes:
        for seq in (node.input, node.output):
            for i, x in enumerate(seq):
                if x in names:
                    seq[i] = names[x]


def _vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape])


def _metadata(net: DeployableNet, mode: str, steps: int) -> dict[str, str]:
    layers = []
    for l in net.layers:
        d = {"name": l.name, "source_layer": l.source_layer, "kind": type(l).__name__}
        if isinstance(l, SynapseLayer):
            d.update(kept_out=l.kept_out.tolist(), kept_in=l.kept_in.tolist(),
                     scale_folded=l.scale_folded, bias_scale_folded=l.bias_scale_folded,
                     synapses=int(l.mask.sum()))
        elif isinstance(l, NeuronLayer):
            d.update(kept=l.kept.tolist(), shape=list(l.shape), beta=l.beta,
                     threshold=l.threshold)
        layers.append(d)
    return {"format": FORMAT, "mode": mode, "dt": repr(net.dt_s), "timesteps": str(net.timesteps),
            "steps_per_call": str(steps),
            "encoding": net.encoding, "source_run": net.source_run, "reset": "zero",
            "input_shape": json.dumps(list(net.input_shape)), "layers": json.dumps(layers)}


def to_onnx(net: DeployableNet, *, mode: str = "step", timesteps: int | None = None
            ) -> onnx.ModelProto:
    """The ONNX model of ``net`` (see the module docstring); ``onnx.checker`` is run."""
    b = _Builder()
    neurons = net.neuron_layers()
    last = neurons[-1].name
    if mode == "step":
        state = {l.name: f"v_{l.name}" for l in neurons}
        _, spikes, vnew = _step(b, net, "x", state, "")
        inputs = [_vi("x", net.input_shape)] + [_vi(f"v_{l.name}", l.shape) for l in neurons]
        outputs = [_vi("spikes", neurons[-1].shape)]
        _rename(b, {**{vnew[l.name]: f"v_{l.name}_next" for l in neurons},
                    **{spikes[l.name]: f"z_{l.name}" for l in neurons}})
        b.op("Identity", [f"z_{last}"], "spikes")
        for l in neurons:
            outputs += [_vi(f"v_{l.name}_next", l.shape), _vi(f"z_{l.name}", l.shape)]
        steps = 1
    elif mode == "unrolled":
        steps = int(timesteps or net.timesteps)
        if steps < 1:
            raise ExportError("the unrolled ONNX form needs timesteps >= 1")
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                ["batch", steps, *net.input_shape])]
        state: dict[str, str | None] = {}
        outs, counts = [], {}
        for t in range(steps):
            xt = b.op("Gather", ["x", b.const(f"t{t}", np.array(t, dtype=np.int64))],
                      f"x_t{t}", axis=1)
            y, spikes, state = _step(b, net, xt, state, f"@t{t}")
            outs.append(b.op("Unsqueeze", [y, b.const("axis1", np.array([1], np.int64))],
                             f"spikes_t{t}"))
            for name, z in spikes.items():
                counts[name] = z if t == 0 else b.op("Add", [counts[name], z],
                                                     f"count_{name}@t{t}")
        b.op("Concat", outs, "spikes", axis=1) if steps > 1 else b.op("Identity", outs, "spikes")
        outputs = [helper.make_tensor_value_info("spikes", TensorProto.FLOAT,
                                                 ["batch", steps, *neurons[-1].shape])]
        _rename(b, {counts[l.name]: f"count_{l.name}" for l in neurons})
        for l in neurons:
            outputs.append(_vi(f"count_{l.name}", l.shape))
    else:
        raise ExportError(f"ONNX mode must be 'step' or 'unrolled', got {mode!r}")
    graph = helper.make_graph(b.nodes, f"spikeship_{net.preset}_{mode}", inputs, outputs,
                              initializer=list(b.inits.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="spikeship", ir_version=IR_VERSION)
    helper.set_model_props(model, _metadata(net, mode, steps))
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported ONNX model does not pass onnx.checker: {e}") from e
    return model


def write_onnx(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return path

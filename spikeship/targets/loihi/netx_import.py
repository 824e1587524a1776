"""lava-dl netx HDF5 (``.net``) -> NIR graph, with the Loihi integers kept in node metadata.

netx (``lava/lib/dl/netx/hdf5.py``) builds Lava processes from a ``.net`` file; this
module reads the same file (:func:`.netx_file.read_netx_file`, no Lava needed), one
handler per netx layer type (:data:`HANDLERS`), and writes the network as a
NIR graph whose *float* parameters have the real-valued meaning of the Loihi
dynamics and whose node metadata hold the exact integers netx hands to Lava. The
Loihi targets (``lava-fixed``, ``loihi-emu``) use those integers instead of
quantising (:func:`.netx_read.fixed_deployment`), so they run the netx network bit for bit;
the other targets (reference, ``lava-float``, Norse, ...) run its float meaning.

netx, per layer (``Network.get_neuron_params``, ``create_*``)::

    du = iDecay - 1,  dv = vDecay,  vth = vThMant,  bias_mant = bias,  bias_exp = 6
    dense weights:  optimize_weight_bits(W) -> (W << k, num_weight_bits, weight_exp=-k)
    conv weights:   as stored (Lava's Conv has no exponent)

and Lava's fixed LIF (``lava/proc/lif/models.py``) with ``x >> 12`` rounding toward 0::

    u = u (4096 - iDecay) / 4096 + (a_in << 6)
    v = v (4096 - vDecay) / 4096 + u + (bias << 6);   spike if v > vThMant << 6;  v = 0

In units of ``1/64`` of Lava's integers (so that the threshold is ``vThMant`` and a
weight ``W`` adds ``W``), with ``a_s = iDecay / 4096`` and ``a_m = vDecay / 4096``:

- ``iDecay = 4096`` (``u`` lasts one step): NIR ``LIF`` with ``tau = dt / a_m``,
  ``r = 1 / a_m``, ``v_leak = 0``, ``v_threshold = vThMant`` and the bias as the
  synaptic layer's bias: ``v = (1 - a_m) v + (W s + bias)``. ``vDecay = 0``: ``IF``
  with ``r = 1``.
- otherwise: NIR ``CubaLIF`` with ``tau_syn = dt / a_s``, ``w_in = 1 / a_s``,
  ``tau_mem = dt / a_m``, ``r = 1 / a_m`` and ``v_leak = bias / a_m``:
  ``i = (1 - a_s) i + W s``, ``v = (1 - a_m) v + i + bias``.

``dt`` is 1 ms per step (netx has no unit of time; the file's ``simulation/Ts`` is
kept as metadata). A netx ``input`` layer with a neuron is a population fed straight
from the network's input port (``Input.inp`` -> ``neuron.a_in``); in NIR that is an
identity synaptic layer (a 1x1 ``Conv2d`` with the identity kernel for ``(C, H, W)``, an
identity ``Affine`` for vectors) evaluated on the host (``encoding = "direct"``):
the network input is the integer ``a_in`` of that layer at every step. lava-dl's
reference tests instead load a static image into that layer's ``bias_mant``; with
``iDecay = 4096`` (every shipped input layer) that is the same ``v`` at every step.

Refused by name (:class:`~spikeship.errors.UnsupportedNodeError`, message
``[netx-<what>] layer <i>: ...``), never run wrongly:
``netx-sigma-delta`` (SDNN neurons), ``netx-resonate-and-fire`` (RF neurons),
``netx-axonal-delay`` (a ``delay`` dataset: per-neuron axonal delays),
``netx-layer-type`` (pool, convT, unpool, average, concat, dense_comp),
``netx-graded-spike``, ``netx-refractory`` (``refDelay > 1``: netx ignores it, Loihi
would not), ``netx-default-neuron`` (a dense layer without neuron: netx's non-spiking
integrator readout), ``netx-decay`` (``iDecay`` outside ``(0, 4096]`` or ``vDecay``
outside ``[0, 4096)``, or a slow current without voltage decay: no NIR neuron).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import nir
import numpy as np

from spikeship import ranges
from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.read import load_graph
from spikeship.targets.loihi.netx_file import NetxFile, NetxLayer, read_netx_file

FORMAT = "spikeship-nir-from-netx/1"
STEP_S = 1e-3                   # NIR dt of one netx step
NETX_BIAS_EXP = 6               # netx: 'bias_exp': 6
META = "netx"                   # node metadata key prefix


def refuse(what: str, layer, message: str) -> UnsupportedNodeError:
    err = UnsupportedNodeError(f"[netx-{what}] layer {layer}: {message}")
    err.rule = f"netx-{what}"
    return err


# ----------------------------------------------------------------------------- weights
def optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """netx's ``utils.optimize_weight_bits`` (lava-dl 0.6.0), numpy only.

    Returns ``(weights << k, num_weight_bits, weight_exp = -k)``: the integers netx
    hands to Lava's ``Dense``. With them Lava computes ``(W s << k) >> k = W s``
    exactly (while ``W`` fits the 8-bit synapse; netx clips it to [-256, 254] first).
    """
    w = np.asarray(weight, dtype=np.float64)
    wmax, wmin = float(np.max(w)), float(np.min(w))
    if wmax > 254 and wmin < 0:
        w = np.clip(w, -256, 254)
        wmax = float(np.max(w))
    if wmin < -256 and wmax > 0:
        w = np.clip(w, -256, 254)
        wmin = float(np.min(w))
    if wmax < 0:
        scale, signed = -256 / wmin, 0
    elif wmin >= 0:
        scale, signed = (255 / wmax if wmax > 0 else np.inf), 0
    else:
        scale, signed = min(127 / wmax, -128 / wmin), 1
    if not np.isfinite(scale):        # all zeros: netx divides by zero (inf scale)
        return np.zeros(w.shape, dtype=np.int64), 8, 0
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(w / 2 ** n - np.round(w / 2 ** n))) != 0:
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    shifted = np.left_shift(w.astype(np.int32), scale_bits) if scale_bits >= 0 else \
        np.right_shift(w.astype(np.int32), -scale_bits)
    return shifted.astype(np.int64), int(num_weight_bits), int(-scale_bits)


# ----------------------------------------------------------------------------- neurons
def _neuron_params(i: int, cfg: dict | None) -> dict:
    if cfg is None:
        raise refuse("default-neuron", i, "a dense layer without neuron is netx's non-spiking "
                     "integrator readout (iDecay 0, vDecay 4096, vThMant 2^17); spikeship "
                     "runs spiking populations only")
    kind = str(cfg.get("type", ""))
    if kind == "SDNN":
        raise refuse("sigma-delta", i, "sigma-delta (SDNN) neurons are out of scope: they send "
                     "graded deltas, not LIF spikes")
    if "RF" in kind:
        raise refuse("resonate-and-fire", i, f"neuron type {kind} has no NIR/LIF mapping")
    if kind not in ("LOIHI", "CUBA"):
        raise refuse("neuron-type", i, f"unknown neuron type {kind!r}")
    if bool(cfg.get("gradedSpike", False)) or int(cfg.get("messageBits", 0) or 0) > 0:
        raise refuse("graded-spike", i, "graded-spike neurons have no NIR form")
    ref = int(cfg.get("refDelay", 1))
    if ref > 1:
        raise refuse("refractory", i, f"refDelay={ref}: netx ignores it (Lava's LIF has no "
                     "refractory period) while Loihi would apply it")
    i_dec, v_dec, vth = int(cfg["iDecay"]), int(cfg["vDecay"]), int(cfg["vThMant"])
    if not (0 < i_dec <= 4096) or not (0 <= v_dec < 4096):
        raise refuse("decay", i, f"iDecay={i_dec}, vDecay={v_dec}: need 0 < iDecay <= 4096 and "
                     "0 <= vDecay < 4096")
    if i_dec < 4096 and v_dec == 0:
        raise refuse("decay", i, "a decaying current into a non-leaky voltage (vDecay=0) has "
                     "no NIR neuron")
    if vth < 1:
        raise refuse("decay", i, f"vThMant={vth} must be >= 1")
    return {"iDecay": i_dec, "vDecay": v_dec, "vThMant": vth, "refDelay": ref, "type": kind}


def _neuron_node(i: int, prm: dict, shape: tuple[int, ...], bias: np.ndarray) -> nir.NIRNode:
    """The NIR neuron of a netx population (float meaning, module docstring); the bias of
    a LIF/IF goes to its synaptic layer, of a CubaLIF to ``v_leak``."""
    a_s, a_m = prm["iDecay"] / 4096.0, prm["vDecay"] / 4096.0
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    meta = {f"{META}_layer": i, f"{META}_iDecay": prm["iDecay"], f"{META}_vDecay": prm["vDecay"],
            f"{META}_vThMant": prm["vThMant"], f"{META}_refDelay": prm["refDelay"],
            f"{META}_bias_mant": bias.astype(np.int64), f"{META}_bias_exp": NETX_BIAS_EXP,
            f"{META}_neuron_type": prm["type"]}
    vth = full(prm["vThMant"])
    if prm["iDecay"] == 4096 and prm["vDecay"] == 0:
        return nir.IF(r=full(1.0), v_threshold=vth, v_reset=full(0.0), metadata=meta)
    if prm["iDecay"] == 4096:
        return nir.LIF(tau=full(STEP_S / a_m), r=full(1.0 / a_m), v_leak=full(0.0),
                       v_threshold=vth, v_reset=full(0.0), metadata=meta)
    return nir.CubaLIF(tau_syn=full(STEP_S / a_s), tau_mem=full(STEP_S / a_m),
                       r=full(1.0 / a_m), v_leak=bias.astype(np.float64) / a_m,
                       v_threshold=vth, v_reset=full(0.0), w_in=full(1.0 / a_s), metadata=meta)


def _bias(i: int, layer: NetxLayer, shape: tuple[int, ...]) -> np.ndarray:
    """netx's per-neuron bias mantissa (``AbstractBlock._neuron``: scalar, per neuron, or
    per channel for a ``(C, H, W)`` population), NIR shape, int64."""
    b = layer.bias
    if b is None:
        return np.zeros(shape, dtype=np.int64)
    b = np.asarray(b, dtype=np.float64)
    if np.any(b != np.rint(b)):
        raise GraphError(f"layer {i}: netx bias must be integers (bias_mant), got {b.ravel()[:3]}")
    if b.size == 1:
        return np.full(shape, int(b.ravel()[0]), dtype=np.int64)
    if b.size == int(np.prod(shape)):
        return b.reshape(shape).astype(np.int64)
    if len(shape) == 3 and b.size == shape[0]:
        return np.broadcast_to(b.reshape(-1, 1, 1), shape).astype(np.int64)
    raise GraphError(f"layer {i}: bias of {b.size} values does not fit a population {shape}")


def _shape(i: int, layer: NetxLayer) -> tuple[int, ...]:
    s = layer.shape
    if not s or any(v < 1 for v in s):
        raise GraphError(f"layer {i}: missing or bad shape {s}")
    return s


def _need(layer: NetxLayer, key: str):
    v = getattr(layer, key)
    if v is None:
        raise GraphError(f"layer {layer.index} ({layer.type}): no {key!r}")
    return v


def _is_vector(shape) -> bool:
    return len(shape) == 1 or (len(shape) == 3 and shape[1] == 1 and shape[2] == 1)


def _integers(i: int, what: str, w: np.ndarray) -> np.ndarray:
    if np.any(w != np.rint(w)):
        raise GraphError(f"layer {i}: netx {what} weights must be integers")
    return w


# ----------------------------------------------------------------------------- graph
@dataclass
class _Graph:
    """The NIR graph being built, layer by layer: ``prev`` is the node the next layer
    reads, ``shape`` its output shape."""

    nodes: dict[str, nir.NIRNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    prev: str = "input"
    shape: tuple[int, ...] | None = None
    direct: bool = False

    def add(self, name: str, node: nir.NIRNode) -> str:
        """Append ``node`` after ``prev``; it becomes ``prev``."""
        self.nodes[name] = node
        self.edges.append((self.prev, name))
        self.prev = name
        return name

    def flatten(self, i: int) -> None:
        self.add(f"flatten{i}", nir.Flatten(
            input_type={"input": np.array(self.shape, dtype=np.int64)}, start_dim=0,
            end_dim=-1, metadata={f"{META}_layer": i}))
        self.shape = (int(np.prod(self.shape)),)


def _input(b: _Graph, layer: NetxLayer) -> None:
    """netx ``input``: the graph input; with a neuron, a population fed through an
    identity synapse evaluated on the host (module docstring)."""
    i = layer.index
    if i != 0:
        raise GraphError(f"layer {i}: an input layer must come first")
    shape = b.shape = _shape(i, layer)
    b.nodes["input"] = nir.Input(input_type={"input": np.array(shape, dtype=np.int64)})
    if layer.neuron is None:
        return
    prm = _neuron_params(i, layer.neuron)
    b.direct = True
    scale = 64 if layer.weight is None else layer.weight
    offset = 0 if layer.bias is None else layer.bias
    meta = {f"{META}_role": "input-port", f"{META}_layer": i,
            f"{META}_input_transform_weight": float(np.asarray(scale).ravel()[0]),
            f"{META}_input_transform_bias": float(np.asarray(offset).ravel()[0])}
    if len(shape) == 3:
        eye = np.eye(shape[0]).reshape(shape[0], shape[0], 1, 1)
        syn = nir.Conv2d(input_shape=shape[1:], weight=eye,   # NIR types ignore groups
                         stride=1, padding=0, dilation=1, groups=1,
                         bias=np.zeros(shape[0]), metadata=meta)
    else:
        n = int(np.prod(shape))
        syn = nir.Affine(weight=np.eye(n), bias=np.zeros(n), metadata=meta)
    b.add("input_port", syn)
    # the input transform's bias is not the neuron's (netx: Input gets bias=None)
    b.add(f"layer{i}", _neuron_node(i, prm, shape, np.zeros(shape, np.int64)))


def _flatten(b: _Graph, layer: NetxLayer) -> None:
    if b.shape is None:
        raise GraphError(f"layer {layer.index}: flatten before any shape is known")
    if len(b.shape) > 1:
        b.flatten(layer.index)


def _conv(b: _Graph, layer: NetxLayer) -> None:
    i = layer.index
    if b.shape is None or len(b.shape) != 3:
        raise GraphError(f"layer {i}: conv needs a (C, H, W) input, have {b.shape}")
    out = _shape(i, layer)
    w = np.asarray(_need(layer, "weight"), dtype=np.float64)
    w = _integers(i, "conv", w.reshape(w.shape[:4]))
    ranges.conv_geometry(_need(layer, "stride"), _need(layer, "padding"),
                         _need(layer, "dilation"), _need(layer, "groups"), b.shape[0], w.shape,
                         f"layer {i}")
    prm = _neuron_params(i, layer.neuron)
    bias = _bias(i, layer, out)
    lif_bias = prm["iDecay"] == 4096
    conv = nir.Conv2d(input_shape=b.shape[1:], weight=w, stride=_need(layer, "stride"),
                      padding=_need(layer, "padding"), dilation=_need(layer, "dilation"),
                      groups=_need(layer, "groups"),
                      bias=(bias[:, 0, 0].astype(np.float64) if lif_bias else
                            np.zeros(out[0])),
                      metadata={f"{META}_layer": i, f"{META}_weight_exp": 0})
    if lif_bias and np.any(bias != bias[:, :1, :1]):
        raise GraphError(f"layer {i}: per-pixel conv bias has no Conv2d form")
    b.add(f"conv{i}", conv)
    b.add(f"layer{i}", _neuron_node(i, prm, out, bias))
    b.shape = out


def _dense(b: _Graph, layer: NetxLayer) -> None:
    """netx ``dense`` / ``dense_rec``: an Affine (after a Flatten of a ``(C, H, W)``
    input) into a population; ``dense_rec`` adds the recurrent Affine, its weights
    optimised together with the feed-forward ones (one exponent, as netx)."""
    i = layer.index
    if b.shape is None:
        raise GraphError(f"layer {i}: dense before any input shape")
    prm = _neuron_params(i, layer.neuron)
    n_out = int(np.prod(_shape(i, layer)))
    out = (n_out,)
    w = _integers(i, "dense", np.asarray(_need(layer, "weight"), dtype=np.float64)
                  .reshape(n_out, -1))
    if len(b.shape) > 1:
        if not _is_vector(b.shape) and int(np.prod(b.shape)) != w.shape[1]:
            raise GraphError(f"layer {i}: dense reads {w.shape[1]} from {b.shape}")
        b.flatten(i)
    if w.shape[1] != int(np.prod(b.shape)):
        raise GraphError(f"layer {i}: dense weight {w.shape} reads {int(np.prod(b.shape))}")
    bias = _bias(i, layer, out)
    if layer.type == "dense_rec":
        w_rec = np.asarray(_need(layer, "weight_rec"), dtype=np.float64).reshape(n_out, n_out)
        both, _, exp = optimize_weight_bits(np.hstack([w, w_rec]))
        q, q_rec = both[:, :w.shape[1]], both[:, w.shape[1]:]
    else:
        q, _, exp = optimize_weight_bits(w)
    b.add(f"dense{i}", nir.Affine(
        weight=w, bias=bias.astype(np.float64) if prm["iDecay"] == 4096 else np.zeros(n_out),
        metadata={f"{META}_layer": i, f"{META}_weight": q, f"{META}_weight_exp": exp}))
    pop = b.add(f"layer{i}", _neuron_node(i, prm, out, bias))
    if layer.type == "dense_rec":
        b.nodes[f"rec{i}"] = nir.Affine(weight=w_rec, bias=np.zeros(n_out), metadata={
            f"{META}_layer": i, f"{META}_weight": q_rec, f"{META}_weight_exp": exp})
        b.edges += [(pop, f"rec{i}"), (f"rec{i}", pop)]
    b.shape = out


HANDLERS = {"input": _input, "flatten": _flatten, "conv": _conv, "dense": _dense,
            "dense_rec": _dense}


def netx_to_nir(path: str | os.PathLike) -> nir.NIRGraph:
    """The NIR graph of the netx file at ``path`` (see the module docstring)."""
    nf = read_netx_file(path)
    try:
        graph = _to_nir(nf)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise GraphError(f"{nf.path}: malformed netx layer description: "
                         f"{type(e).__name__}: {e}") from e
    try:
        load_graph(graph)       # what inspect and every target would refuse, refused here
    except GraphError as e:
        raise type(e)(f"{nf.path}: the imported graph is not valid NIR: {e}") from e
    return graph


def _to_nir(nf: NetxFile) -> nir.NIRGraph:
    b = _Graph()
    for layer in nf.layers:
        if "delay" in layer.fields:
            raise refuse("axonal-delay", layer.index, "per-neuron axonal delays (netx "
                         "DelayDense) are not supported by spikeship's Loihi deployment; "
                         "refused rather than run without them")
        handler = HANDLERS.get(layer.type)
        if handler is None:
            raise refuse("layer-type", layer.index, f"netx layer type {layer.type!r} is not "
                         "supported (netx itself implements input, conv, flatten, dense, "
                         "dense_rec)")
        handler(b, layer)
    if "input" not in b.nodes or b.prev == "input":
        raise GraphError(f"{nf.path}: no input layer or no population")
    b.nodes["output"] = nir.Output(output_type={"output": np.array(b.shape, dtype=np.int64)})
    b.edges.append((b.prev, "output"))
    ts = nf.simulation.get("Ts", 1)
    meta = {"format": FORMAT, "dt": STEP_S, "reset": "zero",
            "encoding": "direct" if b.direct else "events", "source": str(nf.path),
            "netx_Ts": float(np.asarray(ts).ravel()[0]),
            "input_shape": np.array(b.nodes["input"].input_type["input"], dtype=np.int64)}
    try:
        return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=meta, type_check=False)
    except (ValueError, AssertionError) as e:
        raise GraphError(f"{nf.path}: the NIR graph does not type-check: {e}") from e

"""lava-dl netx HDF5 (``.net``) -> NIR graph, with the Loihi integers kept in node metadata.

netx (``lava/lib/dl/netx/hdf5.py``) builds Lava processes from a ``.net`` file; this
module reads the same file with h5py (no Lava needed) and writes the network as a
NIR graph whose *float* parameters have the real-valued meaning of the Loihi
dynamics and whose node metadata hold the exact integers netx hands to Lava. The
Loihi targets (``lava-fixed``, ``loihi-emu``) use those integers instead of
quantising (:func:`fixed_deployment`), so they run the netx network bit for bit;
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
from dataclasses import replace
from pathlib import Path

import h5py
import nir
import numpy as np

from spikeship import ranges
from spikeship.errors import GraphError, UnsupportedNodeError
from spikeship.nir.read import load_graph

FORMAT = "spikeship-nir-from-netx/1"
STEP_S = 1e-3                   # NIR dt of one netx step
NETX_BIAS_EXP = 6               # netx: 'bias_exp': 6
META = "netx"                   # node metadata key prefix


def refuse(what: str, layer, message: str) -> UnsupportedNodeError:
    err = UnsupportedNodeError(f"[netx-{what}] layer {layer}: {message}")
    err.rule = f"netx-{what}"
    return err


# ----------------------------------------------------------------------------- reading
def _value(ds):
    v = ds[()]
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.dtype.kind == "S":
        return v.ravel()[0].decode()
    return v


def _group_dict(g: h5py.Group) -> dict:
    out = {}
    for k, v in g.items():
        out[k] = _group_dict(v) if isinstance(v, h5py.Group) else _value(v)
    return out


MAX_ARRAY_ELEMENTS = 2 ** 27     # an untrusted file declares sizes: check before reading
MAX_TOTAL_ELEMENTS = 2 ** 28


def _prescan(path, f: h5py.File) -> None:
    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            n = float(np.prod(obj.shape, dtype=np.float64)) if obj.shape else 1.0
            total += n
            if n > MAX_ARRAY_ELEMENTS or total > MAX_TOTAL_ELEMENTS:
                raise GraphError(f"{path}: array {name} declares {obj.shape} elements (limits "
                                 f"{MAX_ARRAY_ELEMENTS} per array, {MAX_TOTAL_ELEMENTS} in "
                                 "all); refusing to read it")

    f.visititems(visit)


def read_netx(path: str | os.PathLike) -> list[dict]:
    """The layers of a netx file as plain dicts, in order (``layer/0``, ``layer/1``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"no netx file at {path}")
    from spikeship.nir.read import H5_ERRORS

    try:
        from spikeship.safeopen import open_hdf5

        with open_hdf5(path, "netx file") as f:   # links, storage, filters, size checked
            _prescan(path, f)
            if "layer" not in f or not isinstance(f["layer"], h5py.Group):
                raise GraphError(f"{path} is HDF5 but not netx: no 'layer' group")
            keys = sorted(f["layer"].keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
            if not keys or not all(k.isdigit() for k in keys):
                raise GraphError(f"{path}: netx layers must be named 0, 1, ...; got {keys[:5]}")
            layers = [_group_dict(f["layer"][k]) for k in keys]
            sim = _group_dict(f["simulation"]) if "simulation" in f else {}
    except GraphError:
        raise
    except OSError as e:
        raise GraphError(f"{path} is not a netx (HDF5) file: {e}") from e
    except H5_ERRORS as e:           # a damaged file: HDF5 reports it as any of these
        raise GraphError(f"{path}: cannot read the netx file (damaged?): "
                         f"{type(e).__name__}: {e}") from e
    for layer in layers:
        layer["_simulation"] = sim
    return layers


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


def _bias(i: int, layer: dict, shape: tuple[int, ...]) -> np.ndarray:
    """netx's per-neuron bias mantissa (``AbstractBlock._neuron``: scalar, per neuron, or
    per channel for a ``(C, H, W)`` population), NIR shape, int64."""
    b = layer.get("bias")
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


def _shape(i: int, layer: dict) -> tuple[int, ...]:
    return ranges.population_shape(layer.get("shape", ()), f"layer {i}")


def _weights(i: int, layer: dict, key: str = "weight") -> np.ndarray:
    """A layer's weights: finite integers (netx stores Lava's integer mantissas)."""
    w = np.asarray(layer[key], dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise GraphError(f"layer {i}: netx {key} holds NaN or Inf")
    if np.any(w != np.rint(w)):
        raise GraphError(f"layer {i}: netx {key} must be integers")
    return w


def _conv_geometry(i: int, layer: dict, in_shape, w: np.ndarray) -> dict:
    """stride, padding, dilation, groups of a conv layer (:func:`ranges.conv_geometry`)."""
    g = {k: _pair(layer[k]) for k in ("stride", "padding", "dilation")}
    groups = int(np.asarray(layer["groups"]).ravel()[0])
    ranges.conv_geometry(g["stride"], g["padding"], g["dilation"], groups, int(in_shape[0]),
                         w.shape, f"layer {i}")
    return {**g, "groups": groups}


def _pair(v) -> tuple[int, int]:
    a = np.asarray(v).astype(int).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _is_vector(shape) -> bool:
    return len(shape) == 1 or (len(shape) == 3 and shape[1] == 1 and shape[2] == 1)


# ----------------------------------------------------------------------------- graph
def netx_to_nir(path: str | os.PathLike) -> nir.NIRGraph:
    """The NIR graph of the netx file at ``path`` (see the module docstring)."""
    layers = read_netx(path)
    try:
        graph = _to_nir(path, layers)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise GraphError(f"{path}: malformed netx layer description: "
                         f"{type(e).__name__}: {e}") from e
    try:
        load_graph(graph)       # what inspect and every target would refuse, refused here
    except GraphError as e:
        raise type(e)(f"{path}: the imported graph is not valid NIR: {e}") from e
    return graph


def _to_nir(path, layers: list[dict]) -> nir.NIRGraph:
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    prev, shape, direct = "input", None, False

    def add(name, node, src):
        nodes[name] = node
        edges.append((src, name))
        return name

    for i, layer in enumerate(layers):
        kind = str(layer.get("type", "")).strip()
        if "delay" in layer:
            raise refuse("axonal-delay", i, "per-neuron axonal delays (netx DelayDense) are not "
                         "supported by spikeship's Loihi deployment; refused rather than run "
                         "without them")
        if kind == "input":
            if i != 0:
                raise GraphError(f"layer {i}: an input layer must come first")
            shape = _shape(i, layer)
            nodes["input"] = nir.Input(input_type={"input": np.array(shape, dtype=np.int64)})
            if "neuron" not in layer:
                continue
            prm = _neuron_params(i, layer["neuron"])
            direct = True
            meta = {f"{META}_role": "input-port", f"{META}_layer": i,
                    f"{META}_weight": None, f"{META}_input_transform_weight":
                    float(np.asarray(layer.get("weight", 64)).ravel()[0]),
                    f"{META}_input_transform_bias":
                    float(np.asarray(layer.get("bias", 0)).ravel()[0])}
            meta = {k: v for k, v in meta.items() if v is not None}
            if len(shape) == 3:
                eye = np.eye(shape[0]).reshape(shape[0], shape[0], 1, 1)
                syn = nir.Conv2d(input_shape=shape[1:], weight=eye,   # NIR types ignore groups
                                 stride=1, padding=0, dilation=1, groups=1,
                                 bias=np.zeros(shape[0]), metadata=meta)
            else:
                n = int(np.prod(shape))
                syn = nir.Affine(weight=np.eye(n), bias=np.zeros(n), metadata=meta)
            prev = add("input_port", syn, "input")
            # the input transform's bias is not the neuron's (netx: Input gets bias=None)
            prev = add(f"layer{i}", _neuron_node(i, prm, shape, np.zeros(shape, np.int64)), prev)
        elif kind == "flatten":
            if shape is None:
                raise GraphError(f"layer {i}: flatten before any shape is known")
            if len(shape) > 1:
                prev = add(f"flatten{i}", nir.Flatten(
                    input_type={"input": np.array(shape, dtype=np.int64)}, start_dim=0,
                    end_dim=-1, metadata={f"{META}_layer": i}), prev)
                shape = (int(np.prod(shape)),)
        elif kind == "conv":
            if shape is None or len(shape) != 3:
                raise GraphError(f"layer {i}: conv needs a (C, H, W) input, have {shape}")
            out = _shape(i, layer)
            w = _weights(i, layer)
            w = w.reshape(w.shape[:4])
            geo = _conv_geometry(i, layer, shape, w)
            prm = _neuron_params(i, layer.get("neuron"))
            bias = _bias(i, layer, out)
            lif_bias = prm["iDecay"] == 4096
            conv = nir.Conv2d(input_shape=shape[1:], weight=w, **geo,
                              bias=(bias[:, 0, 0].astype(np.float64) if lif_bias else
                                    np.zeros(out[0])),
                              metadata={f"{META}_layer": i, f"{META}_weight_exp": 0})
            if lif_bias and np.any(bias != bias[:, :1, :1]):
                raise GraphError(f"layer {i}: per-pixel conv bias has no Conv2d form")
            prev = add(f"conv{i}", conv, prev)
            prev = add(f"layer{i}", _neuron_node(i, prm, out, bias), prev)
            shape = out
        elif kind in ("dense", "dense_rec"):
            if shape is None:
                raise GraphError(f"layer {i}: dense before any input shape")
            prm = _neuron_params(i, layer.get("neuron"))
            n_out = int(np.prod(_shape(i, layer)))
            out = (n_out,)
            w = _weights(i, layer).reshape(n_out, -1)
            if len(shape) > 1:
                if not _is_vector(shape) and int(np.prod(shape)) != w.shape[1]:
                    raise GraphError(f"layer {i}: dense reads {w.shape[1]} from {shape}")
                prev = add(f"flatten{i}", nir.Flatten(
                    input_type={"input": np.array(shape, dtype=np.int64)}, start_dim=0,
                    end_dim=-1, metadata={f"{META}_layer": i}), prev)
                shape = (int(np.prod(shape)),)
            if w.shape[1] != int(np.prod(shape)):
                raise GraphError(f"layer {i}: dense weight {w.shape} reads {int(np.prod(shape))}")
            bias = _bias(i, layer, out)
            lif_bias = prm["iDecay"] == 4096
            if kind == "dense_rec":
                w_rec = _weights(i, layer, "weight_rec").reshape(n_out, n_out)
                both, _, exp = optimize_weight_bits(np.hstack([w, w_rec]))
                q, q_rec = both[:, :w.shape[1]], both[:, w.shape[1]:]
            else:
                q, _, exp = optimize_weight_bits(w)
            aff = nir.Affine(weight=w, bias=bias.astype(np.float64) if lif_bias else
                             np.zeros(n_out), metadata={f"{META}_layer": i,
                                                        f"{META}_weight": q,
                                                        f"{META}_weight_exp": exp})
            prev_src = prev
            prev = add(f"dense{i}", aff, prev_src)
            pop = add(f"layer{i}", _neuron_node(i, prm, out, bias), prev)
            if kind == "dense_rec":
                nodes[f"rec{i}"] = nir.Affine(weight=w_rec, bias=np.zeros(n_out), metadata={
                    f"{META}_layer": i, f"{META}_weight": q_rec, f"{META}_weight_exp": exp})
                edges += [(pop, f"rec{i}"), (f"rec{i}", pop)]
            prev, shape = pop, out
        else:
            raise refuse("layer-type", i, f"netx layer type {kind!r} is not supported "
                         "(netx itself implements input, conv, flatten, dense, dense_rec)")
    if "input" not in nodes or prev == "input":
        raise GraphError(f"{path}: no input layer or no population")
    nodes["output"] = nir.Output(output_type={"output": np.array(shape, dtype=np.int64)})
    edges.append((prev, "output"))
    ts = layers[0]["_simulation"].get("Ts", 1)
    meta = {"format": FORMAT, "dt": STEP_S, "reset": "zero",
            "encoding": "direct" if direct else "events", "source": str(path),
            "netx_Ts": float(np.asarray(ts).ravel()[0]),
            "input_shape": np.array(nodes["input"].input_type["input"], dtype=np.int64)}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    except (ValueError, AssertionError) as e:
        raise GraphError(f"{path}: the NIR graph does not type-check: {e}") from e


def is_netx_import(graph: nir.NIRGraph) -> bool:
    """Whether ``graph`` came from :func:`netx_to_nir` (it carries netx integers)."""
    return (graph.metadata or {}).get("format") == FORMAT


# ----------------------------------------------------------------------------- fixed point
def _meta(node, key):
    return (node.metadata or {}).get(f"{META}_{key}")


def fixed_deployment(graph: nir.NIRGraph, dep):
    """The fixed-point :class:`~.deployment.Deployment` of a netx-imported graph: the
    structure of float deployment ``dep`` (:func:`.lower.lower` of ``graph``) with
    netx's integers from the node metadata instead of spikeship's quantiser.

    Populations: ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant``,
    ``bias_exp = 6``; state scale 64 (Lava integer units per float unit of the NIR
    graph). Dense/Sparse: netx's ``optimize_weight_bits`` integers and exponent; Conv:
    the stored integers. The input port: ``a_in`` = the input, unscaled.
    """
    from scipy.sparse import csr_matrix

    from spikeship.targets.loihi.deployment import FORMAT as FIXED

    if dep.precision != "float":
        raise ValueError("fixed_deployment expects the float deployment of the graph")
    pops, syns, hosts = [], [], []
    for p in dep.populations:
        node = graph.nodes[p.name]
        pops.append(replace(
            p, du=int(_meta(node, "iDecay")) - 1, dv=int(_meta(node, "vDecay")),
            vth=int(_meta(node, "vThMant")),
            bias_mant=np.asarray(_meta(node, "bias_mant"), dtype=np.int64).reshape(p.shape),
            bias_exp=np.full(p.shape, int(_meta(node, "bias_exp")), dtype=np.int64),
            v_scale=np.full(p.shape, 64.0), state_scale=64.0))
    for s in dep.synapses:
        node = graph.nodes[s.name]
        if s.kind == "conv":
            w = np.rint(np.asarray(node.weight, dtype=np.float64)).astype(np.int64)
            syns.append(replace(s, weights=w, weight_exp=0))
            continue
        q = np.asarray(_meta(node, "weight"), dtype=np.int64)
        if s.kind == "sparse":
            rows, cols = s.weights.nonzero()
            w = csr_matrix((q[rows, cols], (rows, cols)), shape=q.shape)
        else:
            w = q
        syns.append(replace(s, weights=w, weight_exp=int(_meta(node, "weight_exp"))))
    for h in dep.host_layers:
        hosts.append(replace(h, injection_scale=1.0, injection_max=float(FIXED.injection_max)))
    out = replace(dep, precision="fixed", populations=tuple(pops), synapses=tuple(syns),
                  host_layers=tuple(hosts),
                  report={"source": "netx integers (node metadata), not re-quantised"})
    check_netx_fixed(out)
    return out


def check_netx_fixed(dep) -> None:
    """``fixed-range`` for netx integers: what Lava's fixed models take unchanged (netx's
    weights may be odd and carry an exponent; Lava truncates nothing netx made lossless)."""
    from spikeship.targets.loihi import rules

    for p in dep.populations:
        if not (0 <= p.du <= 4095 and 0 <= p.dv <= 4095):
            raise rules.violation("fixed-range", p.name, f"du={p.du}, dv={p.dv} outside [0, 4095]")
        if not (1 <= p.vth <= 2 ** 17 - 1):
            raise rules.violation("fixed-range", p.name, f"vth={p.vth} outside [1, 2^17 - 1]")
        if np.abs(p.bias_mant).max(initial=0) > 2 ** 12 - 1:
            raise rules.violation("fixed-range", p.name, "bias mantissa outside 13 bits")
    for s in dep.synapses:
        w = s.weights.data if s.kind == "sparse" else np.asarray(s.weights)
        if s.kind != "conv" and w.size and (w.max() > 255 or w.min() < -256):
            raise rules.violation("fixed-range", s.name, "weights outside Lava's 8-bit synapse")

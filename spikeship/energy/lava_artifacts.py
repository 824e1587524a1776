"""Vanish check of what Lava really holds: the built processes and the netx file.

Lava processes are built from ``model.nir`` exactly as the ``lava-float`` /
``lava-fixed`` targets build them (:func:`spikeship.targets.loihi.lower.lower`,
:func:`~spikeship.targets.loihi.quantize.quantize_deployment`,
:func:`spikeship.sim.lava.build.build`; nothing is compiled or run) and read back from the
processes' ``Var`` initial values:

- ``Sparse``: stored entries = the CSR structure (``weights.init``), so a pruned
  synapse is absent when it is not in the structure;
- ``Dense``: every entry is stored (a pruned zero there is an explicit zero);
- ``Conv``: every kernel entry is stored (Lava has no sparse convolution), in Lava's
  flipped ``(O, kW, kH, I)`` layout, converted back to NIR's ``(O, I, kH, kW)``;
- host layers (direct-encoded first layer, evaluated off-chip): a conv kernel or an
  unpruned dense layer stores every entry; a pruned dense layer is the CSR matrix of
  its synapses (:func:`spikeship.targets.loihi.lower.lower`), and in ``netx-sparse``
  the file's dense host array is loaded as lava-dl loads its blocks (zeros dropped).

Pools folded into a synapse make one NIR synapse into ``k x k`` Lava synapses
(repeated kernel taps for a conv, one column per pooled neuron for a dense layer);
those are mapped back to the NIR entry (the NIR entry is non-zero if any of its Lava
copies is, stored if any is stored). The netx file (``model.net``) is checked twice:
as stored (:func:`spikeship.targets.loihi.netx_file.read_netx_file`; dense arrays, every
entry a synapse, which is what netx's default
``Dense`` blocks hold) and as lava-dl builds it with ``sparse_fc_layer=True``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from scipy import sparse

from spikeship.errors import GraphError, MissingDependencyError, RuleError, SpikeshipError
from spikeship.energy import vanish
from spikeship.nir.layers import SynapticLayer, meta, synaptic_layers
from spikeship.energy.vanish import DeployedLayer
from spikeship.sim.lava.build import build
from spikeship.sim.lava.netx import build_netx, read_deployment
from spikeship.targets.loihi.host import sparse_hosts
from spikeship.targets.loihi.lower import graph_encoding, lower
from spikeship.targets.loihi.netx_file import read_netx_file, text
from spikeship.targets.loihi.quantize import quantize_deployment


def checks(run_dir: Path, graph, pruned: dict, include_lava: bool = True) -> list:
    """The ``netx`` and ``lava-float`` / ``lava-fixed`` format checks of a run."""
    out = netx_check(run_dir / "model.net", graph, pruned)
    if not include_lava:
        out.append(vanish.not_checked("lava", "skipped (--no-lava-check)"))
        return out
    try:
        built = build_processes(graph)
    except (MissingDependencyError, RuleError, GraphError, ImportError) as e:
        out.append(vanish.not_checked("lava", f"cannot build the Lava processes: {e}"))
        return out
    for fmt, layers in built.items():
        out.append(vanish.check_format(fmt, layers, pruned,
                                       "built Lava processes: Sparse and a pruned dense host "
                                       "layer store their CSR structure, Dense/Conv every "
                                       "entry"))
    return out


# ---- index maps from Lava back to NIR -------------------------------------------------
def _nir_index_of_source(layer: SynapticLayer) -> np.ndarray:
    """For each element of the presynaptic population (C-order), the NIR input column
    of ``layer`` it feeds through the folded pools (-1: in no pool window)."""
    idx = np.arange(int(np.prod(layer.in_shape)), dtype=np.int64)
    for st in reversed(layer.stages):
        idx = idx.reshape(st.out_shape)
        if st.kind == "flatten":
            idx = idx.reshape(st.in_shape)
            continue
        if st.kernel != st.stride or st.padding != (0, 0):
            raise GraphError(f"pool {st.name}: only kernel == stride, no padding is folded")
        full = np.full(st.in_shape, -1, dtype=np.int64)
        k0, k1 = st.kernel
        _, hp, wp = st.out_shape
        full[:, :hp * k0, :wp * k1] = np.repeat(np.repeat(idx, k0, axis=1), k1, axis=2)
        idx = full
    return idx.reshape(-1)


def _scatter(n_rows: int, n_cols: int, rows, cols, vals, stored_mask=None):
    """(max |value|, any stored) per NIR entry from Lava entries at (rows, cols)."""
    value = np.zeros((n_rows, n_cols))
    stored = np.zeros((n_rows, n_cols), dtype=bool)
    ok = cols >= 0
    rows, cols, vals = rows[ok], cols[ok], np.abs(np.asarray(vals, dtype=np.float64)[ok])
    np.maximum.at(value, (rows, cols), vals)
    st = np.ones(rows.size, bool) if stored_mask is None else np.asarray(stored_mask)[ok]
    stored[rows[st], cols[st]] = True
    return value, stored


def dense_to_nir(layer: SynapticLayer, weights) -> tuple[np.ndarray, np.ndarray]:
    """A Dense (ndarray) or Sparse (scipy) weight over the presynaptic neurons -> NIR
    (value, stored) in the NIR weight's shape."""
    colmap = _nir_index_of_source(layer)
    n_out, n_in = layer.weight.shape
    if weights.shape != (n_out, colmap.size):
        raise GraphError(f"Lava synapse of {layer.name} has shape {weights.shape}, expected "
                         f"({n_out}, {colmap.size})")
    if sparse.issparse(weights):
        coo = weights.tocoo()
        return _scatter(n_out, n_in, coo.row, colmap[coo.col], coo.data)
    r, c = np.indices(weights.shape)
    return _scatter(n_out, n_in, r.ravel(), colmap[c.ravel()], np.asarray(weights).ravel())


def conv_to_nir(layer: SynapticLayer, kernel_nir_layout: np.ndarray):
    """A conv kernel ``(O, I, kH', kW')`` with pools folded (``kH' = k kH``) -> NIR."""
    k = np.asarray(kernel_nir_layout, dtype=np.float64)
    o, i, kh, kw = layer.weight.shape
    if k.shape[:2] != (o, i) or k.shape[2] % kh or k.shape[3] % kw:
        raise GraphError(f"Lava kernel of {layer.name} has shape {k.shape}, NIR {layer.weight.shape}")
    f0, f1 = k.shape[2] // kh, k.shape[3] // kw
    value = np.abs(k).reshape(o, i, kh, f0, kw, f1).max(axis=(3, 5))
    return value, np.ones(value.shape, dtype=bool)


# ---- built processes ------------------------------------------------------------------
def build_processes(graph) -> dict[str, list[DeployedLayer]]:
    """Build the Lava processes of ``graph`` (float and fixed) and read their weights."""
    layers = {l.name: l for l in synaptic_layers(graph)}
    kept = {n: meta_dict(graph, l) for n, l in layers.items()}
    mode = "current" if graph_encoding(graph) == "direct" else "spikes"
    dep = lower(graph, input_mode=mode)
    out = {}
    for fmt, d in (("lava-float", dep), ("lava-fixed", quantize_deployment(dep))):
        with tempfile.TemporaryDirectory(prefix="spikeship-vanish-") as io_dir:
            net = build(d, timesteps=1, chunk_steps=1, io_dir=io_dir)
        found = []
        for spec in d.synapses:
            name = spec.name.split("->")[0]
            layer = layers.get(name)
            if layer is None or layer.source_layer is None:
                continue
            proc = net.synapses[spec.name]
            if spec.kind == "conv":
                w = np.asarray(proc.weight.init)
                value, stored = conv_to_nir(layer, w.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])
            else:
                value, stored = dense_to_nir(layer, proc.weights.init)
            found.append(DeployedLayer(fmt, name, layer.source_layer, value, stored, None,
                                       *kept[name]))
        for h in d.host_layers:
            layer = layers.get(h.name.split("->")[0])
            if layer is None or layer.source_layer is None:
                continue
            value, stored = (conv_to_nir(layer, h.weights) if h.kind == "conv"
                             else dense_to_nir(layer, h.weights))    # array or CSR
            found.append(DeployedLayer(fmt, layer.name, layer.source_layer, value, stored,
                                       None, *kept[layer.name]))
        out[fmt] = found
    return out


# ---- netx -----------------------------------------------------------------------------
def netx_check(path: Path, graph, pruned: dict) -> list:
    """``netx``: the file as stored (dense arrays: every entry is a synapse, as netx's
    default ``Dense`` blocks hold it); ``netx-sparse``: the processes lava-dl builds from
    it with ``sparse_fc_layer=True`` (dense layers become ``Sparse``, zeros dropped)."""
    if not path.exists():
        return [vanish.not_checked("netx", "model.net not present")]
    try:
        layers = netx_layers(path, graph)
    except GraphError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError,
            SpikeshipError) as e:
        # a damaged deployed file must fail the check loudly, never pass it unchecked
        raise GraphError(f"cannot read {path.name} for the vanish check: "
                         f"{type(e).__name__}: {e}") from e
    out = [vanish.check_format("netx", layers, pruned,
                               "netx HDF5 stores dense arrays: every entry is a synapse "
                               "(Dense blocks; Conv kernels)")]
    try:
        built = netx_processes(path, graph)
    except (MissingDependencyError, GraphError, RuleError, ImportError) as e:
        out.append(vanish.not_checked("netx-sparse", f"cannot build netx: {e}"))
        return out
    out.append(vanish.check_format("netx-sparse", built, pruned,
                                   "lava-dl netx Network(sparse_fc_layer=True): Sparse holds "
                                   "the non-zero entries"))
    return out


def _by_population(graph) -> dict[str, SynapticLayer]:
    out = {}
    for layer in synaptic_layers(graph):
        if layer.postsynaptic is not None:
            out.setdefault(layer.postsynaptic, layer)
    return out


def netx_layers(path: Path, graph, fmt: str = "netx") -> list[DeployedLayer]:
    """The synaptic layers stored in a spikeship ``model.net`` (layout of
    :mod:`spikeship.targets.loihi.netx`, read by :func:`~spikeship.targets.loihi.
    netx_file.read_netx_file`): each dense / conv layer's ``weight`` and ``name`` (the
    NIR population the layer feeds), and the host layer in ``spikeship_host``."""
    pops = _by_population(graph)
    layers = {l.name: l for l in synaptic_layers(graph)}
    nf = read_netx_file(path)
    out = []
    for stored in nf.layers:
        if stored.type not in ("dense", "conv"):
            continue
        layer = pops.get(stored.name)
        if layer is None:
            raise GraphError(f"{path.name} layer {stored.index} feeds '{stored.name}', which "
                             f"no synaptic layer of model.nir feeds")
        out.append(_from_weights(fmt, graph, layer, stored.type, stored.weight,
                                 nir_layout=True))
    if nf.host is not None:
        name = text(nf.host["name"])
        layer = layers.get(name)
        if layer is None:
            raise GraphError(f"{path.name}: host layer '{name}' is not in model.nir")
        out.append(_from_weights(fmt, graph, layer, text(nf.host["kind"]),
                                 np.asarray(nf.host["weight"]), nir_layout=True))
    return [d for d in out if d is not None]


def _from_weights(fmt, graph, layer: SynapticLayer, kind: str, w, nir_layout: bool
                  ) -> DeployedLayer | None:
    """A stored weight -> :class:`DeployedLayer`: a dense array stores every entry (a
    pruned synapse is a stored 0), a scipy sparse matrix only the synapses it holds."""
    if layer.source_layer is None:
        return None
    if kind == "conv":
        k = w if nir_layout else w.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]
        value, st = conv_to_nir(layer, k)
    else:
        value, st = dense_to_nir(layer, w)
        if not sparse.issparse(w):
            st = np.ones_like(st)
    return DeployedLayer(fmt, layer.name, layer.source_layer, value, st, None,
                         *meta_dict(graph, layer))


def netx_processes(path: Path, graph) -> list[DeployedLayer]:
    """Build lava-dl's netx ``Network`` from ``path`` with ``sparse_fc_layer=True`` (as
    the ``lava-netx`` target can) and read its synapse processes back."""
    dep = sparse_hosts(read_deployment(path))     # as run_netx(sparse_fc_layer=True)
    pops = _by_population(graph)
    out = []
    with tempfile.TemporaryDirectory(prefix="spikeship-vanish-") as io_dir:
        lnet, _ = build_netx(path, dep, timesteps=1, chunk_steps=1, io_dir=Path(io_dir),
                             sparse_fc_layer=True)
        for spec in dep.synapses:
            proc = lnet.synapses.get(spec.name)
            layer = pops.get(spec.target)
            if proc is None or layer is None:
                continue
            if spec.kind == "conv":
                d = _from_weights("netx-sparse", graph, layer, "conv",
                                  np.asarray(proc.weight.init), nir_layout=False)
            else:
                value, st = dense_to_nir(layer, proc.weights.init)
                d = DeployedLayer("netx-sparse", layer.name, layer.source_layer, value, st,
                                  None, *meta_dict(graph, layer))
            if d is not None and d.source_layer is not None:
                out.append(d)
        for h in dep.host_layers:
            layer = {l.name: l for l in synaptic_layers(graph)}.get(h.name)
            if layer is not None:
                d = _from_weights("netx-sparse", graph, layer, h.kind, h.weights,
                                  nir_layout=True)
                if d is not None:
                    out.append(d)
    return out


def meta_dict(graph, layer: SynapticLayer):
    m = meta(graph.nodes[layer.name])
    return (np.asarray(m.get("kept_out", np.arange(layer.weight.shape[0]))),
            np.asarray(m.get("kept_in", np.arange(layer.weight.shape[1]))))

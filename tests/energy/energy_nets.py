"""Hand-built NIR graphs for the energy / vanish / mapper tests (odd sizes on purpose).

``convnet``: input (2, 7, 9) -> conv0 (kept 5 of 7 channels, 3x3, pad 1) -> lif1
(5, 7, 9) -> pool2 (sum 2x2: row 6 and column 8 fall in no window) -> conv3 (kept 4
of 6, 3x3, stride 2, pad 1) -> lif4 (4, 2, 2) -> flatten5 -> fc6 (3 x 16, original
3 x 24) -> lif7 (3,). Node metadata follows CONVENTIONS.md (source_layer, kept_out,
kept_in, mask, kept) plus ``original_shape``.

``mlp``: input (7,) -> fc0 (5 x 7) -> lif1 -> fc2 (3 x 5) -> lif3, no pruning metadata.
"""

from __future__ import annotations

import nir
import numpy as np


def lif(shape, kept=None, source_layer=None):
    shape = tuple(shape)
    md = {}
    if kept is not None:
        md = {"kept": np.asarray(kept, dtype=np.int64), "source_layer": source_layer}
    return nir.LIF(tau=np.full(shape, 1.25e-3, np.float32), r=np.ones(shape, np.float32),
                   v_leak=np.zeros(shape, np.float32),
                   v_threshold=np.full(shape, 0.5, np.float32),
                   v_reset=np.zeros(shape, np.float32), metadata=md)


def chain(nodes: dict, metadata: dict | None = None) -> nir.NIRGraph:
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])),
                        metadata=metadata or {}, type_check=False)


def conv_meta(src, kept_out, kept_in, mask, original_shape):
    return {"source_layer": src, "kept_out": np.asarray(kept_out, np.int64),
            "kept_in": np.asarray(kept_in, np.int64), "mask": mask,
            "original_shape": np.asarray(original_shape, np.int64)}


def convnet(seed: int = 0, encoding: str = "direct") -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    m0 = rng.random((5, 2, 3, 3)) > 0.3
    w0 = (rng.normal(size=m0.shape) + 3.0).astype(np.float32) * m0
    m3 = rng.random((4, 5, 3, 3)) > 0.4
    w3 = (rng.normal(size=m3.shape) + 3.0).astype(np.float32) * m3
    m6 = rng.random((3, 16)) > 0.5
    m6[:, 0] = True
    w6 = (rng.normal(size=m6.shape) + 3.0).astype(np.float32) * m6
    k0, k3 = [0, 1, 3, 4, 6], [0, 2, 3, 5]
    cols6 = (np.asarray(k3)[:, None] * 4 + np.arange(4)[None, :]).ravel()
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 7, 9])}),
        "conv0": nir.Conv2d(input_shape=(7, 9), weight=w0, stride=1, padding=1, dilation=1,
                            groups=1, bias=np.linspace(0.1, 0.5, 5).astype(np.float32),
                            metadata=conv_meta("0", k0, [0, 1], m0, (7, 2, 3, 3))),
        "lif1": lif((5, 7, 9), k0, "1"),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                               padding=np.array([0, 0])),
        "conv3": nir.Conv2d(input_shape=(3, 4), weight=w3, stride=2, padding=1, dilation=1,
                            groups=1, bias=np.zeros(4, np.float32),
                            metadata=conv_meta("3", k3, k0, m3, (6, 7, 3, 3))),
        "lif4": lif((4, 2, 2), k3, "4"),
        "flatten5": nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0),
        "fc6": nir.Affine(weight=w6, bias=np.zeros(3, np.float32),
                          metadata=conv_meta("6", [0, 1, 2], cols6, m6, (3, 24))),
        "lif7": lif((3,), [0, 1, 2], "7"),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    return chain(nodes, {"format": "spikeship-nir/1", "dt": 1e-3, "timesteps": 4,
                         "encoding": encoding})


def mlp(seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(5, 7)).astype(np.float32)
    w0[rng.random(w0.shape) < 0.4] = 0.0
    w2 = rng.normal(size=(3, 5)).astype(np.float32)
    nodes = {"input": nir.Input(input_type={"input": np.array([7])}),
             "fc0": nir.Affine(weight=w0, bias=np.zeros(5, np.float32)),
             "lif1": lif((5,)),
             "fc2": nir.Affine(weight=w2, bias=np.zeros(3, np.float32)),
             "lif3": lif((3,)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    return chain(nodes, {"timesteps": 4})


def pruned_run(run_dir, *, seed: int = 0, input_shape=(1, 9, 7), num_classes: int = 3,
               timesteps: int = 4, formats=("nir", "onnx")):
    """A real run directory: a ``dpap-mnist`` checkpoint with pruned conv channels, FC
    neurons and FC synapses, exported by ``spikeship.targets.export.export_run``.

    Returns the :class:`~spikeship.train.masks.MaskSet` that was saved.
    """
    import torch

    from spikeship.targets.export import export_run
    from spikeship.train.checkpoint import save_checkpoint
    from spikeship.train.masks import MaskSet
    from spikeship.train.models import ModelSpec, build_model
    from spikeship.train.structure import describe

    torch.manual_seed(seed)
    spec = ModelSpec("dpap-mnist", tuple(input_shape), num_classes)
    model = build_model(spec)
    with torch.no_grad():
        for m in model:
            if hasattr(m, "weight") and m.weight is not None:
                m.weight.mul_(3.0)
    masks = MaskSet(model, describe(model, spec.input_shape))
    g = torch.Generator().manual_seed(seed)
    masks.prune_units("0", torch.isin(torch.arange(15), torch.tensor([2, 7])))
    masks.prune_units("3", torch.isin(torch.arange(40), torch.tensor([0, 5, 11, 39])))
    masks.prune_units("7", torch.rand(300, generator=g) < 0.3)
    masks.prune_weights("7", torch.rand(masks.weight["7"].shape, generator=g) < 0.5)
    masks.prune_weights("9", torch.rand(masks.weight["9"].shape, generator=g) < 0.4)
    masks.apply()
    config = {"dataset": "digits", "model": "dpap-mnist", "timesteps": timesteps, "seed": seed}
    save_checkpoint(run_dir, model=model, spec=spec, masks=masks, config=config, epoch=1)
    export_run(run_dir, tuple(formats))
    return masks


def densify_onnx(src, dst):
    """Rewrite a spikeship ONNX export as a naive exporter would write it: every weight a
    dense initializer, pruned synapses stored as explicit zeros (same function)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(src)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    bases = [n[: -len(".values")] for n in inits if n.endswith(".weight.values")]
    if not bases:
        raise ValueError(f"{src} has no coordinate-form (pruned) weights")
    keep = [t for t in m.graph.initializer
            if not t.name.endswith((".weight.values", ".weight.indices", ".weight.shape"))]
    for base in bases:
        w = np.zeros(tuple(inits[f"{base}.shape"]), dtype=np.float32)
        idx = inits[f"{base}.indices"]
        w[tuple(idx[:, k] for k in range(idx.shape[1]))] = inits[f"{base}.values"]
        keep.append(numpy_helper.from_array(w, base))
    nodes = [n for n in m.graph.node
             if not any(o in bases or o.endswith(".weight.zeros") for o in n.output)]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, dst)

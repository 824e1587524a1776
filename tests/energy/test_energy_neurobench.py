"""Independent cross-check: neurobench 2.3 counts the same effective synaptic operations.

neurobench's ``SynapticOperations`` hooks every Conv/Linear layer of a torch model and
counts, per forward call, ``binary(input) x binary(weight)`` summed over outputs: non-zero
inputs times non-zero weights, as MACs when the input is graded and ACs when it is
binary. Our counter prices the deployed NIR graph with the recorded spikes. On a model
without pooling (neurobench counts a pooled *value* once, we count each spike that
feeds the pool: the layers after a pool are not comparable) both must agree exactly,
layer by layer and in total. Masks are made permanent first (zeros in the weights,
no torch prune parametrizations, which neurobench's binary copy cannot see through).
"""

from __future__ import annotations

from types import SimpleNamespace

import nir
import numpy as np
import pytest
import torch
from torch import nn

from spikeship._optional import require
from spikeship.bench import _thread_lock_for_tqdm
from spikeship.export.nir_export import to_nir
from spikeship.export.surgery import build_deployable
from spikeship.sim.snntorch import record_model
from spikeship.energy.synops import SpikeCounts, count_synops
from spikeship.sim.result import SimResult
from spikeship.train.masks import MaskSet
from spikeship.train.models import forward_sequence
from spikeship.train.neuron import NeuronParams, make_lif
from spikeship.train.structure import describe

T, N = 5, 12
INPUT = (2, 7, 9)


class _Seq(nn.Module):
    """neurobench's ``custom_forward``: (B, T, ...) -> (T, B, classes)."""

    def __init__(self, seq):
        super().__init__()
        self.seq = seq

    def forward(self, data):
        return forward_sequence(self.seq, data.transpose(0, 1))


def _model_and_masks():
    torch.manual_seed(3)
    p = NeuronParams()
    seq = nn.Sequential(nn.Conv2d(2, 6, 3, stride=2, padding=1), make_lif(p), nn.Flatten(),
                        nn.Linear(6 * 4 * 5, 11), make_lif(p), nn.Linear(11, 3), make_lif(p))
    with torch.no_grad():
        for m in seq:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4.0)
                m.bias.add_(0.3)
    masks = MaskSet(seq, describe(seq, INPUT))
    g = torch.Generator().manual_seed(1)
    masks.prune_units("0", torch.tensor([False, True, False, False, True, False]))
    masks.prune_weights("0", torch.rand(masks.weight["0"].shape, generator=g) < 0.3)
    masks.prune_units("3", torch.rand(11, generator=g) < 0.25)
    masks.prune_weights("3", torch.rand(masks.weight["3"].shape, generator=g) < 0.5)
    masks.prune_weights("5", torch.rand(masks.weight["5"].shape, generator=g) < 0.4)
    masks.apply()                      # permanent zeros, no parametrizations
    return seq, masks


def _neurobench_per_layer(seq, x):
    """Per layer, neurobench's hook + ``single_layer_MACs`` over every forward call."""
    from neurobench.hooks.layer import LayerHook
    from neurobench.metrics.utils.layers import single_layer_MACs

    layers = [m for m in seq if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks = [LayerHook(m) for m in layers]
    with torch.no_grad():
        _Seq(seq)(x)
    out = []
    for h in hooks:
        ops, kinds = 0, set()
        for inp in h.inputs:
            spikes = inp[0] if len(inp) == 1 else inp
            n, spiking = single_layer_MACs(spikes, h.layer)
            ops += n
            kinds.add("AC" if spiking else "MAC")
        h.close()
        out.append((ops, kinds))
    return out


def test_effective_synops_agree_with_neurobench(tmp_path):
    nb = require("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import SNNTorchModel

    seq, masks = _model_and_masks()
    assert not any(hasattr(m, "parametrizations") for m in seq)
    rng = np.random.default_rng(0)
    x = rng.random((N, T, *INPUT)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0.0                 # some exact zeros in the graded input

    # ours: the deployed graph, written and read back, with the model's spikes
    spec = SimpleNamespace(ann=False, input_shape=INPUT, num_classes=3, preset="nb-check")
    net = build_deployable(seq, masks, spec, {"timesteps": T, "encoding": "direct"})
    nir.write(tmp_path / "m.nir", to_nir(net))
    graph = nir.read(tmp_path / "m.nir")
    _, full = record_model(seq, x)
    counts = {l.name: full[l.name][l.kept] for l in net.neuron_layers()}
    res = SimResult.from_run("snntorch", x, np.zeros((N, T, 1)), counts, None, 0.0)
    rep = count_synops(graph, SpikeCounts.from_result(res))

    theirs = _neurobench_per_layer(seq, torch.from_numpy(x))
    for ours, (ops, kinds) in zip(rep.layers, theirs):
        assert kinds == {ours.op}, ours.layer
        assert ours.synops_effective * N == pytest.approx(ops, abs=1e-6), ours.layer
        assert ops > 0

    # and neurobench's own benchmark loop: totals per sample
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.zeros(N, dtype=torch.long))
    bench = Benchmark(SNNTorchModel(_Seq(seq), custom_forward=True),
                      torch.utils.data.DataLoader(data, batch_size=5), [], [],
                      [[], [SynapticOperations]])
    with _thread_lock_for_tqdm():
        res = bench.run(quiet=True)["SynapticOperations"]
    assert res["Effective_MACs"] == pytest.approx(rep.total("synops_effective", "MAC"))
    assert res["Effective_ACs"] == pytest.approx(rep.total("synops_effective", "AC"))
    assert nb is not None
    import multiprocessing

    assert multiprocessing.get_start_method(allow_none=True) in (None, "fork")

"""Tiny explicit fixture nets for the export and simulator tests (odd sizes so shape bugs show).

``conv_net``: input (2, 9, 7) ->
  0 Conv2d(2, 5, 3, pad 1) -> 1 BatchNorm2d(5) -> 2 Leaky -> 3 AvgPool2d(2)  (5, 4, 3)
  4 Conv2d(5, 7, 3, pad 1) -> 5 Leaky -> 6 AvgPool2d(2)                      (7, 2, 1)
  7 Flatten (14 = 7 channels x 2 columns) -> 8 Linear(14, 9) -> 9 Leaky
  10 Linear(9, 3) -> 11 Leaky
``mlp``: input (1, 1, 7) -> Flatten -> Linear(7, 5) -> Leaky -> Linear(5, 3) -> Leaky.
``pool_net``: input (1, 6, 6) -> Conv(1, 3) -> Leaky -> AvgPool(2) -> Flatten (3*3*3 = 27
  columns, 9 per channel) -> Linear(27, 4) -> Leaky: the H*W block removal through Flatten.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec
from spikeship.train.neuron import NeuronParams, make_lif
from spikeship.train.structure import describe


def _lif(beta=0.2):
    return make_lif(NeuronParams(beta=beta, threshold=0.5))


def conv_net(seed: int = 0, beta: float = 0.2) -> tuple[nn.Sequential, ModelSpec]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5), _lif(beta), nn.AvgPool2d(2),
        nn.Conv2d(5, 7, 3, padding=1), _lif(beta), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(14, 9), _lif(beta), nn.Linear(9, 3), _lif(beta))
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.4)
        for i in (0, 4, 8, 10):
            model[i].weight.mul_(4.0)        # enough drive that every layer spikes
        for i in (8, 10):
            model[i].bias.add_(0.3)
    return model.eval(), ModelSpec("dpap-mnist", (2, 9, 7), 3)


def mlp(seed: int = 0) -> tuple[nn.Sequential, ModelSpec]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(7, 5), _lif(), nn.Linear(5, 3), _lif())
    with torch.no_grad():
        for i in (1, 3):
            model[i].weight.mul_(3.0)
    return model.eval(), ModelSpec("tiny-mlp", (1, 1, 7), 3, hidden=5)


def pool_net(seed: int = 0) -> tuple[nn.Sequential, ModelSpec]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), _lif(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(27, 4), _lif())
    with torch.no_grad():
        model[0].weight.mul_(4.0)
        model[4].weight.mul_(6.0)
    return model.eval(), ModelSpec("dpap-mnist", (1, 6, 6), 4)


def masks_for(model: nn.Sequential, spec: ModelSpec) -> MaskSet:
    return MaskSet(model, describe(model, spec.input_shape))


def prune(masks: MaskSet, units: dict[str, list[int]], weight_frac: float = 0.0,
          seed: int = 0) -> MaskSet:
    """Remove the listed units, prune ``weight_frac`` of the synapses at random, apply."""
    g = torch.Generator().manual_seed(seed)
    for name, idx in units.items():
        remove = torch.zeros(masks.layers[name].out_units, dtype=torch.bool)
        remove[idx] = True
        masks.prune_units(name, remove)
    if weight_frac:
        for name in masks.layers:
            w = masks.weight[name]
            masks.prune_weights(name, torch.rand(w.shape, generator=g) < weight_frac)
    masks.apply()
    return masks


def inputs_for(spec: ModelSpec, n: int = 6, steps: int = 5, seed: int = 0) -> np.ndarray:
    """Direct-encoded inputs (N, T, C, H, W): one random image repeated over the steps."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *spec.input_shape), dtype=np.float32)
    return np.repeat(x[:, None], steps, axis=1)


def make_run(run_dir, *, prune_units: dict[str, list[int]] | None = None, seed: int = 0):
    """A run directory (config.json + checkpoint) of an untrained, hand-pruned ``dpap-mnist``
    on the digits dataset, weights scaled so that every layer spikes."""
    import json
    from pathlib import Path

    from spikeship.train.checkpoint import save_checkpoint
    from spikeship.train.config import TrainConfig
    from spikeship.train.models import build_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(dataset="digits", model="dpap-mnist", timesteps=4, epochs=1,
                         seed=seed).to_json()
    spec = ModelSpec("dpap-mnist", (1, 8, 8), 10)
    torch.manual_seed(seed)
    model = build_model(spec).eval()
    with torch.no_grad():
        for i, gain, shift in ((0, 3.0, 0.0), (3, 3.0, 0.0), (7, 4.0, 0.1), (9, 6.0, 0.3)):
            model[i].weight.mul_(gain)
            model[i].bias.add_(shift)
    masks = prune(masks_for(model, spec), prune_units or {}, weight_frac=0.3, seed=seed)
    (run_dir / "config.json").write_text(json.dumps(config))
    save_checkpoint(run_dir, model=model, spec=spec, masks=masks, config=config, epoch=1)
    return run_dir, model, masks

"""The prunable structure of a sequential model: who produces and who consumes each unit.

A *prunable layer* is a ``Conv2d`` or ``Linear``. Its *units* are its output channels
(conv) or output neurons (FC). A unit's incoming synapses are its weight row /
out-channel; its outgoing synapses are the matching input column(s) of the next
prunable layer (its *consumer*). Through ``Flatten`` one conv channel feeds
``H*W`` consecutive input columns of the Linear (``in_block``).
"""

from __future__ import annotations

from dataclasses import dataclass

import snntorch as snn
import torch
from torch import nn

from spikeship.train.neuron import reset_state


@dataclass(frozen=True)
class LayerInfo:
    """One prunable layer of an ``nn.Sequential`` (names are the Sequential's indices)."""

    name: str
    kind: str                    # "conv" | "fc"
    out_units: int
    in_units: int                # input channels / features (before in_block expansion)
    is_output: bool              # the last prunable layer: its units are the classes
    bn: str | None               # BatchNorm2d right after it, if any
    neuron: str | None           # the neuron (Leaky / ReLU) that fires its units
    producer: str | None         # previous prunable layer (whose units feed this one)
    in_block: int                # input columns per producer unit (H*W through Flatten, else 1)
    out_shape: tuple[int, ...]   # output shape of the layer for one sample


def describe(model: nn.Sequential, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """List the prunable layers of ``model`` in order, with their wiring."""
    shapes: list[tuple[int, ...]] = []
    x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()  # BatchNorm with batch 1
    with torch.no_grad():
        # Plain forward of each module on a dummy input to learn shapes.
        for m in model:
            x = m(x)
            shapes.append(tuple(x.shape[1:]))
    model.train(was_training)
    reset_state(model)
    modules = list(model)
    prunable = [i for i, m in enumerate(modules) if isinstance(m, (nn.Conv2d, nn.Linear))]
    out: list[LayerInfo] = []
    for k, i in enumerate(prunable):
        m = modules[i]
        kind = "conv" if isinstance(m, nn.Conv2d) else "fc"
        bn = neuron = None
        nxt = prunable[k + 1] if k + 1 < len(prunable) else len(modules)
        for j in range(i + 1, nxt):
            if isinstance(modules[j], nn.BatchNorm2d) and bn is None and neuron is None:
                bn = str(j)
            if isinstance(modules[j], (snn.Leaky, nn.ReLU)) and neuron is None:
                neuron = str(j)
        producer = str(prunable[k - 1]) if k > 0 else None
        in_block = 1
        if producer is not None and kind == "fc" and out and out[-1].kind == "conv":
            prev_shape = shapes[i - 1] if i > 0 else input_shape
            in_block = m.in_features // out[-1].out_units
            if in_block * out[-1].out_units != m.in_features or len(prev_shape) != 1:
                raise ValueError(f"cannot map conv channels to inputs of layer {i}")
        out.append(LayerInfo(
            name=str(i), kind=kind,
            out_units=m.out_channels if kind == "conv" else m.out_features,
            in_units=m.in_channels if kind == "conv" else m.in_features,
            is_output=(k == len(prunable) - 1), bn=bn, neuron=neuron,
            producer=producer, in_block=in_block, out_shape=shapes[i],
        ))
    return out

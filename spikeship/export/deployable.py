"""The deployable layer list: what model surgery (:mod:`.surgery`) makes and every exporter
(NIR, ONNX, netx) reads. Plain frozen dataclasses of numpy arrays, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SynapseLayer:
    """A Conv2d (``kind="conv"``) or Linear (``kind="fc"``) layer, pruned and folded."""

    name: str                      # "conv0", "fc7"
    kind: str
    source_layer: str              # Sequential index in the training model
    weight: np.ndarray             # (O, I, kh, kw) or (O, I), float32
    bias: np.ndarray               # (O,), float32
    mask: np.ndarray               # bool, weight's shape: True = synapse exists
    kept_out: np.ndarray           # int64: original indices of kept output units
    kept_in: np.ndarray            # int64: original indices of kept input columns / channels
    scale_folded: float            # factor folded into the weights
    bias_scale_folded: float       # factor folded into the bias
    in_shape: tuple[int, ...]      # one sample, after removal
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    original_weight_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class NeuronLayer:
    """LIF neurons (DPAP Eq 1-2) of one layer: ``u = beta*u + I``, spike ``u > threshold``,
    reset to zero in the same step. ``beta == 1`` means IF (no leak)."""

    name: str                      # "lif1"
    source_layer: str
    shape: tuple[int, ...]         # after removal
    beta: float
    threshold: float
    kept: np.ndarray               # original indices of kept units (channels / neurons)
    original_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class PoolLayer:
    """A sum pool (the training model's average pool with ``1/k^2`` folded away)."""

    name: str                      # "pool2"
    source_layer: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


@dataclass(frozen=True)
class FlattenLayer:
    """Flatten of one unbatched sample ``(C, H, W) -> (C*H*W,)`` (``start_dim=0``)."""

    name: str                      # "flatten6"
    source_layer: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


Layer = SynapseLayer | NeuronLayer | PoolLayer | FlattenLayer


@dataclass(frozen=True)
class DeployableNet:
    """The deployable network: what every exporter writes."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    dt_s: float
    timesteps: int
    encoding: str                  # "direct" | "frames"
    source_run: str
    preset: str
    # per synaptic layer: original indices of the units removed because no synapse into
    # them is left and their bias alone can never make them fire (see _silent_units)
    removed_silent: dict = field(default_factory=dict)

    def synapse_layers(self) -> list[SynapseLayer]:
        return [l for l in self.layers if isinstance(l, SynapseLayer)]

    def neuron_layers(self) -> list[NeuronLayer]:
        return [l for l in self.layers if isinstance(l, NeuronLayer)]

    @property
    def output_shape(self) -> tuple[int, ...]:
        last = self.layers[-1]
        return last.shape if isinstance(last, NeuronLayer) else last.out_shape


def shape_table(net: DeployableNet) -> list[dict]:
    """Per synaptic layer: weight shape before and after removal, synapses kept."""
    return [{"layer": l.name, "before": list(l.original_weight_shape),
             "after": list(l.weight.shape), "synapses": int(l.mask.sum()),
             "nonzero": int(np.count_nonzero(l.weight))} for l in net.synapse_layers()]

"""Named architectures: the DPAP paper's SNNs and their ANN twins, for any input size.

Every model is a plain ``nn.Sequential`` of torch layers and snntorch ``Leaky``
neurons (or ``nn.ReLU`` for ANN twins), so export and pruning can walk it layer by
layer. Ordering inside a block: ``Conv2d -> [BatchNorm2d] -> neuron -> [pool]``;
``Linear -> neuron``. The last ``Linear`` is the output layer (one unit per class)
and is followed by a neuron too: the SNN's prediction is its firing rate (Eq 3).

Presets (``C`` = conv 3x3 padding 1 unless said, ``FC`` = Linear):

- ``dpap-mnist``  Input-15C3-AvgPool2-40C3-AvgPool2-Flatten-300FC-classesFC
- ``dpap-cifar``  128C3-BN-128C3-BN-MaxPool2-256C3-BN-256C3-BN-MaxPool2-512C3-BN-512C3-BN-
                  Flatten-512FC-classesFC. NIR has no MaxPool: for deployment train it
                  with ``pool="avg"`` (the AvgPool variant); exporting the MaxPool variant
                  raises ``ExportError``.
- ``lenet-dnn``   (ANN only) 20C5-MaxPool2-50C5-MaxPool2-500FC-classesFC, 5x5 convs with
                  padding 2 so small inputs (8x8 digits) keep a spatial extent.
- ``vgg16-bn``    (ANN only) VGG-16 with BatchNorm; a pool is skipped where the feature
                  map is already 1 pixel wide, so any input size >= 1 works.
- ``tiny-mlp``    Flatten-hiddenFC-classesFC, for tests and smoke runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from spikeship.errors import ConfigError
from spikeship.train.neuron import NeuronParams, make_lif, reset_state

ANN_ONLY = {"lenet-dnn", "vgg16-bn"}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model (saved in checkpoints as JSON)."""

    preset: str
    input_shape: tuple[int, int, int]          # (channels, height, width)
    num_classes: int
    ann: bool = False
    pool: str = ""                              # "" = preset default; "avg" | "max"
    hidden: int = 32                            # tiny-mlp only
    neuron: NeuronParams = field(default_factory=NeuronParams)

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown model '{self.preset}'; choose one of {sorted(PRESETS)}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W) >= 1, got {self.input_shape}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.preset in ANN_ONLY and not self.ann:
            raise ConfigError(f"model '{self.preset}' is an ANN twin: use it with --ann")
        if self.pool not in ("", "avg", "max"):
            raise ConfigError(f"pool must be 'avg' or 'max', got '{self.pool}'")

    def to_json(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ModelSpec:
        d = dict(d)
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown model spec fields: {sorted(unknown)}")
        d["input_shape"] = tuple(d["input_shape"])
        d["neuron"] = NeuronParams(**d.get("neuron", {}))
        return cls(**d)


def _act(spec: ModelSpec) -> nn.Module:
    return nn.ReLU() if spec.ann else make_lif(spec.neuron)


def _pool(kind: str) -> nn.Module:
    return nn.AvgPool2d(2) if kind == "avg" else nn.MaxPool2d(2)


def _conv_stack(spec: ModelSpec, plan: list, kernel: int, pad: int, bn: bool, pool: str):
    """Layers for a plan like [15, 'P', 40, 'P'] (ints = conv channels, 'P' = pool)."""
    layers: list[nn.Module] = []
    c, h, w = spec.input_shape
    for item in plan:
        if item == "P":
            if min(h, w) >= 2:
                layers.append(_pool(pool))
                h, w = h // 2, w // 2
            continue
        layers.append(nn.Conv2d(c, item, kernel, padding=pad))
        if bn:
            layers.append(nn.BatchNorm2d(item))
        layers.append(_act(spec))
        c = item
        h, w = h + 2 * pad - kernel + 1, w + 2 * pad - kernel + 1
        if min(h, w) < 1:
            raise ConfigError(f"input {spec.input_shape} is too small for '{spec.preset}'")
    return layers, c * h * w


def _fc_stack(spec: ModelSpec, n_in: int, hidden: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    for n in [*hidden, spec.num_classes]:
        layers += [nn.Linear(n_in, n), _act(spec)]
        n_in = n
    if spec.ann:
        layers.pop()  # an ANN's output layer gives logits
    return layers


def _dpap_mnist(spec):
    conv, n = _conv_stack(spec, [15, "P", 40, "P"], 3, 1, False, spec.pool or "avg")
    return conv + _fc_stack(spec, n, [300])


def _dpap_cifar(spec):
    plan = [128, 128, "P", 256, 256, "P", 512, 512]
    conv, n = _conv_stack(spec, plan, 3, 1, True, spec.pool or "max")
    return conv + _fc_stack(spec, n, [512])


def _lenet(spec):
    conv, n = _conv_stack(spec, [20, "P", 50, "P"], 5, 2, False, spec.pool or "max")
    return conv + _fc_stack(spec, n, [500])


def _vgg16(spec):
    plan = [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P",
            512, 512, 512, "P"]
    conv, n = _conv_stack(spec, plan, 3, 1, True, spec.pool or "max")
    return conv + _fc_stack(spec, n, [512, 512])


def _tiny_mlp(spec):
    c, h, w = spec.input_shape
    return _fc_stack(spec, c * h * w, [spec.hidden])


PRESETS = {
    "dpap-mnist": _dpap_mnist,
    "dpap-cifar": _dpap_cifar,
    "lenet-dnn": _lenet,
    "vgg16-bn": _vgg16,
    "tiny-mlp": _tiny_mlp,
}


def build_model(spec: ModelSpec) -> nn.Sequential:
    """Build the ``nn.Sequential`` of ``spec`` (weights from the current torch RNG)."""
    return nn.Sequential(*PRESETS[spec.preset](spec))


def forward_sequence(model: nn.Module, x: torch.Tensor, timesteps: int | None = None,
                     ann: bool = False) -> torch.Tensor:
    """Run ``model`` over time and return the output per step.

    ``x`` is either a static batch ``(B, C, H, W)`` fed at every one of ``timesteps``
    steps (direct encoding), or a sequence ``(T, B, C, H, W)``. Returns ``(T, B,
    classes)`` output spikes for an SNN; for an ANN (``ann=True``) the logits
    ``(1, B, classes)``. Neuron state is reset first.
    """
    if ann:
        return model(x if x.dim() == 4 else x.mean(0)).unsqueeze(0)
    reset_state(model)
    if x.dim() == 4:
        if timesteps is None:
            raise ValueError("timesteps is needed for a static input")
        return torch.stack([model(x) for _ in range(timesteps)])
    return torch.stack([model(x[t]) for t in range(x.shape[0])])

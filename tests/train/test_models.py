"""Presets build for any input size; forward_sequence shapes; ANN twins; spec JSON; wiring."""

import pytest
import snntorch as snn
import torch
from torch import nn

from spikeship.errors import ConfigError
from spikeship.train.models import ModelSpec, build_model, forward_sequence
from spikeship.train.structure import describe


@pytest.mark.parametrize("preset,shape,ann", [
    ("dpap-mnist", (1, 8, 8), False), ("dpap-mnist", (2, 10, 10), False),
    ("dpap-mnist", (2, 34, 34), True), ("dpap-cifar", (3, 7, 5), False),
    ("lenet-dnn", (1, 8, 8), True), ("vgg16-bn", (3, 9, 7), True), ("tiny-mlp", (1, 7, 5), False),
])
def test_presets_run_on_odd_inputs(preset, shape, ann):
    spec = ModelSpec(preset, shape, num_classes=3, ann=ann)
    model = build_model(spec)
    x = torch.rand(2, *shape)
    out = forward_sequence(model, x, timesteps=4, ann=ann)
    assert out.shape == ((1, 2, 3) if ann else (4, 2, 3))
    has_lif = any(isinstance(m, snn.Leaky) for m in model)
    assert has_lif != ann
    if not ann:
        assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_dpap_mnist_layout_matches_the_paper():
    m = build_model(ModelSpec("dpap-mnist", (1, 28, 28), 10))
    convs = [x for x in m if isinstance(x, nn.Conv2d)]
    fcs = [x for x in m if isinstance(x, nn.Linear)]
    assert [c.out_channels for c in convs] == [15, 40]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(x, nn.AvgPool2d) for x in m) == 2
    assert [(f.in_features, f.out_features) for f in fcs] == [(40 * 7 * 7, 300), (300, 10)]
    assert isinstance(m[-1], snn.Leaky)


def test_ann_twin_has_same_weights_shapes_and_logit_output():
    snn_m = build_model(ModelSpec("dpap-mnist", (1, 8, 8), 10))
    ann_m = build_model(ModelSpec("dpap-mnist", (1, 8, 8), 10, ann=True))
    shapes = lambda m: [tuple(p.shape) for p in m.parameters()]  # noqa: E731
    assert shapes(snn_m) == shapes(ann_m)
    assert isinstance(ann_m[-1], nn.Linear)
    assert sum(isinstance(x, nn.ReLU) for x in ann_m) == 3


def test_frames_input_runs_one_frame_per_step():
    m = build_model(ModelSpec("tiny-mlp", (2, 3, 3), 4, hidden=5))
    with torch.no_grad():     # no bias: a neuron can then fire only from input
        for layer in m.modules():
            if getattr(layer, "bias", None) is not None:
                layer.bias.zero_()
    x = torch.zeros(6, 1, 2, 3, 3)
    x[2] = 10.0  # only step 2 gets input: the hidden layer fires at step 2 at the earliest
    out = forward_sequence(m, x)
    assert out.shape == (6, 1, 4)
    assert out[:2].sum() == 0
    with pytest.raises(ValueError, match="timesteps"):
        forward_sequence(m, torch.zeros(1, 2, 3, 3))


def test_spec_json_round_trip_and_validation():
    spec = ModelSpec("tiny-mlp", (1, 7, 5), 3, hidden=5)
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ConfigError, match="unknown model"):
        ModelSpec("resnet", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="--ann"):
        ModelSpec("lenet-dnn", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="unknown model spec fields"):
        ModelSpec.from_json({**spec.to_json(), "depth": 3})


def test_describe_wiring_of_dpap_mnist():
    m = build_model(ModelSpec("dpap-mnist", (1, 8, 8), 10))
    layers = describe(m, (1, 8, 8))
    assert [(li.name, li.kind, li.out_units, li.producer, li.in_block, li.is_output)
            for li in layers] == [("0", "conv", 15, None, 1, False),
                                  ("3", "conv", 40, "0", 1, False),
                                  ("7", "fc", 300, "3", 4, False),     # 40 channels x 2x2
                                  ("9", "fc", 10, "7", 1, True)]
    assert [li.neuron for li in layers] == ["1", "4", "8", "10"]

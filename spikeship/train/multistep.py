"""The fast engine: a model's ``nn.Sequential`` run on all T steps at once.

The snntorch engine (:func:`spikeship.train.models.forward_sequence`) calls the
whole net once per time step. Here each module runs once per batch:

- stateless layers (``Conv2d``, ``Linear``, pools, ``Flatten``) run on the T steps
  folded into the batch, ``(T * B, ...)``; while the input is still static (a
  direct-encoded image, the same at every step) they run on ``(B, ...)`` only, so
  the first conv is computed once per sample, not T times;
- each ``Leaky`` neuron runs its recurrence over T in one fused autograd node
  (:mod:`spikeship.train.fused_lif`), with the neuron's own lambda, V_th and
  surrogate width, so spikes are snntorch's (same float operations, strict ``>``);
- ``BatchNorm2d`` in training mode is applied step by step, as in the snntorch
  engine (per-step batch statistics, T running-statistics updates per batch).

Modules are called through ``forward`` directly, so forward hooks do not fire; a
pruner that needs activity (DPAP) gets it from ``record(name, pre, post)``: for
every prunable layer, its input and its neuron's output as ``(T, B, N)``
populations (conv maps summed over H, W), exactly what its hooks would have
collected step by step.
"""

from __future__ import annotations

from typing import Callable

import snntorch as snn
import torch
from torch import nn

from spikeship.train.fused_lif import lif_sequence
from spikeship.train.structure import LayerInfo

Recorder = Callable[[str, torch.Tensor, torch.Tensor], None]
InputRecorder = Callable[[str, torch.Tensor, int], None]


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity forward; backward hands on the gradient in channels-last layout.

    A gradient arriving through ``Flatten`` is NCHW; a pool's backward fed an NCHW
    gradient for a channels-last input converts layouts inside, which is
    slower than with a channels-last gradient."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        return g.contiguous(memory_format=torch.channels_last)


def _population(h: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C)`` summed over H, W; ``(N, F)`` as it is."""
    return h.sum((2, 3)) if h.dim() == 4 else (h.flatten(2).sum(-1) if h.dim() > 2 else h)


def _per_step(p: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """``(steps * batch, N)`` -> ``(steps, batch, N)``; N from the shape, not inferred, so
    an empty batch (a data-parallel rank's share of a short last batch) splits too."""
    return p.view(steps, batch, *p.shape[1:])


def _surrogate_width(m: snn.Leaky) -> float:
    width = getattr(m.spike_grad, "width", None)
    if width is None:
        raise TypeError("the fast engine needs the rectangle surrogate of "
                        "spikeship.train.neuron (use --engine snntorch for other neurons)")
    return float(width)


def supports(model: nn.Sequential) -> bool:
    """True when every module of ``model`` is one the fast engine runs exactly."""
    ok = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten, nn.BatchNorm2d,
          nn.Identity)
    for m in model:
        if isinstance(m, snn.Leaky):
            if (m.reset_mechanism_val != 1 or not m.reset_delay or m.state_quant
                    or m.inhibition or getattr(m.spike_grad, "width", None) is None
                    or float(m.graded_spikes_factor) != 1.0):
                return False
        elif not isinstance(m, ok):
            return False
    return True


def run(model: nn.Sequential, x: torch.Tensor, timesteps: int | None = None, *,
        layers: list[LayerInfo] | None = None, record: Recorder | None = None,
        membrane: bool = False, inputs: InputRecorder | None = None) -> torch.Tensor:
    """Outputs ``(T, B, K)`` of ``model`` for ``x``: static ``(B, C, H, W)`` fed at each
    of ``timesteps`` steps, or a sequence ``(T, B, C, H, W)``.

    ``membrane=True`` returns the last neuron's membrane ``u[t]`` (before reset)
    instead of its spikes. ``record`` (with ``layers``) receives each prunable
    layer's ``(name, pre, post)`` activity ``(T, B, N)``. ``inputs`` (with ``layers``)
    receives each prunable layer's whole input ``(name, x, repeat)`` as the layer gets it
    (``(T*B, ...)``, or ``(B, ...)`` with ``repeat = T`` while the input is static): what
    the on-chip cost meter's hooks would have summed step by step.
    """
    static = x.dim() == 4
    if static:
        if timesteps is None:
            raise ValueError("timesteps is needed for a static input")
        steps, batch = timesteps, x.shape[0]
        h = x
    else:
        steps, batch = x.shape[0], x.shape[1]
        h = x.reshape(steps * batch, *x.shape[2:])
    pre_of: dict[int, LayerInfo] = {}
    post_of: dict[int, LayerInfo] = {}
    pre_act: dict[str, torch.Tensor] = {}
    if record is not None and layers is not None:
        pre_of = {int(li.name): li for li in layers}
        post_of = {int(li.neuron): li for li in layers if li.neuron is not None}
        bare = {int(li.name): li for li in layers if li.neuron is None}
    else:
        bare = {}
    in_of = {int(li.name): li.name for li in layers} if inputs is not None and layers else {}
    mem = None
    for i, m in enumerate(model):
        if i in in_of:
            inputs(in_of[i], h.detach(), steps if static else 1)
        if i in pre_of:
            p = _population(h.detach())
            pre_act[pre_of[i].name] = (p.expand(steps, *p.shape) if static
                                       else _per_step(p, steps, batch))
        if isinstance(m, snn.Leaky):
            cur = h if static else h.view(steps, batch, *h.shape[1:])
            spk, mem = lif_sequence(cur, steps, m.beta.clamp(0, 1), m.threshold,
                                    _surrogate_width(m), static=static, membrane=membrane)
            static = False
            h = spk.view(steps * batch, *spk.shape[2:])
            if i in post_of:
                li = post_of[i]
                record(li.name, pre_act.pop(li.name),
                       _per_step(_population(h.detach()), steps, batch))
        elif isinstance(m, nn.BatchNorm2d) and m.training:
            if static:
                for _ in range(steps):        # T statistics updates, as T snntorch steps
                    out = m.forward(h)
                h = out
            else:
                h = torch.cat([m.forward(c) for c in h.view(steps, batch, *h.shape[1:])])
        elif isinstance(m, nn.Conv2d):
            # channels-last: oneDNN's conv (above all its backward) and the pools are
            # several times faster on it than on NCHW; element-wise ops don't care.
            cl = torch.channels_last
            h = m.forward(h.contiguous(memory_format=cl)).contiguous(memory_format=cl)
            # (the second call: with one input channel NCHW and NHWC strides coincide and
            # oneDNN may answer in NCHW)
        elif isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) and h.requires_grad:
            h = _ChannelsLastGrad.apply(m.forward(h))
        else:
            h = m.forward(h)
        if i in bare:  # a layer without a neuron: ReLU of its output, as the DPAP hooks
            p = _population(torch.relu(h.detach()))
            record(bare[i].name, pre_act.pop(bare[i].name),
                   p.expand(steps, *p.shape) if static else _per_step(p, steps, batch))
    if membrane:
        if mem is None:
            raise ValueError("membrane=True needs a neuron at the output")
        return mem
    if static:  # no neuron at all: the same output at every step
        return h.expand(steps, *h.shape)
    return h.view(steps, batch, *h.shape[1:])

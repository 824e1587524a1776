"""The paper's LIF neuron (DPAP Eq 1-2) on snntorch, and its rectangle surrogate (Eq 4).

Eq 1:  u[t+1] = lambda * u[t] * (1 - o[t]) + sum_j w_ij o_pre[t+1] + b_i
Eq 2:  o[t+1] = 1 if u[t+1] > V_th else 0
Eq 4:  dH/du = (1/a) * 1{|u - V_th| < a/2}

Built on ``snntorch.Leaky(beta=lambda, threshold=V_th, reset_mechanism="zero")``.
snntorch's update order (``Leaky.forward``, snntorch 1.0, default ``reset_delay=True``):
the reset flag ``o[t] = H(u[t] - threshold)`` of the previous membrane is computed,
the previous membrane is zeroed where it spiked, then ``mem = beta*mem + input``,
then ``spk = H(mem - threshold)``. That is Eq 1-2 exactly: the zeroing is the
``(1 - o[t])`` factor, and the membrane read after a step (``module.mem``) is
``u[t+1]`` before any reset (a spiking step reads its supra-threshold value).
``tests/train/test_neuron.py`` checks it against a hand trace.

One deliberate difference from the paper's Eq 2: spikes fire on ``u > V_th``
(strict), not ``>=``. That is the convention of snntorch, Norse, NIR simulators and
Lava's LIF (``v > vth``), so a deployed network fires exactly where the trained one
does; in floating point, ``u == V_th`` has probability ~0 anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import snntorch as snn
import torch


class _Rectangle(torch.autograd.Function):
    """Heaviside forward (``x > 0``), rectangle of width ``a`` and height ``1/a`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        a = ctx.width
        return grad_out * (x.abs() < a / 2).to(grad_out.dtype) / a, None


def rectangle(width: float = 1.0):
    """snntorch-style surrogate: called with ``mem - threshold``, returns spikes (Eq 4)."""
    if width <= 0:
        raise ValueError(f"surrogate width must be > 0, got {width}")

    def inner(x: torch.Tensor) -> torch.Tensor:
        return _Rectangle.apply(x, width)

    inner.width = width  # for inspection / export metadata
    return inner


@dataclass(frozen=True)
class NeuronParams:
    """LIF parameters of DPAP Eq 1-2, 4 (defaults from the paper)."""

    beta: float = 0.2          # lambda, membrane decay per step
    threshold: float = 0.5     # V_th
    surrogate_width: float = 1.0  # a in Eq 4

    def __post_init__(self):
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.surrogate_width <= 0:
            raise ValueError(f"surrogate_width must be > 0, got {self.surrogate_width}")


def make_lif(params: NeuronParams) -> snn.Leaky:
    """A stateful snntorch Leaky neuron (``init_hidden=True``) usable in ``nn.Sequential``."""
    # Always built on the CPU (scalar parameters only; moved with the model later):
    # snntorch's constructor calls .item(), which fails inside a torch.device("meta")
    # context, used to check a checkpoint's spec without allocating its weights.
    with torch.device("cpu"):
        return _leaky(params)


def _leaky(params: NeuronParams) -> snn.Leaky:
    return snn.Leaky(
        beta=params.beta,
        threshold=params.threshold,
        reset_mechanism="zero",
        spike_grad=rectangle(params.surrogate_width),
        init_hidden=True,
    )


def reset_state(model: torch.nn.Module) -> None:
    """Zero the membrane of every Leaky neuron in ``model`` (start of a sample batch)."""
    for m in model.modules():
        if isinstance(m, snn.Leaky):
            m.mem = torch.zeros(0, device=m.mem.device)

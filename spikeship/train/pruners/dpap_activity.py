"""The activity DPAP learns from: each prunable layer's input and neuron output per step.

A forward hook only records the step's activity, conv maps summed over H, W (so
memory is T x B x channels: Eq 6 treats a channel as one population); the traces and
criteria are computed once per batch, vectorised over time, by the pruner. A layer
without a neuron (an ANN's logit layer) contributes ``ReLU`` of its output (Eq 18-19).
The fast engine bypasses hooks and hands over all steps at once
(:meth:`LayerActivity.record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class BatchSteps:
    """Per-step activity of one layer in the current batch, ``(B, N)`` each; the fast
    engine's ``pre_steps`` / ``post_steps`` are ``(T, B, N)``."""

    pre: list[torch.Tensor] = field(default_factory=list)
    post: list[torch.Tensor] = field(default_factory=list)
    pre_steps: torch.Tensor | None = None
    post_steps: torch.Tensor | None = None

    def activity(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(pre, post) ``(T, B, N)`` float of the batch so far, or None."""
        if self.pre_steps is not None and self.post_steps is not None:
            return self.pre_steps.float(), self.post_steps.float()
        steps = min(len(self.pre), len(self.post))
        if steps == 0:
            return None
        return (torch.stack(self.pre[-steps:]).float(),
                torch.stack(self.post[-steps:]).float())

    def clear(self) -> None:
        self.pre.clear()
        self.post.clear()
        self.pre_steps = self.post_steps = None


class LayerActivity:
    """Per prunable layer (by name), the :class:`BatchSteps` of the current batch."""

    def __init__(self) -> None:
        self.steps: dict[str, BatchSteps] = {}
        self._handles: list[Any] = []
        self.ann = False

    def attach(self, model: nn.Sequential, layers, ann: bool) -> None:
        """Hook every prunable layer's input and its neuron's (or, without one, its own)
        output; hooks record only while the module is in training mode."""
        self.ann = ann
        for li in layers:
            layer = model[int(li.name)]
            self.steps[li.name] = BatchSteps()
            self._handles.append(layer.register_forward_pre_hook(self._input_hook(li.name)))
            if li.neuron is not None:
                target, relu = model[int(li.neuron)], False
            else:
                target, relu = layer, True
            self._handles.append(target.register_forward_hook(self._output_hook(li.name, relu)))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def record(self, name: str, pre: torch.Tensor, post: torch.Tensor) -> None:
        """The fast engine's hand-over: all steps of layer ``name``, ``(T, B, N)`` each."""
        st = self.steps[name]
        st.pre_steps, st.post_steps = pre.detach(), post.detach()

    def _append(self, steps: list[torch.Tensor], x: torch.Tensor) -> None:
        a = x.detach()
        if a.dim() == 4:
            a = a.sum((2, 3))
        elif a.dim() > 2:
            a = a.flatten(2).sum(-1)
        if steps and (self.ann or steps[-1].shape != a.shape):
            steps.clear()      # ANN: one step per batch; new shape: a batch without after_batch
        steps.append(a)

    def _input_hook(self, name: str):
        steps = self.steps[name].pre

        def hook(module, args):
            if module.training:
                self._append(steps, args[0])
        return hook

    def _output_hook(self, name: str, relu: bool):
        steps = self.steps[name].post

        def hook(module, args, out):
            if module.training:
                y = out[0] if isinstance(out, tuple) else out
                self._append(steps, torch.relu(y) if relu else y)
        return hook

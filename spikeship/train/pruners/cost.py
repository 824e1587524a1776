"""What each synapse and unit costs on the chip, measured from the spikes of training.

The energy estimator (:mod:`spikeship.energy.synops`) counts, per synaptic layer,
``sum_n c_n * F(n)``: the spikes ``c_n`` of every presynaptic element times the
synapses it drives in the deployed graph, exact per conv position, through pools.
:class:`SynopsMeter` measures the same thing while the network trains, so a pruner
can weigh its decisions by what they save:

- per prunable layer it accumulates the *input activity map* (the layer input
  summed over batch and time, in spikes): for the first layer the number of
  non-zero input elements (direct encoding is counted as MACs there, as the
  estimator does), for the others the layer input times the area of every
  ``AvgPool2d`` between the producing neuron and the layer (an average pool of
  ``k x k`` spikes times ``k**2`` is the number of spikes in the window: a spike
  drives the synapses of the pooled element it falls into);
- the *synapse cost* of weight entry ``(o, i[, a, b])`` is the number of operations
  that entry performs: for FC the activity of input column ``i``; for conv
  ``sum_{y', x'} A[i, y' s - p + a, x' s - p + b]`` over the output positions (the
  weight gradient of a convolution of ``A`` with an all-ones output, so borders,
  stride and padding are exact, as in the estimator's fan-out maps);
- the *unit cost* of a unit (FC neuron / conv channel) is what removing it saves:
  its incoming synapses' cost plus the cost of its outgoing synapses (the consumer
  layer's columns it feeds), both over the synapses that still exist.

All sums are over samples (``reducible_stats``: all-reducible for data-parallel
runs); :meth:`SynopsMeter.per_sample` divides by the sample count. The meter keeps
its own forward hooks (only while the model is in training mode) and records at the
granularity of whatever the hooked module receives: one step ``(B, ...)`` or
several steps stacked ``(T, B, ...)`` / folded ``(T*B, ...)`` all sum the same. The
fast engine calls modules without hooks; it hands each prunable layer's input to
:meth:`SynopsMeter.record_input` instead (through the pruner's ``engine_inputs``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikeship.train.structure import LayerInfo


class SynopsMeter:
    """Activity maps of every prunable layer's input, and the costs derived from them."""

    def __init__(self, prefix: str = "cost"):
        self.prefix = prefix
        self.model: nn.Sequential | None = None
        self.layers: list[LayerInfo] = []
        self.in_shape: dict[str, tuple[int, ...]] = {}
        self.factor: dict[str, float] = {}
        self.first: dict[str, bool] = {}
        self.t: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    # ---- wiring ---------------------------------------------------------------------
    def attach(self, model: nn.Sequential, layers: list[LayerInfo],
               input_shape: tuple[int, ...] | None = None) -> None:
        self.model, self.layers = model, list(layers)
        dev = next(model.parameters()).device
        modules = list(model)
        for k, li in enumerate(self.layers):
            idx = int(li.name)
            layer = modules[idx]
            start = int(self.layers[k - 1].name) + 1 if k > 0 else 0
            f = 1.0
            for m in modules[start:idx]:
                if isinstance(m, nn.AvgPool2d):
                    ks = m.kernel_size if isinstance(m.kernel_size, tuple) else \
                        (m.kernel_size, m.kernel_size)
                    f *= float(ks[0] * ks[1])
            self.factor[li.name] = f
            self.first[li.name] = k == 0
            if isinstance(layer, nn.Conv2d):
                shape = self._conv_in_shape(k, li, input_shape)
            else:
                shape = (layer.in_features,)
            self.in_shape[li.name] = shape
            key = f"{self.prefix}_act.{li.name}"
            if key not in self.t:
                self.t[key] = torch.zeros(shape, dtype=torch.float64, device=dev)
            self._handles.append(layer.register_forward_pre_hook(self._hook(li.name)))
        if f"{self.prefix}_n" not in self.t:
            self.t[f"{self.prefix}_n"] = torch.zeros((), dtype=torch.float64, device=dev)

    def _conv_in_shape(self, k: int, li: LayerInfo, input_shape) -> tuple[int, ...]:
        """(C_in, H, W) of a conv layer's input: the previous layer's output shape
        through the pools between them (or the model input)."""
        x_shape = None
        modules = list(self.model)
        if k == 0:
            if input_shape is None:
                raise ValueError("the input shape is needed for a conv first layer")
            x_shape = tuple(input_shape)
            start = 0
        else:
            prev = self.layers[k - 1]
            x_shape = tuple(prev.out_shape)
            start = int(prev.name) + 1
        x = torch.zeros(1, *x_shape)
        with torch.no_grad():
            for m in modules[start:int(li.name)]:
                if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)):
                    x = m(x)
        return tuple(x.shape[1:])

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, args):
            if module.training:
                self.record_input(name, args[0])
        return hook

    def record_input(self, name: str, x: torch.Tensor, repeat: int = 1) -> None:
        """Add the input ``x`` of prunable layer ``name`` to its activity map.

        ``x`` is one step ``(B, ...)`` or several steps stacked / folded into the batch;
        ``repeat`` counts a static input fed unchanged at that many steps (the fast
        engine runs a direct-encoded first layer once per sample: ``repeat = T``). The
        hooks call this with each step's input; the fast engine, whose module calls
        bypass hooks, calls it once per batch (:func:`spikeship.train.multistep.run`).
        """
        x = x.detach()
        shape = self.in_shape[name]
        if x.dim() < len(shape) + 1:
            return
        a = (x != 0).to(torch.float64) if self.first[name] else x.to(torch.float64)
        a = a.reshape(-1, *shape)
        self.t[f"{self.prefix}_act.{name}"] += a.sum(0) * (
            (1.0 if self.first[name] else self.factor[name]) * repeat)

    def count_samples(self, n: int) -> None:
        """Add ``n`` samples (the batch size) to the sample count (called once a batch)."""
        self.t[f"{self.prefix}_n"] += n

    # ---- statistics -----------------------------------------------------------------
    def reducible_stats(self) -> dict[str, torch.Tensor]:
        return dict(self.t)

    def reset(self) -> None:
        for v in self.t.values():
            v.zero_()

    def samples(self) -> float:
        return float(self.t[f"{self.prefix}_n"])

    def activity(self, name: str) -> torch.Tensor:
        return self.t[f"{self.prefix}_act.{name}"]

    # ---- costs ----------------------------------------------------------------------
    def synapse_cost(self, name: str) -> torch.Tensor:
        """Operations per weight entry (weight's shape, float64), summed over samples."""
        layer = self.model[int(name)]
        a = self.activity(name)
        if isinstance(layer, nn.Conv2d):
            c_out, c_in_g, kh, kw = layer.weight.shape
            if layer.groups != 1:
                raise ValueError("grouped convolutions are not supported by the cost meter")
            with torch.no_grad():
                ho_wo = torch.nn.functional.conv2d(
                    a[None].float(), torch.zeros(1, c_in_g, kh, kw, device=a.device),
                    stride=layer.stride, padding=layer.padding, dilation=layer.dilation).shape
                g = torch.nn.grad.conv2d_weight(
                    a[None], (1, c_in_g, kh, kw), torch.ones(ho_wo, dtype=a.dtype,
                                                             device=a.device),
                    stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
            return g.expand(c_out, c_in_g, kh, kw)
        return a[None].expand(layer.out_features, layer.in_features)

    def layer_costs(self, masks) -> dict[str, dict[str, torch.Tensor]]:
        """Per prunable layer: ``synapse`` cost (weight shape) and ``unit`` cost (what
        removing each unit saves: incoming + outgoing synapses that still exist)."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        eff_cost = {}
        for li in self.layers:
            c = self.synapse_cost(li.name)
            eff = masks.effective(li.name).to(c.device)
            eff_cost[li.name] = c * eff
            out[li.name] = {"synapse": c}
        for li in self.layers:
            ec = eff_cost[li.name]
            incoming = ec.reshape(ec.shape[0], -1).sum(1)
            outgoing = torch.zeros_like(incoming)
            cons = masks.consumer(li.name)
            if cons is not None:
                cc = eff_cost[cons]
                block = masks.layers[cons].in_block
                per_col = cc.sum(0)
                if per_col.dim() > 1:
                    per_col = per_col.reshape(per_col.shape[0], -1).sum(1)
                outgoing = per_col.reshape(li.out_units, block).sum(1)
            out[li.name]["unit"] = incoming + outgoing
            out[li.name]["synops"] = ec.sum()
        return out

    def per_sample(self, masks) -> dict[str, float]:
        """Effective synaptic operations per sample of each prunable layer (as measured)."""
        n = max(self.samples(), 1.0)
        return {k: float(v["synops"]) / n for k, v in self.layer_costs(masks).items()}

    # ---- persistence ----------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.t.items()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        dev = next(self.model.parameters()).device if self.model is not None else "cpu"
        for k, v in tensors.items():
            if k.startswith(self.prefix + "_"):
                self.t[k] = v.detach().clone().to(dev)


def relative(cost: torch.Tensor, alive: torch.Tensor, power: float = 1.0,
             cap: float = 4.0) -> torch.Tensor:
    """``(cost / mean cost over alive) ** power``, clipped to ``[0, cap]`` (1 where the
    alive entries cost nothing at all); 0 outside ``alive``."""
    vals = cost[alive]
    out = torch.zeros_like(cost, dtype=torch.float32)
    if vals.numel() == 0:
        return out
    m = float(vals.mean())
    if m <= 0:
        return torch.where(alive, torch.ones_like(out), out)
    r = (cost / m).clamp(min=0.0).to(torch.float32) ** power
    return torch.where(alive, r.clamp(max=cap), out)


def first_input_shape(model: nn.Sequential, layers) -> tuple[int, ...] | None:
    """(C, H, W) of the model input when the first prunable layer is a conv (from its
    output shape, inverting the conv arithmetic), else None."""
    li = layers[0]
    layer = model[int(li.name)]
    if not isinstance(layer, nn.Conv2d):
        return None
    _, ho, wo = li.out_shape
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    (ph, pw), (dh, dw) = layer.padding, layer.dilation
    return (layer.in_channels, (ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1,
            (wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1)

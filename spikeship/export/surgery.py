"""Model surgery: from a trained, masked ``nn.Sequential`` to a pure *deployable layer list*.

Both exporters (NIR and ONNX) and the netx writer read the
:class:`~spikeship.export.deployable.DeployableNet` made here, never the torch model, so every format ships the same numbers.

What happens, layer by layer (DESIGN.md "Masks", CONVENTIONS.md "Exported NIR"):

1. **Bake masks**: ``W <- W * eff`` with ``eff = MaskSet.effective(name)``
   (``eff[o,i] = weight[o,i] & units[o] & units_producer[i // in_block]``).
2. **Remove pruned units physically**: a unit ``o`` with ``units[o] == False`` loses its
   weight row / conv out-channel, its bias, its BatchNorm channel, and its outgoing
   synapses: the consumer's input column / in-channel ``o`` or, through ``Flatten``,
   the block of ``H*W`` columns ``o*H*W .. (o+1)*H*W - 1``. The kept indices are
   recorded (``kept_out``, ``kept_in``); the mask of the exported weight
   (``mask = eff[kept_out][:, kept_in]``) tells a pruned synapse from a trained zero.
   A hidden unit left without any synapse whose bias alone can never make it fire
   (:func:`_silent_units`) is removed the same way: it would never spike, so no output
   changes, and the chip does not pay for the neuron (``DeployableNet.removed_silent``).
3. **Fold BatchNorm** (eval statistics) into the preceding conv::

       s = gamma / sqrt(var + eps);   W' = W * s[o];   b' = (b - mean) * s + beta

4. **Fold the average pool**: ``AvgPool2d(k)`` = ``SumPool2d(k)`` times ``1/k^2``; the
   factor moves into the *next* synaptic layer's weights (not its bias).
5. **Fold the LIF resistance**: snntorch's (DPAP Eq 1) ``u = beta*u + I`` equals the
   forward-Euler NIR LIF ``v += dt/tau * (v_leak - v + r*I')`` with ``dt/tau = 1-beta``,
   ``v_leak = 0``, ``r = 1`` and ``I' = I / (1 - beta)``: the factor ``1/(1-beta)`` moves
   into the weights *and* bias of the synaptic layer feeding the neuron. ``beta = 1``
   (no leak) is exported as an IF neuron (``v += I``) with nothing folded.

The recorded ``scale_folded`` is the factor folded into a layer's weights;
``bias_scale_folded`` the factor folded into its bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import snntorch as snn
import torch
from torch import nn

from spikeship.errors import ExportError
from spikeship.export.deployable import (DeployableNet, FlattenLayer, Layer, NeuronLayer,
                                          PoolLayer, SynapseLayer)
from spikeship.nir.geometry import pair
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec
from spikeship.train.neuron import reset_state


def _shapes(model: nn.Sequential, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape (one sample) of every module of ``model``."""
    was_training = model.training
    model.eval()
    shapes = []
    try:
        with torch.no_grad():
            x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
            for m in model:
                x = m(x)
                shapes.append(tuple(x.shape[1:]))
    finally:
        model.train(was_training)
        reset_state(model)
    return shapes


def _scalar(t, what: str, layer: str) -> float:
    v = torch.as_tensor(t).detach().float().cpu()
    if v.numel() != 1:
        u = torch.unique(v)
        if u.numel() != 1:
            raise ExportError(f"layer {layer}: per-neuron {what} is not supported by the exporter")
        v = u
    return float(v.reshape(()))


SILENT_MARGIN = 0.9     # a unit is silent when its bias alone settles below 0.9 x threshold


def _silent_units(modules: list, i: int, eff: np.ndarray, b: np.ndarray, units: np.ndarray,
                  kept_in: np.ndarray) -> np.ndarray:
    """Original indices of the kept units of synaptic layer ``i`` that can never spike.

    A unit every synapse of which is pruned (``eff`` False for the whole row over the
    kept inputs; a trained zero is still a synapse) receives only its bias ``b``
    (after BatchNorm): its membrane ``u_t = beta u_(t-1) + b`` from ``u_0 = 0`` rises
    monotonically towards ``b / (1 - beta)`` and stays at or below zero for ``b <= 0``.
    It never exceeds a positive threshold when ``b <= 0`` or, for ``beta < 1``, when
    ``b / (1 - beta) < SILENT_MARGIN * threshold`` (the margin covers the chips' bias
    and decay rounding); such a unit and its outgoing synapses are removed like a pruned
    one, which changes no spike anywhere. An IF neuron (``beta = 1``) with ``b > 0``
    fires eventually and is kept, as is every unit of the output layer (the classes),
    and all units when none would be left."""
    if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in modules[i + 1:]):
        return np.zeros(0, dtype=np.int64)           # the output layer
    j = next((j for j in range(i + 1, len(modules))
              if isinstance(modules[j], (snn.Leaky, nn.Conv2d, nn.Linear))), None)
    if j is None or not isinstance(modules[j], snn.Leaky):
        return np.zeros(0, dtype=np.int64)
    beta, thr = _neuron_params(modules[j], str(j))      # errors name the neuron's layer
    if not thr > 0:
        return np.zeros(0, dtype=np.int64)
    no_input = ~np.any(eff[:, kept_in].reshape(eff.shape[0], -1), axis=1)
    if beta < 1.0:
        quiet = (b <= 0) | (b / (1.0 - beta) < SILENT_MARGIN * thr)
    else:
        quiet = b <= 0
    silent = units & no_input & quiet
    if silent.sum() == units.sum():
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(silent).astype(np.int64)


def _neuron_params(m: snn.Leaky, layer: str) -> tuple[float, float]:
    if getattr(m, "reset_mechanism", "zero") != "zero":
        raise ExportError(f"layer {layer}: reset '{m.reset_mechanism}' cannot be expressed in NIR "
                          "(NIR LIF resets to v_reset); train with reset_mechanism='zero'")
    if getattr(m, "inhibition", False) or getattr(m, "state_quant", False):
        raise ExportError(f"layer {layer}: inhibition / state quantisation are not exportable")
    beta = min(max(_scalar(m.beta, "beta", layer), 0.0), 1.0)   # snntorch clamps beta to [0, 1]
    return beta, _scalar(m.threshold, "threshold", layer)


@dataclass
class _Walk:
    """The state of :func:`build_deployable`'s walk over the training modules."""

    modules: list
    shapes: list
    masks: MaskSet | None
    kept_sig: np.ndarray                 # original channel indices of the signal
    sig_orig: tuple[int, ...]            # original (unpruned) shape of the signal
    layers: list = field(default_factory=list)
    pending_scale: float = 1.0           # pool factor waiting for the next synapse
    last_syn: int | None = None          # index in `layers` of the last synapse
    removed_silent: dict = field(default_factory=dict)   # units without input, never firing
    i: int = 0                           # index of the module being read


def build_deployable(model: nn.Sequential, masks: MaskSet | None, spec: ModelSpec,
                     config: dict | None = None, *, dt_s: float = 1e-3,
                     source_run: str = "") -> DeployableNet:
    """Bake ``masks`` into ``model``, cut out pruned units, fold BN / pools / ``r``.

    ``model`` is the training ``nn.Sequential`` of ``spec`` (see
    :mod:`spikeship.train.models`); ``masks`` its :class:`MaskSet` (``None`` = dense).
    ``config`` supplies ``timesteps`` and ``encoding`` (``"direct"`` when absent).
    Raises :class:`ExportError` for anything NIR cannot express (ANN twins, MaxPool,
    subtract reset, a layer with every unit removed).
    """
    config = dict(config or {})
    if spec.ann:
        raise ExportError(f"model '{spec.preset}' is an ANN twin (ReLU): only SNNs are exported")
    if not dt_s > 0 or not np.isfinite(dt_s):
        raise ExportError(f"dt must be a positive number of seconds, got {dt_s}")
    walk = _Walk(modules=list(model), shapes=_shapes(model, spec.input_shape), masks=masks,
                 kept_sig=np.arange(spec.input_shape[0]), sig_orig=tuple(spec.input_shape))
    while walk.i < len(walk.modules):
        m, name = walk.modules[walk.i], str(walk.i)
        handler = next((h for types, h in _HANDLERS if isinstance(m, types)), _unsupported)
        handler(walk, m, name)
        walk.i += 1
    if walk.pending_scale != 1.0:
        raise ExportError("an average pool is not followed by a synaptic layer; its 1/k^2 "
                          "has nowhere to be folded")
    if not walk.layers or not isinstance(walk.layers[-1], NeuronLayer):
        raise ExportError("the model must end with a neuron layer (output spikes)")
    final = tuple(_as_float32(l) for l in walk.layers)
    _check_finite(final)
    return DeployableNet(layers=final, input_shape=tuple(spec.input_shape),
                         num_classes=spec.num_classes, dt_s=float(dt_s),
                         timesteps=int(config.get("timesteps", 0) or 0),
                         encoding=str(config.get("encoding", "direct")),
                         source_run=str(source_run), preset=spec.preset,
                         removed_silent=walk.removed_silent)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _masked(walk: _Walk, m: nn.Module, name: str):
    """(weight with the mask baked in, bias, effective mask, kept units) of layer ``m``."""
    w = _numpy(m.weight)
    b = _numpy(m.bias) if m.bias is not None else np.zeros(w.shape[0])
    if walk.masks is not None and name in walk.masks.layers:
        eff = walk.masks.effective(name).cpu().numpy().astype(bool)
        units = walk.masks.units[name].cpu().numpy().astype(bool)
    else:
        eff, units = np.ones(w.shape, bool), np.ones(w.shape[0], bool)
    if not units.any():
        raise ExportError(f"layer {name}: every unit is pruned; nothing can be exported")
    return w * eff, b * units, eff, units


def _check_signal(walk: _Walk, m: nn.Module, kind: str, name: str) -> None:
    if kind == "conv":
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ExportError(f"layer {name}: only groups=1, numeric zero padding convs "
                              "are exported")
        if len(walk.sig_orig) != 3:
            raise ExportError(f"layer {name}: Conv2d on a {walk.sig_orig} signal")
    elif len(walk.sig_orig) != 1:
        raise ExportError(f"layer {name}: Linear on a {walk.sig_orig} signal (Flatten missing)")


def _fold_batchnorm(walk: _Walk, w: np.ndarray, b: np.ndarray):
    """Step 3: a BatchNorm2d right after the synapse folded into ``w``, ``b`` (and
    consumed: the walk moves past it)."""
    bn = walk.modules[walk.i + 1] if walk.i + 1 < len(walk.modules) else None
    if not isinstance(bn, nn.BatchNorm2d):
        return w, b
    s = _numpy(bn.weight) / np.sqrt(_numpy(bn.running_var) + bn.eps)
    walk.i += 1
    return (w * s.reshape(-1, *([1] * (w.ndim - 1))),
            (b - _numpy(bn.running_mean)) * s + _numpy(bn.bias))


def _synapse(walk: _Walk, m: nn.Module, name: str) -> None:
    """Steps 1-4 for a Conv2d / Linear: bake the mask, cut removed and silent units, fold
    BatchNorm and the pending pool factor."""
    kind = "conv" if isinstance(m, nn.Conv2d) else "fc"
    w, b, eff, units = _masked(walk, m, name)
    _check_signal(walk, m, kind, name)
    kept_in = walk.kept_sig
    w, b = _fold_batchnorm(walk, w, b)
    silent = _silent_units(walk.modules, walk.i, eff, b, units, kept_in)
    if silent.size:
        units = units.copy()
        units[silent] = False
        walk.removed_silent[f"{kind}{name}"] = tuple(int(u) for u in silent)
    kept_out = np.flatnonzero(units).astype(np.int64)
    out_orig = walk.shapes[walk.i]
    walk.layers.append(SynapseLayer(
        name=f"{kind}{name}", kind=kind, source_layer=name,
        weight=w[kept_out][:, kept_in] * walk.pending_scale, bias=b[kept_out],
        mask=eff[kept_out][:, kept_in], kept_out=kept_out, kept_in=kept_in.astype(np.int64),
        scale_folded=walk.pending_scale, bias_scale_folded=1.0,
        in_shape=(kept_in.size, *walk.sig_orig[1:]), out_shape=(kept_out.size, *out_orig[1:]),
        stride=pair(m.stride) if kind == "conv" else (1, 1),
        padding=pair(m.padding) if kind == "conv" else (0, 0),
        dilation=pair(m.dilation) if kind == "conv" else (1, 1),
        original_weight_shape=tuple(m.weight.shape)))
    walk.last_syn = len(walk.layers) - 1
    walk.pending_scale = 1.0
    walk.kept_sig, walk.sig_orig = kept_out, out_orig


def _neuron(walk: _Walk, m: snn.Leaky, name: str) -> None:
    """Step 5: the LIF neuron, its ``1/(1-beta)`` folded into the synapse feeding it."""
    if walk.last_syn is None or not isinstance(walk.layers[-1], SynapseLayer):
        raise ExportError(f"layer {name}: a neuron must follow a Conv2d/Linear layer")
    beta, thr = _neuron_params(m, name)
    if beta < 1.0:
        syn = walk.layers[walk.last_syn]
        r = 1.0 / (1.0 - beta)
        walk.layers[walk.last_syn] = replace(syn, weight=syn.weight * r, bias=syn.bias * r,
                                             scale_folded=syn.scale_folded * r,
                                             bias_scale_folded=syn.bias_scale_folded * r)
    walk.layers.append(NeuronLayer(name=f"lif{name}", source_layer=name,
                                   shape=(walk.kept_sig.size, *walk.sig_orig[1:]), beta=beta,
                                   threshold=thr, kept=walk.kept_sig,
                                   original_shape=tuple(walk.sig_orig)))


def _avg_pool(walk: _Walk, m: nn.AvgPool2d, name: str) -> None:
    """Step 4: a sum pool; its ``1/k^2`` waits for the next synaptic layer."""
    k, s = pair(m.kernel_size), pair(m.stride if m.stride is not None else m.kernel_size)
    if pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
        raise ExportError(f"layer {name}: only AvgPool2d without padding / ceil_mode "
                          "/ divisor_override is exported")
    out_orig = walk.shapes[walk.i]
    walk.layers.append(PoolLayer(name=f"pool{name}", source_layer=name, kernel=k, stride=s,
                                 in_shape=(walk.kept_sig.size, *walk.sig_orig[1:]),
                                 out_shape=(walk.kept_sig.size, *out_orig[1:])))
    walk.pending_scale *= 1.0 / (k[0] * k[1])
    walk.sig_orig = out_orig


def _flatten(walk: _Walk, m: nn.Flatten, name: str) -> None:
    """Flatten: a kept channel ``c`` becomes the block of columns ``c*H*W ..``."""
    sig = walk.sig_orig
    if len(sig) != 3:
        raise ExportError(f"layer {name}: Flatten of a {sig} signal is not supported")
    hw = sig[1] * sig[2]
    in_shape = (walk.kept_sig.size, *sig[1:])
    walk.kept_sig = (walk.kept_sig[:, None] * hw + np.arange(hw)[None, :]).reshape(-1)
    walk.sig_orig = (int(np.prod(sig)),)
    walk.layers.append(FlattenLayer(name=f"flatten{name}", source_layer=name,
                                    in_shape=in_shape, out_shape=(walk.kept_sig.size,)))


def _refuse(message: str):
    def handler(walk: _Walk, m: nn.Module, name: str) -> None:
        raise ExportError(f"layer {name}: {message}")
    return handler


def _skip(walk: _Walk, m: nn.Module, name: str) -> None:
    """Identity and Dropout (inactive at inference) export as nothing."""


def _unsupported(walk: _Walk, m: nn.Module, name: str) -> None:
    raise ExportError(f"layer {name}: module {type(m).__name__} is not supported by the "
                      "exporter (Conv2d, BatchNorm2d, Leaky, AvgPool2d, Flatten, Linear)")


#: module type -> what it becomes in the deployable net (first match wins)
_HANDLERS = (
    ((nn.Conv2d, nn.Linear), _synapse),
    (nn.BatchNorm2d, _refuse("BatchNorm2d not directly after a Conv2d cannot be folded")),
    (snn.Leaky, _neuron),
    (nn.AvgPool2d, _avg_pool),
    (nn.MaxPool2d, _refuse("NIR has no MaxPool; train the deployable variant with "
                           "pool='avg' (exported as SumPool2d)")),
    (nn.Flatten, _flatten),
    (nn.ReLU, _refuse("ReLU (ANN) layers are not exported")),
    ((nn.Identity, nn.Dropout), _skip),
)


def _as_float32(layer: Layer) -> Layer:
    if isinstance(layer, SynapseLayer):
        return replace(layer, weight=np.ascontiguousarray(layer.weight, dtype=np.float32),
                        bias=np.ascontiguousarray(layer.bias, dtype=np.float32),
                        mask=np.ascontiguousarray(layer.mask, dtype=bool))
    return layer


def _check_finite(layers) -> None:
    """Refuse NaN / Inf in any exported number (a diverged run, a corrupt checkpoint, or a
    fold that overflows float32): a deployed file must never carry them."""
    for l in layers:
        arrays = ({"weight": l.weight, "bias": l.bias} if isinstance(l, SynapseLayer) else
                  {"beta": l.beta, "threshold": l.threshold} if isinstance(l, NeuronLayer)
                  else {})
        for what, v in arrays.items():
            if not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                raise ExportError(f"layer {l.name}: {what} holds NaN or Inf (after folding, in "
                                  "float32); nothing was exported")

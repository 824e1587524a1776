"""Model surgery: from a trained, masked ``nn.Sequential`` to a pure *deployable layer list*.

Both exporters (NIR and ONNX) and the netx writer read the :class:`DeployableNet`
made here, never the torch model, so every format ships the same numbers.

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

from dataclasses import dataclass, field

import numpy as np
import snntorch as snn
import torch
from torch import nn

from spikeship.errors import ExportError
from spikeship.nir.geometry import pair
from spikeship.train.masks import MaskSet
from spikeship.train.models import ModelSpec


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


def _shapes(model: nn.Sequential, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape (one sample) of every module of ``model``."""
    from spikeship.train.neuron import reset_state

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
    modules = list(model)
    shapes = _shapes(model, spec.input_shape)
    layers: list[Layer] = []
    kept_sig = np.arange(spec.input_shape[0])          # original channel indices of the signal
    sig_orig = tuple(spec.input_shape)                 # original (unpruned) shape of the signal
    pending_scale = 1.0                                 # pool factor waiting for the next synapse
    last_syn: int | None = None                         # index in `layers` of the last synapse
    removed_silent: dict[str, tuple[int, ...]] = {}     # units without input that never fire
    i = 0
    while i < len(modules):
        m, name = modules[i], str(i)
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            kind = "conv" if isinstance(m, nn.Conv2d) else "fc"
            w = m.weight.detach().double().cpu().numpy()
            b = (m.bias.detach().double().cpu().numpy() if m.bias is not None
                 else np.zeros(w.shape[0]))
            if masks is not None and name in masks.layers:
                eff = masks.effective(name).cpu().numpy().astype(bool)
                units = masks.units[name].cpu().numpy().astype(bool)
            else:
                eff, units = np.ones(w.shape, bool), np.ones(w.shape[0], bool)
            w = w * eff
            kept_out = np.flatnonzero(units).astype(np.int64)
            if kept_out.size == 0:
                raise ExportError(f"layer {name}: every unit is pruned; nothing can be exported")
            if kind == "conv":
                if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise ExportError(f"layer {name}: only groups=1, numeric zero padding convs "
                                      "are exported")
                if len(sig_orig) != 3:
                    raise ExportError(f"layer {name}: Conv2d on a {sig_orig} signal")
                kept_in = kept_sig
            else:
                if len(sig_orig) != 1:
                    raise ExportError(f"layer {name}: Linear on a {sig_orig} signal (Flatten missing)")
                kept_in = kept_sig
            b = b * units
            bn = modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(bn, nn.BatchNorm2d):
                s = (bn.weight.detach().double().cpu().numpy()
                     / np.sqrt(bn.running_var.detach().double().cpu().numpy() + bn.eps))
                w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
                b = (b - bn.running_mean.detach().double().cpu().numpy()) * s \
                    + bn.bias.detach().double().cpu().numpy()
                i += 1
            silent = _silent_units(modules, i, eff, b, units, kept_in)
            if silent.size:
                units = units.copy()
                units[silent] = False
                kept_out = np.flatnonzero(units).astype(np.int64)
                removed_silent[f"{kind}{name}"] = tuple(int(u) for u in silent)
            w = w[kept_out][:, kept_in]
            mask = eff[kept_out][:, kept_in]
            b = b[kept_out]
            w = w * pending_scale
            out_orig = shapes[i]
            out_shape = (kept_out.size, *out_orig[1:])
            layers.append(SynapseLayer(
                name=f"{kind}{name}", kind=kind, source_layer=name,
                weight=w, bias=b, mask=mask, kept_out=kept_out, kept_in=kept_in.astype(np.int64),
                scale_folded=pending_scale, bias_scale_folded=1.0,
                in_shape=(kept_in.size, *sig_orig[1:]), out_shape=out_shape,
                stride=pair(m.stride) if kind == "conv" else (1, 1),
                padding=pair(m.padding) if kind == "conv" else (0, 0),
                dilation=pair(m.dilation) if kind == "conv" else (1, 1),
                original_weight_shape=tuple(m.weight.shape)))
            last_syn = len(layers) - 1
            pending_scale = 1.0
            kept_sig, sig_orig = kept_out, out_orig
        elif isinstance(m, nn.BatchNorm2d):
            raise ExportError(f"layer {name}: BatchNorm2d not directly after a Conv2d cannot be folded")
        elif isinstance(m, snn.Leaky):
            if last_syn is None or not isinstance(layers[-1], SynapseLayer):
                raise ExportError(f"layer {name}: a neuron must follow a Conv2d/Linear layer")
            beta, thr = _neuron_params(m, name)
            if beta < 1.0:
                syn = layers[last_syn]
                r = 1.0 / (1.0 - beta)
                layers[last_syn] = _replace(syn, weight=syn.weight * r, bias=syn.bias * r,
                                            scale_folded=syn.scale_folded * r,
                                            bias_scale_folded=syn.bias_scale_folded * r)
            layers.append(NeuronLayer(name=f"lif{name}", source_layer=name,
                                      shape=(kept_sig.size, *sig_orig[1:]), beta=beta,
                                      threshold=thr, kept=kept_sig,
                                      original_shape=tuple(sig_orig)))
        elif isinstance(m, nn.AvgPool2d):
            k, s = pair(m.kernel_size), pair(m.stride if m.stride is not None else m.kernel_size)
            if pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
                raise ExportError(f"layer {name}: only AvgPool2d without padding / ceil_mode "
                                  "/ divisor_override is exported")
            out_orig = shapes[i]
            layers.append(PoolLayer(name=f"pool{name}", source_layer=name, kernel=k, stride=s,
                                    in_shape=(kept_sig.size, *sig_orig[1:]),
                                    out_shape=(kept_sig.size, *out_orig[1:])))
            pending_scale *= 1.0 / (k[0] * k[1])
            sig_orig = out_orig
        elif isinstance(m, nn.MaxPool2d):
            raise ExportError(f"layer {name}: NIR has no MaxPool; train the deployable variant "
                              "with pool='avg' (exported as SumPool2d)")
        elif isinstance(m, nn.Flatten):
            if len(sig_orig) != 3:
                raise ExportError(f"layer {name}: Flatten of a {sig_orig} signal is not supported")
            hw = sig_orig[1] * sig_orig[2]
            in_shape = (kept_sig.size, *sig_orig[1:])
            kept_sig = (kept_sig[:, None] * hw + np.arange(hw)[None, :]).reshape(-1)
            sig_orig = (int(np.prod(sig_orig)),)
            layers.append(FlattenLayer(name=f"flatten{name}", source_layer=name,
                                       in_shape=in_shape, out_shape=(kept_sig.size,)))
        elif isinstance(m, nn.ReLU):
            raise ExportError(f"layer {name}: ReLU (ANN) layers are not exported")
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            pass
        else:
            raise ExportError(f"layer {name}: module {type(m).__name__} is not supported by the "
                              "exporter (Conv2d, BatchNorm2d, Leaky, AvgPool2d, Flatten, Linear)")
        i += 1
    if pending_scale != 1.0:
        raise ExportError("an average pool is not followed by a synaptic layer; its 1/k^2 "
                          "has nowhere to be folded")
    if not layers or not isinstance(layers[-1], NeuronLayer):
        raise ExportError("the model must end with a neuron layer (output spikes)")
    final = tuple(_as_float32(l) for l in layers)
    _check_finite(final)
    return DeployableNet(layers=final, input_shape=tuple(spec.input_shape),
                         num_classes=spec.num_classes, dt_s=float(dt_s),
                         timesteps=int(config.get("timesteps", 0) or 0),
                         encoding=str(config.get("encoding", "direct")),
                         source_run=str(source_run), preset=spec.preset,
                         removed_silent=removed_silent)


def _replace(obj, **changes):
    from dataclasses import replace

    return replace(obj, **changes)


def _as_float32(layer: Layer) -> Layer:
    if isinstance(layer, SynapseLayer):
        return _replace(layer, weight=np.ascontiguousarray(layer.weight, dtype=np.float32),
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


def shape_table(net: DeployableNet) -> list[dict]:
    """Per synaptic layer: weight shape before and after removal, synapses kept."""
    return [{"layer": l.name, "before": list(l.original_weight_shape),
             "after": list(l.weight.shape), "synapses": int(l.mask.sum()),
             "nonzero": int(np.count_nonzero(l.weight))} for l in net.synapse_layers()]

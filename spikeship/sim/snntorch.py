"""Target ``snntorch``: the training-time model itself, the yardstick of agreement.

Every deployed target (reference, Norse, ONNX Runtime, Lava) is compared with what
the trained snntorch model (checkpoint, masks applied, eval mode) does on the same
inputs. Output spikes are ``(N, T, classes)`` in training steps; per-layer spike
counts are named like the NIR nodes (``lif1``, ``lif4``, ...) and restricted to the
units the export keeps, so they have the exported nodes' shapes (a removed unit
cannot fire: its bias, BN channel and weights are zero).
"""

from __future__ import annotations

import os
import time

import numpy as np
import snntorch as snn
import torch
from pydantic import Field

from spikeship.errors import SimulationError
from spikeship.export.surgery import build_deployable
from spikeship.sim.base import Capabilities, Options, PositiveInt, Simulator
from spikeship.sim.result import SimResult
from spikeship.train.checkpoint import load_checkpoint
from spikeship.train.models import forward_sequence


def record_model(model: torch.nn.Sequential, inputs: np.ndarray, *, batch_size: int = 256
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``model`` on ``inputs`` (N, T, *input shape); return output spikes (N, T, classes)
    and each ``Leaky`` layer's spike count (over samples and steps) keyed ``lif<index>``."""
    counts: dict[str, torch.Tensor] = {}
    hooks = []
    for i, m in enumerate(model):
        if isinstance(m, snn.Leaky):
            name = f"lif{i}"

            def hook(_mod, _inp, out, name=name):
                spk = out[0] if isinstance(out, tuple) else out
                s = spk.detach().sum(0).double()
                counts[name] = counts[name] + s if name in counts else s

            hooks.append(m.register_forward_hook(hook))
    outs = []
    try:
        with torch.no_grad():
            x_all = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            for lo in range(0, x_all.shape[0], batch_size):
                xb = x_all[lo:lo + batch_size].transpose(0, 1)          # (T, B, ...)
                outs.append(forward_sequence(model, xb).transpose(0, 1).cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    return np.concatenate(outs), {k: v.cpu().numpy() for k, v in counts.items()}


def run_target(run_dir: str | os.PathLike, inputs: np.ndarray, labels: np.ndarray | None,
               options: dict | None = None) -> SimResult:
    """Run the checkpoint of ``run_dir`` (snntorch, float32) on ``inputs`` (N, T, C, H, W)."""
    o = SIMULATOR.parse_options(options)
    ck = load_checkpoint(run_dir)
    if ck.spec.ann:
        raise SimulationError(f"run {run_dir} is an ANN twin: there are no spikes to compare")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    out, full = record_model(ck.model, inputs, batch_size=o.batch_size)
    wall = time.perf_counter() - t0
    net = build_deployable(ck.model, ck.masks, ck.spec, ck.config)
    counts, removed = {}, {}
    for layer in net.neuron_layers():
        c = np.rint(full[layer.name]).astype(np.int64)
        counts[layer.name] = c[layer.kept]
        removed[layer.name] = int(c.sum() - counts[layer.name].sum())   # must be 0
    if not np.isin(out, (0.0, 1.0)).all():
        raise SimulationError("the model's output is not a spike train")
    return SimResult.from_run("snntorch", inputs, out, counts, labels, wall,
                              {"removed_units_spikes": removed})


class SnntorchOptions(Options):
    batch_size: PositiveInt = Field(256, description="samples per batch")


SIMULATOR = Simulator(
    name="snntorch", artifact="checkpoint/",
    summary="the trained model itself (snntorch), what every target is compared with",
    options=SnntorchOptions,
    capabilities=Capabilities(precision=("float",), recurrent=True, conv=True,
                              per_neuron_tau=True),
    run_function="spikeship.sim.snntorch:run_target", spike_source_rank=8)

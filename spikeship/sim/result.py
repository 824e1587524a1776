"""What every simulation target returns and writes: ``simulate-<target>.json`` + ``.npz``.

All targets (reference, norse, onnx, lava-float, lava-fixed, lava-netx, loihi-emu)
produce a :class:`SimResult`. The JSON holds the summary of DESIGN.md's artifact
contract (``target``, ``samples``, ``accuracy``, per-layer spike counts,
``agreement_with_training``, wall time); the NPZ beside it holds the arrays the
energy estimator and the agreement checks need:

- ``output_spikes``: (samples, T, classes) uint8 output spikes (aligned to the
  training model's time steps: any synaptic delay of the target is removed).
- ``predictions``: (samples,) int64, argmax of the output spike count (ties: lowest index).
- ``labels``: (samples,) int64, or absent.
- ``count/<node>``: per-neuron spike counts of NIR neuron node ``<node>``, summed over
  samples and time, in the node's shape (e.g. (C, H, W) or (N,)).
- ``input_count``: per-input-element sum over samples and time of ``|x| > 0`` (how
  many times each input element was non-zero), in the input's shape.
- ``input_sum``: the same with the values (for graded / direct-encoded input).
- ``nonzero/<pool>``: per output position of NIR pool node ``<pool>``, in how many
  (sample, step) pairs its value was non-zero (targets that evaluate pools: reference);
  neurobench's convention counts the layer after a pool from these.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeship.errors import RunDirError
from spikeship.io import atomic_path, write_json_atomic
from spikeship.stats import wilson_interval
from spikeship.safeopen import check_npz, read_json


@dataclass
class SimResult:
    """Outcome of running a deployed graph on one target over a set of samples."""

    target: str
    timesteps: int
    output_spikes: np.ndarray                      # (samples, T, classes)
    neuron_counts: dict[str, np.ndarray]           # node name -> counts in node shape
    input_count: np.ndarray                        # input shape
    input_sum: np.ndarray                          # input shape
    labels: np.ndarray | None = None               # (samples,)
    wall_time_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)   # target-specific numbers
    agreement: dict[str, Any] | None = None        # filled by compare_to()
    pool_nonzero: dict[str, np.ndarray] = field(default_factory=dict)   # pool -> counts

    @classmethod
    def from_run(cls, target: str, inputs: np.ndarray, output_spikes: np.ndarray,
                 neuron_counts: dict[str, np.ndarray], labels: np.ndarray | None,
                 wall_time_s: float, extra: dict[str, Any] | None = None) -> SimResult:
        """A result from a run on ``inputs`` (N, T, *input shape): output spikes as uint8,
        labels as int64, and the input statistics computed here, the same way for every
        target (``input_count``: how often each element was non-zero; ``input_sum``: the
        values summed in float64)."""
        x = np.asarray(inputs)
        return cls(target=target, timesteps=int(x.shape[1]),
                   output_spikes=np.asarray(output_spikes).astype(np.uint8),
                   neuron_counts=neuron_counts,
                   input_count=(x != 0).sum(axis=(0, 1)).astype(np.int64),
                   input_sum=x.sum(axis=(0, 1), dtype=np.float64),
                   labels=None if labels is None else np.asarray(labels).astype(np.int64),
                   wall_time_s=wall_time_s, extra=dict(extra or {}))

    @property
    def samples(self) -> int:
        return int(self.output_spikes.shape[0])

    @property
    def predictions(self) -> np.ndarray:
        return self.output_spikes.sum(axis=1).argmax(axis=1).astype(np.int64)

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float((self.predictions == self.labels).mean())

    def compare_to(self, reference: SimResult | np.ndarray) -> dict[str, Any]:
        """Agreement with a reference (another result or its output spikes array).

        ``spikes``: share of identical output spike entries (samples x T x classes);
        ``predictions``: share of identical predicted classes.
        """
        ref = reference.output_spikes if isinstance(reference, SimResult) else reference
        if ref.shape != self.output_spikes.shape:
            raise ValueError(f"cannot compare output spikes of shape {self.output_spikes.shape} "
                             f"with {ref.shape}")
        ref_pred = ref.sum(axis=1).argmax(axis=1)
        self.agreement = {
            "spikes": float((ref == self.output_spikes).mean()),
            "spikes_differing": int((ref != self.output_spikes).sum()),
            "predictions": float((ref_pred == self.predictions).mean()),
            "predictions_differing": int((ref_pred != self.predictions).sum()),
        }
        return self.agreement

    def summary(self) -> dict[str, Any]:
        """The JSON document of ``simulate-<target>.json``."""
        return {
            "target": self.target,
            "samples": self.samples,
            "timesteps": self.timesteps,
            "accuracy": self.accuracy,
            "accuracy_ci95": None if self.labels is None else list(wilson_interval(
                int((self.predictions == self.labels).sum()), self.samples)),
            "layer_spikes": {k: int(v.sum()) for k, v in self.neuron_counts.items()},
            "layer_spikes_per_sample": {k: float(v.sum()) / max(self.samples, 1)
                                        for k, v in self.neuron_counts.items()},
            "agreement_with_training": self.agreement,
            "wall_time_s": self.wall_time_s,
            "samples_per_s": self.samples / self.wall_time_s if self.wall_time_s > 0 else None,
            **self.extra,
        }

    def save(self, run_dir: str | Path) -> Path:
        """Write ``simulate-<target>.json`` and ``simulate-<target>.npz`` atomically."""
        run_dir = Path(run_dir)
        arrays = {"output_spikes": self.output_spikes.astype(np.uint8),
                  "predictions": self.predictions,
                  "input_count": self.input_count, "input_sum": self.input_sum}
        if self.labels is not None:
            arrays["labels"] = self.labels.astype(np.int64)
        arrays.update({f"count/{k}": v for k, v in self.neuron_counts.items()})
        arrays.update({f"nonzero/{k}": v for k, v in self.pool_nonzero.items()})
        path = run_dir / f"simulate-{self.target}.json"
        # both or neither: the two renames happen only after both files are written
        with atomic_path(run_dir / f"simulate-{self.target}.npz") as tmp_npz, \
                atomic_path(path) as tmp_json:
            with open(tmp_npz, "wb") as f:
                np.savez_compressed(f, **arrays)
            write_json_atomic(tmp_json, self.summary())
        return path

    @classmethod
    def load(cls, run_dir: str | Path, target: str) -> SimResult:
        """Read back what :meth:`save` wrote (no pickles: ``allow_pickle=False``)."""
        run_dir = Path(run_dir)
        jpath, npath = run_dir / f"simulate-{target}.json", run_dir / f"simulate-{target}.npz"
        if not jpath.exists() or not npath.exists():
            raise RunDirError(f"no simulation result for target '{target}' in {run_dir} "
                              f"(run `spikeship simulate {run_dir} --target {target}` first)")
        try:
            meta = read_json(jpath, "simulation result", RunDirError)
            check_npz(npath, "simulation result", RunDirError)   # declared sizes vs bytes
            with np.load(npath, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise RunDirError(f"corrupt simulation result {npath}: {e}") from e
        known = {"target", "samples", "timesteps", "accuracy", "accuracy_ci95", "layer_spikes",
                 "layer_spikes_per_sample", "agreement_with_training", "wall_time_s",
                 "samples_per_s"}
        try:
            res = cls(
                target=str(meta["target"]), timesteps=int(meta["timesteps"]),
                output_spikes=arrays["output_spikes"],
                neuron_counts={k[len("count/"):]: v for k, v in arrays.items()
                               if k.startswith("count/")},
                input_count=arrays["input_count"], input_sum=arrays["input_sum"],
                labels=arrays.get("labels"), wall_time_s=float(meta.get("wall_time_s", 0.0)),
                extra={k: v for k, v in meta.items() if k not in known},
                agreement=meta.get("agreement_with_training"),
                pool_nonzero={k[len("nonzero/"):]: v for k, v in arrays.items()
                              if k.startswith("nonzero/")},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RunDirError(f"malformed simulation result {jpath} / {npath}: "
                              f"{type(e).__name__}: {e}") from e
        if res.output_spikes.ndim != 3 or (res.labels is not None
                                           and res.labels.shape != (res.samples,)):
            raise RunDirError(f"malformed simulation result {npath}: output_spikes "
                              f"{res.output_spikes.shape}, labels "
                              f"{None if res.labels is None else res.labels.shape}")
        return res

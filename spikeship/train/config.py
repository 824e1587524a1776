"""The training configuration: one frozen, validated dataclass, saved as ``config.json``.

The optimiser is AdamW with decoupled weight decay 0.01 and a cosine learning-rate
schedule after a linear warm-up, as in DPAP's public script (lr 2.4e-4, 5 warm-up
epochs of 300); runs here are about 15x shorter, so the peak lr is higher (2e-3 SNN,
1e-2 ANN twin, which underfits at the SNN's) and the warm-up one epoch. How the
defaults were chosen: ``docs/pruning-decisions.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeship.data import DATASETS
from spikeship.data.subset import check_carve
from spikeship.errors import ConfigError
from spikeship.safeopen import read_config
from spikeship.train.losses import default_loss, get_loss
from spikeship.train.models import ANN_ONLY, PRESETS
from spikeship.train.pruners import PRUNERS, get_pruner_class

DEVICES = ("cpu", "cuda", "auto")
ENGINES = ("fast", "snntorch")
PRECISIONS = ("fp32", "bf16")
DEFAULT_EPOCHS = 20             # a run's length unless the pruner's options ask otherwise
DEFAULT_LR_SNN = 2e-3
DEFAULT_LR_ANN = 1e-2
DEFAULT_QAT_EPOCHS = 5          # an SNN's last epochs on the Loihi grid, unless qat is set


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (bitwise, on CPU, for a given torch)."""

    dataset: str = "digits"
    data_dir: str | None = None
    data_seed: int = 0               # train/test split, sensor noise, --limit-* subsets
    limit_train: int | None = None   # stratified subset of the training split (None: all)
    limit_test: int | None = None    # stratified subset of the test split (None: all)
    validation_carve: float | None = None  # share of the training split held out and
    #                                  evaluated in place of the test split (spikeship tune)
    model: str = "dpap-mnist"
    ann: bool = False                # train the ANN twin (ReLU, cross-entropy, no time)
    pool: str = ""                   # "" = the preset's pooling; "avg" | "max"
    hidden: int = 32                 # tiny-mlp only
    timesteps: int = 8
    seed: int = 0                    # weights, shuffling, pruner randomness
    epochs: int | None = None        # None: the pruner's default_epochs, else 20
    batch_size: int = 32
    lr: float | None = None          # peak learning rate; None = 2e-3 (SNN) / 1e-2 (ANN)
    weight_decay: float = 0.01       # AdamW, decoupled
    warmup_epochs: int = 1           # linear warm-up, then cosine to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    loss: str = ""                   # "" = mse_rate (SNN, Eq 3) / ce (ANN)
    prune: str = "none"
    prune_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"              # "cpu" | "cuda" | "auto"
    engine: str = "fast"             # "fast" (multi-step, fused LIF) | "snntorch" (reference)
    precision: str = "fp32"          # "fp32" | "bf16" (autocast of conv / linear; LIF in fp32)
    eval_every: int = 1              # test pass every K epochs (and after the last one)
    eval_batch_size: int = 0         # 0 = by engine: 64 fast, 256 snntorch
    init_from: str | None = None     # a trained run whose weights (and masks) start this one
    qat: bool | None = None          # weights on the Loihi quantiser's 8-bit grid (forward);
    #                                  None: an SNN's last DEFAULT_QAT_EPOCHS epochs, an ANN off
    qat_epochs: int | None = None    # with qat: only in the last N epochs (0 = every epoch);
    #                                  None: DEFAULT_QAT_EPOCHS if qat is None, else 0

    def __post_init__(self):
        _choice("dataset", self.dataset, DATASETS)
        _choice("model", self.model, PRESETS)
        _choice("prune", self.prune, PRUNERS)
        _choice("device", self.device, DEVICES)
        _choice("pool", self.pool, ("", "avg", "max"))
        _choice("engine", self.engine, ENGINES)
        _choice("precision", self.precision, PRECISIONS)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"field 'data_dir' must be a path string, got {self.data_dir!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str)
                                           or not self.init_from):
            raise ConfigError(f"field 'init_from' must be a run directory, "
                              f"got {self.init_from!r}")
        if self.qat is None:          # the default: float training, then the grid at the end
            object.__setattr__(self, "qat", not self.ann)
            if self.qat_epochs is None:
                object.__setattr__(self, "qat_epochs", DEFAULT_QAT_EPOCHS if self.qat else 0)
        if self.qat_epochs is None:
            object.__setattr__(self, "qat_epochs", 0)
        for name in ("ann", "qat"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"field '{name}' must be true or false, "
                                  f"got {getattr(self, name)!r}")
        _int("data_seed", self.data_seed, 0, 2**63 - 1)   # torch's 64-bit generator
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), 1)
        check_carve(self.validation_carve)
        _int("seed", self.seed, 0, 2**63 - 1)
        _int("hidden", self.hidden, 1, 1 << 16)
        _int("timesteps", self.timesteps, 1, 10_000)
        if self.epochs is None:
            asked = get_pruner_class(self.prune).default_epochs(self.prune_options) \
                if isinstance(self.prune_options, dict) else None
            object.__setattr__(self, "epochs", asked or DEFAULT_EPOCHS)
        _int("epochs", self.epochs, 1, 1_000_000)
        _int("qat_epochs", self.qat_epochs, 0)
        if self.qat_epochs and not self.qat:
            raise ConfigError(f"field 'qat_epochs' ({self.qat_epochs}) needs qat (--qat): it "
                              f"limits quantisation-aware training to the last epochs")
        _int("batch_size", self.batch_size, 1, 1 << 20)
        _int("warmup_epochs", self.warmup_epochs, 0)
        _int("eval_every", self.eval_every, 1)
        _int("eval_batch_size", self.eval_batch_size, 0)
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR_ANN if self.ann else DEFAULT_LR_SNN)
        _float("lr", self.lr, 0.0, 1.0, open_low=True)
        _float("weight_decay", self.weight_decay, 0.0, 10.0)
        _float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        if self.qat and self.ann:
            raise ConfigError("field 'qat': quantisation-aware training is for the SNN that "
                              "is deployed on the chip, not the ANN twin")
        if self.model in ANN_ONLY and not self.ann:
            raise ConfigError(f"field 'model': '{self.model}' is an ANN twin; set ann (--ann)")
        if not isinstance(self.prune_options, dict) or not all(
                isinstance(k, str) for k in self.prune_options):
            raise ConfigError("field 'prune_options' must be a table of name = value")
        try:
            json.dumps(self.prune_options)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"field 'prune_options' must be JSON-able: {e}") from e
        except RecursionError:
            raise ConfigError("field 'prune_options' nests too deeply") from None
        if not isinstance(self.loss, str):
            raise ConfigError(f"field 'loss' must be a name, got {self.loss!r}")
        object.__setattr__(self, "loss", self.loss or default_loss(self.ann))
        get_loss(self.loss, self.ann)  # raises ConfigError naming the field

    # ---- conversion -----------------------------------------------------------------
    @classmethod
    def from_mapping(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict (a TOML/JSON file or saved ``config.json``), naming bad fields."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: a configuration must be a table of fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field (the resolved configuration)."""
        d = dataclasses.asdict(self)
        d["prune_options"] = dict(self.prune_options)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        return cls.from_mapping(d, source="config.json")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``tomllib``) or JSON config file; a ``[train]`` table is used if present."""
    return read_config(path, "train", ConfigError)


def parse_prune_option(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--prune-opt``; the value is read as JSON if it parses, else a string."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--prune-opt must look like key=value, got '{text}'")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
    except RecursionError:
        raise ConfigError(f"--prune-opt {key}: the value nests too deeply") from None


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float,
          min_lr_ratio: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based).

    Linear warm-up ``lr * (step + 1) / W`` for ``step < W``, then cosine decay
    ``lr * (r + (1 - r) * (1 + cos(pi * p)) / 2)`` with ``p = (step - W) / (S - W)``.
    """
    warmup_steps = min(warmup_steps, total_steps)
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    p = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))


# ---- validation helpers -----------------------------------------------------------------
def _choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"field '{name}': unknown {value!r}; choose one of {sorted(options)}")


def _int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field '{name}' must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"field '{name}' must be {rng}, got {value}")


def _float(name, value, low, high, open_low=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"field '{name}' must be a number, got {value!r}")
    if value < low or value > high or (open_low and value == low):
        lb = "(" if open_low else "["
        raise ConfigError(f"field '{name}' must be in {lb}{low}, {high}], got {value}")

"""The pipeline's configuration: :class:`PipelineConfig`, from a TOML / JSON file, the
``--quick`` defaults and flags (:func:`pipeline_config`)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikeship.data import DATASETS
from spikeship.errors import ConfigError
from spikeship.safeopen import LIMITS, read_text
from spikeship.sim.registry import PIPELINE_DEFAULT as TARGETS_DEFAULT
from spikeship.sim.registry import SIMULATORS as TARGETS
from spikeship.targets.registry import CHIPS
from spikeship.train.config import parse_prune_option
from spikeship.train.models import PRESETS
from spikeship.train.pruners import PRUNERS, get_pruner_class


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs; validated on construction (bad field -> ConfigError)."""

    out: str = "runs/demo"
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "dpap-mnist"
    prune: str = "dpap"
    prune_options: dict[str, str] = field(default_factory=dict)
    epochs: int | None = None            # None: each run's own default (dense 20, DPAP 50)
    timesteps: int = 8
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    targets: tuple[str, ...] = TARGETS_DEFAULT
    sim_samples: int | None = None       # None = whole test split
    lava_samples: int | None = 120       # Lava targets step one sample at a time
    hardware: str = "loihi"              # the chip of energy_pj per layer (all are reported)
    # netx HDF5 has no sparse storage: its file keeps unstructured-pruned synapses as
    # zeros (the netx network loaded with sparse_fc_layer=True is checked clean
    # separately). Reported in energy.json, not failing the pipeline.
    allow_explicit_zeros: tuple[str, ...] = ("netx",)
    quick: bool = False
    from_dense: bool = False             # the pruned run starts from the trained dense run
    pruned_epochs: int | None = None     # its epochs (default: epochs)
    qat: bool | None = None              # both runs: --qat / --no-qat (None: train's default)
    # torch CPU threads for training: the embedded nets are tiny, and more threads
    # than free cores makes OpenMP spin (seen here: 1 s vs 50 s per epoch under load)
    threads: int = 1

    def __post_init__(self):
        """Check every field before anything runs, so a bad value fails in a second with a
        named field, not after an hour of training in the stage that first reads it."""
        for name in ("out", "dataset", "model", "prune"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"field '{name}' must be a non-empty string, "
                                  f"got {getattr(self, name)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"field 'data_dir' must be a path string, got {self.data_dir!r}")
        for name, table in (("dataset", DATASETS), ("model", PRESETS), ("prune", PRUNERS)):
            if getattr(self, name) not in table:
                raise ConfigError(f"field '{name}': unknown {getattr(self, name)!r}; choose one "
                                  f"of {sorted(table)}")
        for name in ("quick", "from_dense", "qat"):
            if name == "qat" and self.qat is None:
                continue
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"field '{name}' must be true or false, "
                                  f"got {getattr(self, name)!r}")
        for name, low in (("timesteps", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), low)
        for name in ("epochs", "sim_samples", "lava_samples", "batch_size", "threads", "pruned_epochs"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.lr is not None and (isinstance(self.lr, bool)
                                    or not isinstance(self.lr, (int, float))
                                    or not 0 < self.lr < 1):
            raise ConfigError(f"field 'lr' must be in (0, 1), got {self.lr!r}")
        if not isinstance(self.prune_options, dict) or not all(
                isinstance(k, str) for k in self.prune_options):
            raise ConfigError("field 'prune_options' must be a table of name = value")
        try:        # the pruner checks its options now, not after the dense run trained
            get_pruner_class(self.prune)(dict(self.prune_options))
        except ConfigError as e:
            raise ConfigError(f"field 'prune_options': {e}") from e
        if not self.targets or not all(isinstance(x, str) for x in self.targets):
            raise ConfigError(f"field 'targets' must be a non-empty list of names, "
                              f"got {self.targets!r}")
        bad = [x for x in self.targets if x not in TARGETS]
        if bad:
            raise ConfigError(f"field 'targets': unknown {bad}; choose from {sorted(TARGETS)}")
        if not isinstance(self.hardware, str) or self.hardware not in CHIPS:
            raise ConfigError(f"field 'hardware': unknown {self.hardware!r}; choose one of "
                              f"{sorted(CHIPS)}")

    @classmethod
    def from_mapping(cls, d: dict[str, Any], source: str = "config") -> PipelineConfig:
        """Build from a dict (a TOML/JSON file), naming any unknown or ill-typed field."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        kw = {}
        for k, v in d.items():
            if k in ("targets", "allow_explicit_zeros"):
                if isinstance(v, str):
                    v = [x.strip() for x in v.split(",") if x.strip()]
                if not isinstance(v, (list, tuple)):
                    raise ConfigError(f"{source}: field '{k}' must be a list of names")
                v = tuple(v)
            elif k == "prune_options" and not isinstance(v, dict):
                raise ConfigError(f"{source}: field 'prune_options' must be a table")
            elif k in ("epochs", "timesteps", "seed", "sim_samples", "lava_samples",
                       "batch_size", "threads", "pruned_epochs") and v is not None \
                    and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"{source}: field '{k}' must be an integer, got {v!r}")
            kw[k] = v
        try:
            return cls(**kw)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from e

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"field '{name}' must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"field '{name}' must be >= {low}, got {value}")


QUICK = {"epochs": 8, "sim_samples": 60, "lava_samples": 20}


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON pipeline config file."""
    try:
        text = read_text(path, "config file", ConfigError, LIMITS.json_bytes)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    try:
        if path.suffix == ".json":
            d = json.loads(text)
        else:
            d = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path} is malformed: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a table of fields")
    return d.get("pipeline", d)


def pipeline_config(config_file: Path | None, quick: bool, prune_opts: tuple[str, ...],
                    flags: dict[str, Any]) -> PipelineConfig:
    """The command's :class:`PipelineConfig`: the file, ``--quick``'s defaults under
    it, the flags over both; ``--prune-opt`` over the file's ``prune_options``."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    if quick or values.get("quick") is True:     # a non-bool "quick" is refused below
        values = {**QUICK, **values, "quick": True}
    values.update({k: v for k, v in flags.items() if v is not None})
    if prune_opts:
        base = values.get("prune_options")
        values["prune_options"] = {**(base if isinstance(base, dict) else {}),
                                   **dict(parse_prune_option(t) for t in prune_opts)}
    values.setdefault("out", "runs/demo")
    return PipelineConfig.from_mapping(values, source=str(config_file or "flags"))

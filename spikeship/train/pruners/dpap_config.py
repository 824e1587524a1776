"""Options of the DPAP pruner (``--prune dpap --prune-opt key=value``), validated.

The dataclass defaults are the paper's (Han et al., Eq 5-17; NOTES.md): trace tau = 0.5,
gamma = 0.999, beta = 10, warm-up 5 epochs; conv channels eps 0.65, eta 12, C 5; FC
synapses and neurons eps 1.5, eta 13, C 2. ``preset=paper`` runs that survival schedule;
the default, ``preset=chip``, is one cut of the trained network to per-layer budgets
(:mod:`.dpap_cut`). Options given beside a preset win.

Schedule scaling (``scale = s``, survival schedule only): the paper's schedule is
written in epochs of a ~100-epoch run; training epoch ``e`` (0-based) stands for the
paper's epoch ``v = e * s``, warm-up and ``w(v)`` of Eq 16-17 are read at ``v``, and
one update applies ``s`` epochs' worth of change, ``F <- gamma**s * F + s * w(v) * dF``.
``scale = 1`` is the paper exactly (use it for ~100-epoch runs).

Options removed since (``REMOVED``) are refused by name (:class:`RemovedOptionError`);
one given at its former default value, which behaves as today, is dropped with a warning.
How each default was decided: ``docs/pruning-decisions.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

from spikeship.errors import ConfigError, RemovedOptionError
from spikeship.train.pruners.dpap_criteria import DECAYS, NORMALISATIONS, SPINES

CRITERIA = ("bcm", "hebb", "stdp")
WINDOWS = ("epoch", "cumulative")
OBJECTIVES = ("params", "synops")
CUT_RANKS = ("survival", "l1")

# Named option sets (``--prune-opt preset=NAME``); "" is the default, "chip".
# "chip": dense for 40 % of a 50-epoch run, one cut (conv channels by filter L1 norm,
# FC synapses by strength-weighted BCM), then fine-tuning. "deep": the same, a deeper
# cut. "paper": the paper's survival schedule (Eq 12-17, the dataclass defaults).
CHIP = {"cut_at": 0.4, "default_epochs": 50, "restart_lr": True, "strength": True,
        "spine": "synaptic", "unit_budget_first": 0.0, "unit_budget_conv": 0.75,
        "synapse_budget_fc": 0.8, "cut_rank": "l1"}
DEEP = {**CHIP, "unit_budget_first": 0.47, "unit_budget_conv": 0.8, "synapse_budget_fc": 0.9}
PRESETS: dict[str, dict[str, Any]] = {
    "": CHIP,
    "chip": CHIP,
    "deep": DEEP,
    "paper": {"objective": "params", "decay": "exp", "normalisation": "p75",
              "eps_conv": 0.65, "eta_conv": 12.0, "c_conv": 5.0, "unit_budget_conv": 1.0,
              "eps_fc": 1.5, "eta_fc": 13.0, "c_fc": 2.0, "unit_budget_fc": 1.0,
              "scale": 3.0},
}

#: options removed, with the value at which they did nothing (what a saved run that
#: did not use them recorded) and what replaces them
REMOVED: dict[str, tuple[Any, str]] = {
    "distill": (0.0, "distillation after the cut was removed"),
    "cut_steps": (1, "the cut is made in one step"),
    "cut_every": (1, "the cut is made in one step"),
    "budget_start": (0.0, "budgets apply at once (the ramp was removed)"),
    "budget_end": (0.0, "budgets apply at once (the ramp was removed)"),
    "run_epochs": (0, "set scale instead (scale = 60 / run_epochs did the same)"),
    "paper_epochs": (60.0, "set scale instead"),
}
REMOVED_PRESETS = {"channels": "use preset=chip (a cut) or set eps_conv, eta_conv, c_conv "
                               "and unit_budget_conv yourself"}

_CHOICES = {"criterion": CRITERIA, "normalisation": NORMALISATIONS, "decay": DECAYS,
            "window": WINDOWS, "spine": SPINES, "objective": OBJECTIVES,
            "cut_rank": CUT_RANKS,
            "preset": tuple(PRESETS)}
_POSITIVE = {"beta", "eta_conv", "eta_fc", "history", "cost_cap", "scale"}
_NON_NEGATIVE = {"tau", "gamma", "warmup", "eps_conv", "eps_fc", "c_conv", "c_fc",
                 "cut_epoch", "cut_at", "default_epochs", "cost_power",
                 "unit_budget_conv", "unit_budget_fc"}


@dataclass(frozen=True)
class DPAPConfig:
    """Every DPAP option (names are the ``--prune-opt`` keys)."""

    criterion: str = "bcm"              # synaptic criterion: Eq 7 BCM | hebb | stdp (Fig 4H)
    normalisation: str = "p75"          # Eq 12-13: "minmax" (paper) | "p75" (script)
    decay: str = "exp"                  # Eq 16-17: "exp" (paper) | "staircase" (script)
    window: str = "epoch"               # Eq 10 per epoch | "cumulative" (script never resets)
    spine: str = "minmax-product"       # Eq 11 variant, see dpap_criteria
    tau: float = 0.5                    # trace decay, Eq 5-6
    beta: float = 10.0                  # initial survival value
    gamma: float = 0.999                # survival decay, Eq 16-17
    warmup: float = 5.0                 # paper epochs before the first update
    eps_conv: float = 0.65              # decay value epsilon, conv channels
    eta_conv: float = 12.0              # decay rate eta, conv
    c_conv: float = 5.0                 # protection C, conv
    eps_fc: float = 1.5                 # FC synapses and neurons
    eta_fc: float = 13.0
    c_fc: float = 2.0
    scale: float = 3.0                  # paper epochs per training epoch (1 = the paper)
    conv_synapses: bool = False         # also prune conv channel pairs (C_out x C_in kernels)
    output_synapses: bool = True        # prune synapses of the output layer (never its units)
    history: int = 8                    # survival values kept per unit / synapse (Fig 4E-F)
    unit_budget_conv: float = 1.0       # at most this share of a conv layer's channels removed
    unit_budget_fc: float = 1.0         # ... of a hidden FC layer's neurons (1 = no limit)
    unit_budgets: str = ""              # per-layer budgets "index:share,..." (override the two)
    cut_epoch: int = 0                  # > 0: the cut (one survival update from this epoch's
                                        # statistics, then every layer cut to its budgets,
                                        # lowest F first whatever its sign) at the end of this
                                        # training epoch; nothing removed before or after
    cut_at: float = 0.0                 # > 0: the cut at the end of epoch floor(cut_at * E) + 1
                                        # of an E-epoch run (excludes cut_epoch)
    unit_budget_first: float = 1.0      # unit budget of the first prunable layer (the input's;
                                        # 1: that of its kind, 0: none removed)
    synapse_budget_fc: float = 0.0      # at the cut: share of each hidden FC layer's remaining
                                        # synapses removed (lowest F_BCM first)
    synapse_budgets: str = ""           # "index:share,...": the same per layer (overrides)
    strength: bool = False              # criterion x |w| (conv: the pair's kernel L1 norm)
    cut_rank: str = "survival"          # the cut ranks conv channels by F ("survival") or
                                        # by their filter's L1 norm ("l1", Li et al. 2017)
    default_epochs: int = 0             # run length when --epochs is not given (0: the CLI's)
    restart_lr: bool = False            # cut mode: the learning-rate schedule restarts with
                                        # the cut's epoch (the dense phase decays to its end)
    objective: str = "params"           # "synops": decay value scaled by on-chip cost
    cost_power: float = 1.0             # eps_i = eps * (cost_i / mean cost) ** cost_power
    cost_cap: float = 4.0               # ... clipped to at most cost_cap
    preset: str = ""                    # named option set, see PRESETS

    def __post_init__(self):
        for key, allowed in _CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"dpap option {key}={getattr(self, key)!r}: "
                                  f"choose one of {list(allowed)}")
        for key in _POSITIVE:
            if not getattr(self, key) > 0:
                raise ConfigError(f"dpap option {key} must be > 0, got {getattr(self, key)}")
        for key in _NON_NEGATIVE:
            if not getattr(self, key) >= 0:
                raise ConfigError(f"dpap option {key} must be >= 0, got {getattr(self, key)}")
        for key in ("unit_budget_conv", "unit_budget_fc", "unit_budget_first",
                    "synapse_budget_fc", "cut_at"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"dpap option {key} must be in [0, 1], "
                                  f"got {getattr(self, key)}")
        if self.cut_epoch and self.cut_at:
            raise ConfigError("dpap options cut_epoch and cut_at exclude each other")
        self.layer_budgets()          # validates unit_budgets
        self.layer_synapse_budgets()  # validates synapse_budgets
        if (self.synapse_budgets or self.synapse_budget_fc) and not self.cuts:
            raise ConfigError("dpap options synapse_budgets and synapse_budget_fc act at the "
                              "cut: set cut_epoch or cut_at")
        if self.gamma > 1 or self.tau > 1:
            raise ConfigError("dpap options gamma and tau must be <= 1")

    @property
    def cuts(self) -> bool:
        """True in cut mode (``cut_epoch`` or ``cut_at``)."""
        return bool(self.cut_epoch or self.cut_at)

    def cut_epoch_of(self, run_epochs: int) -> int:
        """The 1-based epoch of the cut in a ``run_epochs``-epoch run (0: no cut)."""
        if self.cut_epoch:
            return self.cut_epoch
        if self.cut_at:
            return min(int(self.cut_at * run_epochs) + 1, run_epochs)
        return 0

    def synapse_share(self, name: str, kind: str, is_output: bool) -> float | None:
        """Share of layer ``name``'s remaining synapses removed at the cut (None: none)."""
        per_layer = self.layer_synapse_budgets()
        if name in per_layer:
            return per_layer[name]
        if kind == "fc" and not is_output and self.synapse_budget_fc > 0:
            return self.synapse_budget_fc
        return None

    def layer_budgets(self) -> dict[str, float]:
        """``unit_budgets`` parsed: ``{layer index: share}``, each share in [0, 1]."""
        return _shares("unit_budgets", self.unit_budgets)

    def layer_synapse_budgets(self) -> dict[str, float]:
        """``synapse_budgets`` parsed: ``{layer index: share}``, each share in [0, 1]."""
        return _shares("synapse_budgets", self.synapse_budgets)

    def unit_budget(self, name: str, kind: str, first: bool = False) -> float:
        """Share of layer ``name``'s units that may be removed in all: ``unit_budgets``,
        else ``unit_budget_first`` for the first prunable layer when below 1, else by
        kind."""
        if first and self.unit_budget_first < 1.0:
            by_kind = self.unit_budget_first
        else:
            by_kind = self.unit_budget_conv if kind == "conv" else self.unit_budget_fc
        return self.layer_budgets().get(name, by_kind)

    def kind_params(self, kind: str) -> tuple[float, float, float]:
        """(eps, eta, C) for a layer kind ("conv" | "fc")."""
        if kind == "conv":
            return self.eps_conv, self.eta_conv, self.c_conv
        return self.eps_fc, self.eta_fc, self.c_fc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> DPAPConfig:
        """Build from ``--prune-opt`` values (strings or native); unknown keys are errors."""
        options = _drop_removed(dict(options or {}))
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(types))
        if unknown:
            raise ConfigError(f"unknown dpap option(s) {unknown}; known: {sorted(types)}")
        preset = str(options.get("preset", ""))
        if preset in REMOVED_PRESETS:
            raise RemovedOptionError(f"dpap option preset={preset!r} was removed: "
                                     f"{REMOVED_PRESETS[preset]}")
        if preset not in PRESETS:
            raise ConfigError(f"dpap option preset={preset!r}: choose one of "
                              f"{[p for p in PRESETS if p]}")
        base = {k: v for k, v in PRESETS[preset].items()
                if not (k == "cut_at" and "cut_epoch" in options)}
        merged = {**base, **options}
        values = {k: _coerce(k, v, types[k]) for k, v in merged.items()}
        return cls(**values)


def _drop_removed(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without removed ones: refused when set to act, dropped with a warning
    at the value at which they did nothing (a saved run behaves as before)."""
    for key in sorted(set(options) & set(REMOVED)):
        inert, instead = REMOVED[key]
        try:
            acted = float(options[key]) != float(inert)
        except (TypeError, ValueError):
            acted = True
        if acted:
            raise RemovedOptionError(f"dpap option {key}={options[key]!r} was removed: "
                                     f"{instead}")
        warnings.warn(f"dpap option {key}={options[key]!r} was removed and is ignored "
                      f"(it had no effect at this value); drop it", DeprecationWarning,
                      stacklevel=3)
        del options[key]
    return options


def _shares(option: str, text: str) -> dict[str, float]:
    """``"index:share,..."`` parsed into ``{index: share}``, each share in [0, 1]."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, share = part.partition(":")
        try:
            x = float(share)
        except ValueError:
            x = -1.0
        if not sep or not name.strip() or not 0.0 <= x <= 1.0:
            raise ConfigError(f"dpap option {option}: expected 'index:share,...' "
                              f"with shares in [0, 1], got {part!r}")
        out[name.strip()] = x
    return out


def _coerce(key: str, value: Any, typ: str) -> Any:
    try:
        if typ == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ == "int":
            f = float(value)
            if f != int(f):
                raise ValueError(value)
            return int(f)
        if typ == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"dpap option {key}={value!r} is not a valid {typ}") from e

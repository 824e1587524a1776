"""Options of the DPAP pruner (``--prune dpap --prune-opt key=value``), validated.

The default is ``preset=chip`` (``CHIP`` below: one run of 50 epochs, dense for 40 %,
then one cut of every layer to its budget, conv channels by their filters' L1 norm and
FC synapses by DPAP's strength-weighted criterion, then fine-tuning). The dataclass
defaults are the paper's and NOTES.md's (LIF trace tau = 0.5, gamma = 0.999,
beta = 10, warm-up 5 epochs; conv channels eps 0.65, eta 12, C 5; FC synapses and
neurons eps 1.5, eta 13, C 2), except where a choice had to be
made between the paper and the authors' script; ``preset=paper`` selects them (and
``preset=channels`` builds on them: conv channels pruned in-run, eps 1.0, eta 30, C 2,
at most 45 % of a conv layer's channels). Why and what was measured: see
:mod:`spikeship.train.pruners.dpap`. Everything below about ``scale`` concerns the
survival schedule (``preset=paper`` / ``channels``); the cut makes one update, whose
ranking no scale changes.

Schedule scaling: the paper's schedule is written in epochs of a ~100-epoch run
(pruning settles and accuracy peaks between its epochs 60 and 80, Fig 2D-F).
``scale = s`` makes every training epoch stand for ``s`` of those epochs:
0-based epoch ``e`` is the paper's epoch ``v = e * s`` (warm-up and the decay
``w(v)`` of Eq 16-17 are read at ``v``), and one update applies ``s`` epochs'
worth of change, ``F <- gamma**s * F + s * w(v) * dF``. ``scale = 1`` is the
paper exactly. ``run_epochs = N`` sets ``s = paper_epochs / N`` instead (default
``paper_epochs = 60``: the paper's first 60 epochs fitted into an N-epoch run).

The default ``scale = 3`` was measured on this project's default runs (dpap-mnist
on digits, 20 and 30 epochs, seeds 0-2): with scale 1 a 20-epoch run prunes 0 %
(exp decay) because F never falls from beta = 10; scale 2 gives 57 %; scale 3 gives
61-65 % with -0.0 to -0.7 pt (mean -0.2 pt) against the dense run; scale 4-5 prunes
at once in the third epoch, before the network is trained. The best scale did
not follow the run length: ``run_epochs=30`` (scale 2) on a 30-epoch run gave
58 % at -0.9 pt where scale 3 gave 64 % at -0.0 pt, so ``scale`` is the knob to
tune and ``run_epochs`` a starting point. For paper-length runs (~100 epochs)
pass ``scale=1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from spikeship.errors import ConfigError
from spikeship.train.pruners.dpap_criteria import DECAYS, NORMALISATIONS, SPINES

CRITERIA = ("bcm", "hebb", "stdp")
WINDOWS = ("epoch", "cumulative")
OBJECTIVES = ("params", "synops")
CUT_RANKS = ("survival", "l1")

# Named option sets (``--prune-opt preset=NAME``); options given beside a preset win.
# "" is the default: "chip" (issue 16: what the chip pays for; see
# spikeship.train.pruners.dpap for what it departs from and what it measured).
# "paper" names the paper's survival schedule (= the dataclass defaults below);
# "channels" is an earlier in-run channel schedule, kept for comparison.
# "deep" is the chip schedule with a deeper cut (the MNIST moonshot screen's cut B:
# about half of the first conv layer's channels, 80 % of the others', 90 % of the FC
# synapses); what it measured is in spikeship.train.pruners.dpap.
CHIP = {"cut_at": 0.4, "default_epochs": 50, "restart_lr": True, "strength": True,
        "spine": "synaptic", "unit_budget_first": 0.0, "unit_budget_conv": 0.75,
        "synapse_budget_fc": 0.8, "cut_rank": "l1"}
DEEP = {**CHIP, "unit_budget_first": 0.47, "unit_budget_conv": 0.8, "synapse_budget_fc": 0.9}
PRESETS: dict[str, dict[str, Any]] = {
    "": CHIP,
    "chip": CHIP,
    "deep": DEEP,
    "channels": {"eps_conv": 1.0, "eta_conv": 30.0, "c_conv": 2.0, "unit_budget_conv": 0.45},
    "paper": {"objective": "params", "decay": "exp", "normalisation": "p75",
              "eps_conv": 0.65, "eta_conv": 12.0, "c_conv": 5.0, "unit_budget_conv": 1.0,
              "eps_fc": 1.5, "eta_fc": 13.0, "c_fc": 2.0, "unit_budget_fc": 1.0,
              "scale": 3.0},
}

_CHOICES = {"criterion": CRITERIA, "normalisation": NORMALISATIONS, "decay": DECAYS,
            "window": WINDOWS, "spine": SPINES, "objective": OBJECTIVES,
            "cut_rank": CUT_RANKS,
            "preset": tuple(PRESETS)}
_POSITIVE = {"beta", "eta_conv", "eta_fc", "history", "paper_epochs", "cost_cap",
             "cut_steps", "cut_every"}
_NON_NEGATIVE = {"tau", "gamma", "warmup", "eps_conv", "eps_fc", "c_conv", "c_fc",
                 "run_epochs", "cut_epoch", "cut_at", "default_epochs", "cost_power",
                 "unit_budget_conv", "unit_budget_fc", "budget_start", "budget_end"}


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
    run_epochs: int = 0                 # > 0: scale = paper_epochs / run_epochs
    paper_epochs: float = 60.0
    conv_synapses: bool = False         # also prune conv channel pairs (C_out x C_in kernels)
    output_synapses: bool = True        # prune synapses of the output layer (never its units)
    history: int = 8                    # survival values kept per unit / synapse (Fig 4E-F)
    unit_budget_conv: float = 1.0       # at most this share of a conv layer's channels removed
    unit_budget_fc: float = 1.0         # ... of a hidden FC layer's neurons (1 = no limit)
    unit_budgets: str = ""              # per-layer budgets "index:share,..." (override the two)
    budget_start: float = 0.0           # > budget_start: the budgets ramp up (Zhu & Gupta's
    budget_end: float = 0.0             # cubic) from 0 after epoch budget_start to full at
                                        # epoch budget_end (training epochs); 0, 0 = at once
    cut_epoch: int = 0                  # > 0: the cut (one survival update from this epoch's
                                        # statistics, then every layer cut to its budgets,
                                        # lowest F first whatever its sign) at the end of this
                                        # training epoch; nothing removed before or after
    cut_at: float = 0.0                 # > 0: the cut at the end of epoch floor(cut_at * E) + 1
                                        # of an E-epoch run (excludes cut_epoch)
    cut_steps: int = 1                  # the cut in this many steps, cut_every epochs apart;
    cut_every: int = 1                  # step m of k cuts to m/k of each unit budget and
                                        # removes the share of synapses that leaves
                                        # (1 - share)**(m/k) of them
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
    distill: float = 0.0                # cut mode: weight of the teacher (the network at the
                                        # start of the cut's epoch) in the loss afterwards
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
        if not self.scale > 0:
            raise ConfigError(f"dpap option scale must be > 0, got {self.scale}")
        for key in ("unit_budget_conv", "unit_budget_fc", "unit_budget_first",
                    "synapse_budget_fc", "cut_at", "distill"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"dpap option {key} must be in [0, 1], "
                                  f"got {getattr(self, key)}")
        if self.cut_epoch and self.cut_at:
            raise ConfigError("dpap options cut_epoch and cut_at exclude each other")
        if self.budget_end < self.budget_start:
            raise ConfigError(f"dpap option budget_end={self.budget_end} must be >= "
                              f"budget_start={self.budget_start}")
        self.layer_budgets()          # validates unit_budgets
        self.layer_synapse_budgets()  # validates synapse_budgets
        if (self.synapse_budgets or self.synapse_budget_fc) and not self.cuts:
            raise ConfigError("dpap options synapse_budgets and synapse_budget_fc act at the "
                              "cut: set cut_epoch or cut_at")
        if self.distill and not self.cuts:
            raise ConfigError("dpap option distill acts after the cut: set cut_epoch or cut_at")
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

    @property
    def epoch_scale(self) -> float:
        """Paper epochs per training epoch (``scale``, or from ``run_epochs``)."""
        return self.paper_epochs / self.run_epochs if self.run_epochs > 0 else self.scale

    def layer_budgets(self) -> dict[str, float]:
        """``unit_budgets`` parsed: ``{layer index: share}``, each share in [0, 1]."""
        return _shares("unit_budgets", self.unit_budgets)

    def layer_synapse_budgets(self) -> dict[str, float]:
        """``synapse_budgets`` parsed: ``{layer index: share}``, each share in [0, 1]."""
        return _shares("synapse_budgets", self.synapse_budgets)

    def unit_budget(self, name: str, kind: str, epoch: int, first: bool = False) -> float:
        """Share of layer ``name``'s units that may be removed in all by the end of
        ``epoch`` (1-based): its budget (``unit_budgets``, else ``unit_budget_first`` for
        the first prunable layer when below 1, else by kind), ramped up along Zhu &
        Gupta's cubic between ``budget_start`` and ``budget_end`` when they differ."""
        from spikeship.train.pruners.schedule import zhu_gupta_sparsity

        if first and self.unit_budget_first < 1.0:
            by_kind = self.unit_budget_first
        else:
            by_kind = self.unit_budget_conv if kind == "conv" else self.unit_budget_fc
        full = self.layer_budgets().get(name, by_kind)
        if full >= 1.0 or self.budget_end <= self.budget_start:
            return full
        return zhu_gupta_sparsity(float(epoch), 0.0, full, self.budget_start, self.budget_end)

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
        options = dict(options or {})
        types = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(types))
        if unknown:
            raise ConfigError(f"unknown dpap option(s) {unknown}; known: {sorted(types)}")
        if "scale" in options and "run_epochs" in options:
            raise ConfigError("dpap options scale and run_epochs exclude each other")
        preset = str(options.get("preset", ""))
        if preset not in PRESETS:
            raise ConfigError(f"dpap option preset={preset!r}: choose one of "
                              f"{[p for p in PRESETS if p]}")
        base = {k: v for k, v in PRESETS[preset].items()
                if not (k == "scale" and "run_epochs" in options)
                and not (k == "cut_at" and "cut_epoch" in options)}
        merged = {**base, **options}
        values = {k: _coerce(k, v, types[k]) for k, v in merged.items()}
        return cls(**values)


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

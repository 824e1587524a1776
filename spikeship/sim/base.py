"""What a simulator is: a name, the artifact it consumes, a typed options schema,
capabilities, and ``run(...) -> SimResult``.

Every simulator module declares one :class:`Simulator` per target name and
:mod:`spikeship.sim.registry` lists them; the CLI's ``--target`` choices, ``--option``
validation and help, ``spikeship targets``, the pipeline's default targets and the
spike-source order of ``spikeship energy`` all come from those declarations.

Options are a pydantic model (``extra="forbid"``): ``--option KEY=VALUE`` values are
JSON-decoded by the CLI and then validated by the schema, so ``sparse_fc_layer=no``
is ``False`` (pydantic's bool: true/false, yes/no, on/off, 1/0), ``batch_size=0`` is
refused, and an unknown name is an :class:`~spikeship.errors.OptionError` (exit 2)
naming the simulator, the option and the known ones.
"""

from __future__ import annotations

import importlib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError)

from spikeship import ranges
from spikeship.errors import OptionError


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("must be a number, not a boolean")
    return v


PositiveInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, strict=False)]
# threads: 1 .. spikeship.ranges.MAX_THREADS (a huge count crashes torch / ORT's pools)
ThreadCount = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=256, strict=False)]
PositiveFloat = Annotated[float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)]
# a time step in seconds, in spikeship.ranges' range (1 ns .. 1 s)
DtSeconds = Annotated[float, BeforeValidator(_no_bool),
                      Field(ge=ranges.DT_MIN_S, le=ranges.DT_MAX_S, allow_inf_nan=False)]


def _available_device(v: str) -> str:
    """``cuda[:N]`` only when torch sees that CUDA device (else a named OptionError)."""
    if v.startswith("cuda"):
        import torch

        index = int(v.partition(":")[2] or 0)
        if not torch.cuda.is_available():
            raise ValueError(f"{v} was asked for but torch sees no CUDA device here; use cpu")
        if index >= torch.cuda.device_count():
            raise ValueError(f"{v}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return v


# a torch device: cpu, cuda, cuda:N (one that exists on this machine)
TorchDevice = Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$"),
                        AfterValidator(_available_device)]


class Options(BaseModel):
    """Options every simulator accepts; a simulator's schema subclasses this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    progress: bool = Field(True, description="progress bar on a terminal")


def _type_name(ann) -> str:
    """``int``, ``float | none``, ``'float64' | 'float32'`` for the option tables."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if ann is type(None):
        return "none"
    return getattr(ann, "__name__", str(ann))


@dataclass(frozen=True)
class Capabilities:
    """What a simulator can run (checked by the conformance tests in tests/sim)."""

    precision: tuple[str, ...]          # "float" and/or "fixed"
    recurrent: bool                     # recurrent edges (a population onto itself)
    conv: bool                          # Conv2d / pools
    per_neuron_tau: bool                # time constants that differ between neurons
    devices: tuple[str, ...] = ("cpu",)

    def to_json(self) -> dict:
        return {"precision": list(self.precision), "recurrent": self.recurrent,
                "conv": self.conv, "per_neuron_tau": self.per_neuron_tau,
                "devices": list(self.devices)}


# run(run_dir, inputs (N, T, *input_shape), labels (N,) | None, options) -> SimResult
RunFunction = Callable[..., Any]


@dataclass(frozen=True)
class Simulator:
    """One registered simulation target."""

    name: str
    artifact: str                 # what it reads from the run directory
    summary: str                  # one line for help and ``spikeship targets``
    options: type[Options]
    capabilities: Capabilities
    run_function: str             # "module:function", imported on use
    spike_source_rank: int | None = None   # order as energy's default spike source

    def parse_options(self, given: Mapping[str, Any] | Options | None = None) -> Options:
        """The validated options (defaults filled in); :class:`OptionError` for an unknown
        name or a value the schema refuses."""
        if isinstance(given, self.options):
            return given
        if isinstance(given, Options):
            given = given.model_dump()
        given = dict(given or {})
        known = sorted(self.options.model_fields)
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise OptionError(f"target '{self.name}': unknown option(s) {unknown}; "
                              f"known: {known}")
        try:
            return self.options(**given)
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            msg = err["msg"].removeprefix("Value error, ")
            raise OptionError(f"target '{self.name}': option {key}={given.get(key)!r}: "
                              f"{msg}") from None

    def option_table(self) -> list[dict]:
        """``[{name, type, default, help}]`` of the options schema."""
        return [{"name": name, "type": _type_name(f.annotation), "default": f.default,
                 "help": f.description or ""}
                for name, f in self.options.model_fields.items()]

    def load(self) -> RunFunction:
        module, attr = self.run_function.split(":")
        return getattr(importlib.import_module(module), attr)

    def run(self, run_dir, inputs: np.ndarray, labels: np.ndarray | None,
            options: Mapping[str, Any] | Options | None = None):
        """Run on ``inputs`` ``(N, T, *input_shape)``; returns a
        :class:`~spikeship.sim.result.SimResult`."""
        return self.load()(run_dir, inputs, labels, self.parse_options(options))

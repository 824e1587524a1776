"""Target options (``spikeship simulate --option key=value``), checked before anything runs.

A target declares its options as ``name -> (parser, default)``; :func:`parse_options`
returns every option with its value, and raises :class:`ConfigError` naming the target
and the option for an unknown name or a bad value (``batch_size=0`` would otherwise
loop forever or crash deep inside a simulator).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from spikeship.errors import ConfigError

Parser = Callable[[Any], Any]


def positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).strip().isdigit():
        raise ValueError("must be an integer >= 1")
    if int(v) < 1:
        raise ValueError("must be an integer >= 1")
    return int(v)


def positive_float(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError) as e:
        raise ValueError("must be a number > 0") from e
    if isinstance(v, bool) or not math.isfinite(x) or x <= 0:
        raise ValueError("must be a finite number > 0")
    return x


def optional(parse: Parser) -> Parser:
    return lambda v: None if v is None else parse(v)


def boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "1", "yes", "on"):
        return True
    if str(v).lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def choice(*allowed: str) -> Parser:
    def parse(v: Any) -> str:
        if str(v) not in allowed:
            raise ValueError(f"must be one of {list(allowed)}")
        return str(v)
    return parse


# Options every target accepts (the simulate command and the energy tools pass them).
COMMON: dict[str, tuple[Parser, Any]] = {"progress": (boolean, True)}


def parse_options(target: str, given: dict | None, spec: dict[str, tuple[Parser, Any]]
                  ) -> dict[str, Any]:
    """Every option of ``spec`` (and :data:`COMMON`) with its value from ``given`` (or
    its default)."""
    given = dict(given or {})
    spec = {**COMMON, **spec}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(f"target '{target}': unknown option(s) {unknown}; "
                          f"known: {sorted(spec)}")
    out = {}
    for key, (parse, default) in spec.items():
        if key not in given:
            out[key] = default
            continue
        try:
            out[key] = parse(given[key])
        except ValueError as e:
            raise ConfigError(f"target '{target}': option {key}={given[key]!r} {e}") from e
    return out

"""The one schema of ``results/<name>.json``, checked when a result is written and read.

A result document (``"schema": 1``):

- ``name`` (the file's stem), ``benchmark`` (the module that measured it, ``bench_*``),
  ``topic`` (the results page it belongs on), ``title``, ``description``;
- ``command`` (relative paths only), ``commit`` (hex), ``date`` (``YYYY-MM-DD HH:MM UTC``),
  ``machine`` (``cpu``, ``cores``, ``ram_gb``: null when the record did not say),
  ``versions`` (package -> version);
- ``rows`` (per seed, or per layer / variant: flat objects of scalars) and ``summary``
  (scalars, or objects of scalars such as ``{"mean": m, "lo": a, "hi": b}``);
- optional ``config`` (the settings, an object), ``notes`` (sentences) and
  ``imported_from`` (``README.md@<commit>``: converted once from a generated README block).

No string anywhere may hold an absolute path or a tracker reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from spikeship.errors import SpikeshipError

VERSION = 1
TOPICS = ("pruning", "timesteps", "onnx-latency", "speed", "reliability", "conformance")
NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
COMMIT = re.compile(r"[0-9a-f]{7,40}")
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
IMPORTED = re.compile(r"README\.md@[0-9a-f]{7,40}")
#: an absolute path: a slash (or ~/) starting a token and followed by name/ ...
ABS_PATH = re.compile(r"(?:^|[\s`'\"=(\[,:])(?:~?/)[A-Za-z0-9_.-]+/")
TRACKER = re.compile(r"\bissues?\s+#?\d+|\bsession\b|(?<![\w&])#\d+\b", re.I)
REQUIRED = {"schema": int, "name": str, "benchmark": str, "topic": str, "title": str,
            "description": str, "command": str, "commit": str, "date": str, "machine": dict,
            "versions": dict, "rows": list, "summary": dict}
OPTIONAL = {"config": dict, "notes": list, "imported_from": str}
SCALAR = (str, int, float, bool, type(None))


class ResultsSchemaError(SpikeshipError):
    """A results document does not follow the schema (the message names the file and field)."""


def _fail(where: str, field: str, why: str) -> None:
    raise ResultsSchemaError(f"{where}: field {field!r} {why}")


def check_text(where: str, field: str, text: str) -> None:
    """``text`` holds no absolute path and no tracker / session reference."""
    if ABS_PATH.search(text):
        _fail(where, field, f"holds an absolute path: {text!r}")
    if TRACKER.search(text):
        _fail(where, field, f"refers to a tracker or session (cite upstream by URL): {text!r}")


def _walk_strings(where: str, field: str, value) -> None:
    if isinstance(value, str):
        check_text(where, field, value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk_strings(where, f"{field}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_strings(where, f"{field}[{i}]", v)


def _scalars(where: str, field: str, obj: dict, nested: bool) -> None:
    for k, v in obj.items():
        if isinstance(v, SCALAR):
            continue
        if nested and isinstance(v, dict) and all(isinstance(x, SCALAR) for x in v.values()):
            if {"lo", "hi"} <= v.keys() and None not in (v["lo"], v["hi"]) and v["lo"] > v["hi"]:
                _fail(where, f"{field}.{k}", "is an interval with lo > hi")
            continue
        _fail(where, f"{field}.{k}", "must be a number, string, bool or null"
              + (" (or an object of those)" if nested else ""))


def validate(doc, where: str = "result") -> dict:
    """``doc`` if it follows the schema, else :class:`ResultsSchemaError` naming the field."""
    if not isinstance(doc, dict):
        raise ResultsSchemaError(f"{where}: a result is a JSON object, got {type(doc).__name__}")
    for key, typ in REQUIRED.items():
        if key not in doc:
            _fail(where, key, "is missing")
        if not isinstance(doc[key], typ) or (typ is int and isinstance(doc[key], bool)):
            _fail(where, key, f"must be {typ.__name__}, got {type(doc[key]).__name__}")
    for key, typ in OPTIONAL.items():
        if key in doc and not isinstance(doc[key], typ):
            _fail(where, key, f"must be {typ.__name__}, got {type(doc[key]).__name__}")
    unknown = sorted(set(doc) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        _fail(where, unknown[0], "is not a field of the schema")
    if doc["schema"] != VERSION:
        _fail(where, "schema", f"must be {VERSION}, got {doc['schema']}")
    if not NAME.fullmatch(doc["name"]):
        _fail(where, "name", "must be lower-case letters, digits, '.' and '-'")
    if doc["topic"] not in TOPICS:
        _fail(where, "topic", f"must be one of {', '.join(TOPICS)}, got {doc['topic']!r}")
    if not COMMIT.fullmatch(doc["commit"]):
        _fail(where, "commit", f"must be a hex commit, got {doc['commit']!r}")
    if not DATE.fullmatch(doc["date"]):
        _fail(where, "date", f"must read 'YYYY-MM-DD HH:MM UTC', got {doc['date']!r}")
    if "imported_from" in doc and not IMPORTED.fullmatch(doc["imported_from"]):
        _fail(where, "imported_from", "must read 'README.md@<commit>'")
    m = doc["machine"]
    for key, typ in (("cpu", str), ("cores", int)):
        if not isinstance(m.get(key), typ):
            _fail(where, f"machine.{key}", f"must be {typ.__name__}")
    if "ram_gb" not in m or not isinstance(m["ram_gb"], (int, float, type(None))):
        _fail(where, "machine.ram_gb", "must be a number or null")
    if not all(isinstance(v, str) for v in doc["versions"].values()):
        _fail(where, "versions", "must map package names to version strings")
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            _fail(where, f"rows[{i}]", "must be an object")
        _scalars(where, f"rows[{i}]", row, nested=False)
    _scalars(where, "summary", doc["summary"], nested=True)
    if not all(isinstance(n, str) for n in doc.get("notes", [])):
        _fail(where, "notes", "must be a list of strings")
    _walk_strings(where, "document", doc)
    return doc


def dumps(doc: dict) -> str:
    """The text of a result (one indent, keys in the order written): same data, same bytes."""
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write(path: Path, doc: dict) -> Path:
    """Check ``doc`` and write it to ``path`` (atomically); the name must be the file's stem."""
    from spikeship.io import write_text_atomic

    validate(doc, str(path.name))
    if doc["name"] != path.stem:
        _fail(path.name, "name", f"must equal the file's stem {path.stem!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, dumps(doc))
    return path


def read(path: Path) -> dict:
    """The checked result at ``path``; :class:`ResultsSchemaError` when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResultsSchemaError(f"{Path(path).name}: not a readable JSON file: {e}") from e
    validate(doc, Path(path).name)
    if doc["name"] != Path(path).stem:
        _fail(Path(path).name, "name", f"must equal the file's stem {Path(path).stem!r}")
    return doc


def read_all(folder: Path) -> list[dict]:
    """Every result in ``folder``, checked, sorted by name."""
    return sorted((read(p) for p in Path(folder).glob("*.json")), key=lambda d: d["name"])

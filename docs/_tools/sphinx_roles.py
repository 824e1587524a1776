"""Griffe extension: Sphinx roles in spikeship's docstrings become API cross-references.

(And reST's ``::`` literal-block marker is dropped: the indented block is code already.)

The docstrings say ``:class:`Deployment```, ``:func:`~spikeship.io.atomic_path```,
``:mod:`.synops``` or ``:meth:`state```, as Sphinx reads them. This extension rewrites
each role, once the whole package is loaded, into mkdocstrings' cross-reference
``[`text`][spikeship.full.path]``, resolving the target the way Sphinx does:

- ``spikeship.a.b``: absolute;
- ``.name``: the current module, then each enclosing package upwards;
- ``name`` / ``Class.member``: the current object, its parents, its module (imports
  included), then the package.

``~`` shows only the last component. A target that exists but is private (a ``_name``
somewhere in its path, so absent from the API reference) or belongs to another installed
package is shown as code, without a link. A target that resolves nowhere is left as a
reference to the name as written, so that ``mkdocs build --strict`` fails on it and names
it.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(class|func|mod|meth|attr|data|exc|obj|const):`(~?)([^`<>]+?)`")


def _walk(root: griffe.Module, path: str) -> griffe.Object | griffe.Alias | None:
    parts = path.split(".")
    if parts[0] != root.name:
        return None
    obj: Any = root
    for part in parts[1:]:
        try:
            members = obj.final_target.members if isinstance(obj, griffe.Alias) else obj.members
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
        if part not in members:
            return None
        obj = members[part]
    return obj


def _module_of(obj: griffe.Object) -> griffe.Module:
    while not isinstance(obj, griffe.Module):
        obj = obj.parent
    return obj


def _candidates(obj: griffe.Object, target: str) -> list[str]:
    root = obj.package.name
    if target.startswith(root + ".") or target == root:
        return [target]
    module = _module_of(obj)
    if target.startswith("."):
        name = target.lstrip(".")
        scope: griffe.Object | None = module
        out = []
        while scope is not None:
            out.append(f"{scope.path}.{name}")
            scope = scope.parent
        return out
    out = []
    scope = obj
    while scope is not None:
        out.append(f"{scope.path}.{target}")
        scope = scope.parent
    return out


def _private(path: str) -> bool:
    """Whether a component of the path is private (``_name``, not ``__dunder__``)."""
    return any(p.startswith("_") and not (p.startswith("__") and p.endswith("__"))
               for p in path.split("."))


def _index(root: griffe.Module) -> dict[str, list[str]]:
    """Every object's path, keyed by its last component (aliases left out)."""
    index: dict[str, list[str]] = {}

    def visit(obj: griffe.Object) -> None:
        index.setdefault(obj.name, []).append(obj.path)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                visit(member)

    visit(root)
    return index


def resolve(obj: griffe.Object, target: str, index: dict[str, list[str]] | None = None) -> str | None:
    """The full path that ``target``, written in ``obj``'s docstring, refers to.

    Scopes first (as Sphinx does); then, as Sphinx's search does, the one object in the
    package whose path ends with the target, when there is exactly one.
    """
    root = obj.package
    paths = _candidates(obj, target)
    if index is not None:
        tail = "." + target.lstrip(".")
        matches = [p for p in index.get(tail.rsplit(".", 1)[-1], []) if p.endswith(tail)]
        if len(matches) == 1:
            paths.append(matches[0])
    for path in paths:
        found = _walk(root, path)
        if found is None:
            continue
        if isinstance(found, griffe.Alias):
            try:
                found = found.final_target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if not found.path.startswith(root.name + "."):
                return None  # a name imported from another package: not ours to link
        return found.path
    return None


def _external(target: str) -> bool:
    """Whether the target names another installed package's object (``importlib.abc``)."""
    first = target.split(".", 1)[0]
    return bool(first) and first != "spikeship" and importlib.util.find_spec(first) is not None


LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*\n", re.M)
LITERAL_AFTER = re.compile(r"(\S)::[ \t]*$", re.M)


def literal_blocks(text: str) -> str:
    """reST's literal-block marker ``::`` dropped (``text::`` -> ``text:``; a line of only
    ``::`` removed): the indented block after it is already code in Markdown."""
    return LITERAL_AFTER.sub(r"\1:", LITERAL_ALONE.sub("", text))


def rewrite(obj: griffe.Object, text: str, index: dict[str, list[str]] | None = None) -> str:
    def repl(m: re.Match[str]) -> str:
        tilde, target = m.group(2), m.group(3).strip()
        shown = target.rsplit(".", 1)[-1] if tilde else target.lstrip(".")
        path = resolve(obj, target, index)
        if path is not None and _private(path):
            return f"`{shown}`"  # exists, but not in the reference
        if path is None:
            if "." in target.lstrip(".") and _external(target):
                return f"`{shown}`"  # another package's object: not in this reference
            path = target
        return f"[`{shown}`][{path}]"

    return ROLE.sub(repl, literal_blocks(text))


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg, _index(pkg))

    def _visit(self, obj: griffe.Object, index: dict[str, list[str]]) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:  # roles and ``::``
            obj.docstring.value = rewrite(obj, obj.docstring.value, index)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._visit(member, index)

"""mkdocs hooks: KaTeX served from the site itself, tables generated from the code, and
the rendered results pages in the navigation.

- KaTeX: copied after the build from ``$KATEX_DIR``, else Debian's ``libjs-katex``
  (``/usr/share/javascript/katex``), into ``site/assets/katex``; no CDN. Missing, it is
  a warning, which ``--strict`` turns into a failed build.
- Chip constants: ``<!-- chip-constants -->`` in a page becomes the table of every
  figure of every registered chip spec with its published source.
- CLI reference: click's "no default" sentinel shown as an empty default.
- DPAP options: ``<!-- dpap-options -->`` becomes the table of every ``DPAPConfig``
  field, its value in each preset and its comment, read from ``dpap_config.py``.
- Includes: ``<!-- include docs/FILE -->`` folds a file another part of the project
  writes (``pruning-decisions.md``, ``producers.md``, ``api-example.py``) into a page;
  those files are excluded from the site as pages of their own.
- Results: every ``docs/results/*.md`` page (written by the results renderer, its
  ``index.md`` the overview) is added to the navigation under "Results".
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.spikeship")

ROOT = Path(__file__).resolve().parents[2]
KATEX_DIRS = ("/usr/share/javascript/katex", "/usr/share/nodejs/katex/dist")
CHIP_MARKER = "<!-- chip-constants -->"
INCLUDE = re.compile(r"<!-- include (docs/[\w./-]+) -->")
DPAP_MARKER = "<!-- dpap-options -->"
DPAP_CONFIG = ROOT / "spikeship" / "train" / "pruners" / "dpap_config.py"


def _katex_dir() -> Path | None:
    for d in filter(None, (os.environ.get("KATEX_DIR"), *KATEX_DIRS)):
        p = Path(d)
        if (p / "katex.min.js").is_file() and (p / "contrib").is_dir():
            return p
    return None


def _results_pages(docs_dir: str) -> list[tuple[str, str]]:
    """(title, path relative to docs/) of every rendered results page: in the order the
    results overview (``results/index.md``) links them, then the others by name."""
    folder = Path(docs_dir, "results")
    index = folder / "index.md"
    linked = re.findall(r"\]\(([\w.-]+\.md)\)", index.read_text(encoding="utf-8")) \
        if index.is_file() else []
    pages = sorted(folder.glob("*.md"), key=lambda p: (p.name not in linked,
                                                        linked.index(p.name) if p.name in linked else 0,
                                                        p.name))
    out = []
    for page in pages:
        m = re.search(r"^#\s+(.+)$", page.read_text(encoding="utf-8"), flags=re.M)
        out.append((m.group(1).strip() if m else page.stem, f"results/{page.name}"))
    return out


def _include(m: re.Match[str]) -> str:
    """A file written by another part of the project, folded into this page.

    Markdown: its headings one level deeper (its title becomes a section). Python: a
    code block. Not there (yet): a sentence saying so, so the build stays green.
    """
    path = ROOT / m.group(1)
    if not path.is_file():
        return f"_This section is folded in from `{m.group(1)}`, which is not in this checkout._"
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return f"```python\n{text.rstrip()}\n```"
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        out.append("#" + line if not fence and line.startswith("#") else line)
    return "\n".join(out)


def chip_constants_table() -> str:
    """One row per published figure of every registered chip, with its source."""
    from dataclasses import fields

    from spikeship.targets.registry import all_specs

    rows = ["| chip | figure | value | source |", "|---|---|---|---|"]
    for spec in all_specs().values():
        refs = {s.key: s for s in spec.references}
        groups = [("energy", spec.energy, "pJ")]
        if spec.limits is not None:
            groups.append(("limits", spec.limits, ""))
        for group, obj, unit in groups:
            for f in fields(obj):
                key = obj.sources.get(f.name)
                value = getattr(obj, f.name)
                if key is None or value is None:
                    continue
                src = refs[key]
                where = f", {src.where}" if src.where else ""
                if isinstance(value, float):
                    shown = f"{value:g} {unit}".strip()
                elif isinstance(value, int) and not isinstance(value, bool):
                    shown = f"{value:,}" + (" bits" if f.name.endswith("_bits") else "")
                else:
                    shown = f"`{value}`"
                cite = f"{src.citation}{where}".replace("|", "&#124;").replace("\n", " ")
                rows.append(f"| {spec.title} | `{group}.{f.name}` | {shown} | {cite} |")
        for note in (spec.energy.note, getattr(spec.limits, "note", "")):
            if note:
                rows.append(f"| {spec.title} | note | | {note} |")
    return "\n".join(rows)


def _dpap_fields(source: str) -> tuple[list[tuple[str, Any, str]], dict[str, dict]]:
    """``(name, default, comment)`` of every ``DPAPConfig`` field, read from the source
    (a field's comment runs on over the comment-only lines below it), and the presets."""
    import ast
    import io
    import tokenize

    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    tree = ast.parse(source)
    env: dict[str, Any] = {}
    out: list[tuple[str, Any, str]] = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else getattr(node, "target", None) if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id.isupper() and isinstance(node.value, ast.Dict):
            try:   # the module's option dicts (CHIP, PRESETS, ...), from its own literals
                env[target.id] = eval(compile(ast.Expression(node.value), "dpap_config", "eval"),
                                      {"__builtins__": {}}, env)
            except NameError:
                continue
        if isinstance(node, ast.ClassDef) and node.name == "DPAPConfig":
            for item in node.body:
                if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                    continue
                text = [comments.get(item.lineno, "")]
                n = item.lineno + 1
                while n <= len(lines) and lines[n - 1].strip().startswith("#"):
                    text.append(comments[n])
                    n += 1
                out.append((item.target.id, ast.literal_eval(item.value), " ".join(t for t in text if t)))
    return out, env.get("PRESETS", {})


def dpap_options_table() -> str:
    """Every DPAP option: its value in each preset (``chip`` is the default) and its
    meaning, from ``dpap_config.py`` itself."""
    fields, presets = _dpap_fields(DPAP_CONFIG.read_text(encoding="utf-8"))
    names = [p for p in presets if p]
    head = "| option | " + " | ".join(f"`{p}`" + (" (default)" if presets.get(p) is presets.get("") else "")
                                      for p in names) + " | meaning |"
    rows = [head, "|---|" + "---|" * len(names) + "---|"]
    for name, default, comment in fields:
        if name == "preset":
            continue
        values = []
        for p in names:
            v = presets[p].get(name, default)
            values.append("" if v == "" else f"`{v}`")
        rows.append(f"| `{name}` | " + " | ".join(values) + f" | {comment.replace('|', '&#124;')} |")
    return "\n".join(rows)


# ------------------------------------------------------------------ mkdocs events

def on_config(config, **kwargs):
    pages = _results_pages(config["docs_dir"])
    nav = config.get("nav") or []
    for i, entry in enumerate(nav):
        if isinstance(entry, dict) and entry.get("Results") == "results/index.md" and pages:
            nav[i] = {"Results": [{"Overview": "results/index.md"}]
                      + [{title: path} for title, path in pages if path != "results/index.md"]}
    return config


def on_page_markdown(markdown, page, config, **kwargs):
    markdown = INCLUDE.sub(_include, markdown)
    if CHIP_MARKER in markdown:
        markdown = markdown.replace(CHIP_MARKER, chip_constants_table())
    if DPAP_MARKER in markdown:
        markdown = markdown.replace(DPAP_MARKER, dpap_options_table())
    return markdown


def on_page_content(html, page, **kwargs):
    # click >= 8.2 leaves an option without a default as a sentinel, which mkdocs-click
    # prints by its repr; the CLI has no such value: show it as no default.
    return html.replace("<code>Sentinel.UNSET</code>", "").replace("Sentinel.UNSET", "")


def on_post_build(config, **kwargs):
    src = _katex_dir()
    if src is None:
        log.warning("KaTeX not found (set KATEX_DIR, or `apt-get install libjs-katex`; "
                    "`make browser` does): equations would not render")
        return
    dst = Path(config["site_dir"], "assets", "katex")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=False)

"""The documentation: the strict site build, math rendered in a browser, the README.

- ``mkdocs build --strict`` (a broken link, a page missing from the navigation's files,
  a docstring cross-reference that resolves nowhere, KaTeX missing: each fails it);
- the built home page and a results page opened in headless Chromium: every formula
  typeset by KaTeX, none left as raw TeX (skipped, with the reason, where Chromium is
  not installed);
- the README: at most 200 lines, its Python block is docs/api-example.py's code (which
  tests/test_api.py runs), the headline markers are there,
  and neither it nor the docs or results name a tracker issue or an absolute path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TRACKER = re.compile(r"\bissues?\s*#?\d+", re.I)
# an absolute path of a machine: /work/..., /home/..., /root/..., /tmp/..., C:\...
ABSOLUTE = re.compile(r"(?<![\w.~:/])(/(?:work|home|root|tmp|Users|opt|mnt|srv)/[\w.-]+|[A-Z]:\\\w)")


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def test_strict_build_has_every_page(site):
    for page in ("index.html", "getting-started.html", "pruning.html", "chips-energy.html",
                 "reference/cli.html", "reference/api.html", "reference/modules/train.html",
                 "results/index.html", "assets/katex/katex.min.js"):
        assert (site / page).is_file(), page
    cli = (site / "reference/cli.html").read_text(encoding="utf-8")
    for command in ("train", "export", "simulate", "energy", "compare", "pipeline"):
        assert f"spikeship {command}" in cli, command


def test_every_module_is_in_the_reference():
    """Each public top-level module and subpackage has its ``:::`` entry (the API on the
    Python API page, the CLI on the CLI page), so none escapes the strict reference."""
    text = "\n".join(p.read_text(encoding="utf-8")
                     for p in (ROOT / "docs" / "reference").rglob("*.md"))
    listed = set(re.findall(r"^::: (spikeship(?:\.\w+)?)\b", text, re.M))
    pkg = ROOT / "spikeship"
    names = {p.stem for p in pkg.glob("*.py")} | {p.name for p in pkg.iterdir()
                                                  if (p / "__init__.py").is_file()}
    public = {f"spikeship.{n}" for n in names if not n.startswith("_") and n != "cli"}
    assert public <= listed, sorted(public - listed)


def test_the_site_loads_nothing_from_elsewhere(site):
    """No script, stylesheet or font from another host (KaTeX and fonts are local)."""
    external = re.compile(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//[^"]+"')
    for page in site.rglob("*.html"):
        found = external.findall(page.read_text(encoding="utf-8"))
        assert not found, (page.relative_to(site), found[:2])


def test_sphinx_roles_became_links(site):
    """No ``:class:`...``` is left in the API reference; the roles are now links."""
    html = "".join(p.read_text(encoding="utf-8")
                   for p in (site / "reference").rglob("*.html"))
    prose = re.sub(r"<pre\b.*?</pre>", "", html, flags=re.S)   # code shown as code stays
    left = re.findall(r":(?:class|func|mod|meth|attr|data|exc|obj):`", prose)
    assert not left, left[:5]
    assert html.count("autorefs-internal") > 100


def test_sphinx_roles_resolve_as_sphinx_does(tmp_path):
    """The griffe extension on a tiny package: absolute, relative, scoped, ``~``,
    private and another package's name (code without a link), and a
    name that exists nowhere (left as a reference, so the strict build fails on it)."""
    griffe = pytest.importorskip("griffe")
    sys.path.insert(0, str(ROOT / "docs" / "_tools"))
    try:
        import sphinx_roles
    finally:
        sys.path.pop(0)
    pkg = tmp_path / "docpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Top."""\n')
    (pkg / "sub" / "__init__.py").write_text('"""Sub."""\n')
    (pkg / "sub" / "a.py").write_text(
        '"""A: :class:`Thing`, :mod:`.b`, :func:`~docpkg.sub.b.helper`,\n'
        ':meth:`Thing.go`, :func:`_private`, :class:`importlib.abc.Finder`, :func:`nowhere`.\n'
        'Per sample::\n\n    x = 1\n"""\n'
        "class Thing:\n    def go(self):\n        pass\n"
        "def _private():\n    pass\n")
    (pkg / "sub" / "b.py").write_text('"""B."""\ndef helper():\n    pass\n')
    loaded = griffe.load("docpkg", search_paths=[str(tmp_path)], resolve_aliases=False)
    sphinx_roles.SphinxRoles().on_package(pkg=loaded)
    doc = loaded["sub.a"].docstring.value
    assert "[`Thing`][docpkg.sub.a.Thing]" in doc
    assert "[`b`][docpkg.sub.b]" in doc
    assert "[`helper`][docpkg.sub.b.helper]" in doc
    assert "[`Thing.go`][docpkg.sub.a.Thing.go]" in doc
    assert "`_private`" in doc and "[`_private`]" not in doc
    assert "`importlib.abc.Finder`" in doc and "][importlib" not in doc
    assert "[`nowhere`][nowhere]" in doc
    assert "Per sample:\n\n    x = 1" in doc


def test_chip_constants_come_from_the_specs(site):
    from spikeship.targets.registry import all_specs

    html = (site / "chips-energy.html").read_text(encoding="utf-8")
    for spec in all_specs().values():
        assert spec.title in html, spec.title
        for src in spec.references:
            assert src.citation.split(",")[0].replace("'", "&#39;") in html \
                or src.citation.split(",")[0] in html, src.key


def test_dpap_options_table_lists_every_option(site):
    from dataclasses import fields

    from spikeship.train.pruners.dpap_config import PRESETS, DPAPConfig

    html = (site / "pruning.html").read_text(encoding="utf-8")
    table = html[html.index('id="every-option-per-preset"'):]
    for f in fields(DPAPConfig):
        if f.name != "preset":
            assert f"<code>{f.name}</code>" in table, f.name
    for name in PRESETS:
        assert not name or f"<code>{name}</code>" in table, name


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dom(browser: str, page: Path) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _results_page(site: Path) -> Path:
    """The per-seed pruning results page when rendered, else the results overview."""
    page = site / "results" / "pruning.html"
    return page if page.is_file() else site / "results" / "index.html"


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (make browser installs it)")
@pytest.mark.parametrize("which", ["home", "results", "pruning"])
def test_math_renders_in_chromium(site, which):
    page = {"home": site / "index.html", "pruning": site / "pruning.html",
            "results": _results_page(site)}[which]
    dom = _dom(_chromium(), page)
    blocks = re.findall(r'<(?:span|div) class="arithmatex">(.*?)</(?:span|div)>', dom, re.S)
    raw = [b for b in blocks if "katex" not in b]
    assert not raw, f"math left as TeX on {page.name}: {raw[:2]}"
    assert "$$" not in dom and "katex-error" not in dom
    if which != "results":
        assert dom.count('class="katex"') >= 3, page.name


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "<!-- results:headline:begin -->" in text and "<!-- results:headline:end -->" in text
    for cmd in ("make test", "make demo"):
        assert cmd in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "the README has exactly one Python example"
    return blocks[0]


def _code_lines(text: str) -> list[str]:
    """The statements of a Python snippet: no docstring, comments or blank lines."""
    import ast

    tree = ast.parse(text)
    body = tree.body[1:] if tree.body and isinstance(tree.body[0], ast.Expr) \
        and isinstance(tree.body[0].value, ast.Constant) else tree.body
    return [ast.unparse(node) for node in body]


def test_readme_example_is_the_api_example():
    """The README's Python block is docs/api-example.py's code, statement by statement;
    tests/test_api.py runs that file (so the README's example runs in the suite)."""
    example = ROOT / "docs" / "api-example.py"
    assert "api-example.py" in (ROOT / "tests" / "test_api.py").read_text(encoding="utf-8")
    assert _code_lines(_readme_python()) == _code_lines(example.read_text(encoding="utf-8"))


def _texts() -> list[Path]:
    """README, every docs page and every results file."""
    return [README, *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "results").rglob("*.json"))]


def test_no_tracker_reference_nor_absolute_path():
    bad = []
    for f in _texts():
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if TRACKER.search(line) or ABSOLUTE.search(line):
                bad.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not bad, "\n".join(bad[:20])


def test_the_checks_can_fail():
    assert TRACKER.search("as issue 16's moonshot") and TRACKER.search("see issues #3")
    assert ABSOLUTE.search("--out /work/runs/bp") and ABSOLUTE.search("in /home/me/x")
    assert not ABSOLUTE.search("runs/demo/report.html or https://x.org/work/a")

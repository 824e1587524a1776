"""Text from files (run names, methods, notes) made inert in the Markdown ``compare`` writes.

A run name is whatever its directory is called, so it may hold a ``|`` (an extra table
column), a newline (a new line: a heading, a list, a link definition), HTML (``<script>``)
or link syntax (``[x](javascript:...)``). :func:`md_escape` turns each into text:
control characters become spaces, ``<``, ``>`` and ``&`` HTML entities, and the Markdown
characters that start a link, image, code span or cell (``\\ ` [ ] |``) are escaped with
a backslash (CommonMark 0.31, "Backslash escapes"; GFM tables: ``\\|`` in a cell).
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPECIAL = re.compile(r"([\\`\[\]|])")


def md_escape(text: object) -> str:
    """``text`` as one line of literal Markdown text (see the module docstring)."""
    flat = _CONTROL.sub(" ", str(text))
    return _SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def md_code(text: object) -> str:
    """``text`` as an inline code span: one line, no backtick to close it early (a
    backtick becomes ``'``); inside a code span HTML and link syntax are not parsed."""
    return "`" + _CONTROL.sub(" ", str(text)).replace("`", "'") + "`"

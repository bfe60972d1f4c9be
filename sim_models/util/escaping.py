"""Escaping of user-given strings (run names, paths, labels, config values) for the formats reports are written in.

One rule per format, used by every report writer:

* markdown text (a paragraph, a heading, a table cell, a link's text): ``markdown_text``
* markdown code span (a name shown as code, outside tables): ``markdown_code``
* markdown link / image destination: ``markdown_link_destination`` (a relative path, percent-encoded)
* HTML: ``html.escape`` for text and attributes; ``url_path`` for the path inside a ``src`` or ``href``
* CSV: the ``csv`` module; JSON: ``json.dumps``

Paths in links are percent-encoded segment by segment (``urllib.parse.quote``, UTF-8, ``/`` kept), so a
folder named ``run one #2 (50%)`` or ``ü音`` is still one valid link that leads to the file.
"""
from __future__ import annotations

import re
from pathlib import PurePath
from urllib.parse import quote

__all__ = ["markdown_text", "markdown_code", "markdown_link_destination", "url_path"]

# CommonMark inline markup (emphasis, code, links, autolinks / raw HTML, entities, escapes), GFM's table cells and
# strikethrough, and ATX headings: each character is shown literally when backslash-escaped.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>|&#~])")
# What could start a block when the text begins a line: a bullet, a thematic break or setext underline, an ordered
# list item ("1. " / "1) ").
_LEADING_BLOCK_MARKER = re.compile(r"^(\s*)([-+=]|\d{1,9}(?=[.)](?:\s|$)))")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n]")


def _one_line(s) -> str:
    """``s`` as a string on one line (a line break would end a table row or a paragraph)."""
    return _LINE_BREAKS.sub(" ", str(s))


def markdown_text(s) -> str:
    """``s`` as literal text anywhere inline in markdown, table cells included: every character CommonMark or a
    GFM table could read as markup backslash-escaped, a leading list / heading marker defused, line breaks
    turned into spaces. The rendered text is ``s`` itself."""
    out = _MARKDOWN_SPECIALS.sub(r"\\\1", _one_line(s))
    m = _LEADING_BLOCK_MARKER.match(out)
    if m and m.group(2)[0].isdigit():  # "1." / "1)" would start an ordered list: escape the delimiter
        end = m.end()
        return out[:end] + "\\" + out[end:]
    if m:
        return out[:m.start(2)] + "\\" + out[m.start(2):]
    return out


def markdown_code(s) -> str:
    """``s`` as an inline code span (CommonMark): the fence is one backtick longer than the longest run of
    backticks in ``s``, padded with a space where ``s`` starts or ends with a backtick or a space. Not for table
    cells (a ``|`` there ends the cell even inside code: use ``markdown_text``)."""
    s = _one_line(s)
    if not s:
        return ""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[0] in "` " or s[-1] in "` " else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def url_path(path) -> str:
    """A relative file path as a URL path (an HTML ``src`` / ``href``, a markdown link destination): every segment
    percent-encoded as UTF-8 (``urllib.parse.quote``), ``/`` kept, so spaces, ``#``, ``%``, ``?``, parentheses
    and any unicode stay part of the file name."""
    return quote(PurePath(path).as_posix())


def markdown_link_destination(path) -> str:
    """``path`` (relative to the markdown file's folder) as the destination of a link or image: ``url_path``'s
    encoding leaves no space, parenthesis or ``<`` that would end or break the destination."""
    return url_path(path)

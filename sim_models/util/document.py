"""A report page as data, rendered once per format: every page of sim_models (a run's report, the comparison,
`sim reproduce`'s report, a probe table, a β sweep) is a list of these blocks, written to markdown and to HTML by
the two functions here and nowhere else.

Blocks (what a page holds):

    Title(text)                       the page title (# / <h1>)
    Heading(text, anchor=None, level=2)
                                      a section title; ``anchor``: an id to link to (HTML; the page's navigation)
    Paragraph(text, note=False)       prose; ``note``: a remark in smaller print (HTML)
    Table(header, rows)               cells: text or spans (below), or an Image
    Image(path, label)                a figure (``label``: its alternative text)
    Players(items)                    Audio(path, label) items: <audio> players in HTML, links in markdown
    Bullets(items)                    a list, one text per item
    Gallery(names, rows)              the same figures of several runs side by side: rows are (label, images)

Text (``text``, a cell, an item) is a str or a tuple of str and spans; every str is escaped for the format, so
names, paths and words from the data are shown literally (sim_models/util/escaping.py):

    Code(text)   a name or path shown as code       Bold(text)   emphasis
    Link(path, label)  a link to a file             Status(text) a verdict ("reproduced", ...), styled by class

Paths (Image, Audio, Link) are file paths as the writer sees them (relative to the working directory, or
absolute); the renderer makes them relative to ``base``, the folder the page is written to, and encodes them
(percent-encoded segments): a page works from ``file://`` wherever its folders sit together. ``rebase`` prefixes
the paths of blocks made relative to a run folder.
"""
from __future__ import annotations

import dataclasses
import html
import os
from dataclasses import dataclass
from pathlib import Path

from sim_models.util.escaping import markdown_code, markdown_link_destination, markdown_text, url_path

__all__ = ["Title", "Heading", "Paragraph", "Table", "Image", "Audio", "Players", "Bullets", "Gallery", "Code",
           "Bold", "Link", "Status", "to_markdown", "to_html", "rebase", "plain_text"]


@dataclass(frozen=True)
class _Text:
    text: object


class Code(_Text):
    """A name or path shown as code."""


class Bold(_Text):
    """Emphasis."""


class Status(_Text):
    """A verdict ("reproduced", "not reproduced", "inconclusive"); HTML styles it by its class."""


class Title(_Text):
    """The page title."""


@dataclass(frozen=True)
class Heading:
    """A section (level 2) or sub-section (level 3) title; ``anchor``: its id in the HTML page and navigation."""
    text: object
    anchor: str | None = None
    level: int = 2

    def __post_init__(self):
        if self.level not in (2, 3):
            raise ValueError(f"Heading level must be 2 or 3 (1 is the Title), got {self.level}")


@dataclass(frozen=True)
class Paragraph:
    text: object
    note: bool = False


@dataclass(frozen=True)
class Table:
    """A header and rows of cells (text, spans or an Image); every row as long as the header."""
    header: tuple
    rows: tuple

    def __post_init__(self):
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.header)]
        if bad:
            raise ValueError(f"Table rows must have {len(self.header)} cells like the header; rows {bad} do not")


@dataclass(frozen=True)
class _File:
    path: object
    label: object


class Image(_File):
    """A figure; ``label`` is its alternative text."""


class Audio(_File):
    """A sound, played in HTML, linked in markdown."""


class Link(_File):
    """A link to the file ``path``, showing the text ``label``."""


@dataclass(frozen=True)
class _Items:
    items: tuple


class Players(_Items):
    """Audio items, one player each."""


class Bullets(_Items):
    """A list: one text per item."""


@dataclass(frozen=True)
class Gallery:
    """The same figures of several runs: ``names`` one per run, ``rows`` ((label, (Image, ...)), ...) with one
    image per name."""
    names: tuple
    rows: tuple

    def __post_init__(self):
        bad = [label for label, images in self.rows if len(images) != len(self.names)]
        if bad:
            raise ValueError(f"Gallery rows must have one image per name ({len(self.names)}); {bad} do not")


_BLOCKS = (Title, Heading, Paragraph, Table, Image, Players, Bullets, Gallery)


def rebase(blocks: list, root) -> list:
    """``blocks`` with every Image / Audio / Link path prefixed by ``root`` (blocks whose paths are relative to
    a run folder, made usable on a page elsewhere)."""
    def walk(x):
        if isinstance(x, (Image, Audio, Link)):
            return dataclasses.replace(x, path=Path(root) / x.path)
        if isinstance(x, tuple):
            return tuple(walk(v) for v in x)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return dataclasses.replace(x, **{f.name: walk(getattr(x, f.name)) for f in dataclasses.fields(x)})
        return x
    return [walk(b) for b in blocks]


def plain_text(text) -> str:
    """The characters of a text (a str or a tuple of str and spans), no markup: for a terminal or a title."""
    if isinstance(text, tuple):
        return "".join(plain_text(t) for t in text)
    if isinstance(text, (Code, Bold, Status)):
        return plain_text(text.text)
    if isinstance(text, Link):
        return plain_text(text.label)
    return str(text)


def _relative(path, base) -> str:
    return os.path.relpath(path, base)


# --- markdown -------------------------------------------------------------------------------------------------

def _md_inline(text, base, in_table: bool = False) -> str:
    if isinstance(text, tuple):
        return "".join(_md_inline(t, base, in_table) for t in text)
    if isinstance(text, Code):  # a `|` ends a table cell even inside a code span: plain escaped text there
        return markdown_text(text.text) if in_table else markdown_code(text.text)
    if isinstance(text, Bold):
        return f"**{_md_inline(text.text, base, in_table)}**"
    if isinstance(text, Status):
        return markdown_text(text.text)
    if isinstance(text, Link):
        return f"[{_md_inline(text.label, base, in_table)}]({markdown_link_destination(_relative(text.path, base))})"
    if isinstance(text, Image):
        return f"![{markdown_text(text.label)}]({markdown_link_destination(_relative(text.path, base))})"
    return markdown_text(text)


def _md_row(cells, base) -> str:
    return "| " + " | ".join(_md_inline(c, base, in_table=True) for c in cells) + " |"


def _md_block(b, base) -> list:
    if isinstance(b, Title):
        return [f"# {_md_inline(b.text, base)}"]
    if isinstance(b, Heading):
        return [f"{'#' * b.level} {_md_inline(b.text, base)}"]
    if isinstance(b, Paragraph):
        return [_md_inline(b.text, base)]
    if isinstance(b, Table):
        return [_md_row(b.header, base), "|" + "---|" * len(b.header)] + [_md_row(r, base) for r in b.rows]
    if isinstance(b, Image):
        return [_md_inline(b, base)]
    if isinstance(b, Players):
        return [" · ".join(f"{_md_inline(a.label, base)}: {_md_inline(Link(a.path, 'audio'), base)}" for a in b.items)]
    if isinstance(b, Bullets):
        return [f"- {_md_inline(t, base)}" for t in b.items]
    if isinstance(b, Gallery):
        return ([_md_row(("figure",) + tuple(b.names), base), "|" + "---|" * (len(b.names) + 1)]
                + [_md_row((label,) + tuple(images), base) for label, images in b.rows])
    raise TypeError(f"not a page block: {b!r}")


def to_markdown(blocks: list, base=".") -> str:
    """The markdown text of ``blocks`` (blank line between blocks), links relative to folder ``base``.
    TypeError for anything that is not a block."""
    out = []
    for b in blocks:
        out += _md_block(b, base) + [""]
    return "\n".join(out)


# --- HTML -----------------------------------------------------------------------------------------------------

_e = html.escape


def _html_inline(text, base) -> str:
    if isinstance(text, tuple):
        return "".join(_html_inline(t, base) for t in text)
    if isinstance(text, Code):
        return f"<code>{_e(str(text.text))}</code>"
    if isinstance(text, Bold):
        return f"<b>{_html_inline(text.text, base)}</b>"
    if isinstance(text, Status):
        return f'<span class="{_e(str(text.text).replace(" ", "-"))}">{_e(str(text.text))}</span>'
    if isinstance(text, Link):
        return f'<a href="{_e(url_path(_relative(text.path, base)))}">{_html_inline(text.label, base)}</a>'
    if isinstance(text, Image):
        return f'<img src="{_e(url_path(_relative(text.path, base)))}" alt="{_e(str(text.label))}">'
    return _e(str(text))


def _html_row(tag: str, cells, base) -> str:
    return "<tr>" + "".join(f"<{tag}{' class=l' if i == 0 else ''}>{_html_inline(c, base)}</{tag}>"
                            for i, c in enumerate(cells)) + "</tr>"


def _html_block(b, base) -> str:
    if isinstance(b, Title):
        return f"<h1>{_html_inline(b.text, base)}</h1>"
    if isinstance(b, Heading):
        anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{anchor}>{_html_inline(b.text, base)}</h{b.level}>"
    if isinstance(b, Paragraph):
        return f"<p{' class=note' if b.note else ''}>{_html_inline(b.text, base)}</p>"
    if isinstance(b, Table):
        return "\n".join(["<table>" + _html_row("th", b.header, base)]
                         + [_html_row("td", r, base) for r in b.rows] + ["</table>"])
    if isinstance(b, Image):
        return _html_inline(b, base)
    if isinstance(b, Players):
        return '<div class="players">' + "".join(
            f'<div class="player"><span>{_html_inline(a.label, base)}</span><audio controls preload="metadata" '
            f'src="{_e(url_path(_relative(a.path, base)))}"></audio></div>' for a in b.items) + "</div>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_html_inline(t, base)}</li>" for t in b.items) + "</ul>"
    if isinstance(b, Gallery):
        return "\n".join(
            f"<h3>{_html_inline(label, base)}</h3><div class='side'>" + "".join(
                f"<figure>{_html_inline(img, base)}<figcaption>{_html_inline(n, base)}</figcaption></figure>"
                for n, img in zip(b.names, images)) + "</div>" for label, images in b.rows)
    raise TypeError(f"not a page block: {b!r}")


def to_html(blocks: list, base=".") -> str:
    """The HTML fragments of ``blocks`` (one per line), every text escaped, paths relative to folder ``base``.
    TypeError for anything that is not a block."""
    return "\n".join(_html_block(b, base) for b in blocks)

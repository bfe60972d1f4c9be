"""Section blocks (sim_models/analysis/sections.py) rendered to markdown and to HTML: one renderer per format.

``link(path)`` turns a path relative to the run folder into the destination the page uses (relative to the
page's folder, encoded for the format); the writers pass it in.
"""
from __future__ import annotations

import html

from sim_models.analysis.sections import Heading, Image, Paragraph, Table
from sim_models.util.escaping import markdown_text

__all__ = ["markdown_lines", "html_lines", "run_names"]

_e = html.escape


def markdown_lines(blocks: list, link) -> list:
    """Markdown lines of ``blocks``: headings at level 2, table cells escaped, images linked through ``link``."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out += [f"## {b.text}", ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out += ["| " + " | ".join(markdown_text(h) for h in b.header) + " |", "|" + "---|" * len(b.header)]
            out += ["| " + " | ".join(markdown_text(c) for c in row) + " |" for row in b.rows] + [""]
        elif isinstance(b, Image):
            out += [f"![{markdown_text(b.alt)}]({link(b.path)})", ""]
        else:
            raise TypeError(f"not a section block: {b!r}")
    return out


def html_lines(blocks: list, link) -> list:
    """HTML fragments of ``blocks``: <h2> (with its anchor as id), <p>, <table>, <img>; every text escaped."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f'<h2 id="{_e(b.anchor)}">{_e(b.text)}</h2>' if b.anchor else f"<h2>{_e(b.text)}</h2>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_e(b.text)}</p>")
        elif isinstance(b, Table):
            cells = lambda tag, row: "".join(  # noqa: E731
                f"<{tag}{' class=l' if i == 0 else ''}>{_e(str(v))}</{tag}>" for i, v in enumerate(row))
            out.append("\n".join(["<table><tr>" + cells("th", b.header) + "</tr>"]
                                 + ["<tr>" + cells("td", r) + "</tr>" for r in b.rows] + ["</table>"]))
        elif isinstance(b, Image):
            out.append(f'<img src="{_e(link(b.path))}" alt="{_e(b.alt)}">')
        else:
            raise TypeError(f"not a section block: {b!r}")
    return out


def run_names(summaries: list) -> list:
    """One column name per run of a side-by-side section: the run folders' names, or their paths when two share
    a name."""
    names = [s["name"] for s in summaries]
    return names if len(set(names)) == len(names) else [s["run"] for s in summaries]

"""The page blocks and their two renderers: one list of blocks, the same content in markdown and HTML, every string
from the data escaped for its format, paths relative to the page's folder."""
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from sim_models.util.document import (Audio, Bold, Bullets, Code, Gallery, Heading, Image, Link, Paragraph, Players,
                                      Status, Table, Title, plain_text, rebase, to_html, to_markdown)

HOSTILE = "run <b>|one</b> #2 *x* `y` ü"


def _page(root: Path) -> list:
    run = root / "runs" / HOSTILE
    return [Title(("Analysis of ", Code(HOSTILE))),
            Heading("Decoders", anchor="decoders"),
            Paragraph(("loss ", Code("mel"), ", ", Bold("β = 0"), ": ", HOSTILE)),
            Table(("module", "verdict"), ((HOSTILE, Status("not reproduced")),)),
            Image(run / "fig ü.png", HOSTILE),
            Players((Audio(run / "a #1.wav", "original"), Audio(run / "b.wav", "module 1"))),
            Bullets((Link(run / "report.html", HOSTILE),)),
            Gallery(("a", "b"), (("t-SNE", (Image(run / "t.png", "a"), Image(run / "u.png", "b"))),))]


def test_markdown_shows_data_strings_literally_and_links_relative_to_the_page(tmp_path):
    md = to_markdown(_page(tmp_path), tmp_path)
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    texts = ["".join(c.content for c in t.children if c.type in ("text", "code_inline")) for t in tokens
             if t.type == "inline"]
    assert f"Analysis of {HOSTILE}" in texts and HOSTILE in texts  # the title and the table cell, whole
    assert not any(c.type == "html_inline" for t in tokens if t.type == "inline" for c in t.children)
    links = [c.attrGet("src") or c.attrGet("href") for t in tokens if t.type == "inline" for c in t.children
             if c.type in ("image", "link_open")]
    assert "runs/run%20%3Cb%3E%7Cone%3C/b%3E%20%232%20%2Ax%2A%20%60y%60%20%C3%BC/fig%20%C3%BC.png" in links
    assert len(links) == 1 + 2 + 1 + 2  # image, two sounds, the report link, two gallery images
    assert "original: [audio](" in md and "**β = 0**" in md


def test_html_escapes_and_marks_up(tmp_path):
    page = to_html(_page(tmp_path), tmp_path)
    assert "<b>|one</b>" not in page and "&lt;b&gt;|one&lt;/b&gt;" in page
    assert '<h2 id="decoders">Decoders</h2>' in page and "<code>mel</code>" in page and "<b>β = 0</b>" in page
    assert '<span class="not-reproduced">not reproduced</span>' in page
    assert page.count("<audio controls") == 2 and page.count("<figure>") == 2
    assert 'src="runs/run%20%3Cb%3E%7Cone%3C/b%3E%20%232%20%2Ax%2A%20%60y%60%20%C3%BC/a%20%231.wav"' in page


def test_rebase_prefixes_every_path_and_nothing_else():
    blocks = [Paragraph(("see ", Link("r.html", "it"))), Image("f.png", "f"), Players((Audio("a.wav", "a"),)),
              Table(("x",), ((Image("g.png", "g"),),))]
    out = rebase(blocks, "RUN")
    assert out[0].text[1].path == Path("RUN/r.html") and out[1].path == Path("RUN/f.png")
    assert out[2].items[0].path == Path("RUN/a.wav") and out[3].rows[0][0].path == Path("RUN/g.png")
    assert out[0].text[0] == "see " and blocks[1].path == "f.png"  # the input is left as it was


def test_bad_blocks_are_refused():
    with pytest.raises(ValueError, match="Table rows must have 2 cells"):
        Table(("a", "b"), (("1",),))
    with pytest.raises(ValueError, match="one image per name"):
        Gallery(("a", "b"), (("t", (Image("x", "x"),)),))
    with pytest.raises(ValueError, match="level must be 2 or 3"):
        Heading("x", level=1)
    for render in (to_markdown, to_html):
        with pytest.raises(TypeError, match="not a page block"):
            render(["## a heading as a string"])


def test_plain_text():
    assert plain_text(("a ", Code("b"), Bold(("c", Status("d"))), Link("p", "e"))) == "a bcde"

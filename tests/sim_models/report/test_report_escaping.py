"""Reports of runs with hostile names: every link leads to its file and every name is shown as text.

Run folders, the data folder and the output folder are named with a space, ``#``, ``%41``, ``|``, ``<script>``,
``*``, brackets, backticks, an entity and unicode. Two tiny runs (test_analysis_run.py's toy data and config,
seconds to train) go through `sim report` alone and side by side (with a stand-alone comparison), then through
`sim reproduce`'s report writer with stored step results (test_reproduce.py's fakes; nothing is trained for it).

Markdown is parsed with markdown-it-py (CommonMark + GFM tables): every image ``src`` and link ``href``,
percent-decoded and taken relative to the page's folder, is an existing file; no raw HTML gets through; the
names appear whole in the rendered text (one table cell, one heading). HTML pages are parsed with html.parser:
no injected element, every ``src`` / ``href`` an existing file, the names in the text.
"""
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

from sim_models.data.datasets import SyllableDataset
from sim_models.util.escaping import markdown_code, markdown_link_destination, markdown_text, url_path
from sim_models.training.trainer import Trainer

from tests.sim_models.analysis.test_analysis_run import LENGTH, SR, _report_args, make_toy_syllable_data, tiny_config
from tests.sim_models.experiments.test_reproduce import _analysis, _probe

NAME_A = "run one #%41 ü音"
NAME_B = "a|b <script>*x*_[y](z) `c` &amp; # ~"
HOSTILE = ["a b", "#", "%41", "|", "<script>", "*", "_", "[", "]", "`", "\\", "&amp;", "ü音", "1. x", "- y", "(", ")"]
INJECTED_TAGS = {"script", "i"}  # the elements the names below could smuggle in (the pages use <b> themselves)
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # 音 in figure titles


# ---- markdown ----------------------------------------------------------------------------------------------------

def _md():
    return MarkdownIt("commonmark").enable("table")


def _inline_text(token) -> str:
    """The text a reader sees of an inline token (escapes and entities resolved, code spans as their content)."""
    out = []
    for c in token.children or []:
        if c.type in ("text", "text_special", "code_inline"):
            out.append(c.content)
        elif c.type in ("softbreak", "hardbreak"):
            out.append("\n")
    return "".join(out)


def _walk(tokens):
    for t in tokens:
        yield t
        yield from _walk(t.children or [])


def _cells_in_source(line: str) -> int:
    """Cells of a table row as written: the pipes that are not backslash-escaped, less the outer two."""
    return sum(tok == "|" for tok in re.findall(r"\\.|\|", line)) - 1


def _check_table_widths(path: Path) -> None:
    """Every row of every table in ``path`` has as many cells as its header (the parser would hide a row that
    a name split: it drops cells beyond the header's)."""
    width = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.startswith("|"):
            width = None
            continue
        if width is None:
            width = _cells_in_source(line)
        assert _cells_in_source(line) == width, f"{path}:{n}: {_cells_in_source(line)} cells, the header has {width}"


def check_markdown(path: Path) -> dict:
    """Parse ``path``: every image / link target exists; no raw HTML; returns the texts of headings and cells."""
    tokens = _md().parse(path.read_text())
    targets, html, headings, cells = [], [], [], []
    in_heading = in_cell = False
    for t in tokens:
        if t.type == "html_block":
            html.append(t.content)
        elif t.type == "heading_open":
            in_heading = True
        elif t.type == "heading_close":
            in_heading = False
        elif t.type in ("th_open", "td_open"):
            in_cell = True
        elif t.type in ("th_close", "td_close"):
            in_cell = False
        elif t.type == "inline":
            text = _inline_text(t)
            if in_heading:
                headings.append(text)
            if in_cell:
                cells.append(text)
            for c in _walk(t.children or []):
                if c.type == "html_inline":
                    html.append(c.content)
                elif c.type == "image":
                    targets.append(c.attrs["src"])
                elif c.type == "link_open":
                    targets.append(c.attrs["href"])
    broken = [t for t in targets if urlsplit(t).scheme or not (path.parent / unquote(t)).resolve().is_file()]
    assert (broken, html) == ([], []), f"{path}: links that lead to no file: {broken}; raw HTML: {html}"
    _check_table_widths(path)
    return {"targets": targets, "headings": headings, "cells": cells}


# ---- HTML --------------------------------------------------------------------------------------------------------

class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.targets, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("#"):
                self.targets.append(v)

    def handle_data(self, data):
        self.text.append(data)


def check_html(path: Path) -> dict:
    """Parse ``path``: no element a name could inject; every src / href an existing file."""
    p = _Page()
    p.feed(path.read_text())
    injected = INJECTED_TAGS & set(p.tags)
    assert not injected, f"{path}: injected elements {injected}"
    for target in p.targets:
        assert (path.parent / unquote(target)).resolve().is_file(), f"{path}: {target} leads to no file"
    return {"targets": p.targets, "text": "".join(p.text)}


# ---- the escaping functions --------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", HOSTILE + [NAME_A, NAME_B, "line\nbreak"])
def test_markdown_text_renders_as_itself_in_a_paragraph_and_a_table_cell(s):
    shown = s.replace("\n", " ")
    para = _md().parse(markdown_text(s))
    assert [_inline_text(t) for t in para if t.type == "inline"] == [shown]
    assert not any(c.type == "html_inline" for t in para for c in _walk(t.children or []))
    table = _md().parse(f"| h | k |\n|---|---|\n| {markdown_text(s)} | after |\n")
    cells = [_inline_text(t) for t in table if t.type == "inline"]
    assert cells == ["h", "k", shown, "after"]


@pytest.mark.parametrize("s", HOSTILE + [NAME_A, NAME_B, "``x`", " lead", "`"])
def test_markdown_code_is_one_code_span_of_the_text(s):
    spans = [c for t in _md().parse(f"name {markdown_code(s)} end") for c in _walk(t.children or [])
             if c.type == "code_inline"]
    assert [c.content for c in spans] == [s]


def test_link_destinations_lead_to_the_file(tmp_path):
    folder = tmp_path / NAME_A / "sub (1) #%41"
    folder.mkdir(parents=True)
    (folder / "fig ü.png").write_bytes(b"png")
    page = tmp_path / "page.md"
    rel = Path(NAME_A) / "sub (1) #%41" / "fig ü.png"
    page.write_text(f"![{markdown_text(NAME_B)}]({markdown_link_destination(rel)})\n"
                    f"[{markdown_text(NAME_A)}]({markdown_link_destination(rel)})\n")
    found = check_markdown(page)
    assert len(found["targets"]) == 2 and url_path(rel) == found["targets"][0]


def test_probe_table_escapes_the_config_name():
    from sim_models.evaluation.evaluate import markdown_table
    result = {"config": NAME_B, "steps": 4, "n_train_syllables": 9, "n_test_syllables": 3, "seeds": 2,
              "protocol": {"name": "paper", "epochs": 5},
              "modules": [{"module": "module 1 (conv)", "vowel": 0.5, "vowel_std": 0.1, "syllable": 0.2,
                           "syllable_std": None, "random_init_vowel": None, "random_init_syllable": None}]}
    tokens = _md().parse(markdown_table(result))
    texts = [_inline_text(t) for t in tokens if t.type == "inline"]
    assert NAME_B in texts[0] and "module 1 (conv)" in texts
    assert not any(c.type == "html_inline" for t in tokens for c in _walk(t.children or []))


# ---- `sim report` and `sim reproduce`'s report on runs with hostile names -----------------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Two tiny trained runs in OUT/runs/<hostile name>, OUT itself and the data folder hostile too; `sim report`
    on the second alone (its pages kept as text), then on both with a comparison file."""
    root = tmp_path_factory.mktemp("escaping")
    out = root / "repro out #%41 <i>ü"
    data = make_toy_syllable_data(root / "data <b>|#%41 ü")
    runs = []
    for name, cfg in ((NAME_A, tiny_config()), (NAME_B, tiny_config(beta=0.0, probabilistic=False))):
        run = out / "runs" / name
        Trainer(cfg, SyllableDataset(data, "train", SR, LENGTH), run, progress=False, tensorboard=False).fit()
        runs.append(run)
    args = _report_args(runs[1:], data)  # the run whose name holds markup
    assert args.func(args) == 0
    single = {suffix: (runs[1] / f"report{suffix}").read_text() for suffix in (".md", ".html")}
    compare = root / "cmp *dir* #1" / "compare.md"
    args = _report_args(runs, data, out=compare)
    assert args.func(args) == 0
    return {"root": root, "out": out, "data": data, "runs": runs, "single": single, "compare": compare}


def _copy_page(text: str, path: Path) -> Path:
    """A stored page's text written back beside the files it links to (the same folder)."""
    path.write_text(text)
    return path


def test_single_run_report(hostile):
    run = hostile["runs"][1]
    md = check_markdown(_copy_page(hostile["single"][".md"], run / "single-report.md"))
    assert len(md["targets"]) >= 12
    assert f"Analysis of {NAME_B}" in md["headings"]
    page = check_html(_copy_page(hostile["single"][".html"], run / "single-report.html"))
    assert len(page["targets"]) >= 12 and NAME_B in page["text"]


def test_side_by_side_reports_and_comparison(hostile):
    pages = [run / "report.md" for run in hostile["runs"]] + [hostile["compare"]]
    for path in pages:
        md = check_markdown(path)
        # both runs' figures are linked from every page (the figure table has one image per run)
        linked = {(path.parent / unquote(t)).resolve() for t in md["targets"]}
        for run in hostile["runs"]:
            assert any(run.resolve() in p.parents for p in linked), (path, run)
        assert f"Side by side: {NAME_A}, {NAME_B}" in md["headings"]
        assert f"{NAME_B}: module 1 (conv)" in md["cells"] and NAME_B in md["cells"]  # whole, in one cell each
    for path in [run / "report.html" for run in hostile["runs"]] + [hostile["compare"].with_suffix(".html")]:
        page = check_html(path)
        assert NAME_A in page["text"] and NAME_B in page["text"]


def test_reproduce_report(hostile):
    from sim_models.analysis.verdicts import Verdict, verdicts_to_json
    from sim_models.experiments.reproduce.budgets import get_budget
    from sim_models.report.reproduce import write_report

    out, (run_a, run_b) = hostile["out"], hostile["runs"]
    (out / "beta_search").mkdir(exist_ok=True)
    (out / "beta_search" / "sweep.png").write_bytes(b"png")
    budget = get_budget("tiny").with_(name=NAME_B)
    beta = {"beta": 0.0, "note": NAME_B, "table": "| β |\n|---|\n| 0 |", "plot": "beta_search/sweep.png"}
    runs = {("SIM", 0): run_a, ("GIM", 0): run_b}
    probes = {("SIM", 0, "paper"): _probe(0.9, 0.4, 0.3, 0.1), ("GIM", 0, "paper"): _probe(0.95, 0.6, 0.3, 0.1)}
    analyses = {(m, 0): dict(_analysis(0.3, 0.5), analysis=str(run / "report" / "analysis.json"))
                for m, run in (("SIM", run_a), ("GIM", run_b))}
    verdict = Verdict(claim=NAME_B, status="inconclusive", measured=NAME_A, paper="1 %", rule="r", reason=NAME_B)
    ver = {"protocol": "paper", "verdicts": json.loads(verdicts_to_json([verdict])), "other_protocols": {},
           "other_representations": {}}
    data_dir = hostile["root"] / "no data here <script> #%41"
    written = write_report(out, budget, 1, beta, runs, probes, analyses, ver, {"train_SIM_s0": 3.0}, data_dir)

    md = check_markdown(Path(written["md"]))
    assert "beta_search/sweep.png" in md["targets"]
    assert {unquote(t) for t in md["targets"]} >= {f"runs/{NAME_A}/report.html", f"runs/{NAME_B}/report.html"}
    assert f"sim reproduce: budget {NAME_B}" in md["headings"] and NAME_B in md["cells"]
    text = "\n".join(_inline_text(t) for t in _md().parse(Path(written["md"]).read_text()) if t.type == "inline")
    assert f"Data: {data_dir}." in text and f"({NAME_B})" in text
    page = check_html(Path(written["html"]))
    assert f"Data: {data_dir}." in page["text"] and NAME_A in page["text"] and NAME_B in page["text"]
    assert any(unquote(t) == f"runs/{NAME_A}/report.html" for t in page["targets"])
    for run in (run_a, run_b):  # the runs' own pages, rewritten with the verdicts
        check_html(run / "report.html")

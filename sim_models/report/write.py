"""Writes the reports of `sim report`: RUN_DIR/report.md and RUN_DIR/report.html for every analysed run, and a
stand-alone comparison, each page rendered from one list of blocks (sim_models/util/document.py) in both formats.

Links are relative to the page's folder, so the pages (and the comparison, which points into the other runs'
report/ folders) work wherever the run folders sit together.
"""
from __future__ import annotations

from pathlib import Path

from sim_models.analysis.verdicts import verdict_blocks
from sim_models.report.comparison import comparison_blocks
from sim_models.report.html import html_page
from sim_models.report.run_page import run_blocks
from sim_models.util.atomic_write import atomic_write_text
from sim_models.util.document import Title, to_markdown

__all__ = ["write_page", "write_reports"]


def write_page(stem, title: str, blocks: list) -> list:
    """``stem``.md and ``stem``.html (atomically; the folder is made), links relative to the stem's folder.
    Returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, page = stem.parent / (stem.name + ".md"), stem.parent / (stem.name + ".html")
    atomic_write_text(md, to_markdown(blocks, stem.parent))
    atomic_write_text(page, html_page(title, blocks, stem.parent))
    return [md, page]


def write_reports(summaries: list, compare_out=None, verdicts=None) -> list:
    """RUN_DIR/report.md and .html for every summary (``analyse_run``'s), each with the side-by-side section when
    there are several; ``verdicts`` (verdicts.Verdict list) adds a *Verdicts* section after each page's title and
    description; ``compare_out`` (a path; its suffix is replaced) adds a stand-alone comparison page in both
    formats. Returns the written paths."""
    vblocks = verdict_blocks(verdicts) if verdicts else []
    side = comparison_blocks(summaries) if len(summaries) > 1 else []
    written = []
    for s in summaries:
        blocks = run_blocks(s)
        blocks = blocks[:2] + vblocks + blocks[2:] + side  # after the title and the run's description
        written += write_page(Path(s["run"]) / "report", f"sim report: {s['name']}", blocks)
    if compare_out is not None:
        written += write_page(Path(compare_out).with_suffix(""), "sim report: comparison",
                              [Title("Comparison")] + vblocks + comparison_blocks(summaries))
    return written

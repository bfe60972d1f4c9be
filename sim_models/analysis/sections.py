"""A report section as data: what an analysis wants shown, rendered once per format in sim_models/report/.

    Heading(text, anchor=None)        a section title (``anchor``: an id to link to, HTML)
    Paragraph(text)                   our own prose with numbers (not escaped: no user strings in it)
    Table(header, rows)               cells are escaped for the format (names come from the data)
    Image(path, alt)                  a figure; ``path`` is relative to the run folder

A registered analysis (sim_models/analysis/registry.py) returns a list of these from its ``section``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Heading", "Paragraph", "Table", "Image"]


@dataclass(frozen=True)
class Heading:
    text: str
    anchor: str | None = None


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple
    rows: tuple


@dataclass(frozen=True)
class Image:
    path: str
    alt: str

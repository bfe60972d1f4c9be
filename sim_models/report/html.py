"""The HTML page around a report's blocks: a page you can read *and listen to*.

Every decoded sound of a report has an ``<audio controls>`` player (sim_models/report/run_page.py), figures and
sounds are files beside the page, linked with relative paths, so the page works from ``file://`` wherever the run
folders sit together. Nothing is fetched from the network: no scripts, fonts or style sheets from elsewhere. The
navigation lists the page's anchored sections.
"""
from __future__ import annotations

import html

from sim_models.util.document import Heading, plain_text, to_html

__all__ = ["page", "html_page"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;
     color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}
audio{height:2em;width:15em;vertical-align:middle}
.players{display:flex;flex-wrap:wrap;gap:.4em 1.2em;margin:.3em 0 1em 0}
.player{display:flex;flex-direction:column;font-size:.8em}
.reproduced{color:#0a6d1f;font-weight:bold}.not-reproduced{color:#b00020;font-weight:bold}
.inconclusive{color:#8a6d00;font-weight:bold}
.note{color:#555;font-size:.9em}nav a{margin-right:1em}
.side{display:flex;gap:1em;flex-wrap:wrap}.side figure{margin:0;flex:1 1 300px}
"""

_e = html.escape


def page(title: str, body: list) -> str:
    """A complete HTML5 document around the fragments ``body``: inline CSS, no scripts, nothing from the network."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _nav(blocks: list) -> list:
    links = [(b.anchor, plain_text(b.text).split(":")[0].split(" (")[0])
             for b in blocks if isinstance(b, Heading) and b.anchor and b.level == 2]
    return ["<nav>" + "".join(f"<a href='#{_e(a)}'>{_e(t)}</a>" for a, t in links) + "</nav>"] if links else []


def html_page(title: str, blocks: list, base) -> str:
    """``page`` of ``blocks`` (paths made relative to folder ``base``), with a navigation bar over its anchored
    sections."""
    return page(title, _nav(blocks) + [to_html(blocks, base)])

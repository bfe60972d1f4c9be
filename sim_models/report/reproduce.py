"""OUT/report.md and OUT/report.html of `sim reproduce`: verdicts beside the paper's figures, the probe
tables (mean ± std over training seeds), the β search, the analyses' numbers, the step times, and (HTML)
`sim report`'s side-by-side figures and audio players of the analysed runs (sim_models/report/html.py).

Every name and path is escaped for the format it lands in (sim_models/util/escaping.py); links are relative to
OUT and percent-encoded."""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sim_models.analysis.entanglement import TABLE3_N
from sim_models.analysis.verdicts import paper_tables, verdicts_from_json, verdicts_markdown
from sim_models.data.paper_recordings import source_line
from sim_models.report.html import comparison_html, page, verdicts_html, write_html_reports
from sim_models.util.atomic_write import atomic_write_text
from sim_models.util.escaping import markdown_code, markdown_link_destination, markdown_text, url_path

__all__ = ["write_report", "verdict_table_text", "data_description"]


@dataclass(frozen=True)
class _Format:
    """How prose is written in one output format: ``text`` escapes plain text, ``code`` shows a name or path as
    code, ``bold`` emphasises text already in the format."""
    text: Callable[[str], str]
    code: Callable[[str], str]
    bold: Callable[[str], str]


_FORMATS = {"markdown": _Format(markdown_text, markdown_code, lambda s: f"**{s}**"),
            "html": _Format(html.escape, lambda s: f"<code>{html.escape(str(s))}</code>", lambda s: f"<b>{s}</b>")}


def _ms(vals: list, scale: float = 100.0, unit: str = " %", digits: int = 1) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    xs = [scale * v for v in vals]
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{mean:.{digits}f}{unit}"
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return f"{mean:.{digits}f} ± {sd:.{digits}f}{unit}"


def _probe_rows(budget, seeds, probes, protocol) -> list:
    t2 = paper_tables()["paper_table2_accuracy_percent"]
    rows = []
    for method in budget.methods:
        res = [probes[(method, s, protocol)] for s in range(seeds) if (method, s, protocol) in probes]
        if not res:
            continue
        for m, mod in enumerate(res[0]["modules"]):
            last = m == len(res[0]["modules"]) - 1
            paper = "–"
            if last and protocol == "paper":
                key = "Supervised" if method == "supervised" else method
                if key in t2:
                    paper = " / ".join(f"{t2[key][t2['columns'].index(t)][0]:.1f}" for t in ("vowel", "syllable"))
            rows.append([method, mod["module"], _ms([r["modules"][m]["vowel"] for r in res]),
                         _ms([r["modules"][m]["syllable"] for r in res]), paper])
        if method == "SIM":
            for m, mod in enumerate(res[0]["modules"]):
                last = m == len(res[0]["modules"]) - 1
                paper = "–"
                if last and protocol == "paper":
                    r0 = t2["Random Initialization"]
                    paper = " / ".join(f"{r0[t2['columns'].index(t)][0]:.1f}" for t in ("vowel", "syllable"))
                rows.append(["random init", mod["module"], _ms([r["modules"][m]["random_init_vowel"] for r in res]),
                             _ms([r["modules"][m]["random_init_syllable"] for r in res]), paper])
    return rows


def _analysis_rows(analyses) -> list:
    rows = []
    methods = sorted({k[0] for k in analyses}, key=("SIM", "GIM", "CPC").index)
    for method in methods:
        res = [analyses[k] for k in sorted(analyses) if k[0] == method]
        for m, mod in enumerate(res[0]["modules"]):
            def delta(space):
                out = []
                for r in res:
                    d = r["modules"][m]["delta"][space]
                    if TABLE3_N in d["ns"]:
                        out.append(d["delta"][d["ns"].index(TABLE3_N)])
                return _ms(out)
            au = [r["modules"][m]["active_units"] for r in res]
            rows.append([method, mod["module"], str(mod["width"]),
                         "–" if any(a is None for a in au) else ", ".join(str(a) for a in au),
                         _ms([r["modules"][m]["top10_mass"] for r in res], 1.0, "", 3), delta("waveform"), delta("mel"),
                         _ms([r["modules"][m]["vowel_probe_test_accuracy"] for r in res])])
    return rows


_PROBE_HEAD = ["method", "module", "vowel", "syllable", "paper (vowel / syllable, Table 2)"]
_AN_HEAD = ["method", "module", "width", "active units (per seed)", "vowel top-10 % weight mass",
            "δ at N = 8, waveform", "δ at N = 8, log-mel", "bias-free vowel probe"]


def _md_table(head, rows) -> list:
    return ["| " + " | ".join(map(markdown_text, head)) + " |", "|" + "---|" * len(head)] + \
           ["| " + " | ".join(markdown_text(c) for c in r) + " |" for r in rows]


def _html_table(head, rows) -> str:
    e = html.escape
    return ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table>")


def verdict_table_text(verdicts) -> str:
    """A plain table for the terminal: claim, verdict, ours, paper."""
    lines = []
    for v in verdicts:
        lines += [f"- {v.claim}: {v.status.upper()}", f"    ours:  {v.measured}", f"    paper: {v.paper}"]
    return "\n".join(lines)


def data_description(data_dir, fmt: str = "markdown") -> str:
    """One sentence on the data: the recordings' source and license when the folder names them (the paper's
    recordings, sim_models/data/paper_recordings.py), else what synthesised it. ``fmt``: "markdown" or "html"."""
    f = _FORMATS[fmt]
    meta_path = Path(data_dir) / "metadata.json" if data_dir is not None else None
    if meta_path is None or not meta_path.is_file():
        return f.text("Data: ") + f.code(data_dir) + "."
    meta = json.loads(meta_path.read_text())
    n = len(meta.get("items", []))
    if meta.get("source"):
        return f.text(f"{source_line(meta['source'])} {n} words at {meta['sample_rate']} Hz, the authors' train/test "
                      "split.")
    return (f.text(f"Data: {n} words synthesised with {meta.get('engine', 'espeak-ng')} (") + f.code("sim data")
            + f.text(", not the paper's recordings)."))


def _setting(budget, seeds, beta, ver, total_seconds, data_dir, fmt: str) -> list:
    """The paragraphs of the *Setting* section in ``fmt`` ("markdown" or "html")."""
    f = _FORMATS[fmt]
    paras = [f.text("Budget ") + f.code(budget.name) + f.text(
                 f": methods {', '.join(budget.methods)} (+ random init), {seeds} training seed(s) each, "
                 f"{budget.words} words requested, epochs {budget.epochs}, probe protocols "
                 f"{', '.join(budget.protocols)} ({budget.probe_seeds} probe seed(s) per run). SIM trained at β = "
                 f"{beta['beta']:g} ({beta['note']}). Verdicts use the ") + f.code(ver["protocol"])
             + f.text(" protocol for Table 2; spreads are over training seeds (verdict rules: ")
             + f.code("sim_models/analysis/verdicts.py") + f.text(", fixed in advance).")]
    if not beta["beta"]:
        paras.append(f.bold(f.text("β = 0")) + f.text(": the SIM runs have Gaussian heads but no KL term, so this "
                                                      "comparison does not test what SIM adds to GIM (the KL)."))
    paras += [data_description(data_dir, fmt),
              f.text(f"Total step time recorded: {total_seconds / 60:.1f} min (2 shared CPU cores here: timings are "
                     "noisy).")]
    return paras


def _sections(out: Path, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir=None):
    """(title, markdown lines, html) per section."""
    verdicts = verdicts_from_json(json.dumps(ver["verdicts"]))
    secs = []
    total = sum(times.values())
    md_paras = _setting(budget, seeds, beta, ver, total, data_dir, "markdown")
    secs.append(("Setting", [line for p in md_paras for line in ("", p)][1:],
                 "".join(f"<p>{p}</p>" for p in _setting(budget, seeds, beta, ver, total, data_dir, "html"))))
    vmd = verdicts_markdown(verdicts)[2:]
    secs.append(("Verdicts: the paper's claims on our data", vmd, "\n".join(verdicts_html(verdicts)[1:])))
    for r, vs in ver.get("other_representations", {}).items():
        ov = verdicts_from_json(json.dumps(vs))
        what = "μ, the posterior mean" if r == "mean" else "samples"
        secs.append((f"Table 3 and Fig. 2 verdicts on {what} (robustness row; the verdicts above use "
                     f"{ver.get('representation', 'samples')})", verdicts_markdown(ov)[2:],
                     "\n".join(verdicts_html(ov)[1:])))
    for p, vs in ver.get("other_protocols", {}).items():
        ov = verdicts_from_json(json.dumps(vs))
        secs.append((f"Table 2 verdicts under the `{p}` protocol (for comparison)", verdicts_markdown(ov)[2:],
                     "\n".join(verdicts_html(ov)[1:])))  # [1:]: our own heading
    for p in budget.protocols:
        rows = _probe_rows(budget, seeds, probes, p)
        secs.append((f"Linear probes, `{p}` protocol (test accuracy, mean ± std over training seeds)",
                     _md_table(_PROBE_HEAD, rows), _html_table(_PROBE_HEAD, rows)))
    plot_md, plot_html = markdown_link_destination(beta["plot"]), html.escape(url_path(beta["plot"]))
    secs.append(("β search (SIM)", beta["table"].splitlines() + ["", f"![sweep]({plot_md})"],
                 f"<pre>{html.escape(beta['table'])}</pre><img src='{plot_html}' alt='β sweep' style='max-width:100%'>"))
    if analyses:
        rows = _analysis_rows(analyses)
        secs.append(("Analyses (δ: Table 3; top-10 % mass: Fig. 2; active units: KL > 0.01 nats)",
                     _md_table(_AN_HEAD, rows), _html_table(_AN_HEAD, rows)))
    links = [(f"{m} seed {s}", os.path.relpath(rd / "report.html", out)) for (m, s), rd in runs.items()
             if (rd / "report.html").is_file()]
    trows = [[k, f"{v:.0f} s"] for k, v in times.items()]
    secs.append(("Step times", _md_table(["step", "time"], trows), _html_table(["step", "time"], trows)))
    if links:
        secs.append(("Per-run reports", [f"- [{markdown_text(t)}]({markdown_link_destination(h)})" for t, h in links],
                     "<ul>" + "".join(f"<li><a href='{html.escape(url_path(h))}'>{html.escape(t)}</a></li>"
                                      for t, h in links) + "</ul>"))
    return secs


def write_report(out, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir=None) -> dict:
    """Writes OUT/report.md and OUT/report.html (atomically); the analysed runs also get their own report.html
    (with the side-by-side comparison) from sim_models/report/html.py. Returns {"md", "html"}."""
    out = Path(out)
    summaries = []
    for key in sorted(analyses):
        p = Path(analyses[key]["analysis"])
        if p.is_file():
            summaries.append(json.loads(p.read_text()))
    verdicts = verdicts_from_json(json.dumps(ver["verdicts"]))
    if summaries:
        write_html_reports(summaries, None, verdicts)
    secs = _sections(out, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir)
    md = [f"# sim reproduce: budget {markdown_code(budget.name)}", ""]
    body = [f"<h1>sim reproduce: budget <code>{html.escape(budget.name)}</code></h1>"]
    for title, lines, h in secs:
        md += [f"## {title}", ""] + lines + [""]
        body += [f"<h2>{html.escape(title)}</h2>", h]
    if summaries:
        body += comparison_html(summaries, out)
    for name, text in (("report.md", "\n".join(md) + "\n"), ("report.html", page(f"sim reproduce ({budget.name})", body))):
        atomic_write_text(out / name, text)
    return {"md": str(out / "report.md"), "html": str(out / "report.html")}


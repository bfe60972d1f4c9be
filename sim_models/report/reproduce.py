"""OUT/report.md and OUT/report.html of `sim reproduce`, from one list of page blocks (sim_models/util/document.py):
the setting, verdicts beside the paper's figures, the probe tables (mean ± std over training seeds), the β search,
the analyses' numbers, the step times, links to the per-run reports, and `sim report`'s side-by-side section of
the analysed runs (figures and audio players). The analysed runs also get their own report pages
(sim_models/report/write.py)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from sim_models.analysis.entanglement import TABLE3_N
from sim_models.analysis.verdicts import paper_tables, verdict_blocks, verdicts_from_json
from sim_models.data.paper_recordings import source_line
from sim_models.report.comparison import comparison_blocks
from sim_models.report.write import write_page, write_reports
from sim_models.util.document import Bold, Bullets, Code, Heading, Image, Link, Paragraph, Table, Title

__all__ = ["write_report", "reproduce_blocks", "verdict_table_text", "data_description"]
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


def verdict_table_text(verdicts) -> str:
    """A plain table for the terminal: claim, verdict, ours, paper."""
    lines = []
    for v in verdicts:
        lines += [f"- {v.claim}: {v.status.upper()}", f"    ours:  {v.measured}", f"    paper: {v.paper}"]
    return "\n".join(lines)


def data_description(data_dir) -> tuple:
    """One sentence (page text: sim_models/util/document.py) on the data: the recordings' source and license when
    the folder names them (the paper's recordings, sim_models/data/paper_recordings.py), else what synthesised it."""
    meta_path = Path(data_dir) / "metadata.json" if data_dir is not None else None
    if meta_path is None or not meta_path.is_file():
        return ("Data: ", Code(str(data_dir)), ".")
    meta = json.loads(meta_path.read_text())
    n = len(meta.get("items", []))
    if meta.get("source"):
        return (f"{source_line(meta['source'])} {n} words at {meta['sample_rate']} Hz, the authors' train/test "
                "split.",)
    return (f"Data: {n} words synthesised with {meta.get('engine', 'espeak-ng')} (", Code("sim data"),
            ", not the paper's recordings).")


def _setting(budget, seeds, beta, ver, total_seconds, data_dir) -> list:
    """The paragraphs of the *Setting* section."""
    paras = [Paragraph(("Budget ", Code(budget.name),
                        f": methods {', '.join(budget.methods)} (+ random init), {seeds} training seed(s) each, "
                        f"{budget.words} words requested, epochs {budget.epochs}, probe protocols "
                        f"{', '.join(budget.protocols)} ({budget.probe_seeds} probe seed(s) per run). SIM trained at "
                        f"β = {beta['beta']:g} ({beta['note']}). Verdicts use the ", Code(ver["protocol"]),
                        " protocol for Table 2; spreads are over training seeds (verdict rules: ",
                        Code("sim_models/analysis/verdicts.py"), ", fixed in advance)."))]
    if not beta["beta"]:
        paras.append(Paragraph((Bold("β = 0"), ": the SIM runs have Gaussian heads but no KL term, so this "
                                "comparison does not test what SIM adds to GIM (the KL).")))
    paras += [Paragraph(data_description(data_dir)),
              Paragraph(f"Total step time recorded: {total_seconds / 60:.1f} min (2 shared CPU cores here: timings "
                        "are noisy).")]
    return paras


def reproduce_blocks(out: Path, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir=None,
                     beta_search=(), summaries=()) -> list:
    """Every section of `sim reproduce`'s report. ``beta_search``: the β sweep's blocks (the search's own table);
    ``summaries``: analysed runs' summaries, shown side by side at the end (write_report passes each method's
    first seed: the page stays readable; every run's own report has all of them side by side)."""
    verdicts = verdicts_from_json(json.dumps(ver["verdicts"]))
    out = Path(out)
    blocks = [Title(("sim reproduce: budget ", Code(budget.name))), Heading("Setting")]
    blocks += _setting(budget, seeds, beta, ver, sum(times.values()), data_dir)
    blocks += verdict_blocks(verdicts)
    for r, vs in ver.get("other_representations", {}).items():
        what = "μ, the posterior mean" if r == "mean" else "samples"
        blocks += verdict_blocks(verdicts_from_json(json.dumps(vs)), anchor=None, heading=(
            f"Table 3 and Fig. 2 verdicts on {what} (robustness row; the verdicts above use "
            f"{ver.get('representation', 'samples')})"))
    for p, vs in ver.get("other_protocols", {}).items():
        blocks += verdict_blocks(verdicts_from_json(json.dumps(vs)), anchor=None,
                                 heading=("Table 2 verdicts under the ", Code(p), " protocol (for comparison)"))
    for p in budget.protocols:
        blocks += [Heading(("Linear probes, ", Code(p), " protocol (test accuracy, mean ± std over training seeds)"),
                           anchor=f"probes-{p}"),
                   Table(_PROBE_HEAD, tuple(map(tuple, _probe_rows(budget, seeds, probes, p))))]
    blocks += [Heading("β search (SIM)", anchor="beta-search"), *beta_search,
               Image(out / beta["plot"], "β sweep")]
    if analyses:
        blocks += [Heading("Analyses (δ: Table 3; top-10 % mass: Fig. 2; active units: KL > 0.01 nats)",
                           anchor="analyses"),
                   Table(_AN_HEAD, tuple(map(tuple, _analysis_rows(analyses))))]
    blocks += [Heading("Step times"), Table(("step", "time"), tuple((k, f"{v:.0f} s") for k, v in times.items()))]
    links = tuple(Link(rd / "report.html", f"{m} seed {s}") for (m, s), rd in runs.items()
                  if (rd / "report.html").is_file())
    if links:
        blocks += [Heading("Per-run reports"), Bullets(links)]
    if summaries:
        blocks += comparison_blocks(list(summaries))
    return blocks


def write_report(out, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir=None, beta_search=()) -> dict:
    """Writes OUT/report.md and OUT/report.html (atomically) from ``reproduce_blocks``; the analysed runs first get
    their own report pages with the verdicts and the side-by-side section (sim_models/report/write.py). Returns
    {"md", "html"}."""
    out = Path(out)
    keys = [k for k in sorted(analyses) if Path(analyses[k]["analysis"]).is_file()]
    summaries = [json.loads(Path(analyses[k]["analysis"]).read_text()) for k in keys]
    first_seed = {}
    for (method, _), s in zip(keys, summaries):
        first_seed.setdefault(method, s)
    if summaries:
        write_reports(summaries, None, verdicts_from_json(json.dumps(ver["verdicts"])))
    blocks = reproduce_blocks(out, budget, seeds, beta, runs, probes, analyses, ver, times, data_dir, beta_search,
                              [first_seed[m] for m in budget.methods if m in first_seed])
    md, page = write_page(out / "report", f"sim reproduce ({budget.name})", blocks)
    return {"md": str(md), "html": str(page)}

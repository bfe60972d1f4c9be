"""RUN_DIR/report.html: the main output of `sim report`, a page you can read *and listen to*.

The same content as report.md (report/markdown.py) plus an ``<audio controls>`` player for every
decoded sound: original vs reconstruction per module, every step of every latent traversal, every
step of every interpolation (and the all-steps file). Figures and sounds are files beside the page
(RUN_DIR/report/...), linked with relative paths, so the page works from ``file://`` wherever the run
folders sit together (the side-by-side section links into the other runs' folders). Nothing is
fetched from the network: no scripts, fonts or style sheets from elsewhere.

``write_html_reports(summaries, compare_out=None, verdicts=None)`` mirrors
``report.markdown.write_reports``; ``verdicts`` (a list of ``verdicts.Verdict``) adds a *Verdicts*
section (claim, status, our numbers, the paper's, the rule) at the top of every page.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from sim_models.analysis.registry import sections_of
from sim_models.analysis.verdicts import Verdict
from sim_models.report.blocks import run_names, html_lines
from sim_models.util.atomic_write import atomic_write_text
from sim_models.util.escaping import url_path

__all__ = ["run_html", "comparison_html", "verdicts_html", "write_html_reports", "page"]

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


def _link(summary: dict, rel: str, base: Path) -> str:
    """Path of ``rel`` (relative to the summary's run dir) as seen from folder ``base``, URL-safe."""
    return url_path(os.path.relpath(Path(summary["run"]) / rel, base))


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def _pm(row: dict, key: str) -> str:
    """A probe cell of eval.json: mean ± std over seeds when the std is there."""
    std = row.get(key + "_std")
    return _pct(row[key]) if std is None or row[key] is None else f"{100 * row[key]:.1f} ± {100 * std:.1f} %"


def _table(header: list, rows: list, left_cols: int = 1) -> str:
    def cell(tag, i, v):
        return f"<{tag}{' class=l' if i < left_cols else ''}>{_e(str(v))}</{tag}>"
    out = ["<table><tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>")
    return "\n".join(out + ["</table>"])


def _audio(src: str, label: str) -> str:
    return (f'<div class="player"><span>{_e(label)}</span>'
            f'<audio controls preload="metadata" src="{_e(src)}"></audio></div>')


def _img(src: str, alt: str) -> str:
    return f'<img src="{_e(src)}" alt="{_e(alt)}">'


def _delta_html(columns: dict) -> str:
    """columns: {column name: entanglement_delta result}; rows N (as entanglement.delta_table)."""
    names = list(columns)
    ns = sorted({n for r in columns.values() for n in r["ns"]})
    rows = [[n] + [f"{r['delta'][r['ns'].index(n)]:.3f}" if n in r["ns"] else "" for r in columns.values()] for n in ns]
    return _table(["N"] + names, rows)


def _conc_rows(summary: dict, prefix: str = "") -> list:
    """One row per module and representation (primary first); see report.markdown._concentration_rows."""
    rows = []
    primary = summary.get("representation", "mean")
    for m in summary["modules"]:
        by_rep = m.get("by_representation") or {primary: {"concentration": m["concentration"]}}
        for r in [primary] + [r for r in by_rep if r != primary and not m.get("sample_equals_mean")]:
            c = by_rep[r]["concentration"]
            scaled = c.get("scaled_top10_mass")
            rows.append([prefix + m["module"], r + (" = mean" if m.get("sample_equals_mean") and len(by_rep) > 1 else ""),
                         m["width"], _pct(c["test_accuracy"]), _pct(c["train_accuracy"]), f"{c['top10_mass']:.2f}",
                         "n/a" if scaled is None else f"{scaled:.2f}", f"{c['frac_above_half']:.2f}"])
    return rows


_CONC_HEADER = ["module", "representation", "C", "vowel acc. (test)", "(train)", "top-10 % weight mass",
                "top-10 % of |w|·std", "share of weights > 0.5"]


def _probes_html(run_dir: Path) -> list:
    path = run_dir / "eval.json"
    if not path.is_file():
        return []
    try:
        r = json.loads(path.read_text())
        rows = [[m["module"], _pm(m, "vowel"), _pm(m, "random_init_vowel"), _pm(m, "syllable"),
                 _pm(m, "random_init_syllable")] for m in r["modules"]]
        chance = r.get("chance", {})
        rows.append(["chance", _pct(chance.get("vowel")), "", _pct(chance.get("syllable")), ""])
    except (KeyError, TypeError, ValueError) as exc:  # an eval.json of another version: say so, do not fail the page
        return ['<h2 id="probes">Linear probes (from <code>sim eval</code>)</h2>',
                f'<p class="note">eval.json could not be read ({_e(str(exc))}).</p>']
    return ['<h2 id="probes">Linear probes (from <code>sim eval</code>)</h2>',
            f'<p>Test accuracy ({_e(str(r.get("config")))}, {_e(str(r.get("steps")))} steps; protocol '
            f'{_e(str(r.get("protocol", {}).get("name", "robust")))}, {_e(str(r.get("seeds", 1)))} seeds; '
            f'{_e(str(r.get("n_train_syllables")))} train / {_e(str(r.get("n_test_syllables")))} test syllables).</p>',
            _table(["module", "vowel", "vowel, random init", "syllable", "syllable, random init"], rows)]


def verdicts_html(verdicts) -> list:
    """The *Verdicts* section: one row per claim (verdicts.Verdict objects or their dicts)."""
    vs = [v if isinstance(v, Verdict) else Verdict.from_dict(v) for v in verdicts]
    out = ['<h2 id="verdicts">Verdicts: the paper\'s claims on our data</h2>',
           "<table><tr><th class=l>claim</th><th class=l>verdict</th><th class=l>ours</th>"
           "<th class=l>paper</th><th class=l>rule</th></tr>"]
    for v in vs:
        css = _e(v.status.replace(" ", "-"))  # a verdicts file given to `sim report --verdicts` may hold any text
        out.append(f"<tr><td class=l>{_e(v.claim)}</td><td class='l {css}'>{_e(v.status)}</td>"
                   f"<td class=l>{_e(v.measured)}</td><td class=l>{_e(v.paper)}</td><td class=l>{_e(v.rule)}"
                   + (f"<br><span class=note>{_e(v.reason)}</span>" if v.reason else "") + "</td></tr>")
    out.append("</table>")
    return out


def run_html(summary: dict, base: Path) -> list:
    """The body sections of one run's page, links relative to folder ``base``."""
    L = lambda rel: _link(summary, rel, base)  # noqa: E731
    rc, dc = summary["report_config"], summary["report_config"]["decoder"]
    out = [f"<h1>Analysis of <code>{_e(summary['name'])}</code></h1>",
           f"<p>Run <code>{_e(summary['run'])}</code> (config <code>{_e(str(summary['config']))}</code>, "
           f"{summary['steps']} training steps); data <code>{_e(str(summary['data']))}</code> "
           f"({summary['n_train_syllables']} train / {summary['n_test_syllables']} test syllables). Representations: the "
           "frozen model in eval mode (μ for SIM modules, the ReLU output for GIM/CPC conv modules, the GRU output for "
           "the GRU module).</p>"]
    out += _probes_html(Path(summary["run"]))

    out += ['<h2 id="decoders">Decoders: original vs reconstruction</h2>',
            f"<p>One decoder per module (transposed convolutions mirroring the encoder), trained on the frozen "
            f"representations of the train split: loss <code>{_e(dc['loss'])}</code>, log-mel with n_fft {dc['n_fft']}, "
            f"hop {dc['hop_length']}, {dc['n_mels']} mels; Adam lr {dc['lr']}, {dc['epochs']} epochs, batch "
            f"{dc['batch_size']}. Errors on test utterances:</p>"]
    rows = []
    for m in summary["modules"]:
        fl = m["decoder_final_loss"]
        rows.append([m["module"], f"{m['frames']} × {m['width']}", f"{m['reconstruction']['mse']:.3g}",
                     f"{m['reconstruction']['mel']:.3g}", "n/a" if fl is None else f"{fl:.3g}"])
    out.append(_table(["module", "frames × C", "waveform MSE", "log-mel MSE", "final training loss"], rows))
    examples = summary.get("audio_examples", [])
    if examples:
        out.append("<p>Test utterances: the recording, then what each module's decoder makes of its representation.</p>")
        for i, ex in enumerate(examples):
            players = [_audio(L(ex["wav"]), f"'{ex['word']}': original")]
            for m in summary["modules"]:
                recs = m["files"].get("reconstruction", [])
                if i < len(recs):
                    players.append(_audio(L(recs[i]), f"{m['module']}"))
            out.append('<div class="players">' + "".join(players) + "</div>")

    out += ['<h2 id="traversal">Latent traversal</h2>',
            f"<p>Dimension d set to {rc['traversal_steps']} values in [−{rc['traversal_range']}, "
            f"{rc['traversal_range']}] in every frame, from the zero vector and from the test utterance "
            f"'{_e(summary['traversal_utterance'])}'; the dims shown are the {rc['traversal_dims']} the vowel probe weighs "
            "most. Figure rows: steps (left waveform, right spectrum in dB); the players below play each step.</p>"]
    for m in summary["modules"]:
        out.append(f"<h3>{_e(m['module'])}</h3>")
        for t in m["files"]["traversal"]:
            start = "zero vector" if t["start"] == "zero" else f"'{summary['traversal_utterance']}'"
            out.append(f"<p><b>dimension {t['dim']}</b>, start = {_e(start)}</p>")
            out.append(_img(L(t["png"]), f"{m['module']} dim {t['dim']} from {t['start']}"))
            out.append('<div class="players">' + "".join(
                _audio(L(w["wav"]), f"value {w['value']:+.2f}") for w in t.get("wavs", [])) + "</div>")

    pair = summary["interpolation_pair"]
    out += ['<h2 id="interpolation">Interpolation</h2>',
            f"<p>z(α) = (1 − α) z_a + α z_b between the test utterances '{_e(pair[0])}' and '{_e(pair[1])}' (per frame), "
            "decoded. Grey in the figure: the original recordings.</p>"]
    for m in summary["modules"]:
        f = m["files"]
        out.append(f"<h3>{_e(m['module'])}</h3>")
        players = [_audio(L(f["interpolation_wav"]), "all steps in order")]
        players += [_audio(L(s["wav"]), f"α = {s['alpha']:.2f}") for s in f.get("interpolation_steps", [])]
        out.append('<div class="players">' + "".join(players) + "</div>")
        out.append(_img(L(f["interpolation_png"]), f"{m['module']} interpolation"))

    n_pairs = summary["modules"][0]["entanglement"]["waveform"]["pairs"] if summary["modules"] else 0
    out += ['<h2 id="delta">Entanglement δ (Table 3)</h2>',
            f"<p>Representation: {_e(summary.get('representation', 'mean'))} (columns marked with the other one: the "
            "robustness row). "
            f"δ(N) = Σ‖D(z_swap) − D(z_b)‖² / Σ‖D(z_a) − D(z_b)‖² over {n_pairs} ordered pairs of test utterances, "
            "clipped to [0, 1]: z_swap is z_a with the N dimensions whose time-averaged values differ most from z_b's "
            "taken from z_b (in every frame). 0 = the N dims explain the whole difference; 1 = none of it.</p>"]
    for space, label in (("waveform", "On the waveform"), ("mel", "On log-mel spectrograms")):
        cols = {}
        for m in summary["modules"]:
            cols[m["module"]] = m["entanglement"][space]
            for r, res in (m.get("by_representation") or {}).items():
                if r != summary.get("representation") and not m.get("sample_equals_mean"):
                    cols[f"{m['module']} ({r})"] = res["entanglement"][space]
        out += [f"<p>{label}:</p>", _delta_html(cols)]
    out.append(_img(L(summary["files"]["entanglement_png"]), "entanglement δ"))

    out += ['<h2 id="concentration">Vowel concentration (Fig. 2)</h2>',
            "<p>A bias-free linear vowel probe per module on time-averaged syllable representations "
            f"({'z-scored' if rc.get('probe_standardize') else 'raw, not standardised'}); histogram of |w| / max |w| "
            "per vowel class; the scale-aware column weighs |w| by the feature's standard deviation; the KDE draws the "
            "SIM authors' per-class signed min-max normalisation.</p>", _table(_CONC_HEADER, _conc_rows(summary)),
            _img(L(summary["files"]["concentration_png"]), "vowel concentration")]
    if "concentration_kde_png" in summary["files"]:
        out.append(_img(L(summary["files"]["concentration_kde_png"]), "vowel concentration, signed min-max KDE"))
    thesis_tsne = rc.get("tsne_settings") == "thesis"
    out += ['<h2 id="tsne">t-SNE</h2>', "<p>" + ("Flattened C × T syllable features, random init, perplexity 30, learning "
                                                 "rate 200 (thesis §4.2.2)" if thesis_tsne else
                                                 "Time-averaged syllable representations per module") +
            ", coloured by vowel.</p>", _img(L(summary["files"]["tsne_png"]), "t-SNE")]
    out += html_lines(sections_of(summary), L)  # the registered analyses (sim_models/analysis/registry.py)
    return out


def comparison_html(summaries: list, base: Path) -> list:
    """Side-by-side tables, figures and interpolation players of several runs (links relative to ``base``)."""
    names = run_names(summaries)
    out = ['<h2 id="side-by-side">Side by side: ' + ", ".join(f"<code>{_e(n)}</code>" for n in names) + "</h2>"]
    for space in ("waveform", "mel"):
        cols = {f"{n}: {m['module']}": m["entanglement"][space] for n, s in zip(names, summaries) for m in s["modules"]}
        out += [f"<p>Entanglement δ on {'the waveform' if space == 'waveform' else 'log-mel spectrograms'}:</p>",
                _delta_html(cols)]
    out += ["<p>Vowel concentration:</p>",
            _table(_CONC_HEADER, [r for n, s in zip(names, summaries) for r in _conc_rows(s, prefix=f"{n}: ")])]
    for key, label in (("concentration_png", "vowel concentration"), ("tsne_png", "t-SNE"), ("entanglement_png", "δ"),
                       ("loss_curves_png", "loss curves"), ("activations_png", "activations"),
                       ("active_units_png", "active units"), ("few_labels_png", "few labels")):
        if not all(key in s["files"] for s in summaries):
            continue
        out.append(f"<h3>{_e(label)}</h3><div class='side'>" + "".join(
            f"<figure>{_img(_link(s, s['files'][key], base), f'{n}: {label}')}<figcaption>{_e(n)}</figcaption></figure>"
            for n, s in zip(names, summaries)) + "</div>")
    for m in range(min(len(s["modules"]) for s in summaries)):
        out.append(f"<h3>Interpolation, module {m + 1}</h3><div class='players'>" + "".join(
            _audio(_link(s, s["modules"][m]["files"]["interpolation_wav"], base), f"{n}: all steps")
            for n, s in zip(names, summaries)) + "</div>")
    return out


def page(title: str, body: list) -> str:
    """A complete HTML5 document: inline CSS, no scripts, nothing from the network."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _nav(has_verdicts: bool, has_side: bool) -> str:
    items = [("verdicts", "verdicts")] if has_verdicts else []
    items += [("decoders", "decoders"), ("traversal", "traversal"), ("interpolation", "interpolation"), ("delta", "δ"),
              ("concentration", "concentration"), ("tsne", "t-SNE"), ("thesis", "thesis analyses")]
    if has_side:
        items.append(("side-by-side", "side by side"))
    return "<nav>" + "".join(f"<a href='#{a}'>{_e(t)}</a>" for a, t in items) + "</nav>"


def _write(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)


def write_html_reports(summaries: list, compare_out=None, verdicts=None) -> list:
    """RUN_DIR/report.html for every summary (with the side-by-side section when there are several),
    and with ``compare_out`` (a file path; its suffix is replaced by .html) a stand-alone comparison page.
    Returns the written paths."""
    written = []
    several = len(summaries) > 1
    for s in summaries:
        base = Path(s["run"])
        body = [_nav(bool(verdicts), several)]
        body += run_html(s, base)
        if verdicts:
            body[3:3] = verdicts_html(verdicts)  # after the title and the run's description
        if several:
            body += comparison_html(summaries, base)
        written.append(_write(base / "report.html", page(f"sim report: {s['name']}", body)))
    if compare_out is not None:
        path = Path(compare_out).with_suffix(".html")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = ["<h1>Comparison</h1>"] + (verdicts_html(verdicts) if verdicts else [])
        body += comparison_html(summaries, path.parent)
        written.append(_write(path, page("sim report: comparison", body)))
    return written

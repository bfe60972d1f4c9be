"""RUN_DIR/report.md from the summaries of analyse_run; with several runs, a side-by-side section.

Image links are relative to the markdown file, so a report (and the comparison, which points into
the other runs' report/ folders) renders wherever the run folders sit together. Names, paths and words from
the data are escaped for markdown (sim_models/util/escaping.py): a run folder called ``run one #2`` or ``a|b``
still gives valid links and intact tables.
"""
from __future__ import annotations

import os
from pathlib import Path

from sim_models.analysis.entanglement import delta_table
from sim_models.analysis.registry import sections_of
from sim_models.analysis.verdicts import verdicts_markdown
from sim_models.report.blocks import run_names, markdown_lines
from sim_models.util.atomic_write import atomic_write_text
from sim_models.util.escaping import markdown_code, markdown_link_destination, markdown_text

__all__ = ["run_markdown", "comparison_markdown", "write_reports"]


def _link(summary: dict, rel: str, base: Path) -> str:
    """Path of ``rel`` (relative to the summary's run dir) as seen from folder ``base``, as a link destination."""
    return markdown_link_destination(os.path.relpath(Path(summary["run"]) / rel, base))


def _image(alt: str, destination: str) -> str:
    """A markdown image: ``alt`` escaped, ``destination`` already a link destination (``_link``)."""
    return f"![{markdown_text(alt)}]({destination})"


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def _concentration_rows(summary: dict, prefix: str = "") -> list:
    """One row per module and representation (the primary first; a module whose output does not depend on ε
    has one row, marked "= mean")."""
    rows = []
    primary = summary.get("representation", "mean")
    for mod in summary["modules"]:
        by_rep = mod.get("by_representation") or {primary: {"concentration": mod["concentration"]}}
        reps = [primary] + [r for r in by_rep if r != primary and not mod.get("sample_equals_mean")]
        for r in reps:
            c = by_rep[r]["concentration"]
            label = r + (" = mean" if mod.get("sample_equals_mean") and len(by_rep) > 1 else "")
            scaled = c.get("scaled_top10_mass")
            rows.append(f"| {markdown_text(prefix + mod['module'])} | {markdown_text(label)} | {mod['width']} | "
                        f"{_pct(c['test_accuracy'])} | "
                        f"{_pct(c['train_accuracy'])} | {c['top10_mass']:.2f} | "
                        f"{'n/a' if scaled is None else f'{scaled:.2f}'} | {c['frac_above_half']:.2f} |")
    return rows


_CONC_HEADER = ["| module | representation | C | vowel acc. (test) | (train) | top-10 % weight mass | top-10 % of "
                "\\|w\\|·std | share of weights > 0.5 |", "|---|---|---|---|---|---|---|---|"]


def _delta_columns(summary: dict, space: str, prefix: str = "", robustness: bool = False) -> dict:
    """{column: δ result}: the primary representation's, plus (``robustness``) the other one's for modules whose
    output depends on ε."""
    cols = {}
    primary = summary.get("representation", "mean")
    for m in summary["modules"]:
        cols[f"{prefix}{m['module']}"] = m["entanglement"][space]
        if robustness and not m.get("sample_equals_mean"):
            for r, res in (m.get("by_representation") or {}).items():
                if r != primary:
                    cols[f"{prefix}{m['module']} ({r})"] = res["entanglement"][space]
    return cols


_REPR_TEXT = {"sample": "samples z = μ + σ·ε drawn through every module (the SIM authors' measurement: decoders "
                        "trained on fresh samples every batch, one fixed ε per utterance for δ, a fresh ε per epoch "
                        "for the vowel probe)",
              "mean": "μ (the mean of each SIM module's posterior; each module reads the previous module's μ)"}


def run_markdown(summary: dict, base: Path) -> list:
    """The sections of one run's report, links relative to ``base``."""
    L = lambda rel: _link(summary, rel, base)  # noqa: E731
    rc = summary["report_config"]
    dc = rc["decoder"]
    out = [f"# Analysis of {markdown_code(summary['name'])}", "",
           f"Run {markdown_code(summary['run'])} (config {markdown_code(summary['config'])}, {summary['steps']} "
           f"training steps); data {markdown_code(summary['data'])} "
           f"({summary['n_train_syllables']} train / {summary['n_test_syllables']} test syllables). "
           f"Representation: {_REPR_TEXT[summary.get('representation', 'mean')]}; GIM/CPC modules and the GRU give "
           "their output (the GRU of a SIM model reads samples). "
           + (f"The {', '.join(r for r in summary.get('representations', [])[1:])} rows are the robustness check "
              f"({summary.get('decoders', {}).get('robustness_row', '')})." if len(summary.get("representations", [])) > 1
              else ""), ""]
    eval_md = Path(summary["run"]) / "eval.md"
    if eval_md.is_file():
        out += ["## Linear probes (from `sim eval`)", "", eval_md.read_text().strip(), ""]

    out += ["## Decoders", "",
            f"One decoder per module (transposed convolutions mirroring the encoder; module 1 with two extra kernel-3 "
            f"layers), trained on the frozen representations of the train split: loss `{dc['loss']}`, log-mel with "
            f"n_fft {dc['n_fft']}, hop {dc['hop_length']}, {dc['n_mels']} mels; Adam lr {dc['lr']}, {dc['epochs']} epochs, "
            f"batch {dc['batch_size']}"
            + (f" (preset `{rc['decoder_preset']}`)" if rc.get("decoder_preset") else "")
            + f", on {summary.get('representation', 'mean')}. The final training loss is the last epoch's mean; "
            "its relative change over the last tenth of the epochs: "
            + ", ".join("n/a" if v is None else f"{v:+.3f}"
                        for v in summary.get("decoders", {}).get("relative_change_last_10pct", []))
            + ". Errors on test utterances:", "",
            "| module | frames × C | waveform MSE | log-mel MSE | final training loss |", "|---|---|---|---|---|"]
    for m in summary["modules"]:
        fl = m["decoder_final_loss"]
        out.append(f"| {markdown_text(m['module'])} | {m['frames']} × {m['width']} | "
                   f"{m['reconstruction']['mse']:.3g} | "
                   f"{m['reconstruction']['mel']:.3g} | {'n/a' if fl is None else f'{fl:.3g}'} |")

    out += ["", "## Latent traversal", "",
            f"Dimension d set to {rc['traversal_steps']} values in [−{rc['traversal_range']}, {rc['traversal_range']}] in "
            "every frame, from the zero vector and from the test utterance "
            f"'{markdown_text(summary['traversal_utterance'])}'; the "
            f"dims shown are the {rc['traversal_dims']} the vowel probe weighs most. Rows: steps; left waveform, right "
            "spectrum (dB).", ""]
    for m in summary["modules"]:
        out.append(f"### {markdown_text(m['module'])}")
        out.append("")
        for t in m["files"]["traversal"]:
            out.append(_image(f"{m['module']} dim {t['dim']} from {t['start']}", L(t["png"])))
        out.append("")

    pair = summary["interpolation_pair"]
    out += ["## Interpolation", "",
            f"z(α) = (1 − α) z_a + α z_b between the test utterances '{markdown_text(pair[0])}' and "
            f"'{markdown_text(pair[1])}' (per frame), decoded. "
            "Grey: the original recordings.", ""]
    for m in summary["modules"]:
        f = m["files"]
        out += [f"{markdown_text(m['module'])}: [audio]({L(f['interpolation_wav'])})", "",
                _image(f"{m['module']} interpolation", L(f["interpolation_png"])), ""]

    n_pairs = summary["modules"][0]["entanglement"]["waveform"]["pairs"] if summary["modules"] else 0
    dsum = summary.get("delta", {})
    fr = dsum.get("n_at_paper_fraction", {})
    frac_text = "; ".join(f"{markdown_text(m['module'])}: N = {fr[m['module']]['1/64']} and "
                          f"{fr[m['module']]['1/8']} of "
                          f"{fr[m['module']]['width']}" for m in summary["modules"] if m["module"] in fr)
    out += ["## Entanglement δ (Table 3)", "",
            f"δ(N) = Σ‖D(z_swap) − D(z_b)‖² / Σ‖D(z_a) − D(z_b)‖² over {n_pairs} ordered pairs of "
            f"{dsum.get('utterances', '?')} test utterances, clipped to [0, 1]: z_swap is z_a with the N dimensions whose "
            "time-averaged values differ most from z_b's taken from z_b (in every frame). 0 = the N dims explain the "
            "whole difference; 1 = none of it. Each utterance is encoded once (one fixed ε per utterance for samples). "
            "The paper's N = 8 and 64 of 512 dimensions are 1/64 and 1/8 of the width; here that is "
            f"{frac_text or 'n/a'}. Columns marked (mean) / (sample) are the robustness row. "
            f"Numbers: {markdown_code(summary['files']['entanglement_json'])}.", "",
            "On the waveform:", "", delta_table(_delta_columns(summary, "waveform", robustness=True)), "",
            "On log-mel spectrograms:", "", delta_table(_delta_columns(summary, "mel", robustness=True)), "",
            _image("entanglement", L(summary["files"]["entanglement_png"])), ""]

    out += (["## Vowel concentration (Fig. 2)", "",
            "A bias-free linear vowel probe per module on time-averaged syllable representations "
            f"({'z-scored' if rc.get('probe_standardize') else 'raw, not standardised'}); histogram of "
            "|w| / max |w| per vowel class. Top-10 % mass: share of Σ|w| in the 10 % largest |w| of a class; "
            "the scale-aware column weighs each |w| by the feature's standard deviation over the training "
            "syllables (a near-constant μ unit can carry a large weight that moves no logit). The KDE figure "
            "draws the SIM authors' normalisation, 2 (w − min) / (max − min) − 1 per class.", ""]
            + _CONC_HEADER + _concentration_rows(summary) + [
            "", _image("vowel concentration", L(summary["files"]["concentration_png"])), ""]
            + ([_image("vowel concentration, signed min-max KDE", L(summary["files"]["concentration_kde_png"])), ""]
               if "concentration_kde_png" in summary["files"] else []))

    tsne_how = ("flattened C × T syllable features (padded at both ends to 8800 samples), random init, perplexity 30, "
                "learning rate 200, 1000 iterations (thesis §4.2.2)" if rc.get("tsne_settings") == "thesis"
                else "time-averaged syllable representations, PCA init")
    out += ["## t-SNE", "", f"Per module, coloured by vowel: {tsne_how}.", "",
            _image("t-SNE", L(summary["files"]["tsne_png"])), ""]
    out += markdown_lines(sections_of(summary), L)  # the registered analyses (sim_models/analysis/registry.py)
    return out


def comparison_markdown(summaries: list, base: Path) -> list:
    """Side-by-side tables and figures of several runs (links relative to ``base``)."""
    names = run_names(summaries)
    out = ["## Side by side: " + ", ".join(map(markdown_code, names)), ""]
    for space in ("waveform", "mel"):
        cols = {}
        for n, s in zip(names, summaries):
            cols.update(_delta_columns(s, space, prefix=f"{n}: "))
        out += [f"Entanglement δ on {'the waveform' if space == 'waveform' else 'log-mel spectrograms'}:", "",
                delta_table(cols), ""]
    out += ["Vowel concentration:", ""] + _CONC_HEADER
    for n, s in zip(names, summaries):
        out += _concentration_rows(s, prefix=f"{n}: ")
    out += ["", "| figure | " + " | ".join(map(markdown_text, names)) + " |", "|---|" + "---|" * len(names)]
    for key, label in (("concentration_png", "vowel concentration"), ("tsne_png", "t-SNE"),
                       ("entanglement_png", "δ"), ("loss_curves_png", "loss curves"), ("activations_png", "activations"),
                       ("active_units_png", "active units"), ("few_labels_png", "few labels")):
        if not all(key in s["files"] for s in summaries):
            continue
        out.append(f"| {label} | " + " | ".join(_image(label, _link(s, s["files"][key], base)) for s in summaries)
                   + " |")
    n_mod = min(len(s["modules"]) for s in summaries)
    for m in range(n_mod):
        out.append(f"| interpolation, module {m + 1} | " + " | ".join(
            _image("interpolation", _link(s, s["modules"][m]["files"]["interpolation_png"], base))
            for s in summaries) + " |")
    out.append("")
    return out


def write_reports(summaries: list, compare_out=None, verdicts=None) -> list:
    """Writes RUN_DIR/report.md for every summary (each with the side-by-side section when there are
    several) and, with ``compare_out``, a stand-alone comparison file. ``verdicts`` (verdicts.Verdict list)
    adds a *Verdicts* section after each title. Returns the written paths."""
    vlines = verdicts_markdown(verdicts) if verdicts else []
    written = []
    for s in summaries:
        base = Path(s["run"])
        lines = run_markdown(s, base)
        lines[4:4] = vlines  # after the title and the run's description
        if len(summaries) > 1:
            lines += comparison_markdown(summaries, base)
        path = base / "report.md"
        atomic_write_text(path, "\n".join(lines) + "\n")
        written.append(path)
    if compare_out is not None:
        compare_out = Path(compare_out)
        compare_out.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Comparison", ""] + vlines + comparison_markdown(summaries, compare_out.parent)
        compare_out.write_text("\n".join(lines) + "\n")
        written.append(compare_out)
    return written

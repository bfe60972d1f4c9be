"""The sections of one run's report (`sim report`) as page blocks (sim_models/util/document.py), from the summary
``analyse_run`` wrote (RUN_DIR/report/analysis.json): the same blocks become report.md and report.html.

Paths in the blocks are the run folder joined with the summary's run-relative paths; the writer
(sim_models/report/write.py) makes them relative to the page.
"""
from __future__ import annotations

import json
from pathlib import Path

from sim_models.analysis.entanglement import delta_table
from sim_models.analysis.registry import sections_of
from sim_models.evaluation.evaluate import probe_blocks
from sim_models.util.document import Audio, Code, Heading, Image, Paragraph, Players, Table, Title

__all__ = ["run_blocks", "concentration_table", "delta_columns"]

_REPR_TEXT = {"sample": "samples z = μ + σ·ε drawn through every module (the SIM authors' measurement: decoders "
                        "trained on fresh samples every batch, one fixed ε per utterance for δ, a fresh ε per epoch "
                        "for the vowel probe)",
              "mean": "μ (the mean of each SIM module's posterior; each module reads the previous module's μ)"}

_CONC_HEADER = ("module", "representation", "C", "vowel acc. (test)", "(train)", "top-10 % weight mass",
                "top-10 % of |w|·std", "share of weights > 0.5")


def _pct(x) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.1f} %"


def concentration_table(summaries_with_prefix: list) -> Table:
    """[(summary, row prefix), ...] -> one row per module and representation (the primary first; a module whose
    output does not depend on ε has one row, marked "= mean")."""
    rows = []
    for summary, prefix in summaries_with_prefix:
        primary = summary.get("representation", "mean")
        for mod in summary["modules"]:
            by_rep = mod.get("by_representation") or {primary: {"concentration": mod["concentration"]}}
            for r in [primary] + [r for r in by_rep if r != primary and not mod.get("sample_equals_mean")]:
                c = by_rep[r]["concentration"]
                scaled = c.get("scaled_top10_mass")
                rows.append((prefix + mod["module"],
                             r + (" = mean" if mod.get("sample_equals_mean") and len(by_rep) > 1 else ""),
                             str(mod["width"]), _pct(c["test_accuracy"]), _pct(c["train_accuracy"]),
                             f"{c['top10_mass']:.2f}", "n/a" if scaled is None else f"{scaled:.2f}",
                             f"{c['frac_above_half']:.2f}"))
    return Table(_CONC_HEADER, tuple(rows))


def delta_columns(summary: dict, space: str, prefix: str = "", robustness: bool = False) -> dict:
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


def _header(summary: dict) -> list:
    reps = summary.get("representations", [])
    robust = (f" The {', '.join(reps[1:])} rows are the robustness check "
              f"({summary.get('decoders', {}).get('robustness_row', '')})." if len(reps) > 1 else "")
    return [Title(("Analysis of ", Code(summary["name"]))),
            Paragraph(("Run ", Code(summary["run"]), " (config ", Code(str(summary["config"])),
                       f", {summary['steps']} training steps); data ", Code(str(summary["data"])),
                       f" ({summary['n_train_syllables']} train / {summary['n_test_syllables']} test syllables). "
                       f"Representation: {_REPR_TEXT[summary.get('representation', 'mean')]}; GIM/CPC modules and "
                       "the GRU give their output (the GRU of a SIM model reads samples)." + robust))]


def _probes(run_dir: Path) -> list:
    """The linear probes of `sim eval` (RUN_DIR/eval.json), when the run has them."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return []
    heading = Heading(("Linear probes (from ", Code("sim eval"), ")"), anchor="probes")
    try:
        return [heading] + probe_blocks(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as exc:  # an eval.json of another version: say so, do not fail the page
        return [heading, Paragraph(f"eval.json could not be read ({exc}).", note=True)]


def _decoders(summary: dict, run: Path) -> list:
    rc = summary["report_config"]
    dc = rc["decoder"]
    changes = ", ".join("n/a" if v is None else f"{v:+.3f}"
                        for v in summary.get("decoders", {}).get("relative_change_last_10pct", []))
    out = [Heading("Decoders: original vs reconstruction", anchor="decoders"),
           Paragraph(("One decoder per module (transposed convolutions mirroring the encoder; module 1 with two extra "
                      "kernel-3 layers), trained on the frozen representations of the train split: loss ",
                      Code(dc["loss"]), f", log-mel with n_fft {dc['n_fft']}, hop {dc['hop_length']}, "
                      f"{dc['n_mels']} mels; Adam lr {dc['lr']}, {dc['epochs']} epochs, batch {dc['batch_size']}",
                      *((" (preset ", Code(rc["decoder_preset"]), ")") if rc.get("decoder_preset") else ()),
                      f", on the {summary.get('representation', 'mean')} representation. The final training loss is the last epoch's "
                      f"mean; its relative change over the last tenth of the epochs: {changes}. Errors on test "
                      "utterances:")),
           Table(("module", "frames × C", "waveform MSE", "log-mel MSE", "final training loss"),
                 tuple((m["module"], f"{m['frames']} × {m['width']}", f"{m['reconstruction']['mse']:.3g}",
                        f"{m['reconstruction']['mel']:.3g}",
                        "n/a" if m["decoder_final_loss"] is None else f"{m['decoder_final_loss']:.3g}")
                       for m in summary["modules"]))]
    examples = summary.get("audio_examples", [])
    if examples:
        out.append(Paragraph("Test utterances: the recording, then what each module's decoder makes of its "
                             "representation."))
        for i, ex in enumerate(examples):
            items = [Audio(run / ex["wav"], f"'{ex['word']}': original")]
            items += [Audio(run / m["files"]["reconstruction"][i], m["module"]) for m in summary["modules"]
                      if i < len(m["files"].get("reconstruction", []))]
            out.append(Players(tuple(items)))
    return out


def _traversal(summary: dict, run: Path) -> list:
    rc = summary["report_config"]
    out = [Heading("Latent traversal", anchor="traversal"),
           Paragraph(f"Dimension d set to {rc['traversal_steps']} values in [−{rc['traversal_range']}, "
                     f"{rc['traversal_range']}] in every frame, from the zero vector and from the test utterance "
                     f"'{summary['traversal_utterance']}'; the dims shown are the {rc['traversal_dims']} the vowel "
                     "probe weighs most. Figure rows: steps (left waveform, right spectrum in dB); the players "
                     "play each step.")]
    for m in summary["modules"]:
        out.append(Heading(m["module"], level=3))
        for t in m["files"]["traversal"]:
            start = "zero vector" if t["start"] == "zero" else f"'{summary['traversal_utterance']}'"
            out += [Paragraph((f"dimension {t['dim']}", f", start = {start}")),
                    Image(run / t["png"], f"{m['module']} dim {t['dim']} from {t['start']}")]
            if t.get("wavs"):
                out.append(Players(tuple(Audio(run / w["wav"], f"value {w['value']:+.2f}") for w in t["wavs"])))
    return out


def _interpolation(summary: dict, run: Path) -> list:
    a, b = summary["interpolation_pair"]
    out = [Heading("Interpolation", anchor="interpolation"),
           Paragraph(f"z(α) = (1 − α) z_a + α z_b between the test utterances '{a}' and '{b}' (per frame), "
                     "decoded. Grey in the figure: the original recordings.")]
    for m in summary["modules"]:
        f = m["files"]
        items = [Audio(run / f["interpolation_wav"], "all steps in order")]
        items += [Audio(run / s["wav"], f"α = {s['alpha']:.2f}") for s in f.get("interpolation_steps", [])]
        out += [Heading(m["module"], level=3), Players(tuple(items)),
                Image(run / f["interpolation_png"], f"{m['module']} interpolation")]
    return out


def _delta(summary: dict, run: Path) -> list:
    n_pairs = summary["modules"][0]["entanglement"]["waveform"]["pairs"] if summary["modules"] else 0
    dsum = summary.get("delta", {})
    fr = dsum.get("n_at_paper_fraction", {})
    fractions = "; ".join(f"{m['module']}: N = {fr[m['module']]['1/64']} and {fr[m['module']]['1/8']} of "
                          f"{fr[m['module']]['width']}" for m in summary["modules"] if m["module"] in fr)
    return [Heading("Entanglement δ (Table 3)", anchor="delta"),
            Paragraph((f"δ(N) = Σ‖D(z_swap) − D(z_b)‖² / Σ‖D(z_a) − D(z_b)‖² over {n_pairs} ordered pairs of "
                       f"{dsum.get('utterances', '?')} test utterances, clipped to [0, 1]: z_swap is z_a with the N "
                       "dimensions whose time-averaged values differ most from z_b's taken from z_b (in every "
                       "frame). 0 = the N dims explain the whole difference; 1 = none of it. Each utterance is "
                       "encoded once (one fixed ε per utterance for samples). The paper's N = 8 and 64 of 512 "
                       f"dimensions are 1/64 and 1/8 of the width; here that is {fractions or 'n/a'}. Columns marked "
                       "(mean) / (sample) are the robustness row. Numbers: ",
                       Code(summary["files"]["entanglement_json"]), ".")),
            Paragraph("On the waveform:"), delta_table(delta_columns(summary, "waveform", robustness=True)),
            Paragraph("On log-mel spectrograms:"), delta_table(delta_columns(summary, "mel", robustness=True)),
            Image(run / summary["files"]["entanglement_png"], "entanglement δ")]


def _concentration(summary: dict, run: Path) -> list:
    rc, files = summary["report_config"], summary["files"]
    out = [Heading("Vowel concentration (Fig. 2)", anchor="concentration"),
           Paragraph("A bias-free linear vowel probe per module on time-averaged syllable representations "
                     f"({'z-scored' if rc.get('probe_standardize') else 'raw, not standardised'}); histogram of "
                     "|w| / max |w| per vowel class. Top-10 % mass: share of Σ|w| in the 10 % largest |w| of a "
                     "class; the scale-aware column weighs each |w| by the feature's standard deviation over the "
                     "training syllables (a near-constant μ unit can carry a large weight that moves no logit). The "
                     "KDE figure draws the SIM authors' normalisation, 2 (w − min) / (max − min) − 1 per class."),
           concentration_table([(summary, "")]),
           Image(run / files["concentration_png"], "vowel concentration")]
    if "concentration_kde_png" in files:
        out.append(Image(run / files["concentration_kde_png"], "vowel concentration, signed min-max KDE"))
    return out


def _tsne(summary: dict, run: Path) -> list:
    how = ("flattened C × T syllable features (padded at both ends to 8800 samples), random init, perplexity 30, "
           "learning rate 200, 1000 iterations (thesis §4.2.2)"
           if summary["report_config"].get("tsne_settings") == "thesis"
           else "time-averaged syllable representations, PCA init")
    return [Heading("t-SNE", anchor="tsne"), Paragraph(f"Per module, coloured by vowel: {how}."),
            Image(run / summary["files"]["tsne_png"], "t-SNE")]


def run_blocks(summary: dict) -> list:
    """Every section of one run's report: title and setting, the probes of `sim eval`, decoders (with players),
    latent traversal, interpolation, δ (Table 3), vowel concentration (Fig. 2), t-SNE, then every registered
    analysis (sim_models/analysis/registry.py). The first two blocks are the title and the run's description."""
    run = Path(summary["run"])
    return (_header(summary) + _probes(run) + _decoders(summary, run) + _traversal(summary, run)
            + _interpolation(summary, run) + _delta(summary, run) + _concentration(summary, run)
            + _tsne(summary, run) + sections_of(summary))

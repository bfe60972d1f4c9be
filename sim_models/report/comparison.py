"""The side-by-side section of several runs' reports as page blocks (sim_models/util/document.py): δ and vowel
concentration tables with one column / row group per run, the runs' figures next to each other, and the
interpolation players of every module."""
from __future__ import annotations

from pathlib import Path

from sim_models.analysis.entanglement import delta_table
from sim_models.report.run_page import concentration_table, delta_columns
from sim_models.util.document import Audio, Code, Gallery, Heading, Image, Paragraph, Players

__all__ = ["comparison_blocks", "run_names"]

# (summary "files" key, label): the figures shown side by side, when every run has them
_FIGURES = (("concentration_png", "vowel concentration"), ("tsne_png", "t-SNE"), ("entanglement_png", "δ"),
            ("loss_curves_png", "loss curves"), ("activations_png", "activations"),
            ("active_units_png", "active units"), ("few_labels_png", "few labels"))


def run_names(summaries: list) -> list:
    """One column name per run: the run folders' names, or their paths when two share a name."""
    names = [s["name"] for s in summaries]
    return names if len(set(names)) == len(names) else [s["run"] for s in summaries]


def comparison_blocks(summaries: list) -> list:
    """Side by side: δ on the waveform and on log-mel spectrograms, vowel concentration, the figures every run
    has, and per module the interpolation figure and its all-steps player."""
    names = run_names(summaries)
    title = ("Side by side: ",) + tuple(x for i, n in enumerate(names) for x in ((", ",) if i else ()) + (Code(n),))
    out = [Heading(title, anchor="side-by-side")]
    for space in ("waveform", "mel"):
        cols = {}
        for n, s in zip(names, summaries):
            cols.update(delta_columns(s, space, prefix=f"{n}: "))
        out += [Paragraph(f"Entanglement δ on {'the waveform' if space == 'waveform' else 'log-mel spectrograms'}:"),
                delta_table(cols)]
    out += [Paragraph("Vowel concentration:"),
            concentration_table([(s, f"{n}: ") for n, s in zip(names, summaries)])]
    rows = [(label, tuple(Image(Path(s["run"]) / s["files"][key], f"{n}: {label}") for n, s in zip(names, summaries)))
            for key, label in _FIGURES if all(key in s["files"] for s in summaries)]
    n_modules = min(len(s["modules"]) for s in summaries)
    rows += [(f"interpolation, module {m + 1}",
              tuple(Image(Path(s["run"]) / s["modules"][m]["files"]["interpolation_png"], f"{n}: interpolation")
                    for n, s in zip(names, summaries))) for m in range(n_modules)]
    out.append(Gallery(tuple(names), tuple(rows)))
    for m in range(n_modules):
        out += [Paragraph(f"Interpolation, module {m + 1}, all steps:"),
                Players(tuple(Audio(Path(s["run"]) / s["modules"][m]["files"]["interpolation_wav"], f"{n}: all steps")
                              for n, s in zip(names, summaries)))]
    return out

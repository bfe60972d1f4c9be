"""Few-label generalisation (thesis §4.3, Fig. 4.8): linear probes trained on n labelled syllables per class.

For n in 1, 2, 4, ..., 128 (thesis: "varying between 1 data point per class, all the way up to 128"),
a syllable probe (9 classes) is trained on n train-split syllables per class (all of a class's when
it has fewer), drawn at random per seed, and scored on the whole test split. Otherwise the thesis
protocol (§4.1): flattened C × T features of syllables zero-padded at both ends to 8800 samples,
a linear layer with bias, Adam lr 1e-3, 100 epochs, cross-entropy; the batch is the whole subset
("the batch size is set to the size of the subset"). Repeated over ``seeds``: mean ± std.
"""
from __future__ import annotations

import numpy as np
import torch

from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.util.document import Heading, Image, Paragraph, Table
from sim_models.evaluation.probes import train_probe
from sim_models.evaluation.protocols import summarise_runs

__all__ = ["FEW_LABEL_SIZES", "few_label_indices", "few_label_curve", "plot_few_labels", "compute", "section"]

FEW_LABEL_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)  # thesis §4.3, Fig. 4.8


def few_label_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` random examples of every class present in ``labels`` (S,) (all of a smaller class), sorted."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        picked.append(rng.permutation(idx)[:n])
    return torch.from_numpy(np.sort(np.concatenate(picked)))


def few_label_curve(train_features: list, y_train: torch.Tensor, test_features: list, y_test: torch.Tensor,
                    sizes=FEW_LABEL_SIZES, seeds: int = 3, epochs: int = 100, lr: float = 1e-3,
                    num_classes: int = 9, standardize: bool = False) -> dict:
    """train_features / test_features: [(S, D_m)] per module. Returns {"sizes", "labelled" (examples used
    per size), "modules": [{"mean": [...], "std": [...], "runs": [[per seed] per size]}]} (test accuracy)."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive ints, got {sizes}")
    out = {"sizes": sizes, "labelled": [], "seeds": seeds, "epochs": epochs, "modules": []}
    subsets = {(n, s): few_label_indices(y_train, n, seed=1000 * n + s) for n in sizes for s in range(seeds)}
    out["labelled"] = [len(subsets[(n, 0)]) for n in sizes]
    for xtr, xte in zip(train_features, test_features):
        mod = {"mean": [], "std": [], "runs": []}
        for n in sizes:
            accs = []
            for s in range(seeds):
                idx = subsets[(n, s)]
                r = train_probe(xtr[idx], y_train[idx], xte, y_test, num_classes, epochs, lr, batch_size=len(idx),
                                seed=s, standardize=standardize)
                accs.append(r["test_accuracy"])
            st = summarise_runs(accs)
            mod["mean"].append(st["mean"])
            mod["std"].append(st["std"])
            mod["runs"].append(st["runs"])
        out["modules"].append(mod)
    return out


def plot_few_labels(result: dict, path, names=None, title: str = "", chance: float = 1 / 9):
    """Test accuracy against labelled syllables per class (log2 axis), one line per module, ± std shaded."""
    fig = new_figure(5.2, 3.4)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.88)
    x = np.asarray(result["sizes"])
    for m, mod in enumerate(result["modules"]):
        mean, std = np.asarray(mod["mean"]), np.asarray(mod["std"])
        ax.plot(x, 100 * mean, marker="o", ms=3, label=names[m] if names else f"module {m + 1}")
        ax.fill_between(x, 100 * (mean - std), 100 * (mean + std), alpha=0.2)
    ax.axhline(100 * chance, color="0.5", ls=":", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x)
    ax.set_xticklabels([str(int(v)) for v in x], fontsize=7)
    ax.set_xlabel("labelled syllables per class", fontsize=8)
    ax.set_ylabel("syllable test accuracy (%)", fontsize=8)
    ax.set_ylim(0, 100)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title or f"few-label generalisation (mean ± std over {result['seeds']} seeds)", fontsize=9)
    return save_figure(fig, path)


def compute(ctx) -> dict:
    """Registered analysis (registry.py): syllable probes on few labels (thesis §4.3) -> report/few_labels.png."""
    rcfg = ctx.rcfg
    ctx.log(f"  few-label probes ({len(rcfg.few_label_sizes)} sizes x {rcfg.few_label_seeds} seeds)")
    f_tr, y_tr, f_te, y_te = ctx.features
    fl = few_label_curve(f_tr, y_tr["syllable"], f_te, y_te["syllable"], rcfg.few_label_sizes, rcfg.few_label_seeds,
                         rcfg.few_label_epochs)
    png = plot_few_labels(fl, ctx.out / "few_labels.png", ctx.names,
                          f"{ctx.run.name}: few-label syllable probes (± std over {fl['seeds']} seeds)")
    return {"few_labels": fl, "files": {"few_labels_png": ctx.rel(png)}}


def section(res: dict, names: list, rc: dict) -> list:
    """Thesis §4.3, Fig. 4.8: test accuracy per labelled set size and stage."""
    fl = res["few_labels"]
    rows = tuple((f"{n} ({fl['labelled'][i]} labels)",
                  *(f"{100 * m['mean'][i]:.1f} ± {100 * m['std'][i]:.1f} %" for m in fl["modules"]))
                 for i, n in enumerate(fl["sizes"]))
    return [Heading("Few-label generalisation (thesis §4.3, Fig. 4.8)"),
            Paragraph(f"Syllable probes (thesis protocol: flattened features, {fl['epochs']} epochs, batch = subset) "
                      f"trained on n labelled syllables per class, test accuracy mean ± std over {fl['seeds']} seeds:"),
            Table(("n per class", *names), rows),
            Image(res["files"]["few_labels_png"], "few labels")]

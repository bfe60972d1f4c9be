"""Vowel concentration (the paper's Fig. 2): how many latent dimensions a linear vowel classifier uses.

Per module, a bias-free linear probe ``W x`` (W: (3, C)) is trained on the frozen, time-averaged
syllable representations (Adam, lr 1e-3, 50 epochs, batch 64, cross-entropy: the SIM authors'
``Syllables_Loss`` settings). The paper-faithful input is the *sampled* representation
(representations.py, ``representation="sample"``): the features are raw (not z-scored), and the
training syllables get a fresh ε every epoch (``x_train`` a callable epoch -> features), as the
authors' probe encodes every batch anew with ``get_latents``, which samples. (Their ``ACML-2024``
probe hard-codes ``bias=True``; the paper says bias-free; we follow the paper.)
``standardize=True`` z-scores each dimension with the training split's statistics first (a
weight is then in standard-deviation units; the mean of a barely trained SIM module spreads
~1e-4, on which 50 epochs of Adam at lr 1e-3 never leave the majority class).

Numbers and normalisations of the weights W (K classes × C dims), per module:

* ``normalised``: per class k, |W[k, c]| / max_c |W[k, c]| ∈ [0, 1] (ours; its histogram is concentration.png);
* ``top10_mass``: share of Σ|W| held by the 10 % largest |W[k, c]| of each class, averaged over classes
  (ours: the paper gives no number for Fig. 2);
* ``scaled_top10_mass``: the same on |W[k, c]|·std_c, std_c the feature's standard deviation over the
  training syllables as the probe saw them (epoch 0's draw for samples): a scale-aware weight. On raw
  μ features a near-constant unit can carry a large weight that moves no logit; with samples such a
  unit is unit-variance noise and the two numbers agree more;
* ``frac_above_half``: fraction of normalised weights above 0.5;
* ``signed_minmax``: the SIM authors' normalisation (``density_graphs/generate_histogram_classifier_weights.py``,
  ``ACML-2024``): per class k, 2·(W[k, c] − min_c W[k, c]) / (max_c W[k, c] − min_c W[k, c]) − 1 ∈ [−1, 1];
  ``kde`` is a Gaussian kernel density (scipy.stats.gaussian_kde, Scott's bandwidth) of all K·C of
  these values, the curve their Fig. 2 draws (concentration_kde.png). Concentrated weights put most
  values near the class's median and a few near ±1.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sim_models.analysis.plotting import VOWEL_COLOURS, new_figure, save_figure
from sim_models.evaluation.probes import fit_linear_probes

__all__ = ["train_linear_probe", "vowel_concentration", "vowel_concentrations", "signed_minmax", "weights_kde",
           "top_mass", "plot_concentration", "plot_concentration_kde"]

KDE_GRID = 201


def train_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, bias: bool = False, epochs: int = 50,
                       lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> nn.Linear:
    """A linear classifier on fixed features x (S, C) with labels y (S,) in [0, num_classes)."""
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (S, C) and y (S,), got {tuple(x.shape)} and {tuple(y.shape)}")
    return fit_linear_probes(lambda e: [x], [y], [num_classes], epochs, lr, batch_size, seed, bias=bias)[0]


def signed_minmax(w: torch.Tensor) -> torch.Tensor:
    """w (K, C) -> (K, C) in [−1, 1]: per row k, 2·(w − min_k) / (max_k − min_k) − 1 (the SIM authors' Fig. 2
    normalisation); a constant row maps to 0."""
    lo, hi = w.min(dim=1, keepdim=True).values, w.max(dim=1, keepdim=True).values
    span = hi - lo
    return torch.where(span > 0, 2 * (w - lo) / span.clamp_min(1e-30) - 1, torch.zeros_like(w))


def weights_kde(values, grid=None) -> dict:
    """Gaussian KDE (scipy.stats.gaussian_kde, Scott's rule) of ``values`` (any shape, flattened) on ``grid``
    (default 201 points on [−1.2, 1.2]). Returns {"x": [...], "density": [...]} (density None when the values
    are all equal: no bandwidth)."""
    from scipy.stats import gaussian_kde  # deferred heavy optional import (scipy)
    v = np.asarray(values, dtype=np.float64).ravel()
    x = np.linspace(-1.2, 1.2, KDE_GRID) if grid is None else np.asarray(grid, dtype=np.float64)
    try:
        dens = gaussian_kde(v)(x).tolist() if v.size > 1 and np.ptp(v) > 0 else None
    except np.linalg.LinAlgError:
        dens = None
    return {"x": x.tolist(), "density": dens}


def top_mass(a: torch.Tensor, share: float = 0.1) -> float:
    """a (K, C) non-negative: share of each row's sum held by its ceil(share·C) largest entries, mean over rows."""
    k = max(1, math.ceil(share * a.shape[1]))
    return float((a.topk(k, dim=1).values.sum(1) / a.sum(1).clamp_min(1e-12)).mean())


def _summarise(probe, x_train, y_train, x_test, y_test, bins: int) -> dict:
    with torch.no_grad():
        acc_tr = float((probe(x_train).argmax(1) == y_train).float().mean())
        acc_te = float((probe(x_test).argmax(1) == y_test).float().mean()) if len(y_test) else float("nan")
        w = probe.weight.detach().clone()
    a = w.abs()
    normalised = a / a.max(dim=1, keepdim=True).values.clamp_min(1e-12)
    feature_std = x_train.std(0) if x_train.shape[0] > 1 else torch.zeros(x_train.shape[1])
    counts, edges = np.histogram(normalised.flatten().numpy(), bins=bins, range=(0.0, 1.0))
    smm = signed_minmax(w)
    return {"weights": w, "normalised": normalised, "train_accuracy": acc_tr, "test_accuracy": acc_te,
            "top10_mass": top_mass(a), "scaled_top10_mass": top_mass(a * feature_std.unsqueeze(0)),
            "frac_above_half": float((normalised > 0.5).float().mean()),
            "hist": {"bins": edges.tolist(), "counts": counts.tolist()}, "dim_importance": normalised.max(0).values,
            "feature_std": feature_std, "signed_minmax": smm, "kde": weights_kde(smm.numpy())}


def vowel_concentrations(x_train, y_train, x_test: list, y_test, num_classes: int = 3, epochs: int = 50,
                         lr: float = 1e-3, seed: int = 0, bins: int = 20, standardize: bool = False) -> list:
    """Bias-free vowel probes of P modules trained side by side (each exactly as if alone).

    x_train: a list of P (S, C_p) float tensors, or a callable epoch -> such a list (fresh samples per epoch;
    epoch 0's draw gives the train accuracy, the standardisation statistics and ``feature_std``).
    x_test: P (S', C_p) tensors. y_train (S,), y_test (S',) int64. Returns P vowel_concentration results."""
    draw = x_train if callable(x_train) else (lambda e: x_train)
    x0 = draw(0)
    if len(x0) != len(x_test):
        raise ValueError(f"x_train has {len(x0)} modules, x_test {len(x_test)}")
    norms = []
    for x in x0:
        if standardize:
            mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
            norms.append(lambda v, mean=mean, std=std: (v - mean) / std)
        else:
            norms.append(lambda v: v)
    probes = fit_linear_probes(lambda e: [f(x) for f, x in zip(norms, x0 if e == 0 else draw(e))],
                               [y_train] * len(x0), [num_classes] * len(x0), epochs, lr, 64, seed, bias=False)
    return [_summarise(p, f(xtr), y_train, f(xte), y_test, bins) for p, f, xtr, xte in zip(probes, norms, x0, x_test)]


def vowel_concentration(x_train, y_train, x_test, y_test, num_classes: int = 3, epochs: int = 50, lr: float = 1e-3,
                        seed: int = 0, bins: int = 20, standardize: bool = False) -> dict:
    """Bias-free vowel probe on (S, C) features (x_train: a tensor or a callable epoch -> tensor). Returns
    {"weights": (K, C), "normalised": (K, C), "signed_minmax": (K, C), "kde": {"x", "density"}, "feature_std": (C,),
    "train_accuracy", "test_accuracy", "top10_mass", "scaled_top10_mass", "frac_above_half",
    "hist": {"bins": [bins + 1], "counts": [bins]}, "dim_importance": (C,) max_k normalised weight}."""
    xtr = (lambda e: [x_train(e)]) if callable(x_train) else [x_train]
    return vowel_concentrations(xtr, y_train, [x_test], y_test, num_classes, epochs, lr, seed, bins, standardize)[0]


def plot_concentration_kde(panels, path, title: str = ""):
    """panels: [(module name, {representation: vowel_concentration result})]. One subplot per module: the KDE of
    the signed min-max normalised weights (all K·C values), one curve per representation (the authors' Fig. 2)."""
    n = len(panels)
    fig = new_figure(3.2 * n + 0.4, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.subplots_adjust(left=0.08 / n + 0.04, right=0.98, bottom=0.16, top=0.72, wspace=0.3)
    styles = {"sample": ("tab:blue", "-"), "mean": ("tab:orange", "--")}
    for ax, (name, by_rep) in zip(axes, panels):
        lines = []
        for rep, r in by_rep.items():
            colour, ls = styles.get(rep, ("tab:grey", ":"))
            if r["kde"]["density"] is not None:
                ax.plot(r["kde"]["x"], r["kde"]["density"], color=colour, ls=ls, label=rep)
            lines.append(f"{rep}: top-10% {r['top10_mass']:.2f}, scaled {r['scaled_top10_mass']:.2f}")
        ax.set_title(name + "\n" + "\n".join(lines), fontsize=7)
        ax.set_xlabel("2 (w − min) / (max − min) − 1, per class", fontsize=8)
        for edge in (-1, 1):   # the values lie in [-1, 1]; the kernel spreads the curve beyond
            ax.axvline(edge, color="0.7", ls=":", lw=0.8)
        ax.set_xlim(-1.2, 1.2)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("density (KDE)", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "vowel classifier weights, signed min-max per class", fontsize=10)
    return save_figure(fig, path)


def plot_concentration(panels, path, class_names=("a", "i", "u"), title: str = "", bins: int = 20):
    """panels: [(name, vowel_concentration result)]. One histogram per panel, stacked by vowel class."""
    n = len(panels)
    fig = new_figure(3.2 * n + 0.4, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.subplots_adjust(left=0.08 / n + 0.02, right=0.98, bottom=0.16, top=0.74, wspace=0.3)
    for ax, (name, r) in zip(axes, panels):
        data = [r["normalised"][k].numpy() for k in range(r["normalised"].shape[0])]
        ax.hist(data, bins=bins, range=(0, 1), stacked=True, label=[f"/{c}/" for c in class_names[:len(data)]],
                color=list(VOWEL_COLOURS[:len(data)]))
        ax.set_title(f"{name}\ntop-10% mass {r['top10_mass']:.2f}, acc {100 * r['test_accuracy']:.0f}%", fontsize=8)
        ax.set_xlabel("|w| / max |w|", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("weights", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "vowel classifier weights (bias-free linear probe)", fontsize=10)
    return save_figure(fig, path)

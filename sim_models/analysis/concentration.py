"""Vowel concentration (the paper's Fig. 2): how many latent dimensions a linear vowel classifier uses.

Per module, a bias-free linear probe ``W x`` (W: (3, C)) is trained on the frozen, time-averaged
syllable representations (Adam, lr 1e-3, 50 epochs, cross-entropy, as the accuracy probes).
``standardize=True`` (what `sim report` uses unless ``--probe-raw``) first z-scores each dimension
with the train split's mean and standard deviation, as `sim eval` does: a weight's size is then the
dimension's importance in standard-deviation units whatever its raw scale (GIM/CPC dimensions have
arbitrary scales; the mu of a barely trained SIM module spreads ~1e-4, on which 50 epochs of Adam at
lr 1e-3 never leave the majority class). It also centres the features, which a bias-free probe needs.
``standardize=False`` is the paper's recipe (raw features).

Normalised weights: per vowel class k, |W[k, c]| / max_c |W[k, c]| ∈ [0, 1]. Their histogram (all
3·C entries) shows how the vowel information is spread: many weights near 0 and a few near 1 mean
it is concentrated in a few dimensions. Two summary numbers:

* ``top10_mass``: share of Σ|W| held by the 10 % largest |W[k, c]| of each class (averaged over classes);
* ``frac_above_half``: fraction of normalised weights above 0.5.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .plotting import VOWEL_COLOURS, new_figure, save_figure

__all__ = ["train_linear_probe", "vowel_concentration", "plot_concentration"]


def train_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, bias: bool = False, epochs: int = 50,
                       lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> nn.Linear:
    """A linear classifier on fixed features x (S, C) with labels y (S,) in [0, num_classes)."""
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (S, C) and y (S,), got {tuple(x.shape)} and {tuple(y.shape)}")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = nn.Linear(x.shape[1], num_classes, bias=bias)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(probe(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return probe


def vowel_concentration(x_train, y_train, x_test, y_test, num_classes: int = 3, epochs: int = 50, lr: float = 1e-3,
                        seed: int = 0, bins: int = 20, standardize: bool = False) -> dict:
    """Bias-free vowel probe on (S, C) features. Returns {"weights": (K, C), "normalised": (K, C),
    "train_accuracy", "test_accuracy", "top10_mass", "frac_above_half", "hist": {"bins": [bins + 1], "counts": [bins]},
    "dim_importance": (C,) max_k normalised weight}."""
    if standardize:
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    probe = train_linear_probe(x_train, y_train, num_classes, bias=False, epochs=epochs, lr=lr, seed=seed)
    with torch.no_grad():
        acc_tr = float((probe(x_train).argmax(1) == y_train).float().mean())
        acc_te = float((probe(x_test).argmax(1) == y_test).float().mean()) if len(y_test) else float("nan")
        w = probe.weight.detach().clone()
    a = w.abs()
    normalised = a / a.max(dim=1, keepdim=True).values.clamp_min(1e-12)
    k = max(1, math.ceil(0.1 * w.shape[1]))
    top10 = float((a.topk(k, dim=1).values.sum(1) / a.sum(1).clamp_min(1e-12)).mean())
    counts, edges = np.histogram(normalised.flatten().numpy(), bins=bins, range=(0.0, 1.0))
    return {"weights": w, "normalised": normalised, "train_accuracy": acc_tr, "test_accuracy": acc_te,
            "top10_mass": top10, "frac_above_half": float((normalised > 0.5).float().mean()),
            "hist": {"bins": edges.tolist(), "counts": counts.tolist()}, "dim_importance": normalised.max(0).values}


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

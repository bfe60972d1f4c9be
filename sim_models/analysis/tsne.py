"""t-SNE of syllable representations (time-averaged, frozen) per module, coloured by vowel (scikit-learn).

At most ``max_points`` syllables are embedded (a seeded random subset: t-SNE is O(S²) here);
``random_state=seed``; exact gradients below 300 points (faster there than Barnes-Hut). Settings:

* ``"ours"`` (default): time-averaged features, PCA initialisation, perplexity min(30, (S − 1) / 3),
  scikit-learn's automatic learning rate, ``max_iter`` iterations (1000).
* ``"thesis"`` (V-GIM thesis §4.2.2): flattened C × T features of syllables zero-padded at both
  ends (the caller passes them), random initialisation, perplexity 30, learning rate 200, 1000
  iterations. Perplexity must stay below the number of points: with fewer than 91 it becomes
  (S − 1) / 3.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from sim_models.analysis.plotting import VOWEL_COLOURS, new_figure, save_figure

__all__ = ["TSNE_SETTINGS", "tsne_embedding", "plot_tsne"]

TSNE_SETTINGS = {
    "ours": {"init": "pca", "perplexity": None, "learning_rate": "auto"},
    "thesis": {"init": "random", "perplexity": 30.0, "learning_rate": 200.0, "max_iter": 1000},  # thesis §4.2.2
}


def tsne_embedding(features: torch.Tensor, max_points: int = 800, seed: int = 0, perplexity: float | None = None,
                   max_iter: int = 1000, settings: str = "ours"):
    """features (S, D) -> (embedding (S', 2) numpy, kept indices (S',) numpy), S' = min(S, max_points)."""
    if settings not in TSNE_SETTINGS:
        raise ValueError(f"settings must be one of {tuple(TSNE_SETTINGS)}, got {settings!r}")
    preset = TSNE_SETTINGS[settings]
    from sklearn.manifold import TSNE  # deferred heavy optional import (scikit-learn)

    if features.dim() != 2 or features.shape[0] < 4:
        raise ValueError(f"features must be (S, C) with S >= 4 points for t-SNE, got {tuple(features.shape)}")
    if "max_iter" in preset and max_iter != preset["max_iter"]:
        warnings.warn(f"tsne: settings={settings!r} fixes {preset['max_iter']} iterations (thesis §4.2.2); "
                      f"max_iter={max_iter} is ignored", UserWarning, stacklevel=2)
    s = features.shape[0]
    idx = np.sort(np.random.default_rng(seed).permutation(s)[:max_points]) if s > max_points else np.arange(s)
    x = features[torch.from_numpy(idx)].double().numpy()
    perp = perplexity if perplexity is not None else (preset["perplexity"] or 30.0)
    perp = min(perp, (len(idx) - 1) / 3.0)
    method = "exact" if len(idx) < 300 else "barnes_hut"
    emb = TSNE(n_components=2, perplexity=perp, init=preset["init"], learning_rate=preset["learning_rate"],
               random_state=seed, max_iter=max(250, preset.get("max_iter", max_iter)), method=method).fit_transform(x)
    return emb, idx


def plot_tsne(panels, path, class_names=("a", "i", "u"), title: str = ""):
    """panels: [(name, embedding (S, 2), labels (S,) ints)]. One scatter per panel."""
    n = len(panels)
    fig = new_figure(3.2 * n + 0.4, 3.4)
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.04, top=0.8, wspace=0.08)
    for ax, (name, emb, labels) in zip(axes, panels):
        labels = np.asarray(labels)
        for k, cname in enumerate(class_names):
            sel = labels == k
            if sel.any():
                ax.scatter(emb[sel, 0], emb[sel, 1], s=5, color=VOWEL_COLOURS[k % len(VOWEL_COLOURS)], label=f"/{cname}/")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, markerscale=2)
    fig.suptitle(title or "t-SNE of syllable representations, coloured by vowel", fontsize=10)
    return save_figure(fig, path)

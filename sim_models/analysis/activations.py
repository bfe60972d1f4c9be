"""Distributions of the first dimensions of every module's output on the test split (thesis Figs 4.4-4.7).

The thesis plots, per module, histograms of the latent points of the first six dimensions and reads
them against the N(0, 1) prior (V-GIM: near standard normal; GIM: tall thin peaks from sigma ~ 0).
Its latent points are the modules' outputs, i.e. samples z = mu + sigma * eps for probabilistic modules:
``representation="sample"`` (default) draws them through every module (sim_models/model/encode.py,
seeded); ``"mean"`` uses mu. Deterministic modules (GIM, CPC, the GRU) give their output either way.
Every frame of every test utterance is a point.
"""
from __future__ import annotations

import numpy as np
import torch

from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.util.document import Heading, Image, Paragraph
from sim_models.model.encode import encode_batches

__all__ = ["THESIS_DIMS", "activation_values", "plot_activations", "compute", "section"]

THESIS_DIMS = 6  # thesis §4.2.4: "the first six dimensions"


@torch.no_grad()
def activation_values(model, audio: torch.Tensor, dims: int = THESIS_DIMS, representation: str = "sample",
                      seed: int = 0, batch_size: int = 32) -> list:
    """audio (N, L) -> [(N·T_m, min(dims, C_m)) float tensor] per module: the first ``dims`` channels of every frame."""
    if representation not in ("sample", "mean"):
        raise ValueError(f"representation must be 'sample' or 'mean', got {representation!r}")
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    if dims < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    pick = (lambda o: o.z) if representation == "sample" else (lambda o: o.representation)
    vals = encode_batches(model, audio, batch_size, representation, torch.Generator().manual_seed(seed),
                          take=lambda o: pick(o)[..., :dims].reshape(-1, min(dims, o.z.shape[-1])))
    return [v.float() for v in vals]


def plot_activations(values: list, path, names=None, probabilistic=None, title: str = "", bins: int = 60):
    """Rows = modules, columns = dimensions: density histograms, with the N(0, 1) prior's density (grey)
    on probabilistic modules. values: [(P, D_m)] as from ``activation_values``."""
    if not values:
        raise ValueError("values is empty")
    cols = max(v.shape[1] for v in values)
    rows = len(values)
    fig = new_figure(1.9 * cols + 0.6, 1.7 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.06, top=1 - 0.5 / (1.7 * rows + 0.7), hspace=0.55, wspace=0.3)
    for m, v in enumerate(values):
        x = v.numpy()
        for d in range(cols):
            ax = axes[m, d]
            if d >= x.shape[1]:
                ax.set_axis_off()
                continue
            col = x[:, d]
            lo, hi = float(np.min(col)), float(np.max(col))
            if probabilistic and probabilistic[m]:
                lo, hi = min(lo, -4.0), max(hi, 4.0)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            ax.hist(col, bins=bins, range=(lo, hi), density=True, color="tab:blue", alpha=0.8)
            if probabilistic and probabilistic[m]:
                t = np.linspace(lo, hi, 200)
                ax.plot(t, np.exp(-0.5 * t ** 2) / np.sqrt(2 * np.pi), color="0.4", lw=1)
            ax.set_title(f"dim {d}  (μ {col.mean():.2g}, σ {col.std():.2g})", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[m, 0].set_ylabel(names[m] if names else f"module {m + 1}", fontsize=8)
    fig.suptitle(title or "activation distributions, first dimensions, test split", fontsize=10)
    return save_figure(fig, path)


def compute(ctx) -> dict:
    """Registered analysis (registry.py): report/activations.png and per-stage mean / std of the first dimensions."""
    rcfg = ctx.rcfg
    ctx.log("  activation distributions, active units")
    vals = activation_values(ctx.run.model, ctx.test_audio[:rcfg.activation_utterances], THESIS_DIMS,
                             rcfg.activation_representation, seed=rcfg.seed)
    prob = [bool(getattr(st, "probabilistic", False)) for st in ctx.run.model.stages]
    png = plot_activations(vals, ctx.out / "activations.png", ctx.names, prob,
                           f"{ctx.run.name}: first {THESIS_DIMS} dimensions on the test split "
                           f"({rcfg.activation_representation}s)")
    return {"activations": [{"mean": v.mean(0).tolist(), "std": v.std(0).tolist(), "points": v.shape[0]} for v in vals],
            "files": {"activations_png": ctx.rel(png)}}


def section(res: dict, names: list, rc: dict) -> list:
    """Thesis Figs 4.4-4.7."""
    return [Heading("Activation distributions (thesis Figs 4.4–4.7)"),
            Paragraph(f"First six dimensions of every module's output ({rc.get('activation_representation', 'sample')}s) "
                      f"over every frame of {rc.get('activation_utterances', 64)} test utterances; grey: the N(0, 1) "
                      "prior."),
            Image(res["files"]["activations_png"], "activations")]

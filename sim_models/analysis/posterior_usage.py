"""Per-dimension KL to the prior and active units of every probabilistic module on the test split.

Uses sim_models/analysis/active_units.py. Active units are reported by both criteria: mean KL to
N(0, 1) above 0.01 nats (``active_kl``), and Burda, Grosse & Salakhutdinov 2016's variance over the data
of the posterior mean, Var_x[mu] > 0.01 (``active_variance``). mu and log sigma^2 come from
``StageOutput`` (model in eval mode) for every frame of at most ``max_utterances`` test utterances.
Deterministic modules (GIM, CPC, the GRU) have no posterior: their row says so.
"""
from __future__ import annotations

import numpy as np
import torch

from sim_models.analysis.active_units import (ACTIVE_THRESHOLD, active_units, kl_per_dimension,
                                              mean_variance_per_dimension)
from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.util.document import Heading, Image, Paragraph, Table
from sim_models.model.encode import encode_batches

__all__ = ["encode_posteriors", "posterior_usage", "plot_active_units", "compute", "section"]


def encode_posteriors(model, audio: torch.Tensor, batch_size: int = 16) -> list:
    """audio (N, L) -> per stage (mu, logvar), each (N, T_m, C_m), model in eval mode; None for a deterministic
    stage (no posterior)."""
    return encode_batches(model, audio, batch_size,
                          take=lambda o: None if o.mu is None or o.logvar is None else (o.mu, o.logvar))


@torch.no_grad()
def posterior_usage(model, audio: torch.Tensor, max_utterances: int = 64, batch_size: int = 16) -> list:
    """audio (N, L) -> one dict per module: {"probabilistic", "width" (C), "kl_per_dim" (C floats, nats: mean
    over utterances and frames), "var_mu_per_dim" (C floats: Var_x[mu] over utterances and frames),
    "kl_total" (nats per frame, summed over dimensions), "active_kl" (KL > 0.01 nats), "active_variance"
    (Var_x[mu] > 0.01)}; everything but probabilistic and width None for a deterministic module."""
    if audio.dim() != 2:
        raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
    posteriors = encode_posteriors(model, audio[:max_utterances], batch_size)
    rows = []
    for m, post in enumerate(posteriors):
        width = int(model.stages[m].out_channels)
        if post is None:
            rows.append({"probabilistic": False, "width": width, "kl_per_dim": None, "var_mu_per_dim": None,
                         "kl_total": None, "active_kl": None, "active_variance": None})
            continue
        mu, lv = post
        kl = kl_per_dimension(mu, lv)
        rows.append({"probabilistic": True, "width": width, "kl_per_dim": kl.tolist(),
                     "var_mu_per_dim": mean_variance_per_dimension(mu).tolist(), "kl_total": float(kl.sum()),
                     "active_kl": active_units(mu, lv, "kl"), "active_variance": active_units(mu, lv, "variance")})
    return rows


def plot_active_units(rows: list, path, names=None, title: str = ""):
    """Per probabilistic module: its dimensions' mean KL (nats, log scale), sorted, with the 0.01-nat threshold;
    the title gives the active units by both criteria (KL > 0.01 nats; Var_x[mu] > 0.01)."""
    panels = [(m, r) for m, r in enumerate(rows) if r["probabilistic"]]
    n = max(1, len(panels))
    fig = new_figure(3.3 * n + 0.4, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.8, wspace=0.3)
    if not panels:
        axes[0].text(0.5, 0.5, "no probabilistic module\n(no posterior, no KL)", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (m, r) in zip(axes, panels):
        kl = np.sort(np.asarray(r["kl_per_dim"]))[::-1]
        ax.bar(np.arange(len(kl)), np.maximum(kl, 1e-6), width=1.0,
               color=["tab:blue" if k > ACTIVE_THRESHOLD else "0.6" for k in kl])
        ax.axhline(ACTIVE_THRESHOLD, color="tab:red", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("dimension (sorted by KL)", fontsize=8)
        name = names[m] if names else f"module {m + 1}"
        var = "" if r.get("active_variance") is None else f", {r['active_variance']} by Var[μ]"
        ax.set_title(f"{name}: {r['active_kl']} of {r['width']} active by KL{var}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("mean KL to N(0, 1) (nats)", fontsize=8)
    fig.suptitle(title or "per-dimension KL and active units (red: 0.01 nats)", fontsize=10)
    return save_figure(fig, path)


def compute(ctx) -> dict:
    """Registered analysis (registry.py): per-dimension KL and active units -> report/active_units.png."""
    usage = posterior_usage(ctx.run.model, ctx.test_audio, max_utterances=ctx.rcfg.activation_utterances)
    png = plot_active_units(usage, ctx.out / "active_units.png", ctx.names,
                            f"{ctx.run.name}: per-dimension KL, active units")
    return {"active_units": usage, "files": {"active_units_png": ctx.rel(png)}}


def section(res: dict, names: list, rc: dict) -> list:
    """The active units per stage by both criteria, and the KL per frame."""
    rows = []
    for name, r in zip(names, res["active_units"]):
        if not r["probabilistic"]:
            rows.append((name, r["width"], "– (deterministic)", "–", "–"))
        else:
            rows.append((name, r["width"], r["active_kl"], r["active_variance"], f"{r['kl_total']:.3g}"))
    return [Heading("Posterior usage: per-dimension KL and active units"),
            Paragraph("Mean KL(N(μ, σ²) ‖ N(0, 1)) per dimension over the test frames; an active unit has KL > 0.01 "
                      "nats (or, Burda et al. 2016, Var[μ] > 0.01). Few active units = posterior collapse."),
            Table(("module", "C", "active units (KL > 0.01 nats)", "active units (Var[μ] > 0.01)",
                   "KL per frame (nats)"), tuple(rows)),
            Image(res["files"]["active_units_png"], "active units")]

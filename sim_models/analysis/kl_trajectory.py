"""The per-unit KL over training, and the epoch from which it stops moving: how long a SIM run must train.

Smooth InfoMax's mechanism (paper §3.2) acts through the KL term: units that carry nothing the InfoNCE needs are
pushed to the prior N(0, 1). Whether a budget trained long enough for that to happen is read from the
per-unit KL (mean KL of each latent dimension to N(0, 1) over the test split's frames, nats;
analysis/active_units.py) at every snapshot of a run (``train.snapshot_every``, rundir/snapshots.py).

Movement of module m at epoch e, over a window of w epochs, with k_e the per-unit KL vector (C,)::

    movement_m(e) = sum_c |k_e[c] - k_{e-w}[c]| / max(sum_c k_{e-w}[c], 1e-12)

(the relative L1 change of the vector: a unit that moves counts even when another moves the other way).
The run's KL has *settled* at the first measured epoch e from which movement_m(e') <= tolerance for every
probabilistic module m and every measured e' >= e; it has not settled (None) when the last measured movement
is above the tolerance. Rule fixed in advance: w = 5 epochs, tolerance 5 % (``SETTLE_WINDOW``,
``SETTLE_TOLERANCE``). An epoch is measured when the snapshots of it and of w epochs earlier exist.
"""
from __future__ import annotations

import numpy as np
import torch

from sim_models.analysis.active_units import ACTIVE_THRESHOLD
from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.analysis.posterior_usage import posterior_usage
from sim_models.rundir.snapshots import list_snapshots, load_snapshot_model
from sim_models.util.document import Heading, Image, Paragraph, Table

__all__ = ["SETTLE_WINDOW", "SETTLE_TOLERANCE", "unit_kl_trajectory", "kl_movement", "settling_epoch",
           "plot_kl_trajectory", "trajectory_table", "compute", "section"]

SETTLE_WINDOW = 5        # epochs
SETTLE_TOLERANCE = 0.05  # relative L1 change of the per-unit KL over the window


@torch.no_grad()
def unit_kl_trajectory(run_dir, audio: torch.Tensor, max_utterances: int = 64, batch_size: int = 16) -> dict:
    """The per-unit KL of every probabilistic module at every snapshot of ``run_dir``.

    audio: (N, L) float waveforms (the test split), the first ``max_utterances`` used.
    Returns {"epochs": [e, ...] (snapshot epochs, ascending), "modules": [{"module": m (0-based stage index),
    "width": C, "kl": [[C floats, nats] per epoch], "active_kl": [int per epoch] (KL > 0.01 nats),
    "active_variance": [int per epoch] (Var_x[mu] > 0.01)}, ...] (probabilistic modules only)}.
    Raises FileNotFoundError when the run has no snapshots (train it with train.snapshot_every=N), ValueError
    for a sequential-mode run (its units' snapshots are separate trajectories) or a run without a
    probabilistic module.
    """
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise FileNotFoundError(f"run_dir {run_dir} has no snapshots/epoch_*.pt: train it with train.snapshot_every=N")
    if any(s.unit is not None for s in snaps):
        raise ValueError(f"run_dir {run_dir} was trained in sequential mode: its units' snapshots are separate "
                         "trajectories, not one")
    epochs, modules = [], {}
    for snap in snaps:
        rows = posterior_usage(load_snapshot_model(run_dir, snap), audio, max_utterances, batch_size)
        epochs.append(snap.epoch)
        for m, r in enumerate(rows):
            if not r["probabilistic"]:
                continue
            entry = modules.setdefault(m, {"module": m, "width": r["width"], "kl": [], "active_kl": [],
                                           "active_variance": []})
            entry["kl"].append(r["kl_per_dim"])
            entry["active_kl"].append(r["active_kl"])
            entry["active_variance"].append(r["active_variance"])
    if not modules:
        raise ValueError(f"run_dir {run_dir} has no probabilistic module: no KL to follow")
    return {"epochs": epochs, "modules": [modules[m] for m in sorted(modules)]}


def kl_movement(trajectory: dict, window: int = SETTLE_WINDOW) -> dict:
    """{module index: [(epoch, movement), ...]} for every epoch whose snapshot ``window`` epochs earlier exists
    (movement: the relative L1 change of the per-unit KL vector; module docstring)."""
    if window < 1:
        raise ValueError(f"window must be >= 1 epoch, got {window}")
    row_of = {e: i for i, e in enumerate(trajectory["epochs"])}
    out = {}
    for mod in trajectory["modules"]:
        kl = np.asarray(mod["kl"], dtype=np.float64)
        out[mod["module"]] = [(e, float(np.abs(kl[i] - kl[row_of[e - window]]).sum()
                                     / max(kl[row_of[e - window]].sum(), 1e-12)))
                              for e, i in row_of.items() if e - window in row_of]
    return out


def settling_epoch(trajectory: dict, window: int = SETTLE_WINDOW, tolerance: float = SETTLE_TOLERANCE):
    """The first measured epoch from which every probabilistic module's movement stays <= ``tolerance``; None when
    the last measured movement of some module is above it, or nothing could be measured (fewer than window + 1
    epochs of snapshots)."""
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    moves = kl_movement(trajectory, window)
    measured = sorted({e for series in moves.values() for e, _ in series})
    if not measured:
        return None
    worst = {e: max(v for series in moves.values() for ep, v in series if ep == e) for e in measured}
    settled = None
    for e in reversed(measured):
        if worst[e] > tolerance:
            break
        settled = e
    return settled


def trajectory_table(trajectory: dict, window: int = SETTLE_WINDOW) -> tuple:
    """(header, rows) per epoch: summed KL (nats per frame), active units by KL and the movement of each module."""
    moves = {m: dict(series) for m, series in kl_movement(trajectory, window).items()}
    header = ["epoch"]
    for mod in trajectory["modules"]:
        n = mod["module"] + 1
        header += [f"m{n} KL (nats)", f"m{n} active", f"m{n} movement"]
    rows = []
    for i, e in enumerate(trajectory["epochs"]):
        row = [str(e)]
        for mod in trajectory["modules"]:
            mv = moves[mod["module"]].get(e)
            row += [f"{sum(mod['kl'][i]):.2f}", f"{mod['active_kl'][i]}/{mod['width']}",
                    "–" if mv is None else f"{100 * mv:.1f} %"]
        rows.append(row)
    return header, rows


def plot_kl_trajectory(trajectory: dict, path, window: int = SETTLE_WINDOW, tolerance: float = SETTLE_TOLERANCE,
                       title: str = ""):
    """Per probabilistic module: a heat map of every unit's KL over the epochs (units sorted by their last KL,
    log colour scale; units under 0.01 nats are at the prior) above the movement curve with the tolerance and the
    settling epoch."""
    # deferred heavy optional import (matplotlib, the `models` extra): the analyses import cheaply
    from matplotlib.colors import LogNorm

    mods, epochs = trajectory["modules"], np.asarray(trajectory["epochs"])
    moves, settled = kl_movement(trajectory, window), settling_epoch(trajectory, window, tolerance)
    fig = new_figure(3.4 * len(mods) + 0.8, 5.2)
    axes = fig.subplots(2, len(mods), squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    fig.subplots_adjust(left=0.08, right=0.93, bottom=0.1, top=0.86, wspace=0.3, hspace=0.35)
    image = None
    for j, mod in enumerate(mods):
        kl = np.asarray(mod["kl"], dtype=np.float64)
        order = np.argsort(kl[-1])[::-1]
        image = axes[0, j].imshow(np.maximum(kl[:, order].T, 1e-4), aspect="auto", origin="upper", cmap="viridis",
                                  norm=LogNorm(vmin=1e-3, vmax=max(10.0, kl.max())), interpolation="nearest",
                                  extent=(epochs[0] - 0.5, epochs[-1] + 0.5, kl.shape[1] - 0.5, -0.5))
        axes[0, j].set_title(f"module {mod['module'] + 1}: {mod['active_kl'][-1]}/{mod['width']} units active "
                             f"at epoch {epochs[-1]}", fontsize=8)
        axes[0, j].set_ylabel("unit (sorted by last KL)", fontsize=8)
        series = moves[mod["module"]]
        ax = axes[1, j]
        if series:
            ax.plot([e for e, _ in series], [max(v, 1e-4) for _, v in series], color="tab:blue", lw=1.2)
        ax.axhline(tolerance, color="tab:red", ls="--", lw=1, label=f"tolerance {100 * tolerance:.0f} %")
        if settled is not None:
            ax.axvline(settled, color="k", ls=":", lw=1, label=f"settled: epoch {settled}")
        ax.set_yscale("log")
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(f"relative change over {window} epochs", fontsize=8)
        ax.legend(fontsize=7)
        for a in axes[:, j]:
            a.tick_params(labelsize=7)
    cbar = fig.colorbar(image, ax=list(axes[0]), fraction=0.03, pad=0.02)
    cbar.set_label("mean KL to N(0, 1) (nats)", fontsize=8)
    verdict = f"settled at epoch {settled}" if settled is not None else "not settled by the last snapshot"
    fig.suptitle(title or f"per-unit KL over training (active: > {ACTIVE_THRESHOLD} nats): {verdict}", fontsize=10)
    return save_figure(fig, path)


def compute(ctx) -> dict:
    """Registered analysis (registry.py): the trajectory when the run has snapshots and a probabilistic module ->
    report/kl_trajectory.png; {"kl_trajectory": None} otherwise (nothing to follow)."""
    snaps = list_snapshots(ctx.run.run_dir)
    if not snaps or any(s.unit is not None for s in snaps) or not any(
            getattr(stage, "probabilistic", False) for stage in ctx.run.model.stages):
        return {"kl_trajectory": None}
    traj = unit_kl_trajectory(ctx.run.run_dir, ctx.test_audio, max_utterances=ctx.rcfg.activation_utterances)
    settled = settling_epoch(traj)
    png = plot_kl_trajectory(traj, ctx.out / "kl_trajectory.png")
    ctx.log(f"  per-unit KL over {len(traj['epochs'])} snapshots: "
            + (f"settled at epoch {settled}" if settled is not None else "not settled"))
    return {"kl_trajectory": dict(traj, settled_epoch=settled, window=SETTLE_WINDOW, tolerance=SETTLE_TOLERANCE),
            "files": {"kl_trajectory_png": ctx.rel(png)}}


def section(res: dict, names: list, rc: dict) -> list:
    """The settling epoch, the table at every snapshot and the figure; [] for a run without snapshots."""
    traj = res.get("kl_trajectory")
    if not traj:
        return []
    settled, last = traj["settled_epoch"], traj["epochs"][-1]
    verdict = (f"The per-unit KL settled at epoch {settled} of {last}" if settled is not None else
               f"The per-unit KL had not settled by epoch {last}: train longer")
    header, rows = trajectory_table(traj, traj["window"])
    return [Heading("Per-unit KL over training"),
            Paragraph(f"{verdict} (settled: every probabilistic module's per-unit KL changes by at most "
                      f"{100 * traj['tolerance']:.0f} % (relative L1) over {traj['window']} epochs from then on; "
                      "rule fixed in advance). KL to N(0, 1) per unit on the test frames at every weight snapshot "
                      "(train.snapshot_every)."),
            Table(tuple(header), tuple(tuple(r) for r in rows)),
            Image(res["files"]["kl_trajectory_png"], "per-unit KL over training")]

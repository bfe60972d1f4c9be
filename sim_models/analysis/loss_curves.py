"""Train and validation loss per module per epoch from a run's metrics log (thesis Fig. 4.2).

The run log (sim_models/rundir/logs.py) has one row per (logged step, module) with the fields step, unit,
epoch, module, loss, nce, kl, accuracy, lr. Validation rows are read in either of two shapes:

* rows with a field ``split`` == "val" (the other fields as above; rows without ``split``, or with
  "train", are training rows), or
* training rows that carry a column ``val_loss`` (empty where not measured).

``metrics.jsonl`` is read when present, else ``metrics.csv`` (sim_models/rundir/logs.py: ``read_metric_rows``).
The trainer (sim_models/training/trainer.py) logs the first shape: one "val" row per module at each epoch end,
the mean over the test split. Each curve point is the mean of the module's rows in that epoch (epochs as
logged, 0-based; plotted 1-based).
"""
from __future__ import annotations

import math
from collections import defaultdict

from sim_models.analysis.plotting import new_figure, save_figure
from sim_models.util.document import Heading, Image, Paragraph
from sim_models.rundir.logs import read_metric_rows

__all__ = ["epoch_curves", "plot_loss_curves", "compute", "section"]

VAL_SPLITS = ("val", "validation")



def epoch_curves(rows) -> dict:
    """{module (int, 0-based): {"train": [(epoch, mean loss)], "val": [(epoch, mean loss)]}}, epochs sorted."""
    acc = defaultdict(lambda: {"train": defaultdict(list), "val": defaultdict(list)})
    for r in rows:
        if r.get("module") is None or r.get("epoch") is None:
            continue
        m, e = int(r["module"]), int(r["epoch"])
        split = str(r.get("split") or "train").lower()
        loss = r.get("loss")
        if split in VAL_SPLITS:
            if isinstance(loss, float) and math.isfinite(loss):
                acc[m]["val"][e].append(loss)
            continue
        if isinstance(loss, float) and math.isfinite(loss):
            acc[m]["train"][e].append(loss)
        vl = r.get("val_loss")
        if isinstance(vl, float) and math.isfinite(vl):
            acc[m]["val"][e].append(vl)
    return {m: {s: [(e, sum(v) / len(v)) for e, v in sorted(per[s].items())] for s in ("train", "val")}
            for m, per in sorted(acc.items())}


def plot_loss_curves(curves: dict, path, names=None, title: str = ""):
    """One panel per module: training loss (solid) and validation loss (dashed, when logged) per epoch."""
    from matplotlib.ticker import MaxNLocator  # deferred heavy optional import (matplotlib)
    mods = sorted(curves)
    if not mods:
        raise ValueError("curves is empty: the metrics log has no rows with module, epoch and loss")
    n = len(mods)
    fig = new_figure(3.3 * n + 0.4, 3.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.8, wspace=0.3)
    for ax, m in zip(axes, mods):
        for split, style in (("train", "-"), ("val", "--")):
            pts = curves[m][split]
            if pts:
                ax.plot([e + 1 for e, _ in pts], [v for _, v in pts], style, marker="o", ms=2.5, label=split)
        ax.set_title(names[m] if names and m < len(names) else f"module {m + 1}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)  # a flat curve reads as its values, not as "+2.398"
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("loss", fontsize=8)
    fig.suptitle(title or "training and validation loss per module", fontsize=10)
    return save_figure(fig, path)


def compute(ctx) -> dict:
    """Registered analysis (registry.py): loss per stage per epoch from the run's log -> report/loss_curves.png.
    {"loss_curves": {stage: curves}, "files": {"loss_curves_png"}}; no figure when the run has no log."""
    try:
        curves = epoch_curves(read_metric_rows(ctx.run.run_dir))
    except FileNotFoundError as e:
        ctx.log(f"  loss curves skipped: {e}")
        curves = {}
    res = {"loss_curves": {str(m): c for m, c in curves.items()}, "files": {}}
    if curves:
        res["files"]["loss_curves_png"] = ctx.rel(plot_loss_curves(curves, ctx.out / "loss_curves.png", ctx.names,
                                                                   f"{ctx.run.name}: loss per module per epoch"))
    return res


def section(res: dict, names: list, rc: dict) -> list:
    """Thesis Fig. 4.2: the figure, or a line saying the run has no log."""
    out = [Heading("Training and validation loss (thesis Fig. 4.2)", anchor="thesis")]
    if "loss_curves_png" not in res["files"]:
        return out + [Paragraph("No metrics log in the run folder.")]
    has_val = any(c["val"] for c in res["loss_curves"].values())
    return out + [Paragraph("Mean loss of each module's logged steps per epoch"
                            f"{'' if has_val else ' (no validation rows in the log)'}."),
                  Image(res["files"]["loss_curves_png"], "loss curves")]

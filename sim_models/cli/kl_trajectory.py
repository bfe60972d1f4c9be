"""`sim kl-trajectory RUN_DIR [--data DIR] [--window 5] [--tolerance 0.05]`

the per-unit KL at every snapshot of a run, and the epoch from which it stops moving

Reads RUN_DIR/snapshots/ (a run trained with train.snapshot_every=N), computes every probabilistic module's
per-unit KL to N(0, 1) on the test split at each snapshot, prints a table per epoch (summed KL, active units,
movement) and the settling epoch (sim_models/analysis/kl_trajectory.py), and writes
RUN_DIR/report/kl_trajectory.json and kl_trajectory.png.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sim_models.analysis.kl_trajectory import (SETTLE_TOLERANCE, SETTLE_WINDOW, plot_kl_trajectory, settling_epoch,
                                               trajectory_table, unit_kl_trajectory)
from sim_models.cli.common import add_command, set_threads
from sim_models.config import load_config
from sim_models.data.datasets import SyllableDataset
from sim_models.rundir.run_info import resolve_data
from sim_models.util.atomic_write import atomic_write_json
from sim_models.util.document import Table, to_markdown

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    k = add_command(subparsers, "kl-trajectory", __doc__)
    k.add_argument("run", metavar="RUN_DIR", help="a `sim train --out` folder trained with train.snapshot_every=N")
    k.add_argument("--data", help="a `sim data` folder (default: the data the run was trained on)")
    k.add_argument("--window", type=int, default=SETTLE_WINDOW, help="epochs between the compared snapshots")
    k.add_argument("--tolerance", type=float, default=SETTLE_TOLERANCE,
                   help="largest relative L1 change of the per-unit KL over the window that counts as settled")
    k.add_argument("--max-utterances", type=int, default=64, help="test utterances the KL is averaged over")
    k.add_argument("--threads", type=int, default=0)
    k.set_defaults(func=run)


def run(a) -> int:
    set_threads(a.threads)
    try:
        data = resolve_data(a.run, a.data)
        cfg = load_config(Path(a.run) / "config.yaml")
        audio = SyllableDataset(data, "test", cfg.data.sample_rate, cfg.data.length).audio
        trajectory = unit_kl_trajectory(a.run, audio, a.max_utterances)
        settled = settling_epoch(trajectory, a.window, a.tolerance)
    except (ValueError, FileNotFoundError) as e:
        print(f"sim kl-trajectory: error: {e}", file=sys.stderr)
        return 2
    out = Path(a.run) / "report"
    header, rows = trajectory_table(trajectory, a.window)
    print(to_markdown([Table(header, rows)], out))
    last = trajectory["epochs"][-1]
    print(f"settled at epoch {settled}" if settled is not None else
          f"not settled by epoch {last}: the last movement is above {100 * a.tolerance:g} %")
    atomic_write_json(out / "kl_trajectory.json", dict(trajectory, settled_epoch=settled, window=a.window,
                                                       tolerance=a.tolerance))
    print(f"wrote {plot_kl_trajectory(trajectory, out / 'kl_trajectory.png', a.window, a.tolerance)}")
    return 0

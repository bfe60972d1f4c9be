"""`sim tune-beta --config NAME --data DIR --out DIR [--betas B ...] [--epochs E] [section.key=value ...]`

β search: short runs over a grid; under-training told apart from posterior collapse; the largest β that passes

Trains one short run per β (OUT/beta_<β>/), measures held-out NCE accuracy and active units (KL > 0.01 nats and
Var[μ] > 0.01) per module, labels each β 'ok', 'did not learn', 'collapsed' or both, shows the price per nat of
every module, and picks the largest β that passes with every smaller β (rules: docs/beta_search.md,
sim_models/experiments/beta_search.py). Writes OUT/sweep.json and OUT/sweep.png. Rerunning skips the β values
already measured.
"""
from __future__ import annotations

from sim_models.cli.common import add_command, set_threads
from sim_models.experiments.beta_search import CollapseRule, DEFAULT_BETAS, DEFAULT_EPOCHS, sweep_table, tune_beta

__all__ = ["add_parser", "run_tune_beta"]



def add_parser(subparsers):
    b = add_command(subparsers, "tune-beta", __doc__)
    b.add_argument("--config", default="tiny", help="sim-paper | vgim-thesis | tiny | path.yaml (probabilistic modules)")
    b.add_argument("--data", required=True, help="a `sim data` folder (train split to train, test split to measure)")
    b.add_argument("--out", required=True, help="sweep folder")
    b.add_argument("--betas", type=float, nargs="+", default=None, metavar="B",
                   help="the grid (default: for kl_reduction='time' 0, the paper's 0.01 and 0.01*C/512 times 0.1, "
                        "0.3, 1, 3 (C: the config's width); for 'dims' " + " ".join(f"{x:g}" for x in DEFAULT_BETAS)
                        + ")")
    b.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs per run (default {DEFAULT_EPOCHS})")
    b.add_argument("--min-accuracy-gain", type=float, default=0.05,
                   help="'did not learn' if held-out NCE accuracy < chance + this share of (1 - chance) "
                        "(default 0.05)")
    b.add_argument("--min-active-units", type=int, default=1,
                   help="'collapsed' if a probabilistic module keeps fewer units with KL > 0.01 nats (default 1)")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("overrides", nargs="*", help="section.key=value applied to every run, e.g. train.max_steps=50 (put them before --betas, "
                        "or after `--`)")
    b.set_defaults(func=run_tune_beta)
    return b


def run_tune_beta(args) -> int:
    set_threads(args.threads)
    rule = CollapseRule(min_accuracy_gain=args.min_accuracy_gain, min_active_units=args.min_active_units)
    sweep = tune_beta(args.config, args.data, args.out, args.betas, args.epochs, args.overrides, rule,
                      progress=not args.no_progress)
    print()
    print(sweep_table(sweep))
    print(f"\nwrote {args.out}/sweep.json and {sweep['plot']}")
    return 0

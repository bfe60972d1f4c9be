"""The `sim` parser: one sub-command per file of this folder, listed in ``COMMANDS``.

    sim data      --out DIR | --import DIR --out OUT          (cli/data.py)
    sim train     --config NAME|FILE --data DIR --out RUN_DIR  (cli/train.py)
    sim eval      --run RUN_DIR [--protocol ...]               (cli/eval.py)
    sim demo      --out DIR                                    (cli/demo.py)
    sim report    RUN_DIR [RUN_DIR ...]                        (cli/report.py)
    sim kl-trajectory RUN_DIR                                  (cli/kl_trajectory.py)
    sim tune-beta --config NAME --data DIR --out DIR           (cli/tune_beta.py)
    sim reproduce --budget tiny|cpu|paper --data DIR --out DIR (cli/reproduce.py)

A new sub-command is one file with ``add_parser(subparsers)`` (its handler set with ``set_defaults(func=...)``)
plus its line in ``COMMANDS``.
"""
from __future__ import annotations

import argparse

from sim_models.cli import data, demo, eval as eval_cmd, kl_trajectory, report, reproduce, train, tune_beta

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = (data, train, eval_cmd, demo, report, kl_trajectory, tune_beta, reproduce)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sim", description="Smooth InfoMax / GIM / CPC: data, training, evaluation")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]) and run the sub-command; returns its exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)

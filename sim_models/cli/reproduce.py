"""`sim reproduce --budget tiny|cpu|cpu-long|paper --data DIR --out DIR [--seeds N] [--jobs N]`

the paper's comparison in one command: β search, SIM/GIM/CPC/supervised/random init, probes, analyses, verdicts,
one report

Runs (or resumes) every step of the reproduction (sim_models/experiments/reproduce/pipeline.py); each step's
result is stored under OUT/steps/ and skipped on a rerun. Writes OUT/report.html and OUT/report.md. Budgets:
docs/reproduce.md.
"""
from __future__ import annotations

import sys

from sim_models.cli.common import add_command
from sim_models.experiments.reproduce.budgets import BUDGETS, get_budget
from sim_models.experiments.reproduce.pipeline import reproduce
from sim_models.report.reproduce import verdict_table_text

__all__ = ["add_parser", "run_reproduce"]



def add_parser(subparsers):
    r = add_command(subparsers, "reproduce", __doc__)
    r.add_argument("--budget", choices=tuple(BUDGETS), default="tiny")
    r.add_argument("--data", required=True, help="a `sim data` folder; synthesised here when it holds no metadata.json")
    r.add_argument("--out", required=True, help="output folder (runs, steps, report)")
    r.add_argument("--seeds", type=int, default=None, help="training seeds per method (default: the budget's)")
    r.add_argument("--jobs", type=int, default=1,
                   help="training runs, probes and analyses run this many at a time in worker processes, sharing the "
                        "budget's torch threads (same results; faster on several cores)")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run_reproduce)
    return r


def run_reproduce(args) -> int:
    if args.seeds is not None and args.seeds < 1:
        print(f"sim reproduce: error: --seeds must be >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"sim reproduce: error: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    try:
        res = reproduce(get_budget(args.budget), args.data, args.out, seeds=args.seeds, progress=not args.no_progress,
                        jobs=args.jobs)
    except ValueError as e:
        print(f"sim reproduce: error: {e}", file=sys.stderr)
        return 2
    print()
    print("Verdicts (Table 2 under the paper protocol):")
    print(verdict_table_text(res["verdicts"]))
    print(f"\nreport: {res['report_html']} and {res['report_md']}")
    return 0

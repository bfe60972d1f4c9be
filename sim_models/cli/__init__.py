"""The `sim` command: argv -> one call each. ``main`` is the console script (pyproject: ``sim_models.cli:main``);
``python -m sim_models.cli ...`` runs the same (cli/__main__.py). One file per sub-command, each with
``add_parser(subparsers)``; parser.py lists them in ``COMMANDS``."""
from sim_models.cli.parser import build_parser, main

__all__ = ["main", "build_parser"]

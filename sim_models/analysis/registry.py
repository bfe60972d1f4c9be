"""The run-level analyses of `sim report`, registered by name: a new analysis is one file plus one line here.

An analysis is a module with two functions:

    compute(ctx: AnalysisContext) -> dict     its numbers, and "files": {key: path relative to the run folder}
    section(result: dict, names: list, report_config: dict) -> page blocks (sim_models/util/document.py), paths
                                                relative to the run folder

``analyse_run`` (run_analysis.py) calls every registered ``compute`` in order and stores the merged results in
the summary under "thesis" (the key analysis.json files have always used for them); the report writers
(sim_models/report/) render every registered ``section`` after the per-stage sections, to markdown and to HTML
from the same blocks. ``register_analysis(name, compute, section)`` adds one (a test can add a toy one and
``unregister_analysis`` it again).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sim_models.analysis import activations, few_labels, kl_trajectory, loss_curves, posterior_usage
from sim_models.util.document import rebase

__all__ = ["AnalysisContext", "RunAnalysis", "ANALYSES", "register_analysis", "unregister_analysis", "run_analyses",
           "sections_of"]


@dataclass
class AnalysisContext:
    """What every registered analysis gets. run: the LoadedRun (model in eval mode, run_dir, name);
    test_audio (N, L): the test split's utterances; features: the thesis protocol's flattened syllable features
    (train features, train labels, test features, test labels; ``thesis_features``); out: RUN_DIR/report/;
    names: one display name per stage; rcfg: the ReportConfig; log: a print-like function."""
    run: object
    test_audio: object
    features: tuple
    out: Path
    names: list
    rcfg: object
    log: Callable = print

    def rel(self, path) -> str:
        """``path`` relative to the run folder (what "files" holds)."""
        return os.path.relpath(path, self.run.run_dir)


@dataclass(frozen=True)
class RunAnalysis:
    name: str
    compute: Callable
    section: Callable


ANALYSES: dict = {}


def register_analysis(name: str, compute: Callable, section: Callable) -> RunAnalysis:
    """Add the analysis ``name`` (ValueError when taken); it runs after the ones registered before it."""
    if name in ANALYSES:
        raise ValueError(f"analysis {name!r} is registered twice")
    ANALYSES[name] = RunAnalysis(name, compute, section)
    return ANALYSES[name]


def unregister_analysis(name: str) -> None:
    ANALYSES.pop(name, None)


def run_analyses(ctx: AnalysisContext) -> dict:
    """{"files": {...}, <key>: numbers, ...}: every registered analysis's results, merged, in order."""
    res = {"files": {}}
    for a in ANALYSES.values():
        out = a.compute(ctx)
        res["files"].update(out.pop("files", {}))
        res.update(out)
    return res


def sections_of(summary: dict) -> list:
    """The blocks of every registered analysis for one run's summary ([] when it has no results); their paths
    prefixed by the run folder (sim_models/util/document.py: ``rebase``)."""
    th = summary.get("thesis")
    if not th:
        return []
    names = [m["module"] for m in summary["modules"]]
    blocks = []
    for a in ANALYSES.values():
        blocks += a.section(th, names, summary.get("report_config", {}))
    return rebase(blocks, summary["run"])


register_analysis("loss_curves", loss_curves.compute, loss_curves.section)
register_analysis("activations", activations.compute, activations.section)
register_analysis("active_units", posterior_usage.compute, posterior_usage.section)
register_analysis("few_labels", few_labels.compute, few_labels.section)
register_analysis("kl_trajectory", kl_trajectory.compute, kl_trajectory.section)

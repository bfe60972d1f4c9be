"""The V-GIM thesis' analyses of one run, written under RUN_DIR/report/ with fixed names:

    report/loss_curves.png    train and validation loss per module per epoch (thesis Fig. 4.2)
    report/activations.png    distributions of the first six dimensions per module, test split (Figs 4.4-4.7)
    report/active_units.png   per-dimension KL and active units per probabilistic module (Burda et al. 2016)
    report/few_labels.png     syllable probes on 1, 2, 4, ..., 128 labelled syllables per class (§4.3, Fig. 4.8)

Their numbers go into the summary (report/analysis.json, key "thesis"). Called by run_analysis.analyse_run.
"""
from __future__ import annotations

import os

import torch

from sim_models.analysis.activations import THESIS_DIMS, activation_values, plot_activations
from sim_models.analysis.few_labels import few_label_curve, plot_few_labels
from sim_models.analysis.loss_curves import epoch_curves, plot_loss_curves, read_metrics
from sim_models.analysis.posterior_usage import plot_active_units, posterior_usage
from sim_models.evaluation.protocols import PROTOCOLS, module_features, protocol_audio

__all__ = ["thesis_analyses", "thesis_features"]


def thesis_features(model, seg_train, seg_test):
    """The thesis protocol's inputs: flattened C × T features of syllables zero-padded at both ends to 8800
    samples. Returns (train features [(S, D_m)], train labels dict, test features, test labels dict)."""
    proto = PROTOCOLS["thesis"]
    a_tr, y_tr, a_te, y_te = protocol_audio(proto, seg_train, seg_test)
    return module_features(model, a_tr, "flattened"), y_tr, module_features(model, a_te, "flattened"), y_te


def thesis_analyses(run, test_audio: torch.Tensor, seg_train, seg_test, out, names, rcfg, log=print,
                    features=None) -> dict:
    """Writes the four figures above into ``out``; returns {"files": {...}, "loss_curves", "activations",
    "active_units", "few_labels"} (paths relative to the run folder). ``features``: precomputed thesis_features."""
    rd, model = run.run_dir, run.model
    rel = lambda p: os.path.relpath(p, rd)  # noqa: E731
    res = {"files": {}}
    try:
        curves = epoch_curves(read_metrics(rd))
    except FileNotFoundError as e:
        log(f"  loss curves skipped: {e}")
        curves = {}
    res["loss_curves"] = {str(m): c for m, c in curves.items()}
    if curves:
        res["files"]["loss_curves_png"] = rel(plot_loss_curves(curves, out / "loss_curves.png", names,
                                                               f"{run.name}: loss per module per epoch"))
    log("  activation distributions, active units")
    vals = activation_values(model, test_audio[:rcfg.activation_utterances], THESIS_DIMS, rcfg.activation_representation,
                             seed=rcfg.seed)
    usage = posterior_usage(model, test_audio, max_utterances=rcfg.activation_utterances)
    prob = [u["probabilistic"] for u in usage]
    res["activations"] = [{"mean": v.mean(0).tolist(), "std": v.std(0).tolist(), "points": v.shape[0]} for v in vals]
    res["files"]["activations_png"] = rel(plot_activations(
        vals, out / "activations.png", names, prob,
        f"{run.name}: first {THESIS_DIMS} dimensions on the test split ({rcfg.activation_representation}s)"))
    res["active_units"] = usage
    res["files"]["active_units_png"] = rel(plot_active_units(usage, out / "active_units.png", names,
                                                             f"{run.name}: per-dimension KL, active units"))
    log(f"  few-label probes ({len(rcfg.few_label_sizes)} sizes x {rcfg.few_label_seeds} seeds)")
    f_tr, y_tr, f_te, y_te = features if features is not None else thesis_features(model, seg_train, seg_test)
    fl = few_label_curve(f_tr, y_tr["syllable"], f_te, y_te["syllable"], rcfg.few_label_sizes, rcfg.few_label_seeds,
                         rcfg.few_label_epochs)
    res["few_labels"] = fl
    res["files"]["few_labels_png"] = rel(plot_few_labels(fl, out / "few_labels.png", names,
                                                         f"{run.name}: few-label syllable probes "
                                                         f"(± std over {fl['seeds']} seeds)"))
    return res

"""The thesis protocol's syllable features, shared by the few-label probes and the thesis t-SNE settings."""
from __future__ import annotations

from sim_models.evaluation.protocols import PROTOCOLS, module_features, protocol_audio

__all__ = ["thesis_features"]


def thesis_features(model, seg_train, seg_test):
    """The thesis protocol's inputs: flattened C × T features of syllables zero-padded at both ends to 8800
    samples. Returns (train features [(S, D_m)], train labels dict, test features, test labels dict)."""
    proto = PROTOCOLS["thesis"]
    a_tr, y_tr, a_te, y_te = protocol_audio(proto, seg_train, seg_test)
    return module_features(model, a_tr, "flattened"), y_tr, module_features(model, a_te, "flattened"), y_te

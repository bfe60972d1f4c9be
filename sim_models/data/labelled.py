"""Labelled examples for the supervised objective: syllables of a ``sim data`` folder with their class.

* ``num_classes(labels)`` - 9 for "syllable" ({b, d, g} x {a, i, u}), 3 for "vowel" (paper §4.2); ValueError else.
* ``SyllableSegments(syllable_dataset, segment_length, labels)`` - every syllable of a ``SyllableDataset`` cut at
  its recorded boundaries and zero-padded at both ends (paper §4.2) to ``segment_length`` samples (thesis
  Appendix A: 8800), centred (``segmentation.pad_both_ends``); a longer syllable is cropped around its centre.
  Items are (waveform (segment_length,) float32, label () int64) pairs.
* ``training_view(dataset, cfg)`` - what the trainer trains on: the dataset itself for the self-supervised
  objective, its ``SyllableSegments`` for ``model.objective="supervised"``.
"""
from __future__ import annotations

import torch

from sim_models.data.segmentation import pad_both_ends

__all__ = ["CLASSES", "num_classes", "SyllableSegments", "training_view"]

CLASSES = {"syllable": 9, "vowel": 3}  # {b, d, g} x {a, i, u}; paper §4.2


def num_classes(labels: str) -> int:
    """The number of classes of a label kind ("syllable": 9, "vowel": 3); ValueError for another kind."""
    if labels not in CLASSES:
        raise ValueError(f"labels must be one of {tuple(CLASSES)}, got {labels!r}")
    return CLASSES[labels]


class SyllableSegments:
    """Labelled syllables of a SyllableDataset: item i -> (waveform (segment_length,) float32, label () int64).

    labels: "syllable" (0..8, the data set's syllable list) or "vowel" (0..2)."""

    def __init__(self, syllable_dataset, segment_length: int, labels: str = "syllable"):
        if not hasattr(syllable_dataset, "syllable_segments"):
            raise TypeError("dataset: the supervised objective needs syllable labels (a `sim data` folder, "
                            f"SyllableDataset), got {type(syllable_dataset).__name__}")
        if segment_length < 1:
            raise ValueError(f"segment_length must be >= 1, got {segment_length}")
        col = 1 if labels == "syllable" else 2
        num_classes(labels)
        segs = syllable_dataset.syllable_segments()
        if not segs:
            raise ValueError("dataset: no syllable segments")
        self.audio = torch.stack([pad_both_ends(s[0], segment_length) for s in segs])
        self.labels = torch.tensor([s[col] for s in segs], dtype=torch.int64)
        self.label_kind = labels

    def __len__(self):
        return self.audio.shape[0]

    def __getitem__(self, i):
        return self.audio[i], self.labels[i]


def training_view(dataset, cfg):
    """``dataset`` for the self-supervised objective; its labelled, padded syllables for the supervised one."""
    if dataset is None or cfg.model.objective != "supervised":
        return dataset
    if isinstance(dataset, SyllableSegments):
        return dataset
    return SyllableSegments(dataset, cfg.data.segment_length, cfg.model.supervised_labels)

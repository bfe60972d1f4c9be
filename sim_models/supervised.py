"""The supervised baseline (paper Table 2: 91.2 % vowel / 83.3 % syllable): the encoder trained end to end
with a linear classifier on the labels.

* ``LinearClassifierLoss(in_channels, num_classes)`` - the loss of the last stage when
  ``model.objective="supervised"``: nn.Linear (with bias) on the time-averaged stage output, cross-entropy.
  As in the paper's probes (§4.2: "average-pooled output of the final autoregressive module"), and as in
  the authors' code, whose linear_classifiers/logistic_regression.py trains the encoder and the
  classifier together (ModelType.FULLY_SUPERVISED).
* ``SyllableSegments(syllable_dataset, segment_length, labels)`` - the training examples: every syllable
  of a ``SyllableDataset`` cut at its recorded boundaries and zero-padded at both ends (paper §4.2) to
  ``segment_length`` samples (thesis Appendix A: 8800), centred; a longer syllable is cropped around its
  centre. Items are (waveform (segment_length,), label ()) pairs.
* ``training_view(dataset, cfg)`` - what the trainer trains on: the dataset itself for the self-supervised
  objective, its ``SyllableSegments`` for the supervised one.

The run folder is an ordinary run (config.yaml with ``model.objective: supervised``, checkpoint.pt,
metrics), so ``sim eval`` / ``sim report`` probe its frozen representations like any other run.
The logged ``nce`` column of a supervised stage holds its cross-entropy, ``accuracy`` its training
accuracy, ``kl`` 0.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearClassifierLoss", "SyllableSegments", "training_view", "num_classes", "pad_both_ends"]

_CLASSES = {"syllable": 9, "vowel": 3}  # {b, d, g} x {a, i, u}; paper §4.2


def num_classes(labels: str) -> int:
    if labels not in _CLASSES:
        raise ValueError(f"labels must be one of {tuple(_CLASSES)}, got {labels!r}")
    return _CLASSES[labels]


class LinearClassifierLoss(nn.Module):
    """forward(features (B, T, C), labels (B,) int64) -> (loss (), metrics).

    loss: mean cross-entropy of nn.Linear(C, num_classes) on features.mean(dim=1);
    metrics: {"nce": (1,) the cross-entropy, "accuracy": (1,), "kl": () 0} (detached, no host sync),
    the keys of the self-supervised losses so that logs have one format.
    As a stage's objective it is fed through ``stage_loss`` (the stage's representation and the labels)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor):
        if features.dim() != 3 or features.shape[2] != self.classifier.in_features:
            raise ValueError(f"features must be (B, T, {self.classifier.in_features}), got {tuple(features.shape)}")
        if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(f"labels must be ({features.shape[0]},) class indices, got {tuple(labels.shape)}")
        if labels.dtype != torch.int64:
            raise TypeError(f"labels must be int64, got {labels.dtype}")
        logits = self.classifier(features.mean(dim=1))
        loss = nn.functional.cross_entropy(logits, labels)
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == labels).float().mean()
        metrics = {"nce": loss.detach().reshape(1), "accuracy": acc.reshape(1),
                   "kl": torch.zeros((), device=loss.device)}
        return loss, metrics

    def stage_loss(self, stage, out, prev_z, *, labels=None, generator=None):
        """The objective's feed (sim_models/objectives.py): ``out.representation`` (B, T, C) and ``labels`` (B,);
        a clear error when the batch carries no labels. stage, prev_z and generator are not used."""
        if labels is None:
            raise ValueError("labels: a supervised objective needs the batch's labels (B,), got None")
        return self(out.representation, labels)


def pad_both_ends(wave: torch.Tensor, length: int) -> torch.Tensor:
    """wave (l,) zero-padded at both ends to (length,), centred (one sample more at the end when odd);
    a longer wave is cropped around its centre."""
    n = wave.shape[0]
    if n >= length:
        start = (n - length) // 2
        return wave[start:start + length].clone()
    out = torch.zeros(length, dtype=wave.dtype)
    start = (length - n) // 2
    out[start:start + n] = wave
    return out


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

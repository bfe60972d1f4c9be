"""The supervised baseline (paper Table 2's supervised row): the encoder trained end to end
with a linear classifier on the labels.

* ``LinearClassifierLoss(in_channels, num_classes)`` - the loss of the last stage when
  ``model.objective="supervised"``: nn.Linear (with bias) on the time-averaged stage output, cross-entropy.
  As in the paper's probes (§4.2: "average-pooled output of the final autoregressive module"), and as in
  the authors' code, whose linear_classifiers/logistic_regression.py trains the encoder and the
  classifier together (ModelType.FULLY_SUPERVISED).
* its training examples, labelled syllables padded at both ends: sim_models/data/labelled.py
  (``SyllableSegments``, ``training_view``).

The run folder is an ordinary run (config.yaml with ``model.objective: supervised``, checkpoint.pt,
metrics), so ``sim eval`` / ``sim report`` probe its frozen representations like any other run.
The logged ``nce`` column of a supervised stage holds its cross-entropy, ``accuracy`` its training
accuracy, ``kl`` 0.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["LinearClassifierLoss"]


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
        """The objective's feed (sim_models/model/objectives.py): ``out.representation`` (B, T, C) and ``labels`` (B,);
        a clear error when the batch carries no labels. stage, prev_z and generator are not used."""
        if labels is None:
            raise ValueError("labels: a supervised objective needs the batch's labels (B,), got None")
        return self(out.representation, labels)

"""The objectives a GreedyModel's stages train on, and how each one is fed.

An objective is an nn.Module with one method saying what it consumes:

    stage_loss(stage, out, prev_z, *, labels=None, generator=None) -> (loss (), metrics)

stage: the Stage the objective belongs to; out: its StageOutput; prev_z: the previous stage's z
(B, T, C_in), detached unless end to end, or None for stage 0; labels: the batch's (B,) int64 class
indices or None; generator: the draws of the loss (negatives, crops). metrics: {"nce", "accuracy", "kl"}
(detached tensors), the keys every log row reads.

* ``StageInfoNCELoss`` (a ``SmoothInfoNCELoss``): the self-supervised loss, fed the stage's own
  ``loss_inputs(out, prev_z)`` (context, targets, mu, logvar; modules.Stage says which);
* ``LinearClassifierLoss`` (supervised.py): the supervised objective, fed the stage's representation
  and the labels.

``build_objective(cfg, stage, index, last)`` is the one place a config picks a stage's objective, and
``GreedyModel`` calls ``stage_loss`` without asking which objective it holds: a new objective is one class
with ``stage_loss`` plus its line in ``build_objective``.
"""
from __future__ import annotations

from sim_kernels import SmoothInfoNCELoss
from sim_kernels.distributed import gather_targets, to_gathered_rows

from sim_models.config import ModelConfig
from sim_models.data.labelled import num_classes
from sim_models.model import draws
from sim_models.model.supervised import LinearClassifierLoss

__all__ = ["StageInfoNCELoss", "LinearClassifierLoss", "build_objective"]


class StageInfoNCELoss(SmoothInfoNCELoss):
    """SmoothInfoNCELoss (sim_kernels, unchanged: same parameters, same state-dict keys) fed by a stage:
    ``stage_loss`` scores ``stage.loss_inputs(out, prev_z)``; labels are not used."""

    def stage_loss(self, stage, out, prev_z, *, labels=None, generator=None):
        """(loss (), metrics {"nce": (K,), "accuracy": (K,), "kl": ()}) of ``stage``'s output ``out``.
        Under global negatives (sim_models/model/draws.py) its anchors are scored against the global batch."""
        context, targets, mu, logvar = stage.loss_inputs(out, prev_z)
        gb = draws.current()
        if gb is None:
            return self(context, targets, mu, logvar, generator=generator, return_metrics=True)
        return self.global_batch_loss(gb, context, targets, mu, logvar, generator)

    def global_batch_loss(self, gb, context, targets, mu, logvar, generator):
        """The loss of this process's anchors against every process's targets, with the draws one process
        makes for the whole global batch (the crop, then the negatives of all P*B utterances, of which this
        process's rows rank::P are kept and renumbered into the gathered targets)."""
        B, T, _ = context.shape
        window = self.window(T, generator)
        neg_idx = draws.share(self.sample(gb.P * B, T, window, generator, context.device), dim=-3)
        rows = to_gathered_rows(neg_idx, B * T, gb.group, split="strided", time=T)
        # equal shapes on every rank: DistributedSampler(drop_last=True) and batch_size % P == 0 (checked at setup)
        z_all = gather_targets(targets, gb.group, check_shapes=False)
        return self.loss_with(context, z_all, rows, mu, logvar, window=window,
                              return_metrics=True)


def build_objective(cfg: ModelConfig, stage, index: int, last: int):
    """The objective of stage ``index`` (``last``: the index of the model's last stage): a
    LinearClassifierLoss on the last stage for ``cfg.objective == "supervised"``, else a StageInfoNCELoss
    with the stage's target dimension and KL weight (refused for stage 0 when its loss scores the previous
    stage's z)."""
    if cfg.objective == "supervised" and index == last:
        return LinearClassifierLoss(stage.out_channels, num_classes(cfg.supervised_labels))
    if stage.targets_from_previous and index == 0:
        raise ValueError(f"model: a {stage.kind} module needs a module before it")
    return StageInfoNCELoss(
        stage.out_channels, stage.target_channels, prediction_steps=cfg.prediction_steps,
        negative_samples=cfg.negative_samples, beta=cfg.beta if stage.kl_weighted else 0.0, sampler=cfg.sampler,
        kl_reduction=cfg.kl_reduction, reduction=cfg.reduction, subsample_window=cfg.subsample_window,
        backend=cfg.loss_backend)

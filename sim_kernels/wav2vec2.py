"""wav2vec 2.0's contrastive loss served by the fused op: drop-ins for Hugging Face's and fairseq's loss lines.

wav2vec 2.0 (Baevski et al., 2020) scores, for every masked frame t of utterance b, the transformer's
output c[b, t] against its own quantised target q[b, t] (the positive) and N quantised targets of other
masked frames of the same utterance (the negatives), by cosine similarity over a temperature; a negative
equal to the positive in every channel scores -inf; the loss is the cross-entropy with the positive as the
class, summed over the masked frames. In the fused op's terms: ``score="cosine"``, ``first_step=0`` (the
positive is the anchor's own frame), one step, ``score_scale = 1/temperature``, ``anchor_mask`` = the masked
frames, ``reduction="anchor_sum"``, and ``neg_is_pos`` as -1 entries of ``neg_idx``
(``sim_kernels.sampling.exclude_equal_to_positive``).

* ``wav2vec2_contrastive_loss``: Hugging Face's layout (transformers,
  ``models/wav2vec2/modeling_wav2vec2.py``, ``Wav2Vec2ForPreTraining.forward`` steps 3-6 with
  ``compute_contrastive_logits``): (B, T, C) features over all frames, a (B, T) mask, (B, T, N) negatives
  as global rows b*T + t of ``quantized_features.view(-1, C)``.
* ``wav2vec2_contrastive_loss_fairseq``: fairseq's layout (``fairseq/models/wav2vec/wav2vec2.py``,
  ``Wav2Vec2Model.forward`` / ``sample_negatives`` / ``compute_preds``, and the cross-entropy of
  ``fairseq/criterions/wav2vec_criterion.py``), also torchaudio's SSL recipe
  (``examples/self_supervised_learning/losses/_wav2vec2_loss.py``): (B, M, C) predictions and targets of the
  masked frames only (fairseq keeps the same number M of masked frames per utterance), negatives as rows of
  ``y.view(-1, C)`` (fairseq's ``neg_idxs``).

The formula is the same in both (checked against each's published code in tests/sim_kernels/test_wav2vec2.py):
cosine in float32, divided by the temperature (HF's ``contrastive_logits_temperature``, fairseq's
``logit_temp``), -inf for ``neg_is_pos``, float32 cross-entropy summed. They differ only in the layout and in
how half-precision inputs round the logits before the float32 cross-entropy (HF: the cosine rounded to the
targets' dtype, then divided by the temperature in that dtype; fairseq: cosine / temperature rounded to the
predictions' dtype; torchaudio: none). Here the logits stay float32 for every input dtype, so for float32
inputs all three agree and for fp16/bf16 this is the float32 loss that HF and fairseq round.
"""
from __future__ import annotations

import math
import numbers

import torch

from .functional import smooth_infonce
from .sampling import excluding_equal_to_positive

__all__ = ["wav2vec2_contrastive_loss", "wav2vec2_contrastive_loss_fairseq", "WAV2VEC2_REDUCTIONS"]

# "sum": HF's and fairseq's (the cross-entropy summed over masked frames); "mean": that sum over the number of
# masked frames (HF's run_wav2vec2_pretraining_no_trainer.py divides by mask_time_indices.sum(), fairseq's
# optimiser by sample_size = the masked frames); "none": the per-frame loss, 0 off the masked frames.
WAV2VEC2_REDUCTIONS = ("sum", "mean", "none")
_OP_REDUCTION = {"sum": "anchor_sum", "mean": "mean", "none": "none"}


def wav2vec2_contrastive_loss(transformer_features, quantized_features, sampled_negative_indices, mask_time_indices,
                              temperature=0.1, *, reduction="sum", backend="auto"):
    """Hugging Face's wav2vec 2.0 contrastive loss (``Wav2Vec2ForPreTraining.forward``, its ``contrastive_loss``).

    Equal, in value and gradients, to HF's lines (transformers ``models/wav2vec2/modeling_wav2vec2.py``)::

        negative_quantized_features = quantized_features.view(-1, C)[sampled_negative_indices.long().view(-1)]
        logits = compute_contrastive_logits(quantized_features[None], negatives (N, B, T, C), transformer_features,
                                            temperature)          # cosine_similarity(...) / temperature
        logits[1:][(quantized_features == negatives).all(-1)] = -inf   # neg_is_pos
        cross_entropy(logits (B*T, 1+N), target 0 on masked frames / -100 elsewhere, reduction="sum")

    Args:
        transformer_features: floating (B, T, C) tensor, HF's ``transformer_features`` (``project_hid`` of the
            transformer's output, every frame; only the masked ones are anchors).
        quantized_features: floating (B, T, C) tensor, HF's ``quantized_features`` (``project_q`` of the
            quantiser's codevectors): the positives and the negatives' rows. Same shape and device as
            transformer_features (the dtypes may differ; both are computed in float32, as HF's
            ``compute_contrastive_logits`` does).
        sampled_negative_indices: integer (B, T, N) tensor (int32 as HF's ``_sample_negative_indices`` makes it, or
            int64), rows b*T + t of ``quantized_features.view(-1, C)``, each in [0, B*T); read only at masked frames.
        mask_time_indices: (B, T) bool or integer tensor, nonzero = masked frame (HF casts it with
            ``.to(torch.bool)``); the anchors.
        temperature: positive finite number, HF's ``config.contrastive_logits_temperature`` (kappa, 0.1).
        reduction: "sum" (HF's), "mean" (the sum over the number of masked frames, 0 without one), or "none" (the
            (B, T) per-frame loss, 0 off the masked frames).
        backend: ``smooth_infonce``'s backend ("auto", "native", "triton", "reference").
    Returns:
        float32 scalar ("sum", "mean") or float32 (B, T) ("none"), differentiable w.r.t. both features.
    Raises:
        ValueError: a bad shape, dtype, device, index value, temperature or reduction, naming the argument.

    Differences from HF (docs/wav2vec2.md): HF rounds the cosine to the targets' dtype before dividing by the
    temperature (fp16/bf16 only); for a vector of norm below 1e-8 the value is the same but torch's
    cosine_similarity differentiates the unclamped norm; rows holding NaN follow HF's ``==`` (never equal).
    """
    B, T, C = _features(transformer_features, "transformer_features")
    if _features(quantized_features, "quantized_features") != (B, T, C) or \
            quantized_features.device != transformer_features.device:
        raise ValueError(f"quantized_features must have the shape and device of transformer_features "
                         f"({B}, {T}, {C}) on {transformer_features.device}, got {tuple(quantized_features.shape)} "
                         f"on {quantized_features.device}")
    neg_idx = _indices(sampled_negative_indices, "sampled_negative_indices", (B, T), B * T, transformer_features.device)
    mask = _mask(mask_time_indices, (B, T), transformer_features.device)
    scale = _inverse_temperature(temperature, "temperature")
    _reduction(reduction)
    # neg_is_pos on the features as given (HF compares quantized_features before any cast), -1 = excluded
    neg_idx = excluding_equal_to_positive(neg_idx, quantized_features, 0)
    loss = smooth_infonce(transformer_features.float(), quantized_features.float(), None, neg_idx,
                          reduction=_OP_REDUCTION[reduction], backend=backend, score="cosine", first_step=0,
                          score_scale=scale, anchor_mask=mask)
    return loss[0] if reduction == "none" else loss


def wav2vec2_contrastive_loss_fairseq(x, y, neg_idxs, logit_temp=0.1, *, reduction="sum", backend="auto"):
    """fairseq's wav2vec 2.0 contrastive loss, on its compacted masked frames.

    Equal, in value and gradients, to fairseq's ``Wav2Vec2Model.compute_preds`` (``fairseq/models/wav2vec/
    wav2vec2.py``) followed by ``get_logits`` and the ``infonce`` cross-entropy of
    ``fairseq/criterions/wav2vec_criterion.py`` (``F.cross_entropy(logits, zeros, reduction="sum")``), with the
    negatives ``negs = y.view(-1, C)[neg_idxs.view(-1)]`` of ``sample_negatives``; also torchaudio's
    ``wav2vec2_loss`` (``examples/self_supervised_learning/losses/_wav2vec2_loss.py``) with reduction="sum".
    The loss only: fairseq's extra losses (diversity, feature penalty) are the model's.

    Args:
        x: floating (B, M, C) predictions of the M masked frames of each utterance (fairseq's ``x`` after
            ``x[mask_indices].view(B, -1, C)`` and ``final_proj``).
        y: floating (B, M, C) quantised targets of the same frames (fairseq's ``y`` after ``project_q``): the
            positives and the negatives' rows. Same shape and device as x.
        neg_idxs: integer (B, M*N) (fairseq's ``sample_negatives`` returns it so, with its ``cross_sample_negatives``
            columns concatenated) or (B, M, N) rows of ``y.view(-1, C)``, each in [0, B*M).
        logit_temp: positive finite number, fairseq's ``logit_temp`` (0.1).
        reduction: "sum" (fairseq's), "mean" (over the B*M anchors) or "none" ((B, M) per-frame losses).
        backend: ``smooth_infonce``'s backend.
    Returns:
        float32 scalar or (B, M), differentiable w.r.t. x and y.
    Raises:
        ValueError: a bad shape, dtype, device, index value, logit_temp or reduction, naming the argument.

    Not covered: ``codebook_negatives`` and ``negatives_from_everywhere`` (negatives that are not rows of y).
    """
    B, M, C = _features(x, "x")
    if _features(y, "y") != (B, M, C) or y.device != x.device:
        raise ValueError(f"y must have the shape and device of x ({B}, {M}, {C}) on {x.device}, got {tuple(y.shape)} "
                         f"on {y.device}")
    if isinstance(neg_idxs, torch.Tensor) and neg_idxs.dim() == 2 and neg_idxs.shape[0] == B and M > 0 \
            and neg_idxs.shape[1] % M == 0 and neg_idxs.shape[1] > 0:
        neg_idxs = neg_idxs.reshape(B, M, neg_idxs.shape[1] // M)  # (B, M*N) -> (B, M, N), fairseq's view order
    neg_idx = _indices(neg_idxs, "neg_idxs", (B, M), B * M, x.device)
    scale = _inverse_temperature(logit_temp, "logit_temp")
    _reduction(reduction)
    neg_idx = excluding_equal_to_positive(neg_idx, y, 0)
    loss = smooth_infonce(x.float(), y.float(), None, neg_idx, reduction=_OP_REDUCTION[reduction], backend=backend,
                          score="cosine", first_step=0, score_scale=scale)
    return loss[0] if reduction == "none" else loss


# ---- checks: one message per argument, naming it ------------------------------------------------------

def _describe(x):
    return f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _features(x, name):
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating (batch, time, channels) tensor, got {_describe(x)}")
    B, T, C = x.shape
    if B == 0 or T == 0 or C == 0:
        raise ValueError(f"{name} must have at least one utterance, frame and channel, got shape {tuple(x.shape)}")
    return B, T, C


def _indices(idx, name, bt, rows, device):
    if (not isinstance(idx, torch.Tensor) or idx.dim() != 3 or idx.is_floating_point() or idx.is_complex()
            or idx.dtype == torch.bool or tuple(idx.shape[:2]) != bt or idx.shape[2] == 0):
        raise ValueError(f"{name} must be an integer ({bt[0]}, {bt[1]}, num_negatives >= 1) tensor, "
                         f"got {_describe(idx)}")
    if idx.device != device:
        raise ValueError(f"{name} must be on the features' device {device}, got {idx.device}")
    idx = idx.long()
    if bool(((idx < 0) | (idx >= rows)).any()):  # one host sync
        raise ValueError(f"{name}: every entry must be a row of the flattened targets, in [0, {rows}), got "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx


def _mask(mask, bt, device):
    if (not isinstance(mask, torch.Tensor) or tuple(mask.shape) != bt or mask.is_floating_point()
            or mask.is_complex()):
        raise ValueError(f"mask_time_indices must be a bool or integer tensor of shape {bt}, got {_describe(mask)}")
    if mask.device != device:
        raise ValueError(f"mask_time_indices must be on the features' device {device}, got {mask.device}")
    return mask.to(torch.bool)


def _inverse_temperature(temperature, name):
    if isinstance(temperature, torch.Tensor) and temperature.numel() == 1:
        temperature = temperature.item()
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or \
            not 0 < float(temperature) < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {temperature!r}")
    return 1.0 / float(temperature)


def _reduction(reduction):
    if reduction not in WAV2VEC2_REDUCTIONS:
        raise ValueError(f"reduction must be one of {WAV2VEC2_REDUCTIONS}, got {reduction!r}")

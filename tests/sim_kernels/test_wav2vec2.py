"""wav2vec2_contrastive_loss against the installed Hugging Face transformers' own code, and
wav2vec2_contrastive_loss_fairseq against fairseq's and torchaudio's published formula, on every backend.

The oracle for HF is ``hf_contrastive_loss`` (benchmarks/_wav2vec2.py): HF's loss lines of ``Wav2Vec2ForPreTraining.forward``
(transformers 4.57.6, ``models/wav2vec2/modeling_wav2vec2.py``, steps 3-6) written out as HF writes them, calling
HF's own static ``Wav2Vec2ForPreTraining.compute_contrastive_logits``; its masks and negatives come from HF's own
``_compute_mask_indices`` (with an ``attention_mask``: utterances of different lengths) and
``_sample_negative_indices`` (int32, as HF makes them). The targets repeat a few codebook rows, so negatives
equal to their positive (``neg_is_pos``) occur in every case (asserted).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from benchmarks._wav2vec2 import hf_contrastive_loss as _hf_contrastive_loss
from sim_kernels import wav2vec2_contrastive_loss, wav2vec2_contrastive_loss_fairseq, wav2vec2_negatives

B, T, C = 3, 24, 16
LENGTHS = [24, 17, 11]  # real frames per utterance; the mask lies on real frames only (HF's attention_mask)


# HF's lines of Wav2Vec2ForPreTraining.forward, with its own compute_contrastive_logits (one copy, shared with the
# benchmarks): benchmarks/_wav2vec2.py
hf_contrastive_loss = _hf_contrastive_loss


def hf_inputs(seed, num_negatives, dtype=torch.float32, codebook=6):
    """HF-made mask (mask_prob 0.5, span 3, attention_mask of LENGTHS, min_masks 2) and int32 negatives;
    features of (B, T, C); quantized rows drawn from a codebook of ``codebook`` rows (duplicates), the first
    channel of some moved by +-0.1 or 0.2 (rows that nearly, but not exactly, repeat)."""
    np.random.seed(seed)
    attention_mask = torch.tensor([[1] * n + [0] * (T - n) for n in LENGTHS])
    mask = _compute_mask_indices((B, T), mask_prob=0.5, mask_length=3, attention_mask=attention_mask, min_masks=2)
    neg = _sample_negative_indices((B, T), num_negatives, mask_time_indices=mask)
    g = torch.Generator().manual_seed(seed)
    tf = torch.randn(B, T, C, generator=g, dtype=torch.float64).to(dtype)
    rows = torch.randn(codebook, C, generator=g, dtype=torch.float64)
    q = rows[torch.randint(0, codebook, (B, T), generator=g)]
    q[:, :, :1] += 0.1 * torch.randn(B, T, 1, generator=g, dtype=torch.float64).round()  # some rows differ a little
    return tf, q.to(dtype), torch.from_numpy(neg), torch.from_numpy(mask)


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves)



# Every comparison: torch.testing's float32 defaults (the losses are float32; both sides compute in float32)
FP32 = dict(rtol=1.3e-6, atol=1e-5)


def _compare(got_fn, want_fn, leaves):
    """got and want (scalars or tensors) and their gradients w.r.t. the two leaves, within FP32."""
    a = [x.clone().requires_grad_() for x in leaves]
    b = [x.clone().requires_grad_() for x in leaves]
    got, want = got_fn(*a), want_fn(*b)
    torch.testing.assert_close(got, want, **FP32)
    for name, x, y in zip(("transformer_features", "quantized_features"), _grads(got.sum(), a), _grads(want.sum(), b)):
        torch.testing.assert_close(x, y, **FP32, msg=lambda m, name=name: f"grad of {name}: {m}")
    return got.detach(), want.detach()


CASES = [(1, 0.1), (5, 0.1), (20, 0.5), (7, 2.0)]  # (num_negatives, temperature)


@pytest.mark.parametrize("num_negatives,temperature", CASES, ids=[f"N{n}-temp{t}" for n, t in CASES])
def test_loss_and_gradients_equal_huggingface(backend, num_negatives, temperature):
    tf, q, neg, mask = hf_inputs(num_negatives, num_negatives)
    assert neg.dtype == torch.int32 and mask.dtype == torch.bool  # as HF makes them
    q_neg = q.view(-1, C)[neg.long().view(-1)].view(B, T, -1, C)
    assert ((q.unsqueeze(2) == q_neg).all(-1) & mask.unsqueeze(-1)).any(), "the case must exercise neg_is_pos"
    assert not mask[1, LENGTHS[1]:].any() and not mask[2, LENGTHS[2]:].any(), "HF masks real frames only"
    got, _ = _compare(lambda a, b: backend.run(wav2vec2_contrastive_loss, a, b, neg, mask, temperature),
                      lambda a, b: hf_contrastive_loss(a, b, neg, mask, temperature), [tf, q])
    assert got.dtype == torch.float32 and got.dim() == 0


def test_our_sampler_and_lengths_equal_huggingface(backend):
    """Our negatives (torch generator, lengths) through both: HF's lines take them as they take their own."""
    tf, q, _, mask = hf_inputs(3, 4)
    neg = wav2vec2_negatives(mask, 9, generator=torch.Generator().manual_seed(0), lengths=torch.tensor(LENGTHS))
    _compare(lambda a, b: backend.run(wav2vec2_contrastive_loss, a, b, neg, mask, 0.1),
             lambda a, b: hf_contrastive_loss(a, b, neg, mask, 0.1), [tf, q])


def test_every_negative_equal_to_the_positive(backend):
    """A codebook of one row: every negative is excluded, every masked frame's loss is 0 (log-softmax of one logit)."""
    tf, q, neg, mask = hf_inputs(4, 5, codebook=1)
    q = q[:1, :1].expand(B, T, C).contiguous()
    got, want = _compare(lambda a, b: backend.run(wav2vec2_contrastive_loss, a, b, neg, mask, 0.1),
                         lambda a, b: hf_contrastive_loss(a, b, neg, mask, 0.1), [tf, q])
    assert float(got) == 0.0


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_reductions_mean_and_none(backend, reduction):
    tf, q, neg, mask = hf_inputs(5, 6)
    n = mask.sum()

    def want(a, b):
        if reduction == "mean":
            return hf_contrastive_loss(a, b, neg, mask, 0.1) / n  # HF's no_trainer script: loss / num_losses
        rows = [hf_contrastive_loss(a, b, neg, mask & (torch.arange(B * T).view(B, T) == i), 0.1)
                for i in range(B * T)]  # the per-frame loss: the sum over one masked frame
        return torch.stack(rows).view(B, T)

    _compare(lambda a, b: backend.run(wav2vec2_contrastive_loss, a, b, neg, mask, 0.1, reduction=reduction), want,
             [tf, q])


def test_input_dtypes_are_computed_in_float32():
    """float64 features: HF computes the cosine in float32 and its loss is float32; so is ours. An integer mask
    and int64 indices give the same as bool and int32."""
    tf, q, neg, mask = hf_inputs(6, 5, dtype=torch.float64)
    got, _ = _compare(lambda a, b: wav2vec2_contrastive_loss(a, b, neg.long(), mask.long(), 0.1, backend="reference"),
                      lambda a, b: hf_contrastive_loss(a, b, neg, mask, 0.1), [tf, q])
    assert got.dtype == torch.float32
    again = wav2vec2_contrastive_loss(tf, q, neg, mask, 0.1, backend="reference")
    torch.testing.assert_close(again, got, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(transformer_features=torch.zeros(B, T)), "transformer_features"),
    (dict(transformer_features=torch.zeros(B, T, C, dtype=torch.int64)), "transformer_features"),
    (dict(quantized_features=torch.zeros(B, T, C + 1)), "quantized_features"),
    (dict(sampled_negative_indices=torch.zeros(B, T, 3)), "sampled_negative_indices"),
    (dict(sampled_negative_indices=torch.zeros(B, T + 1, 3, dtype=torch.int64)), "sampled_negative_indices"),
    (dict(sampled_negative_indices=torch.full((B, T, 3), B * T)), "sampled_negative_indices"),
    (dict(sampled_negative_indices=torch.full((B, T, 3), -1)), "sampled_negative_indices"),
    (dict(mask_time_indices=torch.ones(B, T + 1, dtype=torch.bool)), "mask_time_indices"),
    (dict(mask_time_indices=torch.ones(B, T)), "mask_time_indices"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(temperature="0.1"), "temperature"),
    (dict(reduction="anchor_sum"), "reduction"),
], ids=["tf-2d", "tf-int", "q-shape", "idx-float", "idx-shape", "idx-range", "idx-negative", "mask-shape",
        "mask-float", "temp-0", "temp-neg", "temp-nan", "temp-str", "reduction"])
def test_bad_arguments_name_themselves(kwargs, match):
    args = dict(transformer_features=torch.zeros(B, T, C), quantized_features=torch.zeros(B, T, C),
                sampled_negative_indices=torch.zeros(B, T, 3, dtype=torch.int64),
                mask_time_indices=torch.ones(B, T, dtype=torch.bool), temperature=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        wav2vec2_contrastive_loss(**args, backend="reference")


# ---- fairseq / torchaudio ---------------------------------------------------------------------------------

def fairseq_sample_negatives(y, n_negatives, cross_sample_negatives, generator):
    """fairseq's Wav2Vec2Model.sample_negatives (fairseq/models/wav2vec/wav2vec2.py), re-written: same-utterance
    negatives avoid the anchor's own index; cross-sample ones are drawn from all B*M rows with fairseq's shift.
    Returns neg_idxs (B, M*(n + cross)) as fairseq returns it."""
    bsz, tsz, _ = y.shape
    num, high = tsz, tsz
    out = []
    if n_negatives > 0:
        own = torch.arange(num).unsqueeze(-1).expand(-1, n_negatives).flatten()
        idx = torch.randint(0, high - 1, (bsz, n_negatives * num), generator=generator)
        idx[idx >= own] += 1
        out.append(idx + torch.arange(bsz).unsqueeze(1) * high)
    if cross_sample_negatives > 0:
        own = torch.arange(num).unsqueeze(-1).expand(-1, cross_sample_negatives).flatten()
        idx = torch.randint(0, tsz * bsz - 1, (bsz, cross_sample_negatives * num), generator=generator)
        idx[idx >= own] += 1  # fairseq's shift, as published (it compares a global row with a local index)
        out.append(idx)
    return torch.cat(out, dim=1)


def fairseq_loss(x, y, neg_idxs, logit_temp):
    """compute_preds + get_logits (fairseq/models/wav2vec/wav2vec2.py) and the infonce cross-entropy of
    fairseq/criterions/wav2vec_criterion.py, re-written from the published code."""
    bsz, num, fsz = y.shape
    negatives = y.reshape(-1, fsz)[neg_idxs.view(-1)].view(bsz, num, -1, fsz).permute(2, 0, 1, 3)
    neg_is_pos = (y == negatives).all(-1)
    targets = torch.cat([y.unsqueeze(0), negatives], dim=0)
    logits = torch.cosine_similarity(x.float(), targets.float(), dim=-1)
    logits = logits / logit_temp
    logits = logits.type_as(x)
    if neg_is_pos.any():
        logits[1:][neg_is_pos] = float("-inf")
    logits = logits.transpose(0, 2).reshape(-1, logits.size(0)).float()  # get_logits, then the criterion's .float()
    target = logits.new_zeros(logits.size(0), dtype=torch.long)  # get_targets
    return F.cross_entropy(logits, target, reduction="sum")


def torchaudio_loss(x, mask_indices, positives, negatives, logit_temp=0.1):
    """torchaudio's examples/self_supervised_learning/losses/_wav2vec2_loss.py (wav2vec2_loss +
    compute_contrastive_loss, reduction="sum"), re-written: x over all frames, masked out by mask_indices."""
    neg_is_pos = (positives == negatives).all(-1)
    targets = torch.cat([positives.unsqueeze(0), negatives], dim=0)
    x = x[mask_indices].view(x.size(0), -1, x.size(-1)).unsqueeze(0).expand(targets.shape)
    logits = torch.cosine_similarity(x.float(), targets.float(), dim=-1).float() / logit_temp
    if neg_is_pos.any():
        logits[1:][neg_is_pos] = float("-inf")
    logits = logits.transpose(0, 2)  # (M, B, 1+N)
    logits = logits.reshape(-1, logits.size(-1))
    return F.cross_entropy(logits, logits.new_zeros(logits.size(0), dtype=torch.long), reduction="sum")


def fairseq_inputs(seed, M=10, codebook=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, M, C, generator=g)
    y = torch.randn(codebook, C, generator=g)[torch.randint(0, codebook, (B, M), generator=g)]
    return x, y, g


@pytest.mark.parametrize("n,cross,logit_temp", [(10, 0, 0.1), (4, 3, 0.1), (0, 6, 0.7)],
                         ids=["N10", "N4-cross3", "cross6-temp0.7"])
def test_fairseq_variant_equals_fairseq(backend, n, cross, logit_temp):
    x, y, g = fairseq_inputs(n + cross)
    neg_idxs = fairseq_sample_negatives(y, n, cross, g)
    negs = y.reshape(-1, C)[neg_idxs.view(-1)].view(B, y.shape[1], -1, C)
    assert (y.unsqueeze(2) == negs).all(-1).any(), "the case must exercise neg_is_pos"
    _compare(lambda a, b: backend.run(wav2vec2_contrastive_loss_fairseq, a, b, neg_idxs, logit_temp),
             lambda a, b: fairseq_loss(a, b, neg_idxs, logit_temp), [x, y])


def test_fairseq_variant_equals_torchaudio_recipe():
    """torchaudio's recipe takes x over all T frames and a mask with M masked frames per utterance."""
    x, y, g = fairseq_inputs(1, M=8)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        mask[b, torch.randperm(T, generator=g)[:8]] = True
    x_all = torch.randn(B, T, C, generator=g)
    neg_idxs = fairseq_sample_negatives(y, 6, 0, g)
    negatives = y.reshape(-1, C)[neg_idxs.view(-1)].view(B, 8, 6, C).permute(2, 0, 1, 3)
    a = x_all.clone().requires_grad_()
    b = x_all.clone().requires_grad_()
    got = wav2vec2_contrastive_loss_fairseq(a[mask].view(B, 8, C), y, neg_idxs, 0.1, backend="reference")
    want = torchaudio_loss(b, mask, y, negatives)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(*(torch.autograd.grad(v, leaf)[0] for v, leaf in ((got, a), (want, b))))


def test_fairseq_variant_is_the_hf_loss_on_compacted_frames():
    """The two layouts agree: fairseq's (B, M) compacted masked frames with local rows vs HF's (B, T) with a mask."""
    tf, q, _, _ = hf_inputs(7, 3)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, 2:12] = True  # M = 10 per utterance, as fairseq requires
    neg = wav2vec2_negatives(mask, 5, generator=torch.Generator().manual_seed(1))
    local = (neg // T) * 10 + (neg % T - 2)  # row b*T + t -> b*M + (t - 2)
    hf = wav2vec2_contrastive_loss(tf, q, neg, mask, 0.3, backend="reference")
    fs = wav2vec2_contrastive_loss_fairseq(tf[:, 2:12], q[:, 2:12], local[:, 2:12], 0.3, backend="reference")
    torch.testing.assert_close(fs, hf)


def test_fairseq_bad_arguments_name_themselves():
    x, y, g = fairseq_inputs(0)
    idx = fairseq_sample_negatives(y, 3, 0, g)
    with pytest.raises(ValueError, match="^y "):
        wav2vec2_contrastive_loss_fairseq(x, y[:, :-1], idx)
    with pytest.raises(ValueError, match="neg_idxs"):
        wav2vec2_contrastive_loss_fairseq(x, y, idx[:, :-1])
    with pytest.raises(ValueError, match="logit_temp"):
        wav2vec2_contrastive_loss_fairseq(x, y, idx, 0)

"""wav2vec2_negatives (HF's _sample_negative_indices semantics, drawn with torch) and exclude_equal_to_positive
(HF's / fairseq's neg_is_pos by value): distributional properties, and equality with HF's ``==`` rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

from sim_kernels import exclude_equal_to_positive, wav2vec2_negatives

B, T = 4, 30


def _mask(seed, p=0.5):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, generator=g) < p
    mask[:, :2] = True  # at least two masked frames per utterance
    return mask


def test_shape_dtype_and_the_unmasked_frames_are_hfs():
    mask = _mask(0)
    idx = wav2vec2_negatives(mask, 7, generator=torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64 and idx.shape == (B, T, 7)
    base = (torch.arange(B) * T).view(B, 1, 1).expand(B, T, 7)
    assert torch.equal(idx[~mask], base[~mask]), "unmasked frames: row b*T, as HF's zeros plus the batch offset"
    hf = torch.from_numpy(_sample_negative_indices((B, T), 7, mask_time_indices=mask.numpy()))
    assert torch.equal(hf[~mask].long(), idx[~mask])


@pytest.mark.parametrize("lengths", [None, [30, 21, 9, 3]], ids=["full", "lengths"])
def test_never_self_always_a_masked_real_frame_of_the_same_utterance(lengths):
    mask = _mask(1)
    lens = None if lengths is None else torch.tensor(lengths)
    idx = wav2vec2_negatives(mask, 50, generator=torch.Generator().manual_seed(1), lengths=lens)
    real = torch.ones(B, T, dtype=torch.bool) if lens is None else torch.arange(T) < lens.view(B, 1)
    anchors = mask & real
    b, t = anchors.nonzero(as_tuple=True)
    rows = idx[b, t]  # (anchors, N)
    assert (rows != (b * T + t).view(-1, 1)).all(), "the anchor itself is never a negative"
    assert (rows // T == b.view(-1, 1)).all(), "negatives come from the anchor's utterance"
    assert anchors.view(-1)[rows].all(), "negatives are masked, real frames (never a padded one)"
    if lens is not None:
        assert torch.equal(idx[~anchors], (torch.arange(B) * T).view(B, 1, 1).expand(B, T, 50)[~anchors]), \
            "padded frames are not anchors: HF's b*T filler"


def test_uniform_over_the_other_masked_frames():
    """One utterance, M masked frames, many draws: each anchor's M - 1 candidates are equally frequent
    (chi-square against uniform, p > 0.001 for every anchor at this seed), and HF's sampler has the same support."""
    mask = torch.zeros(1, T, dtype=torch.bool)
    mask[0, ::3] = True  # M = 10
    M, N = int(mask.sum()), 9000
    idx = wav2vec2_negatives(mask, N, generator=torch.Generator().manual_seed(2))
    np.random.seed(2)
    hf = torch.from_numpy(_sample_negative_indices((1, T), N, mask_time_indices=mask.numpy())).long()
    frames = mask[0].nonzero().flatten()
    chi2_crit = 27.88  # chi-square, 9 degrees of freedom, p = 0.001
    for t in frames.tolist():
        others = frames[frames != t]
        for draws in (idx[0, t], hf[0, t]):
            counts = torch.stack([(draws == o).sum() for o in others]).double()
            assert counts.sum() == N, "only the other masked frames are drawn"
            expected = N / (M - 1)
            assert float(((counts - expected) ** 2 / expected).sum()) < chi2_crit


def test_seeded_generator_reproduces_and_global_rng_is_the_default():
    mask = _mask(3)
    a = wav2vec2_negatives(mask, 5, generator=torch.Generator().manual_seed(7))
    b = wav2vec2_negatives(mask, 5, generator=torch.Generator().manual_seed(7))
    c = wav2vec2_negatives(mask, 5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(4)
    d = wav2vec2_negatives(mask, 5)
    torch.manual_seed(4)
    assert torch.equal(wav2vec2_negatives(mask, 5), d)


def test_integer_mask_and_an_utterance_without_masked_frames():
    mask = _mask(5)
    mask[2] = False
    idx = wav2vec2_negatives(mask.to(torch.int32), 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, wav2vec2_negatives(mask, 4, generator=torch.Generator().manual_seed(0)))
    assert (idx[2] == 2 * T).all()


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(B, T, 2, dtype=torch.bool), 3), "mask_time_indices"),
    ((torch.zeros(B, T), 3), "mask_time_indices"),
    ((torch.ones(B, T, dtype=torch.bool), 0), "num_negatives"),
    ((torch.eye(B, T, dtype=torch.bool), 3), "exactly one masked frame"),
], ids=["3d", "float", "N0", "one-masked-frame"])
def test_sampler_errors(args, match):
    with pytest.raises(ValueError, match=match):
        wav2vec2_negatives(*args)


def test_sampler_lengths_errors():
    with pytest.raises(ValueError, match="lengths"):
        wav2vec2_negatives(_mask(0), 3, lengths=torch.tensor([T + 1, 2, 2, 2]))


# ---- exclude_equal_to_positive --------------------------------------------------------------------------

def _hf_neg_is_pos(neg_idx, targets, first_step=0):
    """HF's rule, materialised: (positive == negative).all(-1) per anchor and step, on every positioned anchor."""
    Bq, Tq, Cq = targets.shape
    neg = neg_idx.view(-1, Bq, Tq, neg_idx.shape[-1])
    out = torch.zeros(neg.shape, dtype=torch.bool)
    flat = targets.reshape(-1, Cq)
    for k in range(neg.shape[0]):
        d = first_step + k
        for b in range(Bq):
            for t in range(Tq - d):
                ok = neg[k, b, t] >= 0
                out[k, b, t] = ok & (flat[neg[k, b, t].clamp(min=0)] == targets[b, t + d]).all(-1)
    return out.view(neg_idx.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=["fp32", "fp64", "fp16", "bf16"])
def test_exclusion_equals_hfs_rule(dtype):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, B * T // 3, 5, generator=g)[:, torch.randint(0, 4, (B * T // 3,), generator=g)]
    q = q.reshape(B, T, 5).to(dtype)
    q[0, 1, 0] = 1e-3 if dtype != torch.bfloat16 else 1e-2  # a row one channel off its twins
    idx = torch.randint(0, B * T, (B, T, 6), generator=g)
    idx[0, 0, 0] = -1
    got = exclude_equal_to_positive(idx, q)
    want = _hf_neg_is_pos(idx, q)
    assert want.any() and not want.all()
    assert torch.equal(got == -1, want | (idx == -1))
    assert torch.equal(got[got != -1], idx[got != -1])


@pytest.mark.parametrize("first_step", [0, 1, 2])
def test_exclusion_per_step(first_step):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 5, generator=g)[torch.randint(0, 2, (B, T), generator=g)]
    idx = torch.randint(0, B * T, (3, B, T, 4), generator=g)
    got = exclude_equal_to_positive(idx, q, first_step=first_step)
    want = _hf_neg_is_pos(idx, q, first_step)
    assert torch.equal(got == -1, want)
    # anchors without a positive (t + first_step + k - 1 >= T) are left as they are
    for k in range(3):
        assert torch.equal(got[k, :, T - first_step - k:], idx[k, :, T - first_step - k:])


def test_exclusion_confirms_every_fingerprint_match_channel_by_channel(monkeypatch):
    """Fingerprints that all collide (every row the same print) must still exclude exactly HF's pairs: the
    channel-by-channel check decides, the fingerprint only preselects."""
    import sim_kernels.sampling as sampling

    g = torch.Generator().manual_seed(5)
    q = torch.randn(3, 4, generator=g)[torch.randint(0, 3, (B, T), generator=g)]
    q[1, 2, 3] += 1e-6  # one row one ulp-ish off its twins
    idx = torch.randint(0, B * T, (B, T, 6), generator=g)
    monkeypatch.setattr(sampling, "_row_fingerprints", lambda rows: torch.zeros(rows.shape[0], dtype=torch.float64))
    got = exclude_equal_to_positive(idx, q)
    want = _hf_neg_is_pos(idx, q)
    assert want.any() and not want.all()
    assert torch.equal(got == -1, want)


def test_fingerprints_of_equal_rows_are_equal_at_any_position():
    """Equal rows get bitwise-equal fingerprints wherever they sit (first row of a GEMM block or the last
    of a ragged one), for wide rows too; distinct rows differ."""
    from sim_kernels.sampling import _FINGERPRINT_ROWS, _row_fingerprints

    g = torch.Generator().manual_seed(6)
    for dtype, C in ((torch.float32, 256), (torch.float64, 1000), (torch.bfloat16, 4096)):
        rows = torch.randn(_FINGERPRINT_ROWS + 37, C, generator=g).to(dtype)
        for i in (1, 17, _FINGERPRINT_ROWS - 1, _FINGERPRINT_ROWS, _FINGERPRINT_ROWS + 36):
            rows[i] = rows[0]
        prints = _row_fingerprints(rows)
        same = prints == prints[0]
        assert same.sum() == 6 and same[[0, 1, 17, _FINGERPRINT_ROWS - 1, _FINGERPRINT_ROWS,
                                         _FINGERPRINT_ROWS + 36]].all()


def test_exclusion_minus_zero_nan_and_dtypes():
    """-0.0 == 0.0 (HF's ==: excluded); a row with a NaN equals nothing, not even itself (HF's ==: kept)."""
    q = torch.zeros(1, 4, 2)
    q[0, 1, 0] = -0.0
    q[0, 2, 0] = float("nan")
    q[0, 3] = q[0, 2]
    idx = torch.tensor([[[1, 2, 3], [0, 2, 1], [2, 3, 0], [3, 2, 0]]], dtype=torch.int32)
    got = exclude_equal_to_positive(idx, q)
    assert got.dtype == torch.int64
    want = _hf_neg_is_pos(idx.long(), q)
    assert torch.equal(got == -1, want)
    assert torch.signbit(q[0, 1, 0]) and not torch.signbit(q[0, 0, 0])
    assert got[0, 0, 0] == -1 and got[0, 1, 0] == -1, "-0.0 rows equal 0.0 rows"
    assert (got[0, 2:] != -1).all(), "NaN rows are never equal (HF: NaN != NaN), not even to themselves"


def test_exclusion_errors():
    q = torch.zeros(B, T, 3)
    with pytest.raises(ValueError, match="targets"):
        exclude_equal_to_positive(torch.zeros(B, T, 2, dtype=torch.int64), q.long())
    with pytest.raises(ValueError, match="neg_idx"):
        exclude_equal_to_positive(torch.zeros(B, T + 1, 2, dtype=torch.int64), q)
    with pytest.raises(ValueError, match="neg_idx"):
        exclude_equal_to_positive(torch.zeros(B, T, 2), q)
    with pytest.raises(ValueError, match=r"\[0, B\*T"):
        exclude_equal_to_positive(torch.full((B, T, 2), -2), q)
    with pytest.raises(ValueError, match="first_step"):
        exclude_equal_to_positive(torch.zeros(B, T, 2, dtype=torch.int64), q, first_step=-1)

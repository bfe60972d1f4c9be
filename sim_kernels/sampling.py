"""Negative samplers: they produce index tensors and nothing else.

Every sampler returns int64 indices into the flattened targets, ``targets.reshape(B*T, Cz)``,
shaped (K, B, T, N) when the negatives differ per prediction step or (B, T, N) when they are
shared over k. All randomness comes from the ``generator`` argument (the global RNG when None),
so a seeded generator reproduces the draw exactly.

Samplers (``sample_negatives(kind, ...)``):

* ``"gim"`` — Löwe et al.'s Greedy InfoMax audio default. N random permutations of all B·T rows
  are drawn once per call (``torch.randperm(B*T)`` N times, in that order, from the generator) and
  shared over k by an offset: at step k, the anchor in row i of the (B, W-k) flattening of the
  anchor window (W = T without subsampling) takes row ``B*T - B*(W-k) + i`` of each permutation.
  The positive itself may be drawn as a negative (as in their code). Fed the same random stream
  it reproduces their loss exactly.
* ``"within_sequence"`` — N frames drawn uniformly, with replacement, from the anchor's own
  utterance (any of its T frames; the positive may be drawn). Shared over k.
* ``"cpc"`` — van den Oord et al. / cpc_audio: a random utterance b' and a random time offset
  o in [1, T), giving frame (t + o) mod T of utterance b'; so a negative is never frame t of b'.
  Shared over k.

wav2vec 2.0 (``wav2vec2_negatives``, not a ``sample_negatives`` kind: its draw depends on the
masked frames ``mask_time_indices``, which the (batch, time) samplers above do not take):

* ``wav2vec2_negatives(mask_time_indices, N)`` — Hugging Face's ``_sample_negative_indices``: N
  frames drawn uniformly, with replacement, from the masked frames of the anchor's own utterance,
  never the anchor itself. Shared over k (wav2vec 2.0 has one step, the same frame).
* ``exclude_equal_to_positive(neg_idx, targets)`` — HF's / fairseq's ``neg_is_pos``: marks -1
  (no negative, score -inf) every negative whose target row equals the positive's.
"""
from __future__ import annotations

import torch

__all__ = ["SAMPLERS", "sample_negatives", "gim_negatives", "within_sequence_negatives", "cpc_negatives",
           "wav2vec2_negatives", "exclude_equal_to_positive"]


def _check(batch: int, time: int, num_negatives: int):
    for name, v in (("batch", batch), ("time", time), ("num_negatives", num_negatives)):
        # torch.SymInt: sizes read off tensors while torch.export (non-strict) or torch.compile traces
        if not isinstance(v, (int, torch.SymInt)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_lengths(lengths, batch, time):
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor) or lengths.dtype != torch.int64 or lengths.shape != (batch,):
        raise ValueError(f"lengths must be an int64 tensor of shape (batch,) = ({batch},), got "
                         f"{lengths.dtype if isinstance(lengths, torch.Tensor) else type(lengths).__name__}"
                         f"{tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else ''}")
    if not bool(((lengths >= 1) & (lengths <= time)).all()):
        raise ValueError(f"lengths: every length must lie in [1, time={time}], got {lengths.tolist()}")
    return lengths


def _real_rows(lengths, time, device):
    """Flat row ids b*T + t of the real frames (t < lengths[b]), in order."""
    t = torch.arange(time, device=device)
    real = t.view(1, time) < lengths.to(device).view(-1, 1)
    return real.reshape(-1).nonzero().squeeze(1)


def gim_negatives(batch, time, num_negatives, prediction_steps, generator=None, device=None, window=None,
                  lengths=None):
    """GIM's shared-permutation negatives.

    Args:
        window: (t_begin, t_end) anchor window of GIM's subsampling, or None for the whole sequence.
        lengths: int64 (B,) real frames per utterance, or None: each permutation then runs over the real
            rows only (repeated to fill B*T), so a padded frame is never a negative.
    Returns:
        (K, B, T, N) int64; entries outside the step-k anchors [t_begin, t_end - k) are 0.
    """
    _check(batch, time, num_negatives)
    lengths = _check_lengths(lengths, batch, time)
    K, B, T, N = prediction_steps, batch, time, num_negatives
    t0, t1 = (0, T) if window is None else window
    if not (0 <= t0 < t1 <= T):
        raise ValueError(f"window must satisfy 0 <= t_begin < t_end <= T={T}, got {window}")
    if K >= t1 - t0:
        raise ValueError(f"prediction_steps K={K} must be < the anchor window length {t1 - t0} (T={T}, window={window})")
    W = t1 - t0
    if lengths is None:
        perms = torch.stack([torch.randperm(B * T, generator=generator, device=device) for _ in range(N)], dim=-1)
    else:  # permutations of the real rows, each repeated to B*T entries
        real = _real_rows(lengths, T, device)
        reps = -(-B * T // len(real))
        perms = torch.stack([real[torch.randperm(len(real), generator=generator, device=device)].repeat(reps)[:B * T]
                             for _ in range(N)], dim=-1)  # (B*T, N)
    out = torch.zeros(K, B, T, N, dtype=torch.int64, device=perms.device)
    for k in range(1, K + 1):
        rows = B * T - B * (W - k) + torch.arange(B * (W - k), device=perms.device)
        out[k - 1, :, t0 : t1 - k] = perms[rows].view(B, W - k, N)
    return out


def within_sequence_negatives(batch, time, num_negatives, generator=None, device=None, lengths=None):
    """(B, T, N) int64: uniform frames of the anchor's own utterance (its real frames t < lengths[b] when given)."""
    _check(batch, time, num_negatives)
    lengths = _check_lengths(lengths, batch, time)
    if lengths is None:
        t = torch.randint(0, time, (batch, time, num_negatives), generator=generator, device=device)
    else:
        u = torch.rand((batch, time, num_negatives), generator=generator, device=device)
        t = (u * lengths.to(u.device).view(batch, 1, 1)).long().clamp(max=time - 1)
    base = torch.arange(batch, device=t.device).view(batch, 1, 1) * time
    return base + t


def cpc_negatives(batch, time, num_negatives, generator=None, device=None, lengths=None):
    """(B, T, N) int64: random utterance, random non-zero time offset (mod T) from t; with lengths, offset and
    modulus are the drawn utterance's length, so the frame is real and never frame t of that utterance."""
    _check(batch, time, num_negatives)
    lengths = _check_lengths(lengths, batch, time)
    if time < 2:
        raise ValueError(f"the cpc sampler needs time >= 2 to avoid t, got time={time}")
    b = torch.randint(0, batch, (batch, time, num_negatives), generator=generator, device=device)
    t = torch.arange(time, device=b.device).view(1, time, 1)
    if lengths is None:
        off = torch.randint(1, time, (batch, time, num_negatives), generator=generator, device=device)
        return b * time + (t + off) % time
    if bool((lengths < 2).any()):
        raise ValueError(f"lengths: the cpc sampler needs every length >= 2 to avoid t, got {lengths.tolist()}")
    n = lengths.to(b.device)[b]  # the drawn utterance's length
    u = torch.rand((batch, time, num_negatives), generator=generator, device=device)
    off = 1 + (u * (n - 1)).long().clamp(max=time - 2)
    return b * time + (t + off) % n


def _describe(x):
    return f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_mask(mask_time_indices, name="mask_time_indices"):
    """(B, T) bool view of a bool or integer mask (nonzero = masked, as ``.to(torch.bool)`` in HF's forward)."""
    if not isinstance(mask_time_indices, torch.Tensor) or mask_time_indices.dim() != 2:
        raise ValueError(f"{name} must be a (batch, time) tensor, got {_describe(mask_time_indices)}")
    if mask_time_indices.is_floating_point() or mask_time_indices.is_complex():
        raise ValueError(f"{name} must be bool or an integer dtype, got {mask_time_indices.dtype}")
    return mask_time_indices.to(torch.bool)


def wav2vec2_negatives(mask_time_indices, num_negatives, generator=None, lengths=None):
    """wav2vec 2.0's negatives: for every masked frame, N other masked frames of the same utterance.

    The semantics of Hugging Face's ``_sample_negative_indices`` (transformers,
    ``models/wav2vec2/modeling_wav2vec2.py``; the same rule as fairseq's ``Wav2Vec2Model.sample_negatives``,
    ``fairseq/models/wav2vec/wav2vec2.py``, on fairseq's compacted masked frames): for anchor (b, t) with
    ``mask[b, t]``, each of the N negatives is drawn independently and uniformly, with replacement, from the
    other M_b - 1 masked frames of utterance b (M_b = its number of masked frames): a rank r uniform in
    [0, M_b - 2], shifted by one when r >= the anchor's own rank, so the anchor itself is never drawn and
    the distribution stays uniform. Unmasked frames get row b*T (frame 0 of their utterance), exactly as
    HF's (zeros, then the batch offset); the loss ignores them (they are not anchors).

    Difference from HF: HF draws with numpy's global RNG (``np.random.randint``); this draws with torch
    from ``generator`` (the global torch RNG when None), on the mask's device. A seeded generator
    reproduces a draw exactly; the same seed does not reproduce HF's numbers (the distribution is the same).
    As in HF, an utterance without masked frames is allowed (no anchors) and one with exactly one masked
    frame is an error (HF: numpy's ``high <= 0``).

    Args:
        mask_time_indices: (B, T) bool or integer tensor, nonzero = masked frame (an anchor, and a
            candidate negative for the other anchors of its utterance).
        num_negatives: N >= 1 (HF's ``config.num_negatives``, 100 in wav2vec 2.0).
        generator: torch.Generator on the mask's device, or None.
        lengths: optional int64 (B,) real frames per utterance, 1 <= lengths[b] <= T: frames t >= lengths[b]
            (padding) are dropped from the mask, so they are neither anchors nor negatives (HF gets this by
            computing the mask with ``attention_mask``).
    Returns:
        int64 (B, T, N) rows of ``targets.reshape(B*T, C)`` (global ids b*T + t), on the mask's device:
        the ``neg_idx`` of ``smooth_infonce`` and the ``sampled_negative_indices`` of HF's
        ``Wav2Vec2ForPreTraining.forward``.
    Raises:
        ValueError: a mask that is not (B, T) bool/integer, num_negatives < 1, bad lengths, or an utterance
            with exactly one masked frame (no frame other than the anchor to draw).
    """
    mask = _check_mask(mask_time_indices)
    B, T = mask.shape
    _check(B, T, num_negatives)
    N, dev = num_negatives, mask.device
    lengths = _check_lengths(lengths, B, T)
    if lengths is not None:
        mask = mask & (torch.arange(T, device=dev).view(1, T) < lengths.to(dev).view(B, 1))
    count = mask.sum(1)  # M_b, masked frames per utterance
    if bool((count == 1).any()):
        raise ValueError("mask_time_indices: utterances "
                         f"{(count == 1).nonzero().flatten().tolist()} have exactly one masked frame; a negative "
                         "must be another masked frame of the same utterance, so each needs 0 or >= 2")
    rank = mask.long().cumsum(1) - 1  # rank of a masked frame among its utterance's masked frames
    # frame[b, r] = the frame of the r-th masked frame of utterance b (unused slots stay 0)
    frame = torch.zeros(B, T, dtype=torch.int64, device=dev)
    b_idx, t_idx = mask.nonzero(as_tuple=True)
    frame[b_idx, rank[b_idx, t_idx]] = t_idx
    u = torch.rand((B, T, N), generator=generator, device=dev, dtype=torch.float64)
    high = (count - 1).clamp(min=1).view(B, 1, 1)  # M_b - 1 candidates besides the anchor
    r = torch.minimum((u * high).long(), high - 1)  # uniform in [0, M_b - 2]
    r = r + (r >= rank.view(B, T, 1)).long()  # skip the anchor's own rank
    t_neg = torch.where(mask.view(B, T, 1), frame.gather(1, r.clamp(max=T - 1).view(B, T * N)).view(B, T, N), 0)
    return torch.arange(B, device=dev).view(B, 1, 1) * T + t_neg


def exclude_equal_to_positive(neg_idx, targets, first_step=0):
    """``neg_is_pos``: -1 (no negative) wherever a negative's target row equals its positive's, by value.

    Hugging Face's ``Wav2Vec2ForPreTraining.forward`` (``neg_is_pos = (quantized_features ==
    negative_quantized_features).all(-1)``, then ``logits[1:][neg_is_pos] = -inf``; transformers,
    ``models/wav2vec2/modeling_wav2vec2.py``) and fairseq's ``Wav2Vec2Model.compute_preds``
    (``fairseq/models/wav2vec/wav2vec2.py``): a negative identical to the positive in every channel (a
    codebook entry used twice) would be an unbeatable competitor, so it is dropped. ``smooth_infonce``
    reads -1 as "no negative here" (score -inf, no gradient): the same loss and gradients.

    Exact equality without materialising the (B, T, N, C) negatives: every row of ``targets`` gets a
    fingerprint of its bits (``_row_fingerprints``: equal rows, equal fingerprints, exactly), the
    fingerprints of each negative and its positive are compared, and only the pairs whose fingerprints agree
    (the duplicates, and any rare collision) are compared channel by channel. Equality is IEEE ``==`` per
    channel, as HF's: -0.0 equals 0.0 (rows are canonicalised by adding +0.0), and a row holding a NaN equals
    nothing, not even itself (such a positive keeps all its negatives; such a negative is never dropped).
    Cost: one O(B*T*C) pass, O(B*T*N) compares, one host sync.

    Args:
        neg_idx: integer (B, T, N) or (K, B, T, N) rows of ``targets.reshape(B*T, C)``; -1 entries (already
            excluded) stay -1.
        targets: floating (B, T, C) tensor, the positives' and negatives' rows (HF's ``quantized_features``).
        first_step: int >= 0, the positive of anchor (b, t) at step k (k = 1..K) is frame t + first_step + k - 1
            (0 for wav2vec 2.0: the anchor's own frame); anchors without a positive (t + first_step + k - 1 >= T)
            are left as they are.
    Returns:
        int64 tensor shaped like neg_idx, on its device; no gradient (an index tensor).
    Raises:
        ValueError: shapes or dtypes that do not fit, first_step < 0, or an entry outside [-1, B*T).
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() != 3 or not targets.is_floating_point():
        raise ValueError(f"targets must be a floating (B, T, C) tensor, got {_describe(targets)}")
    B, T, C = targets.shape
    if (not isinstance(neg_idx, torch.Tensor) or neg_idx.dim() not in (3, 4) or neg_idx.is_floating_point()
            or neg_idx.dtype == torch.bool or tuple(neg_idx.shape[-3:-1]) != (B, T)):
        raise ValueError(f"neg_idx must be an integer (B, T, N) or (K, B, T, N) tensor with (B, T) = ({B}, {T}), got "
                         f"{_describe(neg_idx)}")
    if not isinstance(first_step, int) or isinstance(first_step, bool) or first_step < 0:
        raise ValueError(f"first_step must be an int >= 0, got {first_step!r}")
    neg = neg_idx.long()
    if neg.numel() and bool(((neg < -1) | (neg >= B * T)).any()):
        raise ValueError(f"neg_idx: entries must lie in [0, B*T={B * T}) or be -1 (excluded), got "
                         f"[{int(neg.min())}, {int(neg.max())}]")
    return excluding_equal_to_positive(neg, targets, first_step)


def excluding_equal_to_positive(neg, targets, first_step):
    """exclude_equal_to_positive without its argument checks, for callers that made them (int64 ``neg`` with
    entries in [-1, B*T), (B, T, C) floating ``targets``, ``first_step`` >= 0)."""
    B, T, C = targets.shape
    K = neg.shape[0] if neg.dim() == 4 else 1
    with torch.no_grad():
        rows = (targets.detach().reshape(B * T, C) + 0.0).to(neg.device)  # -0.0 + 0.0 = +0.0
        nan = rows.isnan().any(1)
        prints = _row_fingerprints(rows)
        steps = neg.view(K, B, T, -1)
        t = torch.arange(T, device=neg.device).view(1, 1, T)
        pos_t = t + first_step + torch.arange(K, device=neg.device).view(K, 1, 1)  # (K, 1, T)
        pos = (torch.arange(B, device=neg.device).view(1, B, 1) * T + pos_t.clamp(max=T - 1)).view(K, B, T, 1)
        has_pos = (pos_t < T).view(K, 1, T, 1)
        rows_n = steps.clamp(min=0)
        same = (prints[rows_n] == prints[pos]) & ~nan[pos] & (steps >= 0) & has_pos  # candidates
        where = same.nonzero(as_tuple=True)  # the one sync; few: duplicates and rare collisions
        if where[0].numel():
            equal = (rows[rows_n[where]] == rows[pos.expand_as(steps)[where]]).all(-1)  # IEEE ==, channel by channel
            same[where] = equal
        return torch.where(same, -1, steps).view(neg.shape)


_FINGERPRINT_SEED = 0x5EED  # fixed: the fingerprints of a row are the same in every call and process
_FINGERPRINT_ROWS = 4096    # rows per block: the 16-bit words of a block as float64 stay a few MB


def _row_fingerprints(rows):
    """(R,) float64 fingerprints of the (R, C) rows' bits: rows equal bit for bit get equal fingerprints.

    Each row's bits, as L = C * (element bytes / 2) unsigned 16-bit words w_l, are summed as sum_l w_l a_l
    with fixed random integer coefficients a_l in [1, 2^20): every product is an integer below 2^36 and the
    sum one below L * 2^36 <= 2^53, so float64 holds it exactly whatever order the GEMM adds in (a rounded
    sum could differ between two equal rows at different positions). Distinct rows rarely collide; callers
    confirm a match channel by channel."""
    words = rows.contiguous().view(torch.int16)  # (R, L)
    R, L = words.shape
    if L > 2 ** 17:
        raise ValueError(f"targets: rows of {L} 16-bit words are too wide for exact fingerprints (at most 2**17)")
    gen = torch.Generator().manual_seed(_FINGERPRINT_SEED)
    coeff = torch.randint(1, 2 ** 20, (L,), generator=gen, dtype=torch.int64).to(torch.float64).to(rows.device)
    out = torch.empty(R, dtype=torch.float64, device=rows.device)
    for r0 in range(0, R, _FINGERPRINT_ROWS):
        block = words[r0:r0 + _FINGERPRINT_ROWS].view(torch.uint16)  # the same bits, unsigned: 0..65535
        out[r0:r0 + _FINGERPRINT_ROWS] = block.to(torch.float64) @ coeff
    return out


SAMPLERS = ("gim", "within_sequence", "cpc")


def sample_negatives(kind, batch, time, num_negatives, prediction_steps, generator=None, device=None, window=None,
                     lengths=None):
    """Dispatch to a sampler by name (see the module docstring); returns (K,B,T,N) or (B,T,N).
    ``lengths`` (int64 (B,), optional): real frames per utterance of a padded batch; no padded frame
    (t >= lengths[b]) is ever drawn."""
    if kind == "gim":
        return gim_negatives(batch, time, num_negatives, prediction_steps, generator, device, window, lengths)
    if kind == "within_sequence":
        return within_sequence_negatives(batch, time, num_negatives, generator, device, lengths)
    if kind == "cpc":
        return cpc_negatives(batch, time, num_negatives, generator, device, lengths)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")

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
"""
from __future__ import annotations

import torch

__all__ = ["SAMPLERS", "sample_negatives", "gim_negatives", "within_sequence_negatives", "cpc_negatives"]


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

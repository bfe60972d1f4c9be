"""The entanglement metric δ (the paper's Table 3): how much of the difference between two decoded
utterances is left when only the N most different latent dimensions are swapped.

For an ordered pair of utterances (a, b) with per-frame latents z_a, z_b (T, C) of one module:

1. rank the C dimensions by the squared difference of the *time-averaged* latents,
   (mean_t z_a[t, c] − mean_t z_b[t, c])², largest first;
2. z_swap = z_a with those top-N dimensions replaced by z_b's, *in every frame* (per-frame values,
   not averages: the decoder needs a (T, C) latent);
3. decode: x_swap = D(z_swap), x_a = D(z_a), x_b = D(z_b).

Over all ordered pairs (a ≠ b) of the chosen utterances,

    δ(N) = Σ_pairs ‖x_swap − x_b‖² / Σ_pairs ‖x_a − x_b‖²     clipped to [0, 1],

a ratio of mean squared errors, as in the SIM authors' code (their "max error" is the all-unswapped
distance ‖x_a − x_b‖²). δ = 0 when all C dimensions are swapped (then z_swap = z_b exactly) and
δ = 1 at N = 0; a small δ at small N means a few dimensions carry the difference between the two
utterances (disentangled), δ near 1 that it is spread over many (entangled). Without the clip δ can
exceed 1 for a decoder that extrapolates badly from a mixed latent; the unclipped value is also
returned. The distance is measured on the waveform (``space="waveform"``) or on log-mel
spectrograms (``space="mel"``, less sensitive to phase).

N runs over 2, 4, …, 512 (Table 3), capped at the latent width C; C itself is always added, and so
are the Ns at the paper's *fractions* of the width (``paper_fraction_ns``): the paper's Table 3 quotes
δ at N = 8 and N = 64 of C = 512 dimensions, i.e. 1/64 and 1/8 of the width; at width C that is
N = max(1, round(C/64)) and max(1, round(C/8)) (half rounds up), e.g. 1 and 6 at C = 48. Comparing
N = 8 of 48 dimensions with the paper's 8 of 512 would swap 8× the paper's share.

Which latents: ``latents`` are whatever the caller encodes. The paper-faithful input (the SIM authors'
``interpolation_contribution_score.py``, ``LitDecoder.encode → get_latents``) is one *sample* per
utterance (representations.utterance_latents: a fixed ε per utterance, carried into the later
modules, the same tensor in every pair), decoded by a decoder trained on fresh samples; μ is the
robustness row. The authors' pairs: every ordered pair of their test loader's ~128 files (~16 k
pairs); ``max_pairs`` draws a seeded subset of the ordered pairs when a budget cannot afford all.
"""
from __future__ import annotations

import itertools
import math

import torch

from sim_models.util.document import Table

__all__ = ["TABLE3_NS", "TABLE3_N", "PAPER_FRACTIONS", "most_different_dims", "swap_dims", "entanglement_delta", "delta_table",
           "ns_for_width", "paper_fraction_ns", "ordered_pairs"]

TABLE3_NS = (2, 4, 8, 16, 32, 64, 128, 256, 512)
TABLE3_N = 8        # the paper's highlighted N (Table 3), of its 512 dims
PAPER_WIDTH = 512
PAPER_FRACTIONS = {"1/64": 8, "1/8": 64}   # the paper's Table 3 Ns at C = 512, named by their share of the width


def paper_fraction_ns(width: int) -> dict:
    """{"1/64": N, "1/8": N}: the paper's N = 8 and 64 of 512 dimensions carried to a C = ``width`` latent,
    N = max(1, floor(C·n/512 + 1/2)) (round half up): 8 and 64 at 512, 1 and 6 at 48, 4 and 32 at 256."""
    return {k: max(1, min(int(width), int(math.floor(width * n / PAPER_WIDTH + 0.5)))) for k, n in PAPER_FRACTIONS.items()}


def ordered_pairs(u: int, max_pairs: int | None = None, seed: int = 0) -> list:
    """Every ordered pair (a, b), a != b, of ``u`` utterances (u·(u−1) pairs), or a seeded random subset of
    ``max_pairs`` of them (in their original order)."""
    pairs = list(itertools.permutations(range(u), 2))
    if max_pairs is not None and 0 < max_pairs < len(pairs):
        keep = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:max_pairs].sort().values
        pairs = [pairs[i] for i in keep.tolist()]
    return pairs


def ns_for_width(width: int, ns=TABLE3_NS, fractions: bool = False) -> list:
    """The Ns of Table 3 that fit a C = ``width`` latent, plus C itself (and, with ``fractions``, the
    paper_fraction_ns), ascending."""
    out = {int(n) for n in ns if 0 < int(n) <= width} | {int(width)}
    if fractions:
        out |= set(paper_fraction_ns(width).values())
    return sorted(out)


def most_different_dims(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """z_a, z_b: (..., T, C). Dimension indices (..., C) sorted by (mean_t z_a − mean_t z_b)², largest first
    (stable sort: ties keep index order)."""
    diff = (z_a.mean(dim=-2) - z_b.mean(dim=-2)) ** 2
    return torch.sort(diff, dim=-1, descending=True, stable=True).indices


def swap_dims(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """z_a with its ``n`` most different dimensions (see most_different_dims) taken from z_b, in every frame.

    z_a, z_b: (P, T, C) or (T, C). Returns the same shape as z_a."""
    if z_a.shape != z_b.shape or z_a.dim() not in (2, 3):
        raise ValueError(f"z_a and z_b must both be (T, C) or (P, T, C), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    c = z_a.shape[-1]
    if not 0 <= n <= c:
        raise ValueError(f"n must be in [0, C={c}], got {n}")
    order = most_different_dims(z_a, z_b)[..., :n]                 # (..., n)
    mask = torch.zeros(z_a.shape[:-2] + (c,), dtype=torch.bool, device=z_a.device)
    mask.scatter_(-1, order, True)
    return torch.where(mask.unsqueeze(-2), z_b, z_a)


@torch.no_grad()
def entanglement_delta(decoder, latents: torch.Tensor, ns=TABLE3_NS, pairs=None, space: str = "waveform",
                       logmel=None, batch_size: int = 32, max_pairs: int | None = None, pair_seed: int = 0,
                       exact: bool = True) -> dict:
    """δ(N) for one module.

    decoder: z (P, T, C) -> (P, L). latents: (U, T, C) float32, U >= 2 utterances (encoded once each: the same
    tensor enters every pair). pairs: list of (a, b) indices (default: ``ordered_pairs(U, max_pairs, pair_seed)``).
    space: "waveform" | "mel" (needs ``logmel``: (P, L) -> (P, M, F)). exact=True decodes one latent at a time
    (bit-reproducible, δ(C) = 0 exactly); False decodes ``batch_size`` at a time (several times faster on a CPU;
    differences ~1e-7 relative), δ(C) is still 0: z_swap = z_b there by construction.

    Returns {"ns": [N...] (Table 3's that fit, C, and the paper's fractions), "delta": [clipped δ...],
    "delta_unclipped": [...], "pairs": P, "utterances": U, "space": space, "mean_pair_distance": Σ‖x_a − x_b‖² / P
    (the denominator, per pair), "paper_fraction": {"1/64": {"n", "delta"}, "1/8": {"n", "delta"}, "width": C}}."""
    if latents.dim() != 3 or latents.shape[0] < 2:
        raise ValueError(f"latents must be (U, T, C) with U >= 2 utterances, got {tuple(latents.shape)}")
    if space not in ("waveform", "mel"):
        raise ValueError(f"space must be 'waveform' or 'mel', got {space!r}")
    if space == "mel" and logmel is None:
        raise ValueError("space='mel' needs logmel (a LogMel module)")
    u, _, c = latents.shape
    pairs = ordered_pairs(u, max_pairs, pair_seed) if pairs is None else [tuple(p) for p in pairs]
    if not pairs or any(a == b or not (0 <= a < u and 0 <= b < u) for a, b in pairs):
        raise ValueError(f"pairs must be a non-empty list of (a, b) with a != b in [0, {u}), got {pairs[:5]}...")
    ns = ns_for_width(c, ns, fractions=True)
    step = 1 if exact else batch_size

    def feats(z):
        # exact: one latent at a time, each in a fresh (aligned) copy: a decode then depends neither on what else
        # is in the batch nor on the memory offset (BLAS / oneDNN pick kernels by batch size and alignment), so
        # swapping all C dims reproduces D(z_b) bit for bit and δ(C) = 0 exactly
        x = torch.cat([decoder(z[i:i + step].clone()) for i in range(0, z.shape[0], step)])
        return (torch.cat([logmel(x[i:i + step]) for i in range(0, x.shape[0], step)]) if space == "mel"
                else x).flatten(1)

    decoded = feats(latents)                                          # (U, D): D(z_u) once per utterance
    a_idx = torch.tensor([p[0] for p in pairs])
    b_idx = torch.tensor([p[1] for p in pairs])
    denom = float(((decoded[a_idx] - decoded[b_idx]) ** 2).sum())
    deltas, raw = [], []
    for n in ns:
        num = 0.0
        for i in range(0, len(pairs) if n < c else 0, batch_size):   # n = C: z_swap = z_b, numerator 0
            a, b = a_idx[i:i + batch_size], b_idx[i:i + batch_size]
            x_swap = feats(swap_dims(latents[a], latents[b], n))
            num += float(((x_swap - decoded[b]) ** 2).sum())
        d = num / denom if denom > 0 else float("nan")
        raw.append(d)
        deltas.append(min(max(d, 0.0), 1.0) if d == d else d)
    frac = {k: {"n": n, "delta": deltas[ns.index(n)]} for k, n in paper_fraction_ns(c).items()}
    return {"ns": ns, "delta": deltas, "delta_unclipped": raw, "pairs": len(pairs), "utterances": u, "space": space,
            "mean_pair_distance": denom / len(pairs), "paper_fraction": frac | {"width": c}}


def delta_table(results: dict) -> Table:
    """A page table (sim_models/util/document.py): rows N, one column per key of ``results`` ({column name:
    entanglement_delta result}); a column without that N has an empty cell."""
    names = list(results)
    all_ns = sorted({n for r in results.values() for n in r["ns"]})
    rows = tuple((str(n), *(f"{results[k]['delta'][results[k]['ns'].index(n)]:.3f}" if n in results[k]["ns"] else ""
                            for k in names)) for n in all_ns)
    return Table(("N", *names), rows)

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

N runs over 2, 4, …, 512 (Table 3), capped at the latent width C; C itself is always added.
"""
from __future__ import annotations

import itertools

import torch

__all__ = ["TABLE3_NS", "most_different_dims", "swap_dims", "entanglement_delta", "delta_table", "ns_for_width"]

TABLE3_NS = (2, 4, 8, 16, 32, 64, 128, 256, 512)


def ns_for_width(width: int, ns=TABLE3_NS) -> list:
    """The Ns of Table 3 that fit a C = ``width`` latent, plus C itself."""
    out = sorted({int(n) for n in ns if 0 < int(n) <= width})
    if width not in out:
        out.append(width)
    return out


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
                       logmel=None, batch_size: int = 32) -> dict:
    """δ(N) for one module.

    decoder: z (P, T, C) -> (P, L). latents: (U, T, C), U >= 2 utterances. pairs: list of (a, b) indices
    (default: every ordered pair a != b). space: "waveform" | "mel" (needs ``logmel``: (P, L) -> (P, M, F)).

    Returns {"ns": [N...], "delta": [clipped δ...], "delta_unclipped": [...], "pairs": P, "space": space,
    "mean_pair_distance": Σ‖x_a − x_b‖² / P (the denominator, per pair)}."""
    if latents.dim() != 3 or latents.shape[0] < 2:
        raise ValueError(f"latents must be (U, T, C) with U >= 2 utterances, got {tuple(latents.shape)}")
    if space not in ("waveform", "mel"):
        raise ValueError(f"space must be 'waveform' or 'mel', got {space!r}")
    if space == "mel" and logmel is None:
        raise ValueError("space='mel' needs logmel (a LogMel module)")
    u, _, c = latents.shape
    pairs = list(itertools.permutations(range(u), 2)) if pairs is None else [tuple(p) for p in pairs]
    if not pairs or any(a == b or not (0 <= a < u and 0 <= b < u) for a, b in pairs):
        raise ValueError(f"pairs must be a non-empty list of (a, b) with a != b in [0, {u}), got {pairs[:5]}...")
    ns = ns_for_width(c, ns)

    def feats(z):
        # one latent at a time, each in a fresh (aligned) copy: a decode then depends neither on what else is
        # in the batch nor on the memory offset (BLAS / oneDNN pick kernels by batch size and alignment), so
        # swapping all C dims reproduces D(z_b) bit for bit and δ(C) = 0 exactly
        x = torch.cat([decoder(z[i:i + 1].clone()) for i in range(z.shape[0])])
        return (torch.cat([logmel(x[i:i + 1]) for i in range(x.shape[0])]) if space == "mel" else x).flatten(1)

    decoded = feats(latents)                                          # (U, D): D(z_u) once per utterance
    a_idx = torch.tensor([p[0] for p in pairs])
    b_idx = torch.tensor([p[1] for p in pairs])
    denom = float(((decoded[a_idx] - decoded[b_idx]) ** 2).sum())
    deltas, raw = [], []
    for n in ns:
        num = 0.0
        for i in range(0, len(pairs), batch_size):
            a, b = a_idx[i:i + batch_size], b_idx[i:i + batch_size]
            x_swap = feats(swap_dims(latents[a], latents[b], n))
            num += float(((x_swap - decoded[b]) ** 2).sum())
        d = num / denom if denom > 0 else float("nan")
        raw.append(d)
        deltas.append(min(max(d, 0.0), 1.0) if d == d else d)
    return {"ns": ns, "delta": deltas, "delta_unclipped": raw, "pairs": len(pairs), "space": space,
            "mean_pair_distance": denom / len(pairs)}


def delta_table(results: dict) -> str:
    """Markdown table: rows N, one column per key of ``results`` ({column name: entanglement_delta result})."""
    names = list(results)
    all_ns = sorted({n for r in results.values() for n in r["ns"]})
    lines = ["| N | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for n in all_ns:
        cells = []
        for name in names:
            r = results[name]
            cells.append(f"{r['delta'][r['ns'].index(n)]:.3f}" if n in r["ns"] else "")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Negative samplers (sim_kernels/sampling.py): the "gim" sampler against a transcription of
Greedy InfoMax's audio InfoNCE loss (Löwe et al.), and the invariants of every sampler."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sim_kernels import sample_negatives, smooth_infonce, smooth_infonce_with_metrics
from sim_kernels.sampling import SAMPLERS

from .inputs import case_id, make_inputs



def gim_transcription(predictor_weight, c, z, full_z, K, N):
    """GreedyInfoMax audio/models/loss_InfoNCE.py, InfoNCE_Loss.calc_InfoNCE_loss with the negatives
    drawn once per call (their sampling_method=1), transcribed step by step.

    predictor_weight: (K*Cz, Cc), the weight of their nn.Linear(Cc, K*Cz, bias=False) predictor.
    c (B, L, Cc), z (B, L, Cz): context and targets, already cropped by `subsample` when it applies;
    full_z (B, T, Cz): the uncropped targets the negatives come from.
    Draws N permutations from the global RNG, like their code.
    """
    B, L, Cz = z.shape
    Wc = F.linear(c, predictor_weight)  # (B, L, K*Cz)
    full = full_z.reshape(-1, Cz)  # broadcast_batch_length
    # get_neg_z: z_neg[row, :, n] = full[perm_n[row]]
    z_neg = torch.stack([torch.index_select(full, 0, torch.randperm(full.size(0))) for _ in range(N)], 2)
    total_loss = 0
    for k in range(1, K + 1):
        z_k = z[:, k:, :].reshape(-1, Cz)
        Wc_k = Wc[:, :-k, (k - 1) * Cz : k * Cz].reshape(-1, Cz)
        pos = torch.squeeze(torch.matmul(Wc_k.unsqueeze(1), z_k.unsqueeze(2)), 1)  # (R, 1)
        z_k_neg = z_neg[z_neg.size(0) - Wc_k.size(0) :, :, :]  # shorten from the front: (R, Cz, N)
        neg = torch.squeeze(torch.matmul(Wc_k.unsqueeze(1), z_k_neg), 1)  # (R, N)
        results = torch.cat((pos, neg), 1)
        true_labels = torch.zeros(results.size(0), dtype=torch.long)
        total_loss = total_loss + F.cross_entropy(results, true_labels)  # mean over the B*(L-k) rows
    return total_loss / K


def _inputs(B, T, Cc, Cz, K, N, seed):
    """float64 context, targets, weight of the shared builder (its neg_idx is not used: these tests draw GIM's)."""
    c, z, w, _, _, _ = make_inputs(B, T, Cc, Cz, K, N, dtype=torch.float64, with_kl=False, seed=seed, requires_grad=False)
    return c, z, w


GIM_CASES = [(2, 7, 5, 3, 3, 4), (1, 4, 2, 2, 3, 1), (3, 9, 4, 6, 2, 6), (4, 16, 3, 3, 5, 10)]  # B, T, Cc, Cz, K, N


@pytest.mark.parametrize("shape", GIM_CASES, ids=case_id)
@pytest.mark.parametrize("seed", [0, 123])
def test_gim_sampler_reproduces_gim_loss(backend, shape, seed):
    B, T, Cc, Cz, K, N = shape
    c, z, w = _inputs(B, T, Cc, Cz, K, N, seed)
    torch.manual_seed(seed)
    expected = gim_transcription(w.reshape(K * Cz, Cc), c, z, z, K, N)
    torch.manual_seed(seed)
    neg_idx = sample_negatives("gim", B, T, N, K, generator=None)
    assert neg_idx.shape == (K, B, T, N) and neg_idx.dtype == torch.int64
    out = backend.run(smooth_infonce, c, z, w, neg_idx, reduction="mean")
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("window", [(0, 6), (4, 10), (6, 12), (2, 7)], ids=["win0-6", "win4-10", "win6-12", "win2-7"])
def test_gim_window_reproduces_gim_subsample(backend, window):
    """GIM's `subsample`: the predictor runs on the cropped window, negatives come from full_z."""
    B, T, Cc, Cz, K, N = 2, 12, 3, 4, 3, 5
    c, z, w = _inputs(B, T, Cc, Cz, K, N, seed=sum(window))
    s, e = window
    torch.manual_seed(7)
    expected = gim_transcription(w.reshape(K * Cz, Cc), c[:, s:e], z[:, s:e], z, K, N)
    torch.manual_seed(7)
    neg_idx = sample_negatives("gim", B, T, N, K, window=window)
    out, _ = backend.run(smooth_infonce_with_metrics, c, z, w, neg_idx, reduction="mean", window=window)
    torch.testing.assert_close(out, expected)


def test_gim_window_draws_negatives_from_whole_sequence():
    B, T, K, N = 2, 40, 2, 8
    idx = sample_negatives("gim", B, T, N, K, generator=torch.Generator().manual_seed(3), window=(10, 20))
    used = idx[0, :, 10:19]
    rows_in_window = {b * T + t for b in range(B) for t in range(10, 20)}
    assert any(int(v) not in rows_in_window for v in used.flatten()), "negatives only come from the window"
    assert int(used.min()) >= 0 and int(used.max()) < B * T


@pytest.mark.parametrize("window", [None, (3, 11)], ids=["whole", "win3-11"])
def test_gim_structure(window):
    """At step k, each column n of the used entries is a slice of one permutation: distinct rows,
    and row i of the (B, W-k) anchor flattening takes permutation row B*T - B*(W-k) + i."""
    B, T, K, N = 3, 11, 4, 5
    t0, t1 = (0, T) if window is None else window
    W = t1 - t0
    g = torch.Generator().manual_seed(11)
    idx = sample_negatives("gim", B, T, N, K, generator=g, window=window)
    g2 = torch.Generator().manual_seed(11)
    perms = torch.stack([torch.randperm(B * T, generator=g2) for _ in range(N)], dim=-1)  # (B*T, N)
    for k in range(1, K + 1):
        used = idx[k - 1, :, t0 : t1 - k].reshape(B * (W - k), N)
        for n in range(N):
            assert used[:, n].unique().numel() == B * (W - k)
        torch.testing.assert_close(used, perms[B * T - B * (W - k) :])
        unused = torch.ones(B, T, dtype=torch.bool)
        unused[:, t0 : t1 - k] = False
        assert (idx[k - 1][unused] == 0).all(), "entries off the anchors are documented as 0"


@pytest.mark.parametrize("kind", SAMPLERS)
def test_shapes_ranges_dtype(kind):
    B, T, N, K = 3, 10, 7, 4
    idx = sample_negatives(kind, B, T, N, K, generator=torch.Generator().manual_seed(0))
    assert idx.dtype == torch.int64
    assert idx.shape == ((K, B, T, N) if kind == "gim" else (B, T, N))
    assert int(idx.min()) >= 0 and int(idx.max()) < B * T


@pytest.mark.parametrize("kind", SAMPLERS)
def test_seeded_generator_is_deterministic(kind):
    B, T, N, K = 2, 12, 6, 3
    a = sample_negatives(kind, B, T, N, K, generator=torch.Generator().manual_seed(42))
    b = sample_negatives(kind, B, T, N, K, generator=torch.Generator().manual_seed(42))
    c = sample_negatives(kind, B, T, N, K, generator=torch.Generator().manual_seed(43))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    # generator=None draws from the global RNG, so torch.manual_seed reproduces it
    torch.manual_seed(5)
    d = sample_negatives(kind, B, T, N, K)
    torch.manual_seed(5)
    torch.testing.assert_close(sample_negatives(kind, B, T, N, K), d, rtol=0, atol=0)


def test_within_sequence_stays_in_the_utterance():
    B, T, N = 4, 6, 50
    idx = sample_negatives("within_sequence", B, T, N, 2, generator=torch.Generator().manual_seed(1))
    b = torch.arange(B).view(B, 1, 1)
    assert (idx // T == b).all()
    for bb in range(B):  # uniform over all T frames (incl. the anchor's own): every frame shows up
        assert set((idx[bb] % T).flatten().tolist()) == set(range(T))


def test_cpc_never_draws_frame_t():
    B, T, N = 3, 5, 40
    idx = sample_negatives("cpc", B, T, N, 2, generator=torch.Generator().manual_seed(2))
    t = torch.arange(T).view(1, T, 1)
    assert (idx % T != t).all()
    assert set((idx // T).flatten().tolist()) == set(range(B)), "the utterance is random over the batch"


@pytest.mark.parametrize(
    "kind,args,match",
    [
        ("gimm", (2, 5, 3, 2), "sampler"),
        ("gim", (0, 5, 3, 2), "batch"),
        ("within_sequence", (2, 0, 3, 2), "time"),
        ("cpc", (2, 5, 0, 2), "num_negatives"),
        ("cpc", (2, 1, 3, 2), "time"),
        ("gim", (2, 5, True, 2), "num_negatives"),
        ("gim", (2, 5, 3, 5), "K"),
    ],
    ids=["unknown-kind", "batch0", "time0", "N0", "cpc-T1", "N-bool", "gim-K>=T"],
)
def test_sampler_argument_errors(kind, args, match):
    with pytest.raises(ValueError, match=match):
        sample_negatives(kind, *args)

"""Unit tests of the analysis toolkit on small tensors: decoder layout, losses, δ against a naive
reference, swap, concentration, t-SNE, interpolation output. (The trained-run tests are in
test_analysis_run.py.)"""
import itertools

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from sim_models.config.legacy import upgrade_model_section
from sim_models.analysis.concentration import vowel_concentration
from sim_models.analysis.decoder_training import LogMel, decoder_loss
from sim_models.analysis.decoders import DecoderConfig, build_decoders, decoder_layer_plan, stage_widths
from sim_models.analysis.entanglement import (TABLE3_NS, entanglement_delta, most_different_dims, ns_for_width, swap_dims)
from sim_models.analysis.interpolation import interpolate_latents, write_interpolation_wav
from sim_models.model.greedy import count_frames
from sim_models.config import PRESETS, ModelConfig, get_config


def _out_length(plan, t):
    for _, _, k, s, p, op in plan:
        assert 0 <= op < max(s, 1), (k, s, p, op)
        t = (t - 1) * s - 2 * p + k + op
    return t


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("length", [10240, 10000, 3200])
def test_plan_inverts_the_encoder_length_exactly(name, length):
    cfg = get_config(name).model
    frames = count_frames(cfg, length)
    widths = stage_widths(cfg)
    for m in range(len(frames)):
        plan = decoder_layer_plan(cfg, m, length)
        assert plan[0][0] == widths[m] and plan[-1][1] == 1
        assert all(plan[j][1] == plan[j + 1][0] for j in range(len(plan) - 1))
        assert _out_length(plan, frames[m]) == length


@pytest.mark.parametrize("name", PRESETS)
def test_plan_mirrors_the_encoder(name):
    cfg = get_config(name).model
    n_conv = len(cfg.encoder)
    for m in range(len(stage_widths(cfg))):
        plan = decoder_layer_plan(cfg, m, 10240, extra_first_module_layers=2)
        if m == 0:  # module 1: two extra length-preserving kernel-3 layers first
            w = stage_widths(cfg)[0]
            assert plan[:2] == [(w, w, 3, 1, 1, 0)] * 2
            plan = plan[2:]
        expected = []  # exactly the mirror: no extra layer anywhere else (heads only where they change T)
        for j in range(min(m, n_conv - 1), -1, -1):
            spec = cfg.encoder[j]
            if cfg.probabilistic and (spec.head_kernel, spec.head_padding) != (1, 0):
                expected.append((spec.head_kernel, 1, spec.head_padding))
            expected += [(x.kernel, x.stride, x.padding) for x in reversed(spec.layers)]
        assert [p[2:5] for p in plan] == expected
    assert len(decoder_layer_plan(cfg, 0, 10240, extra_first_module_layers=0)) == len(decoder_layer_plan(cfg, 0, 10240)) - 2


@pytest.mark.parametrize("name", PRESETS)
def test_decoders_run_on_real_shapes(name):
    """The plan as real modules, at 4 channels (the layout, not the width, is under test)."""
    base = get_config(name).model
    cfg = ModelConfig(**upgrade_model_section({**base.__dict__, "channels": [4] * len(base.channels),
                                               "ar_hidden": 4 if base.ar_hidden else 0}))
    length = 2560
    decs = build_decoders(cfg, length, DecoderConfig(), seed=0)
    for d, t in zip(decs, count_frames(cfg, length)):
        with torch.no_grad():
            out = d(torch.randn(2, t, d.in_channels))
        assert out.shape == (2, length)
        assert d.net[-1].out_channels == 1 and not isinstance(d.net[-1], nn.ReLU)
    with pytest.raises(ValueError, match=r"z must be \(B, T, 4\)"):
        decs[0](torch.randn(2, 5, 3))


def test_decoder_fits_other_lengths():
    cfg = get_config("tiny").model
    d = build_decoders(cfg, 10240)[1]
    z = torch.randn(1, 10, 48)
    with torch.no_grad():
        assert d(z, length=2000).shape == (1, 2000) and d(z, length=100).shape == (1, 100)


def test_decoder_config_validation():
    with pytest.raises(ValueError, match="decoder loss must be"):
        DecoderConfig(loss="l1")
    with pytest.raises(ValueError, match="n_fft must be >= 1"):
        DecoderConfig(n_fft=0)
    d = DecoderConfig()
    assert (d.n_fft, d.hop_length, d.n_mels, d.loss) == (4096, 2048, 128, "mel")


def test_logmel_defaults_follow_the_thesis_and_shapes():
    lm = LogMel()
    assert (lm.mel.n_fft, lm.mel.hop_length, lm.mel.n_mels, lm.mel.sample_rate) == (4096, 2048, 128, 16000)
    x = torch.randn(2, 10240)
    assert lm(x).shape == (2, 128, 1 + 10240 // 2048)
    with pytest.raises(ValueError, match="too short"):
        lm(torch.randn(1, 1000))


def test_decoder_losses():
    torch.manual_seed(0)
    x, y = torch.randn(3, 1024), torch.randn(3, 1024)
    lm = LogMel(16000, 256, 128, 16)
    mse = nn.functional.mse_loss(y, x)
    mel = nn.functional.mse_loss(lm(y), lm(x))
    torch.testing.assert_close(decoder_loss(y, x, DecoderConfig(loss="mse"), None), mse)
    torch.testing.assert_close(decoder_loss(y, x, DecoderConfig(loss="mel"), lm), mel)
    torch.testing.assert_close(decoder_loss(y, x, DecoderConfig(loss="mse+mel", mel_weight=0.5), lm), mse + 0.5 * mel)
    assert float(decoder_loss(x, x, DecoderConfig(loss="mse+mel"), lm)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        decoder_loss(y[:, :10], x, DecoderConfig(loss="mse"), None)


# -- entanglement ------------------------------------------------------------------------------

def test_ns_for_width():
    assert ns_for_width(512) == list(TABLE3_NS)
    assert ns_for_width(8) == [2, 4, 8]
    assert ns_for_width(100) == [2, 4, 8, 16, 32, 64, 100]
    assert ns_for_width(1) == [1]


def _swap_naive(za, zb, n):
    d = ((za.mean(0) - zb.mean(0)) ** 2).tolist()
    order = sorted(range(len(d)), key=lambda c: (-d[c], c))[:n]
    out = za.clone()
    for c in order:
        out[:, c] = zb[:, c]
    return out


@pytest.mark.parametrize("T,C", [(7, 5), (1, 13), (20, 37)], ids=lambda v: str(v))
def test_swap_dims_matches_naive(T, C):
    g = torch.Generator().manual_seed(T * 100 + C)
    za, zb = torch.randn(T, C, generator=g), torch.randn(T, C, generator=g)
    for n in range(C + 1):
        torch.testing.assert_close(swap_dims(za, zb, n), _swap_naive(za, zb, n), rtol=0, atol=0)
    torch.testing.assert_close(swap_dims(za, zb, 0), za, rtol=0, atol=0)
    torch.testing.assert_close(swap_dims(za, zb, C), zb, rtol=0, atol=0)
    batched = swap_dims(torch.stack([za, zb]), torch.stack([zb, za]), 3)
    torch.testing.assert_close(batched[0], _swap_naive(za, zb, 3), rtol=0, atol=0)
    torch.testing.assert_close(batched[1], _swap_naive(zb, za, 3), rtol=0, atol=0)
    assert most_different_dims(za, zb).shape == (C,)
    with pytest.raises(ValueError, match="n must be in"):
        swap_dims(za, zb, C + 1)


def _delta_naive(decode, lat, n):
    num = den = 0.0
    for a, b in itertools.permutations(range(lat.shape[0]), 2):
        xa, xb = decode(lat[a:a + 1]), decode(lat[b:b + 1])
        xs = decode(_swap_naive(lat[a], lat[b], n)[None])
        num += float(((xs - xb) ** 2).sum())
        den += float(((xa - xb) ** 2).sum())
    return min(max(num / den, 0.0), 1.0)


class _Linear(nn.Module):
    """A linear 'decoder' (T, C) -> (T·3,) so δ has a closed form to check against."""

    def __init__(self, c):
        super().__init__()
        self.w = nn.Linear(c, 3, bias=False)

    def forward(self, z):
        return self.w(z).flatten(1)


@pytest.mark.parametrize("U,T,C", [(3, 4, 6), (4, 9, 37)], ids=lambda v: str(v))
def test_delta_matches_naive_and_bounds(U, T, C):
    torch.manual_seed(U + C)
    lat = torch.randn(U, T, C)
    lat[:, :, 0] += torch.arange(U)[:, None] * 3.0  # one dominant dimension
    for dec in (_Linear(C), nn.Sequential(_Linear(C), nn.Tanh())):
        with torch.no_grad():
            r = entanglement_delta(dec, lat, ns=(1, 2, 4, 8, 16, 32))
            assert r["ns"] == ns_for_width(C, (1, 2, 4, 8, 16, 32), fractions=True) and r["pairs"] == U * (U - 1)
            for n, d in zip(r["ns"], r["delta"]):
                assert 0.0 <= d <= 1.0
                assert d == pytest.approx(_delta_naive(dec, lat, n), rel=1e-5, abs=1e-7)
            assert r["delta"][-1] == 0.0


def test_delta_clips_and_reports_unclipped():
    """A decoder that blows up mixed latents gives δ > 1 before the clip."""
    class Weird(nn.Module):
        def forward(self, z):
            mixed = (z[:, :, 0] * z[:, :, 1] < 0).float()   # sign disagreement between dims 0 and 1
            return (z + 100 * mixed[..., None]).flatten(1)
    lat = torch.tensor([[[1.0, 1.0, 0.0]], [[-1.0, -1.0, 0.0]]])
    r = entanglement_delta(Weird(), lat, ns=(1, 2))
    assert r["delta_unclipped"][0] > 1.0 and r["delta"][0] == 1.0 and r["delta"][-1] == 0.0


def test_delta_input_errors():
    dec = _Linear(4)
    with pytest.raises(ValueError, match="U >= 2"):
        entanglement_delta(dec, torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match="pairs must be"):
        entanglement_delta(dec, torch.randn(3, 3, 4), pairs=[(0, 0)])
    with pytest.raises(ValueError, match="space must be"):
        entanglement_delta(dec, torch.randn(3, 3, 4), space="phase")
    with pytest.raises(ValueError, match="needs logmel"):
        entanglement_delta(dec, torch.randn(3, 3, 4), space="mel")


# -- concentration, t-SNE, interpolation --------------------------------------------------------

def _vowel_data(n, c, informative, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, c, generator=g)
    # class centres 120 degrees apart, radius 4 (separable through the origin: the probe has no bias), placed in
    # the span of the informative dims by a random orthonormal (2, k) map
    ang = torch.tensor([0.0, 2.0944, 4.1888])
    circle = torch.stack([ang.cos(), ang.sin()], 1) * 4                       # (3, 2)
    k = len(informative)
    q = torch.linalg.qr(torch.randn(k, 2, generator=g))[0].T if k >= 2 else torch.ones(2, 1) / 2 ** 0.5
    x[:, informative] += (circle @ q)[y]
    return x, y


def test_concentration_finds_the_informative_dims():
    x, y = _vowel_data(600, 40, [3, 17], seed=0)
    r = vowel_concentration(x[:450], y[:450], x[450:], y[450:], epochs=60, lr=1e-2)
    assert r["weights"].shape == (3, 40) and r["normalised"].shape == (3, 40)
    assert float(r["normalised"].max()) == 1.0 and float(r["normalised"].min()) >= 0.0
    assert set(torch.topk(r["dim_importance"], 2).indices.tolist()) == {3, 17}
    assert r["test_accuracy"] > 0.9
    spread_x, spread_y = _vowel_data(600, 40, list(range(40)), seed=0)
    spread = vowel_concentration(spread_x[:450], spread_y[:450], spread_x[450:], spread_y[450:], epochs=60, lr=1e-2)
    assert r["top10_mass"] > 1.5 * spread["top10_mass"] and r["frac_above_half"] < spread["frac_above_half"]
    assert sum(r["hist"]["counts"]) == 120 and len(r["hist"]["bins"]) == 21
    # standardising: same informative dims found even when they are scaled down 100x (raw weights would have to grow)
    x_small = x.clone()
    x_small[:, [3, 17]] /= 100
    z = vowel_concentration(x_small[:450], y[:450], x_small[450:], y[450:], epochs=60, lr=1e-2, standardize=True)
    assert set(torch.topk(z["dim_importance"], 2).indices.tolist()) == {3, 17} and z["test_accuracy"] > 0.9


def test_tsne_embedding_and_subsampling():
    from sim_models.analysis.tsne import tsne_embedding
    x, _ = _vowel_data(40, 6, [0], seed=1)
    emb, idx = tsne_embedding(x, max_points=25, seed=0, max_iter=250)
    assert emb.shape == (25, 2) and idx.shape == (25,) and len(set(idx.tolist())) == 25 and np.all(np.diff(idx) > 0)
    assert np.isfinite(emb).all()
    with pytest.raises(ValueError, match="S >= 4"):
        tsne_embedding(x[:3])


def test_interpolation_endpoints_and_wav(tmp_path):
    torch.manual_seed(0)
    flat = upgrade_model_section({"channels": [4] * 5, "modules": [[0, 1], [2, 3, 4]], "maxpool": [0, 0]})
    dec = build_decoders(ModelConfig(**flat, ar_hidden=0), 3200)[1]
    za, zb = torch.randn(20, 4), torch.randn(20, 4)
    with torch.no_grad():
        r = interpolate_latents(dec, za, zb, steps=5)
        torch.testing.assert_close(r["waveforms"][0], dec(za[None])[0])
        torch.testing.assert_close(r["waveforms"][-1], dec(zb[None])[0])
        torch.testing.assert_close(r["latents"][2], 0.5 * (za + zb))
    assert r["waveforms"].shape == (5, 3200)
    loud = {"waveforms": torch.stack([torch.ones(100) * 3, -torch.ones(100)])}
    path = write_interpolation_wav(loud, tmp_path / "x.wav", 16000, gap_seconds=0.01)
    wav, sr = sf.read(path)
    assert sr == 16000 and wav.shape == (360,)
    assert wav.max() == pytest.approx(0.99, abs=1e-3) and wav[-1] == pytest.approx(-0.33, abs=1e-3)  # one common scale
    with pytest.raises(ValueError, match="same shape"):
        interpolate_latents(dec, za, zb[:3])


def test_report_parser_hooks_into_the_sim_cli():
    """`sim report` is part of the real CLI parser."""
    from sim_models.cli.report import run_report
    from sim_models.cli import build_parser
    p = build_parser()
    a = p.parse_args(["report", "runs/a", "runs/b", "--data", "d", "--n-fft", "1024", "--decoder-loss", "mse+mel"])
    assert a.func is run_report and a.runs == ["runs/a", "runs/b"] and a.data == "d"
    assert (a.n_fft, a.hop_length, a.n_mels, a.decoder_loss) == (1024, 2048, 128, "mse+mel")
    assert p.parse_args(["report", "runs/a"]).data is None  # --data defaults to the run's run_info.json
    with pytest.raises(SystemExit):
        p.parse_args(["report"])  # at least one run

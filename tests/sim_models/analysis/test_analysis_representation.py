"""The sample / mean switch of the analyses (the SIM authors measured on samples), δ's fixed ε per utterance,
the authors' decoder preset, the signed min-max normalisation of Fig. 2 and the probes' default representation."""
import math

import pytest
import torch

from sim_models.analysis.concentration import signed_minmax, top_mass, vowel_concentration, weights_kde
from sim_models.analysis.decoder_training import decoder_convergence, train_decoders
from sim_models.analysis.decoders import DECODER_PRESETS, DecoderConfig, decoder_preset
from sim_models.analysis.entanglement import entanglement_delta, ordered_pairs, paper_fraction_ns
from sim_models.analysis.representations import encode_all_stages, utterance_latents
from sim_models.evaluation.probes import pooled_features
from sim_models.model.encode import stochastic_stages
from sim_models.analysis.run_analysis import ReportConfig
from sim_models.evaluation.protocols import PROTOCOLS, FeatureDraws, get_protocol, probe_protocol
from sim_models.model.greedy import build_model

from tests.sim_models.conftest import small_config

LENGTH = 2560


def _model(logvar_bias: float | None, probabilistic: bool = True):
    over = ["model.channels=[8,8,8,8,8]", "model.ar_hidden=8"] + ([] if probabilistic else ["model.probabilistic=false", "model.beta=0"])
    model = build_model(small_config("tiny", *over))
    if logvar_bias is not None:
        with torch.no_grad():
            for st in model.stages:
                if getattr(st, "probabilistic", False):
                    st.logvar_head.weight.zero_()
                    st.logvar_head.bias.fill_(logvar_bias)
    return model.eval()


def _audio(n=4, seed=0):
    return torch.randn(n, LENGTH, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_sample_differs_from_mean_with_large_logvar_and_agrees_at_minus_infinity():
    audio = _audio()
    noisy, exact = _model(4.0), _model(-200.0)   # sigma = e^2 vs exp(-100) = 0 in float32
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    s, m = encode_all_stages(noisy, audio, "sample", g()), encode_all_stages(noisy, audio, "mean")
    assert all((a - b).abs().mean() > 1.0 for a, b in zip(s[:2], m[:2]))      # the conv modules: noise, sigma ~ 7
    assert (s[2] - m[2]).abs().max() > 1e-3                                     # the GRU reads module 2's sample
    s, m = encode_all_stages(exact, audio, "sample", g()), encode_all_stages(exact, audio, "mean")
    assert all(torch.equal(a, b) for a, b in zip(s, m))
    # pooled features (the probes' input) follow the switch too
    fs = pooled_features(noisy, audio, representation="sample", generator=g())
    fm = pooled_features(noisy, audio, representation="mean")
    assert not torch.allclose(fs[0], fm[0], atol=1e-2)
    assert not noisy.training   # the model's mode is left as found


def test_stochastic_stages_and_deterministic_models():
    assert stochastic_stages(_model(None)) == [True, True, True]
    det = _model(None, probabilistic=False)
    assert stochastic_stages(det) == [False, False, False]
    audio = _audio()
    s = encode_all_stages(det, audio, "sample", torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(s, encode_all_stages(det, audio, "mean")))


def test_delta_latents_fix_one_eps_per_utterance():
    model, audio = _model(2.0), _audio(5)
    lat = utterance_latents(model, audio, "sample", seed=3)
    again = utterance_latents(model, audio, "sample", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(lat, again))                  # reproducible
    sub = utterance_latents(model, audio[:2], "sample", seed=3)                # another set of utterances:
    assert all(torch.equal(a[:2], b) for a, b in zip(lat, sub))                # utterance u keeps its eps
    other = utterance_latents(model, audio, "sample", seed=4)
    assert not torch.equal(lat[0], other[0])
    mean = utterance_latents(model, audio, "mean")
    assert not torch.equal(lat[0], mean[0])
    # the eps is carried into the later modules: module 2 of the sampled latents is the sample drawn from
    # module 1's *sample*, i.e. the same as encoding that utterance alone with its generator
    from sim_models.analysis.representations import utterance_seed
    direct = encode_all_stages(model, audio[1:2], "sample", torch.Generator().manual_seed(utterance_seed(3, 1)))
    assert all(torch.equal(d[0], l[1]) for d, l in zip(direct, lat))

    # every pair an utterance is in sees the same tensor: the decoder records what it was given
    seen = {}

    class Rec(torch.nn.Module):
        def forward(self, z):
            for row in z:
                key = round(float(row[:, :].sum()), 4)
                seen.setdefault(key, row.clone())
            return z.flatten(1)[:, :16]

    r = entanglement_delta(Rec(), lat[0], ns=(1, 2), exact=True)
    assert r["pairs"] == 20 and r["utterances"] == 5
    for u in range(5):   # each utterance's latent, as decoded, is exactly lat[0][u]
        assert any(torch.equal(v, lat[0][u]) for v in seen.values())


def test_ordered_pairs_and_paper_fraction():
    assert len(ordered_pairs(100)) == 9900 and ordered_pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    sub = ordered_pairs(100, max_pairs=500, seed=1)
    assert len(sub) == 500 and len(set(sub)) == 500 and sub == ordered_pairs(100, max_pairs=500, seed=1)
    assert all(a != b for a, b in sub)
    assert paper_fraction_ns(512) == {"1/64": 8, "1/8": 64}
    assert paper_fraction_ns(48) == {"1/64": 1, "1/8": 6}
    assert paper_fraction_ns(256) == {"1/64": 4, "1/8": 32}
    assert paper_fraction_ns(96) == {"1/64": 2, "1/8": 12}     # 1.5 rounds up
    assert paper_fraction_ns(4) == {"1/64": 1, "1/8": 1}


def test_delta_batched_matches_exact_and_reports_the_fraction():
    torch.manual_seed(0)
    lat = torch.randn(4, 6, 48)
    dec = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(6 * 48, 32), torch.nn.Tanh())
    a = entanglement_delta(dec, lat, exact=True)
    b = entanglement_delta(dec, lat, exact=False)
    assert a["ns"] == b["ns"] == [1, 2, 4, 6, 8, 16, 32, 48]
    assert all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7) for x, y in zip(a["delta"], b["delta"]))
    assert a["delta"][-1] == b["delta"][-1] == 0.0
    assert a["paper_fraction"]["1/8"] == {"n": 6, "delta": a["delta"][a["ns"].index(6)]}
    assert a["paper_fraction"]["width"] == 48


def test_authors_decoder_preset():
    d = decoder_preset("authors")
    assert (d.loss, d.lr, d.batch_size, d.epochs) == ("mse", 2e-4, 64, 200)
    assert decoder_preset("authors", epochs=7).epochs == 7 and decoder_preset("project") == DecoderConfig()
    with pytest.raises(ValueError, match="preset"):
        decoder_preset("paper")
    rc = ReportConfig(decoder=DecoderConfig(seed=5, n_fft=512), decoder_preset="authors", decoder_epochs=3)
    assert (rc.decoder.loss, rc.decoder.lr, rc.decoder.batch_size, rc.decoder.epochs) == ("mse", 2e-4, 64, 3)
    assert rc.decoder.seed == 5 and rc.decoder.n_fft == 512
    assert ReportConfig(decoder_preset="authors").decoder.epochs == 200
    assert set(DECODER_PRESETS) == {"project", "authors"}
    assert ReportConfig().representation == "sample" and ReportConfig().delta_utterances >= 100
    assert not ReportConfig().probe_standardize
    with pytest.raises(ValueError, match="representation"):
        ReportConfig(representation="mu")


def test_decoders_train_on_fresh_samples_and_report_convergence():
    model, audio = _model(3.0), _audio(8)
    dcfg = DecoderConfig(loss="mse", epochs=2, batch_size=4, lr=1e-3)
    seen = []
    orig = model.encode

    def spy(*a, **k):
        outs = orig(*a, **k)
        seen.append(outs[0].z.clone())
        return outs

    model.encode = spy
    decs, hist = train_decoders(model, audio, dcfg, representation="sample")
    assert hist["representation"] == "sample" and len(seen) == 4       # 2 epochs x 2 batches, one encode each
    # same utterances in different batches / epochs get different eps: no two encodings of a batch repeat
    assert not any(torch.equal(seen[i], seen[j]) for i in range(4) for j in range(i + 1, 4))
    seen.clear()
    _, hist2 = train_decoders(model, audio, dcfg, representation="sample")
    assert hist2["loss"] == hist["loss"]                                 # seeded: reproducible
    conv = decoder_convergence(hist)
    assert len(conv) == 3 and conv[0]["final_loss"] == hist["loss"][-1][0] and conv[0]["epochs"] == 2


def test_signed_minmax_on_a_hand_made_matrix():
    w = torch.tensor([[0.0, 1.0, 2.0, 4.0], [-3.0, -1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    n = signed_minmax(w)
    assert torch.allclose(n[0], torch.tensor([-1.0, -0.5, 0.0, 1.0]))
    assert torch.allclose(n[1], torch.tensor([-1.0, 0.0, 1.0, 1.0]))
    assert torch.equal(n[2], torch.zeros(4))                             # a constant row: 0
    k = weights_kde(n[:2].numpy())
    assert len(k["x"]) == len(k["density"]) == 201 and k["x"][0] == -1.2 and min(k["density"]) >= 0
    import numpy as np
    wide = weights_kde(n[:2].numpy(), grid=np.linspace(-6, 6, 2401))
    assert abs(sum(wide["density"]) * (wide["x"][1] - wide["x"][0]) - 1) < 0.01   # a probability density
    assert weights_kde([0.5, 0.5])["density"] is None
    # top-10 % mass: 1 of 4 dims per row
    assert math.isclose(top_mass(torch.tensor([[1.0, 1.0, 1.0, 5.0]])), 5 / 8)


def test_scale_aware_concentration_discounts_a_near_constant_unit():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 6, generator=g) * 0.05
    x[:, :3] += torch.nn.functional.one_hot(y, 3).float()                # dims 0-2 carry the vowel
    x[:, 5] = 1.0 + 1e-4 * torch.randn(300, generator=g)                 # a near-constant unit
    r = vowel_concentration(x[:240], y[:240], x[240:], y[240:], epochs=30)
    assert r["test_accuracy"] > 0.9
    assert r["feature_std"][5] < 1e-3 and r["scaled_top10_mass"] != r["top10_mass"]
    assert r["signed_minmax"].shape == (3, 6) and r["signed_minmax"].min() == -1 and r["signed_minmax"].max() == 1
    assert len(r["kde"]["density"]) == len(r["kde"]["x"])


def test_vowel_probe_with_fresh_draws_per_epoch():
    calls = []
    g = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    base = torch.nn.functional.one_hot(y, 3).float()

    def draw(e):
        calls.append(e)
        return base + 0.1 * torch.randn(90, 3, generator=torch.Generator().manual_seed(e))

    r = vowel_concentration(draw, y, base, y, epochs=4, lr=0.1)
    assert calls == [0, 1, 2, 3] and r["test_accuracy"] > 0.9
    fixed = vowel_concentration(draw(0), y, base, y, epochs=4, lr=0.1)
    assert not torch.equal(fixed["weights"], r["weights"])               # the draws changed what it learned


def test_probe_default_representation_is_sample_for_the_paper_protocol():
    assert PROTOCOLS["paper"].representation == "sample"
    assert PROTOCOLS["robust"].representation == "mean" and PROTOCOLS["thesis"].representation == "mean"
    assert get_protocol("paper", epochs=2).representation == "sample"
    model, audio = _model(3.0), _audio(6)
    d = FeatureDraws(model, audio, "pooled", "sample", seed=0, epochs=5)
    assert d.k == 5 and not torch.equal(d(0)[0], d(1)[0]) and torch.equal(d(0)[0], d(0)[0])
    assert FeatureDraws(model, audio, "pooled", "sample", 0, 5, sample_draws=2).k == 2
    assert FeatureDraws(model, audio, "pooled", "mean", 0, 5).k == 1
    assert FeatureDraws(_model(None, False), audio, "pooled", "sample", 0, 5).k == 1
    segs = [(audio[i, :1000], i % 9, i % 3) for i in range(6)]
    p = get_protocol("paper", epochs=2)
    rows_s = probe_protocol(model, segs[:4], segs[4:], p, seeds=1)                     # default: sample
    rows_s2 = probe_protocol(model, segs[:4], segs[4:], p, seeds=1, representation="sample")
    rows_m = probe_protocol(model, segs[:4], segs[4:], p, seeds=1, representation="mean")
    assert rows_s == rows_s2 and rows_s != rows_m

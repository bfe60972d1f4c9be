"""Evaluation protocols (paper Table 2, thesis Table 4.3, robust): choices, padding, features, seeds, word overlap."""
import numpy as np
import pytest
import torch

from sim_models.evaluation.protocols import (PROTOCOLS, get_protocol, module_features, probe_protocol, protocol_audio, summarise_runs)
from sim_models.evaluation.evaluate import word_overlap
from sim_models.model.greedy import build_model

from tests.sim_models.conftest import small_config


def _model():
    return build_model(small_config("tiny", "model.channels=[8,8,8,8,8]", "model.ar_hidden=8"))


def test_protocol_choices_follow_the_sources():
    p, t, r = PROTOCOLS["paper"], PROTOCOLS["thesis"], PROTOCOLS["robust"]
    assert (p.features, p.padding, p.standardize, p.epochs, p.lr, p.tasks) == ("pooled", "both", False, 50, 1e-3,
                                                                                ("vowel", "syllable"))
    assert (t.features, t.padding, t.standardize, t.epochs, t.lr, t.tasks, t.pad_length) == (
        "flattened", "both", False, 100, 1e-3, ("syllable",), 8800)
    assert (r.features, r.padding, r.standardize, r.epochs) == ("pooled", "end", True, 50)
    assert get_protocol("paper", epochs=3).epochs == 3 and PROTOCOLS["paper"].epochs == 50
    with pytest.raises(ValueError, match="protocol"):
        get_protocol("table2")
    with pytest.raises(ValueError, match="epochs"):
        get_protocol("paper", epochs=0)


def _segments():
    return [(torch.ones(100), 0, 0), (torch.ones(250), 4, 1)], [(torch.ones(50), 8, 2)]


def test_padding_both_ends_and_end():
    tr, te = _segments()
    a_tr, y_tr, a_te, y_te = protocol_audio(PROTOCOLS["paper"], tr, te)
    assert a_tr.shape == (2, 320) and a_te.shape == (1, 320)       # longest (250) rounded up to 160
    assert a_tr[0, :110].eq(0).all() and a_tr[0, 110:210].eq(1).all() and a_tr[0, 210:].eq(0).all()  # centred
    assert y_tr["syllable"].tolist() == [0, 4] and y_tr["vowel"].tolist() == [0, 1] and y_te["vowel"].tolist() == [2]
    a_tr, *_ = protocol_audio(PROTOCOLS["robust"], tr, te)
    assert a_tr[0, :100].eq(1).all() and a_tr[0, 100:].eq(0).all()  # at the end
    a_tr, *_ = protocol_audio(PROTOCOLS["thesis"], tr, te)
    assert a_tr.shape == (2, 8800) and a_tr[1, 4275:4525].eq(1).all() and a_tr[1, :4275].eq(0).all()
    with pytest.raises(ValueError, match="non-empty"):
        protocol_audio(PROTOCOLS["paper"], tr, [])


def test_features_pooled_flattened_mean_and_sample():
    model = _model()
    audio = torch.randn(3, 1600, generator=torch.Generator().manual_seed(0)) * 0.1
    model.train()
    pooled = module_features(model, audio, "pooled")
    flat = module_features(model, audio, "flattened")
    assert model.training  # mode restored
    model.eval()
    reps = [o.representation for o in model.encode(audio)]          # (B, T, C)
    for p, f, r in zip(pooled, flat, reps):
        torch.testing.assert_close(p, r.mean(1))
        torch.testing.assert_close(f, r.transpose(1, 2).reshape(3, -1))  # channel-major C x T
    s0 = module_features(model, audio, "pooled", "sample", seed=0)
    s0b = module_features(model, audio, "pooled", "sample", seed=0)
    s1 = module_features(model, audio, "pooled", "sample", seed=1)
    assert not model.training
    torch.testing.assert_close(s0[0], s0b[0])
    assert not torch.allclose(s0[0], s1[0]) and not torch.allclose(s0[0], pooled[0])
    with pytest.raises(ValueError, match="representation"):
        module_features(model, audio, representation="mode")
    with pytest.raises(ValueError, match="features"):
        module_features(model, audio, features="max")


def test_probe_protocol_repeats_over_seeds():
    model = _model()
    g = torch.Generator().manual_seed(1)
    seg = lambda n: [(torch.randn(400 + 40 * (i % 5), generator=g) * (0.05 + 0.1 * (i % 3)), i % 9, i % 3)  # noqa: E731
                     for i in range(n)]
    rows = probe_protocol(model, seg(36), seg(9), get_protocol("paper", epochs=2), seeds=3)
    assert len(rows) == 3 and rows[0]["feature_dim"] == 8
    for r in rows:
        for task in ("vowel", "syllable"):
            assert len(r[task]["runs"]) == 3 and 0 <= r[task]["mean"] <= 1
            assert r[task]["std"] == pytest.approx(float(np.std(r[task]["runs"], ddof=1)))
    rows = probe_protocol(model, seg(18), seg(9), get_protocol("thesis", epochs=1), seeds=1)
    assert "vowel" not in rows[0] and rows[0]["syllable"]["std"] == 0.0
    assert rows[0]["feature_dim"] == 8 * (8800 // 20)  # tiny module 1: strides 5 x 4, C x T flattened
    with pytest.raises(ValueError, match="seeds"):
        probe_protocol(model, seg(3), seg(3), PROTOCOLS["paper"], seeds=0)


def test_summarise_runs_and_word_overlap():
    s = summarise_runs([0.5, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1414213, rel=1e-5)
    tr = [{"syllables": ["ba", "di", "gu"]}, {"syllables": ["gu", "gu", "gu"]}]
    te = [{"syllables": ["ba", "di", "gu"]}, {"syllables": ["gu", "di", "ba"]}]
    o = word_overlap(tr, te)
    assert o["test_words_sharing_a_train_word"] == 1 and o["share"] == 0.5 and o["distinct_train_words"] == 2

"""Syllable segmentation (thesis Appendix A): Otsu, envelopes, cut choice, padding, agreement with espeak-ng."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from sim_models.data.segmentation import (PRESETS, boundary_agreement, max_pool_envelope, moving_quantile, otsu_threshold, pad_both_ends, segment_word, syllable_spans)

SR = 16000


def _word(vowels, gap=640, lead=400, tail=1600, amps=None):
    """Tone bursts (vowels, 200 Hz) separated by silent gaps; returns (wave, the gap starts)."""
    parts, starts, pos = [np.zeros(lead)], [], lead
    for j, n in enumerate(vowels):
        a = 0.5 if amps is None else amps[j]
        parts.append(a * np.sin(2 * np.pi * 200 * np.arange(n) / SR))
        pos += n
        if j < len(vowels) - 1:
            starts.append(pos)
            parts.append(np.zeros(gap))
            pos += gap
    parts.append(np.zeros(tail))
    return np.concatenate(parts).astype(np.float32), starts


def test_otsu_separates_two_modes_and_matches_definition():
    values = np.r_[np.full(30, 0.1), np.full(10, 0.9)]
    t = otsu_threshold(values)
    assert 0.1 <= t < 0.9
    # Otsu's definition: the threshold maximises the between-class variance w0 w1 (m0 - m1)^2
    grid = np.linspace(0.1, 0.89, 80)
    def between(th):
        lo, hi = values[values <= th], values[values > th]
        return len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2
    assert between(t) == pytest.approx(max(between(g) for g in grid))
    assert otsu_threshold([0.3, 0.3]) == 0.3
    with pytest.raises(ValueError, match="values"):
        otsu_threshold([])


def test_envelopes():
    x = np.array([0, 1, 0, 0, 5, 0, 2], dtype=np.float32)
    np.testing.assert_array_equal(max_pool_envelope(x, 3), [1, 5, 2])
    q = moving_quantile(np.arange(100.0), window=10, hop=10, q=1.0)
    assert q.shape == (10,) and q[1] == 14 and q[-1] == 94 and q[0] == 4  # [5, 15) centred on 10; clipped at the start
    with pytest.raises(ValueError, match="window"):
        max_pool_envelope(x, 0)
    with pytest.raises(ValueError, match="q must"):
        moving_quantile(x, 3, 1, q=1.5)
    with pytest.raises(TypeError, match="wave"):
        max_pool_envelope([0.0, 1.0], 2)
    with pytest.raises(ValueError, match="wave"):
        max_pool_envelope(np.zeros((2, 3)), 2)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_three_vowels_cut_at_vowel_ends(preset):
    wave, gaps = _word([2400, 4000, 2000], amps=[0.5, 0.3, 0.4])
    s = segment_word(wave, SR, **PRESETS[preset])
    assert s.complete and len(s.cuts) == 2
    for c, g in zip(s.cuts, gaps):
        assert abs(c - g) <= 0.012 * SR, (s.cuts, gaps)  # within 12 ms of the vowel's end
    spans = syllable_spans(s.cuts, wave.shape[0])
    assert spans[0][0] == 0 and spans[-1][1] == wave.shape[0] and spans[0][1] == spans[1][0]


def test_more_vowels_keep_the_transitions_nearest_thirds():
    # five vowels of 1600 samples, gaps 480, from 400: the vowel span is [400, 10320], 1/3 and 2/3 of it are
    # 3707 and 7013; vowel ends at 2000, 4080, 6160, 8240 (+ 10320) -> the 2nd (4080) and 3rd (6160) are kept
    wave, gaps = _word([1600] * 5, gap=480)
    s = segment_word(wave, SR, **PRESETS["envelope-max"])
    assert len(s.candidates) == 5
    assert [min(range(4), key=lambda i: abs(gaps[i] - c)) for c in s.cuts] == [1, 2]


def test_too_few_vowels_fall_back_to_thirds():
    wave, _ = _word([6000])
    s = segment_word(wave, SR)
    assert not s.complete and len(s.cuts) == 2 and s.cuts[0] < s.cuts[1]


def test_segment_word_rejects_bad_arguments():
    wave, _ = _word([2000, 2000, 2000])
    for kw, name in [({"sample_rate": 0}, "sample_rate"), ({"num_syllables": 1}, "num_syllables"),
                     ({"reference": "x"}, "reference"), ({"threshold_from": "x"}, "threshold_from")]:
        with pytest.raises(ValueError, match=name):
            segment_word(wave, **kw)
    with pytest.raises(ValueError, match="NaN"):
        segment_word(np.array([0.0, np.nan, 1.0]))


def test_pad_both_ends_centres():
    w = torch.arange(1.0, 6.0)
    p = pad_both_ends(w, 10)
    torch.testing.assert_close(p, torch.tensor([0, 0, 1, 2, 3, 4, 5, 0, 0, 0.0]))
    torch.testing.assert_close(pad_both_ends(torch.arange(10.0), 4), torch.arange(3.0, 7.0))
    with pytest.raises(TypeError, match="wave"):
        pad_both_ends(torch.zeros(2, 2), 4)


def test_boundary_agreement():
    a = boundary_agreement([[160, 320]], [[0, 320]], SR)
    assert a["mean_ms"] == pytest.approx(5.0) and a["within_20ms"] == 1.0 and a["bias_ms"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="predicted"):
        boundary_agreement([[1, 2]], [[1, 2, 3]])


def test_agreement_with_espeak_boundaries(syllable_data):
    """Documented in sim_models/data/segmentation.py: on espeak-ng words the "envelope-max" preset has a mean
    error ~20-24 ms (median ~8 ms); the thesis' settings ~110 ms. Measured here on the 12 fixture words."""
    meta = json.loads((syllable_data / "metadata.json").read_text())
    ref = [[it["boundaries"][0][1], it["boundaries"][1][1]] for it in meta["items"]]
    waves = [sf.read(syllable_data / it["file"], dtype="float32")[0] for it in meta["items"]]
    tuned = boundary_agreement([segment_word(w, SR, **PRESETS["envelope-max"]).cuts for w in waves], ref, SR)
    assert tuned["mean_ms"] < 35 and tuned["median_ms"] < 15 and tuned["within_50ms"] >= 0.8, tuned
    thesis = boundary_agreement([segment_word(w, SR, **PRESETS["thesis"]).cuts for w in waves], ref, SR)
    assert thesis["mean_ms"] > tuned["mean_ms"]  # the measured ordering the docs report

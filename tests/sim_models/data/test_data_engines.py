"""Voice engines (espeak-ng, flite, both), speakers and the constant-tone preset; segmentation for data without
recorded boundaries."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from sim_models.cli import main
from sim_models.data.datasets import SyllableDataset
from sim_models.data.flite import FLITE_VOICES, flite_phones
from sim_models.data.synth import DEFAULT_VOICES, generate, voice_pool, word_plan

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite is not installed (apt-get install flite / make system-deps)")


def test_voice_pool_and_plan_options():
    assert voice_pool() == [("espeak-ng", v) for v in DEFAULT_VOICES]
    assert voice_pool("flite", 2) == [("flite", "awb"), ("flite", "rms")]
    assert voice_pool("both", 1) == [("espeak-ng", DEFAULT_VOICES[0]), ("flite", FLITE_VOICES[0])]
    with pytest.raises(ValueError, match="engine"):
        voice_pool("festival")
    with pytest.raises(ValueError, match="speakers"):
        voice_pool("flite", 0)
    default, explicit = word_plan(40, 3), word_plan(40, 3, engine="espeak-ng")
    assert default == explicit and {p["engine"] for p in default} == {"espeak-ng"}
    const = word_plan(40, 3, speakers=1, constant=True)
    assert [p["syllables"] for p in const] == [p["syllables"] for p in default]  # same draws, settings overridden
    assert {(p["voice"], p["stress"], p["rate"], p["pitch"], p["pitch_range"]) for p in const} == {
        (DEFAULT_VOICES[0], 0, 175, 50, 0)}
    both = word_plan(60, 3, engine="both")
    assert {p["engine"] for p in both} == {"espeak-ng", "flite"}
    fl = [p for p in both if p["engine"] == "flite"]
    assert all(p["text"].startswith("pau ") and p["voice"] in FLITE_VOICES for p in fl)


def test_flite_phones():
    assert flite_phones(["ba", "di", "gu"], 1) == "pau b aa0 d iy1 g uw0 pau"
    assert flite_phones(["ga"], None) == "pau g aa1 pau"
    with pytest.raises(ValueError, match="syllables"):
        flite_phones(["pa"], 0)


@needs_flite
def test_flite_words_have_boundaries_and_are_deterministic(tmp_path):
    meta = generate(tmp_path / "a", num_words=6, seed=4, engine="flite")
    again = generate(tmp_path / "b", num_words=6, seed=4, engine="flite")
    assert meta["items"] == again["items"]
    for it in meta["items"]:
        assert it["engine"] == "flite" and it["boundary_source"] == "flite" and it["voice"] in FLITE_VOICES
        audio, sr = sf.read(tmp_path / "a" / it["file"])
        assert sr == 16000 and audio.shape == (10240,)
        assert (tmp_path / "a" / it["file"]).read_bytes() == (tmp_path / "b" / it["file"]).read_bytes()
        b = it["boundaries"]
        assert b[0][0] == 192  # leading silence trimmed to 12 ms before the first consonant
        assert b[0][1] == b[1][0] and b[1][1] == b[2][0] and b[2][1] <= 10240
        assert all(e - s > 800 for s, e in b), b  # whole syllables (> 50 ms), all three inside the crop
        for s, e in b:
            assert np.abs(audio[s:e]).max() > 0.05, f"{it['file']}: a silent syllable"


@needs_flite
def test_sim_data_both_engines_constant_single_speaker(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "--out", str(out), "--words", "6", "--engine", "both", "--speakers", "1", "--constant"]) == 0
    assert "wrote 6 words" in capsys.readouterr().out
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["engine"] == "both" and meta["speakers"] == 1 and meta["constant"] is True
    assert {(it["engine"], it["voice"]) for it in meta["items"]} <= {("espeak-ng", DEFAULT_VOICES[0]), ("flite", "awb")}
    assert {it["stress"] for it in meta["items"]} == {0}
    assert len(SyllableDataset(out, "all").syllable_segments()) == 18


def test_items_without_boundaries_are_segmented(tmp_path):
    """A user's recordings without boundaries: three tone bursts (vowels) split by 40 ms gaps."""
    (tmp_path / "audio").mkdir()
    sr, gaps = 16000, []
    wave = np.zeros(10240, np.float32)
    pos = 300
    for j, n in enumerate((2400, 3000, 2200)):
        wave[pos:pos + n] = 0.4 * np.sin(2 * np.pi * 180 * np.arange(n) / sr)
        pos += n
        gaps.append(pos)
        pos += 640
    sf.write(tmp_path / "audio" / "w.wav", wave, sr, subtype="PCM_16")
    meta = {"sample_rate": sr, "length": 10240, "syllables": [c + v for c in "bdg" for v in "aiu"], "vowels": list("aiu"),
            "items": [{"file": "audio/w.wav", "syllables": ["ba", "di", "gu"], "split": "train"}]}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    ds = SyllableDataset(tmp_path, "train")
    (s0, e0), (s1, e1), (s2, e2) = ds.boundaries[0]
    assert s0 == 0 and e2 == 10240 and e0 == s1 and e1 == s2
    assert abs(e0 - gaps[0]) < 200 and abs(e1 - gaps[1]) < 200  # within 12.5 ms of the vowels' ends
    assert [seg[1] for seg in ds.syllable_segments()] == [0, 4, 8]
    meta["segmentation"] = "bogus"
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="segmentation"):  # the boundaries are computed on first use
        SyllableDataset(tmp_path, "train").boundaries


def test_a_smaller_voice_pool_is_drawn_evenly():
    """6 espeak-ng voices, --speakers 4: each of the 4 gets about a quarter of the words (a draw taken
    modulo the pool would give the first two 1/3 each and the others 1/6)."""
    from collections import Counter

    from sim_models.data.synth import word_plan

    plan = word_plan(6000, seed=3, speakers=4)
    counts = Counter(p["voice"] for p in plan)
    assert len(counts) == 4
    assert all(abs(n / 6000 - 0.25) < 0.03 for n in counts.values()), counts

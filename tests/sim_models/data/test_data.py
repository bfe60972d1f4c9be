"""The espeak-ng syllable generator and the audio folder datasets."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from sim_models.data.audio_io import AudioFileError, read_audio
from sim_models.data.datasets import FolderAudioDataset, SyllableDataset, open_dataset
from sim_models.data.synth import SYLLABLES, generate, word_plan

from tests.sim_models.conftest import needs_espeak


def test_word_plan_is_deterministic_and_uses_phoneme_input():
    a, b, c = word_plan(30, 1), word_plan(30, 1), word_plan(30, 2)
    assert a == b and a != c
    for p in a:
        assert p["text"].startswith("[[") and p["text"].endswith("]]")
        assert all(s in SYLLABLES for s in p["syllables"]) and len(p["syllables"]) == 3
        assert p["text"].count("'") == 1


@needs_espeak
def test_generator_is_deterministic(tmp_path, syllable_data):
    again = tmp_path / "again"
    generate(again, num_words=12, seed=5)
    m1, m2 = json.loads((syllable_data / "metadata.json").read_text()), json.loads((again / "metadata.json").read_text())
    assert m1 == m2
    for it in m1["items"]:
        assert (syllable_data / it["file"]).read_bytes() == (again / it["file"]).read_bytes(), it["file"]
    other = generate(tmp_path / "other", num_words=12, seed=6)
    assert [it["word"] for it in other["items"]] != [it["word"] for it in m1["items"]]


@needs_espeak
def test_generated_files_and_labels(syllable_data):
    meta = json.loads((syllable_data / "metadata.json").read_text())
    assert len(meta["items"]) == 12
    assert sum(it["split"] == "test" for it in meta["items"]) == round(0.2 * 12)
    for it in meta["items"]:
        audio, sr = sf.read(syllable_data / it["file"])
        assert sr == 16000 and audio.ndim == 1 and audio.shape[0] == 10240
        assert np.abs(audio).max() > 0.01, f"{it['file']} is silent"
        edges = [e for b in it["boundaries"] for e in b]
        assert edges == sorted(edges) and 0 <= edges[0] and edges[-1] <= 10240
        assert it["boundaries"][0][1] == it["boundaries"][1][0] and it["boundaries"][1][1] == it["boundaries"][2][0]
        assert all(e - s > 800 for s, e in it["boundaries"][:2]), it  # whole syllables, > 50 ms
        assert it["word"] == "-".join(it["syllables"])
        s0 = it["boundaries"][0][0]
        assert np.abs(audio[:max(s0 - 80, 1)]).max() < np.abs(audio[s0:it["boundaries"][0][1]]).max(), \
            "the first syllable should start after the leading silence"


@needs_espeak
def test_syllable_dataset_and_segments(syllable_data):
    tr, te = SyllableDataset(syllable_data, "train"), SyllableDataset(syllable_data, "test")
    assert len(tr) + len(te) == 12 and tr[0].shape == (10240,)
    segs = tr.syllable_segments()
    assert len(segs) >= 3 * len(tr) - 1
    for w, syl, vowel in segs:
        assert 0 <= syl < 9 and 0 <= vowel < 3 and SYLLABLES[syl][1] == "aiu"[vowel]
        assert w.dim() == 1 and w.numel() > 0
    assert isinstance(open_dataset(syllable_data, "train"), SyllableDataset)


def _write(path, seconds=1.0, sr=16000, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format=fmt)


def test_folder_dataset_resamples_and_windows(tmp_path):
    _write(tmp_path / "a.wav", 1.5, 16000)             # 24000 samples: 2 windows + 3520 (< half) -> 2
    _write(tmp_path / "sub" / "b.flac", 1.0, 22050)    # 16000 at 16 kHz: 1 window + 5760 (>= half) -> 2
    _write(tmp_path / "c.wav", 0.2, 8000)              # shorter than a window: 1, zero-padded
    (tmp_path / "notes.txt").write_text("not audio")
    ds = FolderAudioDataset(tmp_path, 16000, 10240)
    assert len(ds) == 5
    for i in range(len(ds)):
        assert ds[i].shape == (10240,) and ds[i].dtype == torch.float32
    assert [w[0].name for w in ds.windows] == ["a.wav", "a.wav", "c.wav", "b.flac", "b.flac"]  # sorted paths
    c = ds[2]
    assert c[:3000].abs().max() > 0.1 and c[3300:].abs().max() == 0
    # 440 Hz survives resampling from 22.05 kHz: the spectral peak stays at 440 Hz
    b = ds[3].numpy()
    peak = np.argmax(np.abs(np.fft.rfft(b))) * 16000 / len(b)
    assert abs(peak - 440) < 5


def test_librispeech_layout(tmp_path):
    for spk, ch, utt in [(19, 198, 1), (19, 198, 2), (26, 495, 4)]:
        _write(tmp_path / str(spk) / str(ch) / f"{spk}-{ch}-{utt:04d}.flac", 0.7)
    (tmp_path / "19" / "198" / "19-198.trans.txt").write_text("19-198-0001 HELLO\n")
    ds = open_dataset(tmp_path, "train", 16000, 10240)
    assert isinstance(ds, FolderAudioDataset) and len(ds) == 3
    assert ds.speakers == ["19", "19", "26"]


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", b"fLaC" + bytes(40)],
                         ids=["empty", "bad-riff", "bad-flac"])
def test_corrupt_file_error_names_it(tmp_path, content):
    _write(tmp_path / "good.wav", 0.7)
    bad = tmp_path / "speaker" / ("broken.flac" if content.startswith(b"fLaC") else "broken.wav")
    bad.parent.mkdir()
    bad.write_bytes(content)
    with pytest.raises(AudioFileError, match="broken") as err:
        FolderAudioDataset(tmp_path)
    assert err.value.path == str(bad)
    with pytest.raises(AudioFileError, match=str(bad)):
        read_audio(bad, 16000)


def test_file_corrupted_after_indexing_names_it(tmp_path):
    _write(tmp_path / "a.wav", 0.7)
    ds = FolderAudioDataset(tmp_path)
    (tmp_path / "a.wav").write_bytes(b"garbage")
    with pytest.raises(AudioFileError, match="a.wav"):
        ds[0]


def test_syllable_dataset_names_a_corrupt_file(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "00000.wav").write_bytes(b"nope")
    meta = {"sample_rate": 16000, "length": 10240, "syllables": list(SYLLABLES), "vowels": ["a", "i", "u"],
            "items": [{"file": "audio/00000.wav", "syllables": ["ba", "di", "gu"], "boundaries": [[0, 1], [1, 2], [2, 3]],
                       "split": "train"}]}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(AudioFileError, match="00000.wav"):
        SyllableDataset(tmp_path)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FolderAudioDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no .wav"):
        FolderAudioDataset(tmp_path)

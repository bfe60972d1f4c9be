"""Importing the paper's recordings (sim_models/data/paper_recordings.py) from a subset of the real files.

The real data set lies beside the repository in ../shared/data/artificial-speech-dataset (or where
SIM_PAPER_DATA points). Without it these tests skip with a reason; under CI=true they fail instead, so
the check cannot silently vanish.
"""
import json
import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torchaudio

from sim_models.cli import main as sim_main
from sim_models.data.datasets import SyllableDataset
from sim_models.data.paper_recordings import (SOURCE, SYLLABLES_DIR, WORDS_DIR, check_layout, import_recordings, is_recordings_folder, source_line)
from sim_models.data.synth import SYLLABLES

REPO = Path(__file__).resolve().parents[3]
PAPER_DATA = Path(os.environ.get("SIM_PAPER_DATA", REPO.parent / "shared" / "data" / "artificial-speech-dataset"))
PER_SPLIT = 4


@pytest.fixture(scope="module")
def real_subset(tmp_path_factory) -> Path:
    """The first PER_SPLIT words and syllable files of each split, copied into the authors' layout (spaces kept)."""
    if not (PAPER_DATA / WORDS_DIR).is_dir():
        msg = f"the paper's recordings are not at {PAPER_DATA} (set SIM_PAPER_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI must read the real recordings: " + msg)
        pytest.skip(msg)
    root = tmp_path_factory.mktemp("clone") / "Artificial Speech Dataset"  # a space in the clone's name too
    for sub in (WORDS_DIR, SYLLABLES_DIR):
        for split in ("train", "test"):
            (root / sub / split).mkdir(parents=True)
            for p in sorted((PAPER_DATA / sub / split).glob("*.wav"))[:PER_SPLIT]:
                shutil.copy(p, root / sub / split / p.name)
    return root


@pytest.fixture(scope="module")
def imported(real_subset, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("imported")
    return out, import_recordings(real_subset, out)


def test_full_data_set_has_the_authors_split():
    if not (PAPER_DATA / WORDS_DIR).is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must read the real recordings: not at {PAPER_DATA}")
        pytest.skip(f"the paper's recordings are not at {PAPER_DATA}")
    found = check_layout(PAPER_DATA)
    assert {k: len(v) for k, v in found.items()} == {("words", "train"): 680, ("words", "test"): 171,
                                                      ("syllables", "train"): 2181, ("syllables", "test"): 360}


def test_counts_labels_and_splits(imported, real_subset):
    out, meta = imported
    assert len(meta["items"]) == 2 * PER_SPLIT and len(meta["syllable_items"]) == 2 * PER_SPLIT
    assert {it["split"] for it in meta["items"]} == {"train", "test"}
    for it in meta["items"]:
        stem = Path(it["file"]).stem
        word, take = stem.split("_")
        assert it["word"] == word and it["take"] == int(take)
        assert it["syllables"] == [word[:2], word[2:4], word[4:]] and all(s in SYLLABLES for s in it["syllables"])
        assert (real_subset / WORDS_DIR / it["split"] / f"{stem}.wav").is_file()  # the authors' split is kept
    for it in meta["syllable_items"]:
        word, take, pos, syl = Path(it["file"]).stem.split("_")
        assert (it["word"], it["take"], it["position"], it["syllable"]) == (word, int(take), int(pos), syl)
        assert syl == word[2 * (int(pos) - 1):2 * int(pos)]  # the syllable is the word's at that position
    assert meta["source"]["license"] == "CC BY-NC-SA 4.0"
    assert json.loads((out / "metadata.json").read_text()) == meta


def test_words_are_resampled_and_the_first_10240_samples_kept(imported, real_subset):
    out, meta = imported
    it = meta["items"][0]
    src = real_subset / WORDS_DIR / it["split"] / Path(it["file"]).name
    data, sr = sf.read(str(src), dtype="float32")
    assert sr == 44100
    expected = torchaudio.functional.resample(torch.from_numpy(data), 44100, 16000)[:10240]  # the authors' loader
    got, sr_out = sf.read(str(out / it["file"]), dtype="float32")
    assert sr_out == 16000 and got.shape == (10240,)
    torch.testing.assert_close(torch.from_numpy(got), expected)


def test_syllable_files_are_resampled_whole(imported, real_subset):
    out, meta = imported
    it = meta["syllable_items"][0]
    data, sr = sf.read(str(real_subset / SYLLABLES_DIR / it["split"] / Path(it["file"]).name), dtype="float32")
    assert sr == 22050
    got, sr_out = sf.read(str(out / it["file"]), dtype="float32")
    assert sr_out == 16000
    torch.testing.assert_close(torch.from_numpy(got), torchaudio.functional.resample(torch.from_numpy(data), 22050, 16000))


def test_dataset_probes_read_the_syllable_files(imported):
    out, meta = imported
    ds = SyllableDataset(out, "train")
    assert ds.audio.shape == (PER_SPLIT, 10240) and ds.source == SOURCE
    segs = ds.syllable_segments()
    train_syl = [it for it in meta["syllable_items"] if it["split"] == "train"]
    assert len(segs) == len(train_syl)
    for (wave, syl, vowel), it in zip(segs, train_syl):
        assert SYLLABLES[syl] == it["syllable"] and "aiu"[vowel] == it["syllable"][1]
        assert wave.shape[0] == round(12156 * 16000 / 22050)


def test_import_is_idempotent(imported, real_subset):
    out, meta = imported
    before = (out / "metadata.json").stat().st_mtime_ns
    assert import_recordings(real_subset, out) == meta
    assert (out / "metadata.json").stat().st_mtime_ns == before


def test_other_layouts_are_refused_naming_what_is_missing(tmp_path, real_subset):
    (tmp_path / WORDS_DIR / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"missing .*reshuffledv2/test/\*\.wav.*split up data padded/train"):
        check_layout(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        check_layout(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    shutil.copytree(real_subset, bad)
    (bad / WORDS_DIR / "train" / "hello.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="hello.wav"):
        check_layout(bad)
    assert is_recordings_folder(real_subset) and not is_recordings_folder(tmp_path / "nowhere")


def test_cli_import(real_subset, tmp_path, capsys):
    assert sim_main(["data", "--import", str(real_subset), "--out", str(tmp_path / "d")]) == 0
    printed = capsys.readouterr().out
    assert f"{2 * PER_SPLIT} words" in printed and "CC BY-NC-SA 4.0" in printed and source_line() in printed
    assert sim_main(["data", "--import", str(tmp_path / "empty"), "--out", str(tmp_path / "e")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_reports_name_the_source_and_license(imported, tmp_path):
    from sim_models.report.reproduce import data_description
    from sim_models.util.document import plain_text
    out, _ = imported
    text = plain_text(data_description(out))
    assert "CC BY-NC-SA 4.0" in text and SOURCE["repository"] in text and "Bart de Boer" in text
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / "metadata.json").write_text(json.dumps({"items": [{}] * 3, "engine": "espeak-ng", "sample_rate": 16000}))
    text = plain_text(data_description(synth))
    assert "synthesised with espeak-ng" in text and "CC BY" not in text

"""The Smooth InfoMax paper's own recordings, imported into a ``sim data`` folder.

The authors published their data set (paper §4.1.1) as the public repository
``fdenoodt/Artificial-Speech-Dataset`` (get it with ``git clone``): 851 three-syllable words over
{b, d, g} × {a, i, u} spoken by one speaker in a constant tone, recorded by Bart de Boer; the split and the
syllable files are Fabian Denoedt's. License: CC BY-NC-SA 4.0 (attribution, non-commercial, share-alike);
every report made from these recordings names this source and license (``SOURCE``).

Layout read (the repository as cloned; note the spaces in one folder name)::

    DIR/reshuffledv2/{train,test}/<word>_<take>.wav            44.1 kHz mono words, the authors' 680 / 171 split
    DIR/split up data padded/{train,test}/<word>_<take>_<position>_<syllable>.wav
                                                               22.05 kHz single syllables, zero-padded at
                                                               both ends (12156 samples), 2181 / 360 files

What ``import_recordings`` writes (the layout of sim_models/data/synth.py, plus the syllable files)::

    OUT/metadata.json        {"sample_rate": 16000, "length": 10240, "engine": "recording", "source": SOURCE,
                              "syllables", "vowels", "items": [{"file", "word", "take", "syllables", "split"}],
                              "syllable_items": [{"file", "word", "take", "position", "syllable", "split"}]}
    OUT/audio/<split>/<word>_<take>.wav          words at 16 kHz, the first 10240 samples (float32 WAV)
    OUT/syllables/<split>/<name>.wav             syllables at 16 kHz, whole (8821 samples, float32 WAV)

As the authors' loader does (``data/de_boer_sounds.py`` in fdenoodt/Smooth-InfoMax): resample 44.1 →
16 kHz (torchaudio's sinc resampler, ``torchaudio.functional.resample``) and keep the **first** 10240
samples (640 ms, paper §4.1.1), zero-padding a shorter word at its end. Words carry no syllable
boundaries (``SyllableDataset`` cuts them by the thesis' Appendix A segmentation if asked); the probes read
the syllable files instead (``SyllableDataset.syllable_segments``), as the authors' probes did. Labels come
from the file names.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import soundfile as sf

from sim_models.data.audio_io import fit_length, read_audio
from sim_models.data.synth import SYLLABLES, VOWELS
from sim_models.util.atomic_write import atomic_write_text

__all__ = ["SOURCE", "WORDS_DIR", "SYLLABLES_DIR", "is_recordings_folder", "check_layout", "import_recordings",
           "source_line"]

WORDS_DIR = "reshuffledv2"
SYLLABLES_DIR = "split up data padded"
SPLITS = ("train", "test")
SAMPLE_RATE, LENGTH = 16000, 10240  # paper §4.1.1: 16 kHz, 10240 samples

SOURCE = {
    "name": "Artificial Speech Dataset (the Smooth InfoMax paper's recordings)",
    "repository": "https://github.com/fdenoodt/Artificial-Speech-Dataset",
    "credit": "recordings by Bart de Boer; train/test split and syllable files by Fabian Denoedt",
    "license": "CC BY-NC-SA 4.0",
    "license_url": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
}

_SYL = "[bdg][aiu]"
_WORD_RE = re.compile(rf"^((?:{_SYL}){{3}})_(\d+)\.wav$")
_SYLLABLE_RE = re.compile(rf"^((?:{_SYL}){{3}})_(\d+)_([123])_({_SYL})\.wav$")


def source_line(source: dict | None = None) -> str:
    """One line naming the recordings' source, credit and license, for reports."""
    s = source or SOURCE
    return f"Data: {s['name']}, {s['repository']} ({s['credit']}); license {s['license']} ({s['license_url']})."


def is_recordings_folder(path) -> bool:
    """True when ``path`` looks like a clone of the authors' data set (it has ``reshuffledv2/``)."""
    return (Path(path) / WORDS_DIR).is_dir()


def check_layout(src) -> dict:
    """{(kind, split): [wav paths]} for kind "words" / "syllables"; ValueError naming what is missing or misnamed."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"--import {src}: not a folder (expected a clone of {SOURCE['repository']})")
    found, missing = {}, []
    for kind, sub, pattern in (("words", WORDS_DIR, _WORD_RE), ("syllables", SYLLABLES_DIR, _SYLLABLE_RE)):
        for split in SPLITS:
            folder = src / sub / split
            files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
            if not files:
                missing.append(f"'{sub}/{split}/*.wav'")
                continue
            bad = [p.name for p in files if not pattern.match(p.name)]
            if bad:
                raise ValueError(f"--import {src}: {len(bad)} file(s) in '{sub}/{split}' are not named as the authors' "
                                 f"data set names them ({'<word>_<take>.wav' if kind == 'words' else '<word>_<take>_<position>_<syllable>.wav'}"
                                 f", syllables from {'/'.join(SYLLABLES)}), e.g. {bad[0]!r}")
            found[(kind, split)] = files
    if missing:
        raise ValueError(f"--import {src}: not the layout of the authors' data set ({SOURCE['repository']}): "
                         f"missing {', '.join(missing)}")
    return found


def _write(path: Path, wav, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), wav.numpy(), sample_rate, subtype="FLOAT", format="WAV")
    tmp.replace(path)


def import_recordings(src, out, sample_rate: int = SAMPLE_RATE, length: int = LENGTH, log=None) -> dict:
    """Import the authors' data set at ``src`` into the ``sim data`` folder ``out``; returns the metadata.

    sample_rate: Hz of the written audio (16000, paper §4.1.1); length: samples kept from each word's start
    (10240). Idempotent: a folder whose metadata.json says it was imported from the same files is kept as it
    is. Raises ValueError when ``src`` does not have the authors' layout (naming what is missing),
    AudioFileError when a file cannot be decoded.
    """
    src, out = Path(src), Path(out)
    if sample_rate <= 0 or length <= 0:
        raise ValueError(f"sample_rate and length must be > 0, got {sample_rate}, {length}")
    found = check_layout(src)
    counts = {f"{k}_{s}": len(v) for (k, s), v in found.items()}
    meta_path = out / "metadata.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if (old.get("imported_from", {}).get("counts") == counts and old.get("sample_rate") == sample_rate
                and old.get("length") == length):
            return old
    items, syllable_items = [], []
    for split in SPLITS:
        for p in found[("words", split)]:
            word, take = _WORD_RE.match(p.name).groups()
            rel = f"audio/{split}/{p.stem}.wav"
            _write(out / rel, fit_length(read_audio(p, sample_rate), length), sample_rate)
            items.append({"file": rel, "word": word, "take": int(take), "split": split,
                          "syllables": [word[i:i + 2] for i in (0, 2, 4)]})
        for p in found[("syllables", split)]:
            word, take, position, syllable = _SYLLABLE_RE.match(p.name).groups()
            rel = f"syllables/{split}/{p.stem}.wav"
            _write(out / rel, read_audio(p, sample_rate), sample_rate)
            syllable_items.append({"file": rel, "word": word, "take": int(take), "position": int(position),
                                   "syllable": syllable, "split": split})
        if log:
            log(f"[data] {split}: {len(found[('words', split)])} words, {len(found[('syllables', split)])} syllables")
    meta = {"sample_rate": sample_rate, "length": length, "engine": "recording", "source": SOURCE,
            "imported_from": {"path": str(src.resolve()), "counts": counts},
            "syllables": list(SYLLABLES), "vowels": list(VOWELS), "items": items, "syllable_items": syllable_items}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return meta

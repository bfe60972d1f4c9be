"""Training data sets: each item is a (length,) float32 waveform at the configured rate.

* ``SyllableDataset(root, split)`` - a ``sim data`` folder: the synthesised syllable data
  (sim_models/data/synth.py) or the paper's recordings (sim_models/data/paper_recordings.py), loaded
  into memory; also gives the syllables for the probes: the folder's syllable files when it has them,
  else the words cut at their boundaries (an item without "boundaries" is cut by the thesis' Appendix A
  segmentation, sim_models/data/segmentation.py).
* ``FolderAudioDataset(root)``   - any folder (searched recursively) of .wav / .flac files,
  including the LibriSpeech layout (``<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``; the
  speaker id is kept). Long files are cut into consecutive windows of ``length`` samples; a
  shorter tail of at least half a window is zero-padded, a shorter one dropped. Files are indexed
  with soundfile's header reader at construction (so a corrupt file fails early, naming the file)
  and decoded lazily.
* ``TensorAudioDataset(audio)``  - an in-memory (N, L) tensor (tests, benchmarks).

``open_dataset(path, split, sample_rate, length)`` picks the first when ``path/metadata.json`` exists.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from sim_models.data.audio_io import AudioFileError, audio_info, fit_length, read_audio
from sim_models.data.segmentation import PRESETS, segment_word, syllable_spans

__all__ = ["SyllableDataset", "FolderAudioDataset", "TensorAudioDataset", "open_dataset", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = (".wav", ".flac")


class TensorAudioDataset:
    def __init__(self, audio: torch.Tensor):
        if audio.dim() != 2:
            raise ValueError(f"audio must be (N, L), got {tuple(audio.shape)}")
        self.audio = audio.float()

    def __len__(self):
        return self.audio.shape[0]

    def __getitem__(self, i):
        return self.audio[i]


class SyllableDataset:
    """items: the metadata dicts of ``split`` ("train", "test" or "all"); audio: (N, length) float32."""

    def __init__(self, root, split: str = "train", sample_rate: int = 16000, length: int | None = None):
        self.root = Path(root)
        meta_path = self.root / "metadata.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a syllable data set (no metadata.json); make one with `sim data`")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}: invalid JSON ({e})") from e
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        self.meta = meta
        self.syllables, self.vowels = meta["syllables"], meta["vowels"]
        self.length = length or meta["length"]
        self.sample_rate = sample_rate
        self.items = [it for it in meta["items"] if split == "all" or it["split"] == split]
        if not self.items:
            raise ValueError(f"{self.root}: split {split!r} is empty")
        self.audio = torch.stack([fit_length(read_audio(self.root / it["file"], sample_rate), self.length)
                                  for it in self.items])
        self.syllable_items = [it for it in meta.get("syllable_items", ()) if split == "all" or it["split"] == split]
        self._boundaries = None

    @property
    def source(self) -> dict | None:
        """Where the recordings come from (name, repository, credit, license) when the folder says; else None."""
        return self.meta.get("source")

    @property
    def boundaries(self) -> list:
        """Per item, [[start, end]] per syllable in samples at ``sample_rate``: recorded ones, else the thesis'
        Appendix A segmentation (computed on first use)."""
        if self._boundaries is None:
            scale = self.sample_rate / self.meta["sample_rate"]
            self._boundaries = [[[int(round(s * scale)), int(round(e * scale))] for s, e in it["boundaries"]]
                                if it.get("boundaries") else self._segment(i) for i, it in enumerate(self.items)]
        return self._boundaries

    def _segment(self, i: int) -> list:
        """Syllable spans of item i when the metadata has none: the thesis' Appendix A segmentation with
        the preset named by metadata "segmentation" (default "envelope-max", measured in segmentation.py)."""
        preset = self.meta.get("segmentation", "envelope-max")
        if preset not in PRESETS:
            raise ValueError(f"{self.root}/metadata.json: segmentation must be one of {tuple(PRESETS)}, got {preset!r}")
        n = len(self.items[i]["syllables"])
        seg = segment_word(self.audio[i], self.sample_rate, num_syllables=n, **PRESETS[preset])
        return syllable_spans(seg.cuts, self.length)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.audio[i]

    def syllable_segments(self):
        """Every syllable as (waveform (l,), syllable label 0..8, vowel label 0..2).

        A folder with syllable files (``syllable_items``, the paper's recordings: sim_models/data/paper_recordings.py)
        gives those files, whole (already zero-padded at both ends by the authors); otherwise the words are cut at
        ``boundaries``."""
        if self.syllable_items:
            return [(read_audio(self.root / it["file"], self.sample_rate), self.syllables.index(it["syllable"]),
                     self.vowels.index(it["syllable"][1])) for it in self.syllable_items]
        out = []
        for i, it in enumerate(self.items):
            for syl, (s, e) in zip(it["syllables"], self.boundaries[i]):
                if e - s <= 0:
                    continue  # cropped away entirely
                label = self.syllables.index(syl)
                out.append((self.audio[i, s:e], label, self.vowels.index(syl[1])))
        return out


class FolderAudioDataset:
    def __init__(self, root, sample_rate: int = 16000, length: int = 10240, extensions=AUDIO_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"audio folder not found: {self.root}")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in extensions and p.is_file())
        if not files:
            raise ValueError(f"{self.root}: no {'/'.join(extensions)} files found")
        self.sample_rate, self.length = sample_rate, length
        self.windows = []  # (path, start frame, frames) in the file's own rate
        self.speakers = []
        for p in files:
            n, sr, _ = audio_info(p)
            win = int(math.ceil(length * sr / sample_rate))
            full, rest = divmod(n, win)
            starts = [k * win for k in range(full)] + ([full * win] if rest >= win // 2 or full == 0 else [])
            for s in starts:
                self.windows.append((p, s, win))
                self.speakers.append(_librispeech_speaker(p, self.root))

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        path, start, frames = self.windows[i]
        return fit_length(read_audio(path, self.sample_rate, start, frames), self.length)


def _librispeech_speaker(path: Path, root: Path):
    """'<speaker>-<chapter>-<utt>' file stems give the speaker; None otherwise."""
    parts = path.stem.split("-")
    return parts[0] if len(parts) == 3 and all(p.isdigit() for p in parts) else None


def open_dataset(path, split: str = "train", sample_rate: int = 16000, length: int = 10240):
    path = Path(path)
    if (path / "metadata.json").is_file():
        return SyllableDataset(path, split, sample_rate, length)
    return FolderAudioDataset(path, sample_rate, length)


__all__ += ["AudioFileError"]

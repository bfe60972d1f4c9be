"""The paper's artificial syllable data set, synthesised with espeak-ng.

Three-syllable words over {b, d, g} x {a, i, u} ("ba-di-gu"), spoken by several espeak-ng voices
at several speeds and pitches, 16 kHz mono, cropped or padded to 10240 samples (640 ms). Words are
given as phoneme input, e.g. ``[[b'a:di:gu:]]``, so espeak-ng does not apply English spelling
rules (it would read "bi" as "bye"). The stressed syllable is drawn at random per word.

Syllable boundaries come from the synthesiser's phoneme events: syllable j spans from the onset
of its consonant to the onset of the next syllable's consonant (the last one ends at the first
pause phoneme), mapped to 16 kHz and clipped to the crop.

Layout written by ``generate(out_dir, ...)``::

    out_dir/metadata.json   {"sample_rate", "length", "seed", "syllables": [9 labels], "vowels": [3],
                             "items": [{"file", "word", "syllables", "boundaries": [[start, end] x 3],
                                        "voice", "rate", "pitch", "stress", "split"}]}
    out_dir/audio/00000.wav ...  (PCM 16-bit)

Everything is a function of ``seed``: the same seed gives the same files, bit for bit.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .espeak import synthesize_many

__all__ = ["CONSONANTS", "VOWELS", "SYLLABLES", "DEFAULT_VOICES", "generate", "word_plan"]

CONSONANTS = ("b", "d", "g")
VOWELS = ("a", "i", "u")
SYLLABLES = tuple(c + v for c in CONSONANTS for v in VOWELS)  # label index = 3 * consonant + vowel
DEFAULT_VOICES = ("en-us", "en-us+f2", "en-us+m3", "en-gb-x-rp+f4", "en+m1", "en-us+f5")
SAMPLE_RATE = 16000
LENGTH = 10240


def word_plan(num_words: int, seed: int, voices=DEFAULT_VOICES, rates=(150, 210), pitches=(25, 75)):
    """The synthesis settings of every word, drawn from a numpy Generator seeded with ``seed``."""
    if num_words < 1:
        raise ValueError(f"num_words must be >= 1, got {num_words}")
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(num_words):
        syl = [SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), size=3)]
        stress = int(rng.integers(0, 3))
        phon = "".join(("'" if j == stress else "") + s[0] + s[1] + ":" for j, s in enumerate(syl))
        plan.append({
            "index": i, "syllables": syl, "stress": stress, "text": f"[[{phon}]]",
            "voice": voices[int(rng.integers(0, len(voices)))],
            "rate": int(rng.integers(rates[0], rates[1] + 1)), "pitch": int(rng.integers(pitches[0], pitches[1] + 1)),
            "noise_seed": int(rng.integers(0, 2**31 - 1)),
        })
    return plan


def _boundaries(phonemes, scale, length):
    """Syllable [start, end) sample spans (at the output rate) from espeak's phoneme onsets."""
    onsets = [s for p, s in phonemes if p in CONSONANTS]
    pauses = [s for p, s in phonemes if p.startswith("_") and onsets and s > onsets[-1]]
    if len(onsets) != 3 or not pauses:
        raise RuntimeError(f"expected 3 consonant onsets and a final pause from espeak-ng, got {phonemes}")
    edges = [int(round(s * scale)) for s in onsets + [pauses[0]]]
    return [[min(edges[j], length), min(edges[j + 1], length)] for j in range(3)]


def generate(out_dir, num_words: int = 851, seed: int = 0, test_fraction: float = 0.2, processes: int = 2,
             voices=DEFAULT_VOICES, progress: bool = False) -> dict:
    """Synthesise the data set into ``out_dir`` and return its metadata dict (see module docstring)."""
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    plan = word_plan(num_words, seed, voices)
    utts = synthesize_many([(p["text"], p["voice"], p["rate"], p["pitch"], p["noise_seed"]) for p in plan], processes)
    perm = np.random.default_rng(seed + 1).permutation(num_words)
    n_test = int(round(test_fraction * num_words))
    test_ids = set(perm[:n_test].tolist())
    items = []
    resamplers = {}  # one per source rate: torchaudio builds the sinc kernel once
    for p, u in zip(plan, utts):
        wav = torch.from_numpy(u.audio)
        if u.sample_rate != SAMPLE_RATE:
            if u.sample_rate not in resamplers:
                resamplers[u.sample_rate] = torchaudio.transforms.Resample(u.sample_rate, SAMPLE_RATE)
            with torch.no_grad():
                wav = resamplers[u.sample_rate](wav)
        wav = wav[:LENGTH]
        wav = torch.nn.functional.pad(wav, (0, LENGTH - wav.shape[0]))
        bounds = _boundaries(u.phonemes, SAMPLE_RATE / u.sample_rate, LENGTH)
        name = f"audio/{p['index']:05d}.wav"
        sf.write(out / name, wav.clamp(-1, 1).numpy(), SAMPLE_RATE, subtype="PCM_16")
        items.append({"file": name, "word": "-".join(p["syllables"]), "syllables": p["syllables"], "boundaries": bounds,
                      "voice": p["voice"], "rate": p["rate"], "pitch": p["pitch"], "stress": p["stress"],
                      "split": "test" if p["index"] in test_ids else "train"})
    meta = {"sample_rate": SAMPLE_RATE, "length": LENGTH, "seed": seed, "syllables": list(SYLLABLES),
            "vowels": list(VOWELS), "items": items}
    tmp = out / "metadata.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "metadata.json")
    return meta

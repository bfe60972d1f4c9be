"""The paper's artificial syllable data set, synthesised with espeak-ng and/or CMU Flite.

Three-syllable words over {b, d, g} x {a, i, u} ("ba-di-gu"), 16 kHz mono, cropped or padded to
10240 samples (640 ms). Engines (``engine``):

* ``"espeak-ng"`` (default): several espeak-ng voices at several speeds and pitches. Words are given
  as phoneme input, e.g. ``[[b'a:di:gu:]]``, so espeak-ng does not apply English spelling rules (it
  would read "bi" as "bye").
* ``"flite"``: CMU Flite's voices of real speakers (awb, rms, slt from CMU ARCTIC; kal16), phone
  input (sim_models/data/flite.py), speed varied by ``duration_stretch``; the leading silence is
  trimmed to 12 ms before the first consonant (as espeak-ng's ~11-14 ms) and a word longer than
  600 ms is synthesised again faster, so that all three syllables fit in the crop.
* ``"both"``: every word drawn from the voices of both.

The stressed syllable is drawn at random per word. ``speakers=N`` keeps the first N voices of each
engine. ``constant=True`` mimics the paper's data ("all the sounds are spoken by the same person,
in a constant tone", paper §4.1): stress always on the first syllable, one rate (175 wpm /
stretch 1), one pitch, and a monotone voice (espeak-ng pitch range 0; flite F0 stddev 0).
``sim data --speakers 1 --constant`` is that preset.

Syllable boundaries come from the synthesiser: espeak-ng's phoneme events or flite's segment end
times (``-psdur``). Syllable j spans from the onset of its consonant to the onset of the next
syllable's consonant (the last one ends at the first pause), mapped to 16 kHz and clipped to the
crop. Data without recorded boundaries (a metadata item without "boundaries") is cut by the
thesis' Appendix A segmentation when loaded (sim_models/data/segmentation.py, datasets.py).

Layout written by ``generate(out_dir, ...)``::

    out_dir/metadata.json   {"sample_rate", "length", "seed", "engine", "speakers", "constant",
                             "syllables": [9 labels], "vowels": [3],
                             "items": [{"file", "word", "syllables", "boundaries": [[start, end] x 3],
                                        "boundary_source", "engine", "voice", "rate", "pitch", "stress", "split"}]}
    out_dir/audio/00000.wav ...  (PCM 16-bit)

Everything is a function of ``seed``: the same seed gives the same files, bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from sim_models.data.espeak import Utterance, synthesize_many
from sim_models.data.flite import FLITE_VOICES, flite_phones, synthesize_flite
from sim_models.util.atomic_write import atomic_write_text

__all__ = ["CONSONANTS", "VOWELS", "SYLLABLES", "DEFAULT_VOICES", "ENGINES", "generate", "word_plan", "voice_pool"]

CONSONANTS = ("b", "d", "g")
VOWELS = ("a", "i", "u")
SYLLABLES = tuple(c + v for c in CONSONANTS for v in VOWELS)  # label index = 3 * consonant + vowel
DEFAULT_VOICES = ("en-us", "en-us+f2", "en-us+m3", "en-gb-x-rp+f4", "en+m1", "en-us+f5")
SAMPLE_RATE = 16000
LENGTH = 10240
ENGINES = ("espeak-ng", "flite", "both")
CONSTANT_RATE, CONSTANT_PITCH = 175, 50   # espeak-ng's defaults (wpm, 0-99)
FLITE_LEAD = 192                          # samples of silence kept before the first consonant (12 ms)
FLITE_MAX_SPEECH = 0.6                    # seconds from the first consonant to the last vowel's end


def voice_pool(engine: str = "espeak-ng", speakers: int | None = None, voices=DEFAULT_VOICES) -> list:
    """[(engine, voice)]: the first ``speakers`` voices of each engine used."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if speakers is not None and speakers < 1:
        raise ValueError(f"speakers must be >= 1, got {speakers}")
    pool = []
    if engine in ("espeak-ng", "both"):
        pool += [("espeak-ng", v) for v in list(voices)[:speakers]]
    if engine in ("flite", "both"):
        pool += [("flite", v) for v in FLITE_VOICES[:speakers]]
    return pool


def word_plan(num_words: int, seed: int, voices=DEFAULT_VOICES, rates=(150, 210), pitches=(25, 75),
              engine: str = "espeak-ng", speakers: int | None = None, constant: bool = False):
    """The synthesis settings of every word, drawn from a numpy Generator seeded with ``seed``.

    The draws are the same whatever ``constant`` (it overrides stress, rate and pitch afterwards), and
    for the default espeak-ng voices they are those of earlier versions (same data for the same seed)."""
    if num_words < 1:
        raise ValueError(f"num_words must be >= 1, got {num_words}")
    pool, n_all = voice_pool(engine, speakers, voices), len(voice_pool(engine, None, voices))
    rng = np.random.default_rng(seed)
    voice_rng = np.random.default_rng([seed, len(pool)])  # voices of a reduced pool (--speakers)
    plan = []
    for i in range(num_words):
        syl = [SYLLABLES[j] for j in rng.integers(0, len(SYLLABLES), size=3)]
        stress = int(rng.integers(0, 3))
        # One draw of the main stream whatever ``speakers`` (the same data as before for the full pool); a
        # smaller pool takes its voice from a generator of its own, uniformly (draw % |pool| was not).
        draw = int(rng.integers(0, n_all))
        eng, voice = pool[draw if len(pool) == n_all else int(voice_rng.integers(0, len(pool)))]
        rate, pitch = int(rng.integers(rates[0], rates[1] + 1)), int(rng.integers(pitches[0], pitches[1] + 1))
        noise_seed = int(rng.integers(0, 2**31 - 1))
        if constant:
            stress, rate, pitch = 0, CONSTANT_RATE, CONSTANT_PITCH
        phon = "".join(("'" if j == stress else "") + s[0] + s[1] + ":" for j, s in enumerate(syl))
        plan.append({"index": i, "syllables": syl, "stress": stress, "engine": eng,
                     "text": f"[[{phon}]]" if eng == "espeak-ng" else flite_phones(syl, stress),
                     "voice": voice, "rate": rate, "pitch": pitch, "noise_seed": noise_seed,
                     "pitch_range": 0 if constant else None})
    return plan


def _flite_word(p: dict):
    """Synthesise one planned word with flite: (audio (S,) float32 at its own rate, rate, [(phone, start_sample)])."""
    stretch = CONSTANT_RATE / p["rate"]
    f0_std = 0.0 if p["pitch_range"] == 0 else None
    for _ in range(2):
        audio, sr, segs = synthesize_flite(p["text"], p["voice"], stretch, f0_std=f0_std)
        first = next(s for name, s, _ in segs if name in CONSONANTS)
        speech = segs[-1][1] - first  # the final pause starts where the last vowel ends
        if speech <= FLITE_MAX_SPEECH:
            break
        stretch *= 0.97 * FLITE_MAX_SPEECH / speech  # too long for the crop: once more, faster
    start = max(0, int(round(first * sr)) - FLITE_LEAD * sr // SAMPLE_RATE)
    phonemes = [("_pau" if name == "pau" else name, int(round(s * sr)) - start) for name, s, _ in segs[1:]]
    return audio[start:], sr, phonemes


def _boundaries(phonemes, scale, length):
    """Syllable [start, end) sample spans (at the output rate) from espeak's phoneme onsets."""
    onsets = [s for p, s in phonemes if p in CONSONANTS]
    pauses = [s for p, s in phonemes if p.startswith("_") and onsets and s > onsets[-1]]
    if len(onsets) != 3 or not pauses:
        raise RuntimeError(f"expected 3 consonant onsets and a final pause from espeak-ng, got {phonemes}")
    edges = [int(round(s * scale)) for s in onsets + [pauses[0]]]
    return [[min(edges[j], length), min(edges[j + 1], length)] for j in range(3)]


def generate(out_dir, num_words: int = 851, seed: int = 0, test_fraction: float = 0.2, processes: int = 2,
             voices=DEFAULT_VOICES, progress: bool = False, engine: str = "espeak-ng", speakers: int | None = None,
             constant: bool = False) -> dict:
    """Synthesise the data set into ``out_dir`` and return its metadata dict (see module docstring)."""
    out = Path(out_dir)
    plan = word_plan(num_words, seed, voices, engine=engine, speakers=speakers, constant=constant)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    es = [p for p in plan if p["engine"] == "espeak-ng"]
    es_utts = synthesize_many([(p["text"], p["voice"], p["rate"], p["pitch"], p["noise_seed"], p["pitch_range"])
                               for p in es], processes) if es else []
    by_index = {p["index"]: u for p, u in zip(es, es_utts)}
    for p in plan:
        if p["engine"] == "flite":
            a, sr, ph = _flite_word(p)
            by_index[p["index"]] = Utterance(a, sr, ph)
    utts = [by_index[p["index"]] for p in plan]
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
                      "boundary_source": p["engine"], "engine": p["engine"], "voice": p["voice"], "rate": p["rate"], "pitch": p["pitch"], "stress": p["stress"],
                      "split": "test" if p["index"] in test_ids else "train"})
    meta = {"sample_rate": SAMPLE_RATE, "length": LENGTH, "seed": seed, "engine": engine, "speakers": speakers,
            "constant": constant, "syllables": list(SYLLABLES),
            "vowels": list(VOWELS), "items": items}
    atomic_write_text(out / "metadata.json", json.dumps(meta, indent=1))
    return meta

"""A thin ctypes binding to libespeak-ng that returns audio *and* the phoneme events of one utterance.

The espeak-ng command line cannot report where each phoneme starts; the library can: with
``espeakINITIALIZE_PHONEME_EVENTS`` every phoneme comes with its sample position in the
synthesised audio. We use those positions as syllable boundaries.

espeak-ng keeps state between utterances inside one process (the same text synthesised twice in
a row differs by a few samples), while a fresh process is bit-exact. So every utterance is
synthesised in a forked child that initialises the library, seeds libc's ``rand`` (which espeak-ng
uses for noise) and exits: deterministic output whatever the order or parallelism.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import shutil
from dataclasses import dataclass

import numpy as np

__all__ = ["EspeakError", "Utterance", "espeak_available", "synthesize", "synthesize_many"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_PHONEMES = 0x100      # espeakPHONEMES: honour [[...]] phoneme input
_ENDPAUSE = 0x1000     # espeakENDPAUSE: as the command line does
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_RATE, _PITCH, _RANGE = 1, 3, 4


class EspeakError(RuntimeError):
    pass


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT from speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Utterance:
    """audio: (S,) float32 in [-1, 1] at ``sample_rate``; phonemes: [(mnemonic, start_sample)]."""
    audio: np.ndarray
    sample_rate: int
    phonemes: list


def _library_path():
    return ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"


def espeak_available() -> bool:
    """True when the espeak-ng program and its shared library can be used."""
    if shutil.which("espeak-ng") is None:
        return False
    try:
        ctypes.CDLL(_library_path())
    except OSError:
        return False
    return True


def _synthesize_here(text: str, voice: str, rate: int, pitch: int, seed: int, pitch_range: int | None = None):
    """Runs in a fresh (forked) process: returns (audio int16 bytes, sample_rate, phonemes) or raises."""
    try:
        lib = ctypes.CDLL(_library_path())
    except OSError as e:
        raise EspeakError(f"cannot load libespeak-ng ({e}); install espeak-ng (apt-get install espeak-ng)") from e
    sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
    if sr <= 0:
        raise EspeakError(f"espeak_Initialize failed (returned {sr})")
    chunks, phonemes = [], []

    @_CALLBACK
    def callback(wav, n, events):
        if wav and n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                phonemes.append((bytes(e.id.string).split(b"\0")[0].decode(), int(e.sample)))
            i += 1
        return 0

    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakError(f"espeak-ng has no voice {voice!r} (see `espeak-ng --voices`)")
    lib.espeak_SetParameter(_RATE, int(rate), 0)
    lib.espeak_SetParameter(_PITCH, int(pitch), 0)
    if pitch_range is not None:  # espeakRANGE: 0 = monotone, 50 = espeak-ng's default
        lib.espeak_SetParameter(_RANGE, int(pitch_range), 0)
    ctypes.CDLL(None).srand(ctypes.c_uint(seed & 0xFFFFFFFF))
    data = text.encode()
    err = lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, 0, 0, _PHONEMES | _ENDPAUSE, None, None)
    lib.espeak_Synchronize()
    if err != 0 or not chunks:
        raise EspeakError(f"espeak-ng failed to synthesise {text!r} with voice {voice!r} (error {err})")
    return np.concatenate(chunks).tobytes(), int(sr), phonemes


def _job(args):
    audio, sr, phonemes = _synthesize_here(*args)
    return audio, sr, phonemes


def synthesize_many(jobs, processes: int = 2):
    """jobs: iterable of (text, voice, rate, pitch, seed[, pitch_range]). Returns a list of Utterance, in order.

    Each job runs in its own freshly forked process (maxtasksperchild=1), so the result of a job
    depends only on its arguments."""
    jobs = list(jobs)
    if not jobs:
        return []
    if not espeak_available():
        raise EspeakError("espeak-ng is not installed: run `apt-get install -y espeak-ng` (or `make system-deps`)")
    # fork (not spawn / forkserver): a spawned child would re-import the caller's __main__ (and torch).
    ctx = mp.get_context("fork")
    with ctx.Pool(processes=max(1, processes), maxtasksperchild=1) as pool:
        raw = pool.map(_job, jobs, chunksize=1)
    return [Utterance(np.frombuffer(a, dtype=np.int16).astype(np.float32) / 32768.0, sr, ph) for a, sr, ph in raw]


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, seed: int = 0) -> Utterance:
    """Synthesise one utterance (phoneme input such as "[[b'a:di:gu:]]" is honoured)."""
    return synthesize_many([(text, voice, rate, pitch, seed)], processes=1)[0]

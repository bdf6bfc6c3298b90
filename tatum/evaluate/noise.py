"""Synthetic non-music made from a real window, for the real-music discriminator.

Each maker takes a window's notes (onset, dur, pitch, velocity arrays; onsets relative to the window)
and returns a same-sized window that is not music. They keep the note count and the window's own
duration and velocity values, so what tells them apart from real music is how the notes are
organised, not how many there are or how loud and long they are. Like a MIDI file they hold one key per
pitch (`Notes.playable`): a key struck twice at one onset would be a tell no real window has.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tatum.notes import PIANO_HIGH, PIANO_LOW, resolve_overlaps

Window = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]   # onset_ms, dur_ms, pitch, velocity
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9),
          "blues": (0, 3, 5, 6, 7, 10)}


def _sorted(onset, dur, pitch, vel) -> Window:
    return tuple(a.astype(np.int64) for a in resolve_overlaps(onset, dur, pitch, vel))


def _random_onsets(n: int, span_ms: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.integers(0, span_ms, n))


def uniform(w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """Pitches uniform over the keyboard at uniformly random times."""
    onset, dur, _, vel = w
    n = len(onset)
    return _sorted(_random_onsets(n, span_ms, rng), rng.permutation(dur),
                   rng.integers(PIANO_LOW, PIANO_HIGH + 1, n), rng.permutation(vel))


def random_walk(w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """A pitch random walk (steps up to a fifth, reflecting at the keyboard's ends), on the window's
    own onsets or on random ones."""
    onset, dur, pitch, vel = w
    n = len(onset)
    steps = rng.integers(-7, 8, n)
    p = np.empty(n, dtype=np.int64)
    cur = int(rng.integers(40, 85))
    for i, s in enumerate(steps.tolist()):
        cur += s
        if cur < PIANO_LOW or cur > PIANO_HIGH:
            cur -= 2 * s
        p[i] = cur
    times = onset if rng.random() < 0.5 else _random_onsets(n, span_ms, rng)
    return _sorted(np.sort(times), rng.permutation(dur), p, rng.permutation(vel))


def scale_notes(w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """Random notes of one scale in a two- to four-octave register, at random times: in key, but
    without melody, harmony or rhythm."""
    onset, dur, _, vel = w
    n = len(onset)
    steps = np.array(SCALES[list(SCALES)[int(rng.integers(len(SCALES)))]])
    tonic = int(rng.integers(0, 12))
    low = int(rng.integers(30, 60))
    high = low + int(rng.integers(24, 49))
    keys = np.arange(low, min(high, PIANO_HIGH) + 1)
    keys = keys[np.isin((keys - tonic) % 12, steps)]
    return _sorted(_random_onsets(n, span_ms, rng), rng.permutation(dur), rng.choice(keys, n),
                   rng.permutation(vel))


def shuffled(w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """The window's own notes with one or more of pitches, onsets and durations permuted among them."""
    onset, dur, pitch, vel = (a.copy() for a in w)
    which = rng.integers(1, 8)                  # a non-empty subset of {pitch, onset, duration}
    if which & 1:
        pitch = rng.permutation(pitch)
    if which & 2:
        gaps = rng.permutation(np.diff(onset, prepend=0))
        onset = np.cumsum(gaps)
    if which & 4:
        dur = rng.permutation(dur)
    if which == 4:                              # durations alone hardly change a window: add pitches
        pitch = rng.permutation(pitch)
    return _sorted(onset, dur, pitch, vel)


def mix(w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """Real music with noise in it: a random 30–70 % of the notes replaced by notes of another maker,
    or one 5 s part of the window replaced outright."""
    onset, dur, pitch, vel = w
    n = len(onset)
    other = MAKERS[("uniform", "random_walk", "scale", "shuffled")[int(rng.integers(4))]](w, rng, span_ms)
    if rng.random() < 0.5:
        k = max(1, round(n * rng.uniform(0.3, 0.7)))
        keep = np.ones(n, dtype=bool)
        keep[rng.choice(n, k, replace=False)] = False
        src = rng.choice(len(other[0]), k, replace=False)
        return _sorted(np.concatenate([onset[keep], other[0][src]]), np.concatenate([dur[keep], other[1][src]]),
                       np.concatenate([pitch[keep], other[2][src]]), np.concatenate([vel[keep], other[3][src]]))
    part = int(rng.integers(0, 3)) * span_ms // 3
    real = (onset < part) | (onset >= part + span_ms // 3)
    fake = (other[0] >= part) & (other[0] < part + span_ms // 3)
    return _sorted(np.concatenate([onset[real], other[0][fake]]), np.concatenate([dur[real], other[1][fake]]),
                   np.concatenate([pitch[real], other[2][fake]]), np.concatenate([vel[real], other[3][fake]]))


MAKERS: dict[str, Callable[[Window, np.random.Generator, int], Window]] = {
    "uniform": uniform, "random_walk": random_walk, "scale": scale_notes, "shuffled": shuffled, "mix": mix}


def make_noise(kind: str, w: Window, rng: np.random.Generator, span_ms: int) -> Window:
    """A non-music window of `kind` (one of MAKERS) made from the real window `w`."""
    return MAKERS[kind](w, rng, span_ms)

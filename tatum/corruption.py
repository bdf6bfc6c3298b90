"""The nine corruptions of ImprovNet (DESIGN §3), with its bugs fixed, and a registry for more.

A corruption is a pure function `fn(seg, rng) -> token ids`: `seg` is one 5 s window whose notes are
relative to the window start (as `tokenizer.split_segments` makes them), `rng` a numpy Generator, and
the result the corrupted window's note tokens, without the corruption-type token (the caller adds it).
Note-level corruptions build their output with `tokenizer.encode_segment`, so it is always a run of
onset → dur → pv triples sorted by (onset, pitch); the masks put ONSET_MASK, DUR_MASK or PV_MASK in
their slot.

>>> from tatum.corruption import corrupt, register
>>> ids = corrupt("skyline", segment, np.random.default_rng(0))
>>> @register("drop_bass", like="fragmentation")    # a corruption of your own
... def drop_bass(seg, rng):
...     return encode_segment(seg.select(seg.pitch >= 48))

A model knows the nine by their tokens (the vocabulary has one per corruption, fixed at training). A
corruption of your own is announced to the model with the token of the built-in one it names with
`like` (note_modification by default: "some notes are missing or wrong", the most general of the
nine), so the model rewrites the window as it would a window corrupted that way. Name the one whose
damage is most like yours. Registered corruptions work in plans, on `--corruption`, and from files
given to `--plugin` or packages that declare a `tatum.corruptions` entry point.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tatum.errors import TatumError
from tatum.notes import PIANO_HIGH, PIANO_LOW, Notes
from tatum.tokenizer import CORRUPTIONS as BUILTIN_CORRUPTIONS
from tatum.tokenizer import (
    DUR_MASK,
    GRID_MS,
    MASK,
    ONSET_MASK,
    PV_MASK,
    SEGMENT_MS,
    encode_segment,
)

Corruption = Callable[[Notes, np.random.Generator], np.ndarray]

CORRUPTIONS: dict[str, Corruption] = {}
BUILTIN = BUILTIN_CORRUPTIONS  # the nine a model has a token for
LIKE: dict[str, str] = {}      # a registered corruption → the built-in whose token the model is shown
DEFAULT_LIKE = "note_modification"

CHORD_MS = 50                  # onsets this close to a group's first onset sound as one chord
MAX_SHIFT = 5                  # wrong notes are 1–5 semitones off
MAX_DUR_MS = SEGMENT_MS        # longest duration a token can hold
LONG_NOTE_MS = 500             # note_modification splits only notes longer than this
INSERT_VELOCITIES = np.array([45, 60, 75, 90, 105])


# ------------------------------------------------------------------ registry
def register(name: str, fn: Corruption | None = None, *, like: str = DEFAULT_LIKE):
    """Register `fn` under `name` (replacing any earlier one); usable as `@register("name")`.

    `like`: the built-in corruption whose token the model is shown for this one (see the module's
    docstring). A built-in name keeps its own token."""
    if like not in BUILTIN:
        raise TatumError(f"like={like!r} must name a built-in corruption: {', '.join(BUILTIN)}")

    def add(f: Corruption) -> Corruption:
        CORRUPTIONS[name] = f
        if name not in BUILTIN:
            LIKE[name] = like
        return f
    return add if fn is None else add(fn)


def token_name(name: str) -> str:
    """The corruption whose token stands for `name` in a model's vocabulary: itself when built in,
    else the built-in it was registered `like`."""
    if name in BUILTIN:
        return name
    _load_entry_points()
    if name in LIKE:
        return LIKE[name]
    raise TatumError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")


def load_plugin(path: str | os.PathLike) -> None:
    """Run a Python file that registers corruptions (tatum --plugin FILE.py)."""
    import importlib.util

    path = Path(path)
    if not path.is_file():
        raise TatumError("no such plugin file", path)
    spec = importlib.util.spec_from_file_location(f"tatum_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:   # the user's code: say where it failed, in one line
        raise TatumError(f"plugin failed: {type(e).__name__}: {' '.join(str(e).split())[:160]}", path) from None


_ENTRY_POINTS_LOADED = False


def _load_entry_points() -> None:
    """Corruptions that installed packages declare (entry point group `tatum.corruptions`, each a
    function registered under the entry point's name, like note_modification unless it has `.like`)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="tatum.corruptions"):
        if ep.name not in CORRUPTIONS:
            fn = ep.load()
            register(ep.name, fn, like=getattr(fn, "like", DEFAULT_LIKE))


def get(name: str) -> Corruption:
    if name not in CORRUPTIONS:
        _load_entry_points()
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise TatumError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}") from None


def corrupt(name: str, seg: Notes, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Apply the corruption `name` to one segment; `rng` may be a Generator, a seed or None."""
    return np.asarray(get(name)(seg, np.random.default_rng(rng)), dtype=np.int64).reshape(-1)


# ------------------------------------------------------------------- helpers
def group_onsets(onset_ms: np.ndarray, window_ms: int = CHORD_MS) -> np.ndarray:
    """Group index per note: a note joins the current group when its onset is at most `window_ms`
    after the group's first onset (not the previous note's, so a fast run does not chain into one
    chord). `onset_ms` must be sorted ascending."""
    onset = np.asarray(onset_ms, dtype=np.int64).reshape(-1)
    if np.any(np.diff(onset) < 0):
        raise ValueError("onset_ms must be sorted ascending")
    group = np.empty(len(onset), dtype=np.int64)
    start, g = 0, 0
    while start < len(onset):
        end = int(np.searchsorted(onset, onset[start] + window_ms, side="right"))
        group[start:end] = g
        start, g = end, g + 1
    return group


def skyline_notes(seg: Notes, window_ms: int = CHORD_MS) -> Notes:
    """The top note of each onset group (see `group_onsets`), with its own onset, duration and
    velocity. Of two equally high notes in a group the earlier one is kept."""
    n = len(seg)
    if n == 0:
        return seg.copy()
    group = group_onsets(seg.onset_ms, window_ms)
    # Sorted by group, then pitch, then earliest first among ties: the last row of a group is its top.
    order = np.lexsort((-np.arange(n), seg.pitch, group))
    last_of_group = np.append(group[order][1:] != group[order][:-1], True)
    return seg.select(np.sort(order[last_of_group]))


def _shift_pitches(pitch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each pitch moved by a nonzero random offset of ±1–5 semitones, kept on the keyboard."""
    pitch = np.asarray(pitch, dtype=np.int64)
    step = rng.integers(1, MAX_SHIFT + 1, size=len(pitch)) * rng.choice((-1, 1), size=len(pitch))
    shifted = pitch + step
    # A shift that would leave the keyboard goes the other way, so the note still changes.
    off = (shifted < PIANO_LOW) | (shifted > PIANO_HIGH)
    shifted[off] = pitch[off] - step[off]
    return np.clip(shifted, PIANO_LOW, PIANO_HIGH)


def _with(seg: Notes, pitch: np.ndarray | None = None, velocity: np.ndarray | None = None) -> Notes:
    """`seg` with new pitches and/or velocities (re-sorted by onset and pitch)."""
    return Notes(seg.onset_ms, seg.dur_ms, seg.pitch if pitch is None else pitch,
                 seg.velocity if velocity is None else velocity, seg.tempo)


def _on_grid(ms: np.ndarray, low: int = 0) -> np.ndarray:
    return np.maximum(low, np.round(np.asarray(ms, dtype=np.float64) / GRID_MS) * GRID_MS).astype(np.int64)


# --------------------------------------------------------------- corruptions
@register("pitch_velocity_mask")
def pitch_velocity_mask(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Every note keeps its onset and duration; its pitch-velocity becomes PV_MASK."""
    ids = encode_segment(seg)
    ids[2::3] = PV_MASK
    return ids


@register("onset_duration_mask")
def onset_duration_mask(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Every note keeps its pitch-velocity; its onset and duration become ONSET_MASK, DUR_MASK."""
    ids = encode_segment(seg)
    ids[0::3] = ONSET_MASK
    ids[1::3] = DUR_MASK
    return ids


@register("whole_mask")
def whole_mask(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """The whole segment becomes a single MASK token."""
    return np.array([MASK], dtype=np.int64)


@register("permute_pitch")
def permute_pitch(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Pitches shuffled across the notes; onsets, durations and velocities stay in place."""
    return encode_segment(_with(seg, pitch=rng.permutation(seg.pitch)))


@register("permute_pitch_velocity")
def permute_pitch_velocity(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Pitches and velocities shuffled across the notes, independently of each other."""
    return encode_segment(_with(seg, pitch=rng.permutation(seg.pitch), velocity=rng.permutation(seg.velocity)))


@register("fragmentation")
def fragmentation(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Only the first 20–50 % of the notes in time order (at least one) are kept."""
    n = len(seg)
    if n == 0:
        return encode_segment(seg)
    f = rng.uniform(0.2, 0.5)
    keep = max(1, int(np.floor(f * n + 0.5)))
    return encode_segment(seg.select(slice(0, keep)))


@register("incorrect_transposition")
def incorrect_transposition(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Each note, with probability 0.5, moves 1–5 semitones up or down (never by zero)."""
    hit = rng.random(len(seg)) < 0.5
    shifted = _shift_pitches(seg.pitch, rng)
    return encode_segment(_with(seg, pitch=np.where(hit, shifted, seg.pitch)))


@register("skyline")
def skyline(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Only the top note of each ≤50 ms onset group, the last group included."""
    return encode_segment(skyline_notes(seg))


@register("note_modification")
def note_modification(seg: Notes, rng: np.random.Generator) -> np.ndarray:
    """Delete some notes and split some long ones into two, at one rate p ~ U(0.1, 0.4).

    Deletion never removes the last note in time order; a kept note absorbs the duration of each
    deleted note that starts more than 50 ms after it (a deleted chord tone is simply dropped).
    Insertion halves a note longer than 500 ms and adds a nearby wrong note between its onset and
    the next onset, with about the halved duration.
    """
    n = len(seg)
    if n == 0:
        return encode_segment(seg)
    p = rng.uniform(0.1, 0.4)
    onset = seg.onset_ms.astype(np.int64)
    dur = seg.dur_ms.astype(np.int64)

    # Deletion.
    delete = rng.random(n) < p
    delete[-1] = False
    idx = np.arange(n)
    prev_kept = np.maximum.accumulate(np.where(delete, -1, idx))
    absorb = delete & (prev_kept >= 0) & (onset - onset[np.maximum(prev_kept, 0)] > CHORD_MS)
    np.add.at(dur, prev_kept[absorb], dur[absorb])
    keep = ~delete
    onset, dur = onset[keep], np.minimum(dur[keep], MAX_DUR_MS)
    pitch, vel = seg.pitch[keep].astype(np.int64), seg.velocity[keep].astype(np.int64)

    # Insertion. Every draw is made for every note so the stream of random numbers does not depend
    # on which notes happen to be long.
    m = len(onset)
    split = (dur > LONG_NOTE_MS) & (rng.random(m) < p)
    new_pitch = _shift_pitches(pitch, rng)
    new_vel = rng.choice(INSERT_VELOCITIES, size=m)
    nxt = np.searchsorted(onset, onset, side="right")
    next_onset = np.where(nxt < m, onset[np.minimum(nxt, m - 1)], SEGMENT_MS)
    steps = np.maximum(1, (next_onset - onset) // GRID_MS)
    new_onset = np.minimum(onset + GRID_MS * rng.integers(0, steps), SEGMENT_MS - GRID_MS)
    half = _on_grid(dur / 2, low=GRID_MS)
    new_dur = np.minimum(_on_grid(half * rng.uniform(0.9, 1.1, size=m), low=GRID_MS), MAX_DUR_MS)
    dur = np.where(split, half, dur)

    out = Notes(np.concatenate([onset, new_onset[split]]), np.concatenate([dur, new_dur[split]]),
                np.concatenate([pitch, new_pitch[split]]), np.concatenate([vel, new_vel[split]]),
                seg.tempo)
    return encode_segment(out)

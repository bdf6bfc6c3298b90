"""Token format version 1 (DESIGN §2): notes as (onset, dur, pitch-velocity) triples in 5 s windows.

The layout of the note tokens is fixed by the format, so shards, corruptions and checkpoints agree on
them whatever the style vocabulary. Everything after the note tokens (corruption, genre and artist
names, controls) is data: a `Tokenizer` is built from lists of names and saved as JSON next to every
checkpoint and shard folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tatum.errors import TatumError
from tatum.notes import PIANO_HIGH, PIANO_LOW, Notes, TempoMap, fold_to_piano

FORMAT_VERSION = 1
GRID_MS = 10
SEGMENT_MS = 5000
N_ONSET = SEGMENT_MS // GRID_MS                  # 0, 10, …, 4990 ms
N_DUR = SEGMENT_MS // GRID_MS                    # 10, 20, …, 5000 ms
N_PITCH = PIANO_HIGH - PIANO_LOW + 1             # 88 keys
VEL_BINS, VEL_WIDTH = 8, 16
N_PV = N_PITCH * VEL_BINS

SPECIALS = ("PAD", "BOS", "EOS", "SEP", "T", "MASK", "ONSET_MASK", "DUR_MASK", "PV_MASK")
PAD, BOS, EOS, SEP, T, MASK, ONSET_MASK, DUR_MASK, PV_MASK = range(len(SPECIALS))
ONSET0 = len(SPECIALS)
DUR0 = ONSET0 + N_ONSET
PV0 = DUR0 + N_DUR
NOTE_END = PV0 + N_PV                            # first id after the fixed note layout

GENRES = ("classical", "jazz", "pop")
CORRUPTIONS = ("pitch_velocity_mask", "onset_duration_mask", "whole_mask", "permute_pitch",
               "permute_pitch_velocity", "fragmentation", "incorrect_transposition", "skyline",
               "note_modification")
# Notes per second: 8 log-spaced buckets. Mean sounding notes while anything sounds: 6 buckets.
DENSITY_EDGES = (1.0, 1.8, 3.2, 5.6, 10.0, 18.0, 32.0)
POLYPHONY_EDGES = (1.25, 1.75, 2.5, 3.5, 5.0)


# ------------------------------------------------------------- note tokens
def vel_bin(velocity: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(velocity, dtype=np.int32) // VEL_WIDTH, 0, VEL_BINS - 1)


def bin_velocity(b: np.ndarray) -> np.ndarray:
    """The velocity a bin decodes to: its centre, so the error is at most 8."""
    return (np.asarray(b, dtype=np.int32) * VEL_WIDTH + VEL_WIDTH // 2).astype(np.int16)


def pv_token(pitch: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    p = fold_to_piano(pitch).astype(np.int32) - PIANO_LOW
    return PV0 + p * VEL_BINS + vel_bin(velocity)


def quantize(notes: Notes, origin_ms: int | None = None):
    """Window index, onset step in the window (0–499), duration step (1–500) and pv token per note."""
    origin = notes.start_ms if origin_ms is None else origin_ms
    q = np.round((notes.onset_ms.astype(np.int64) - origin) / GRID_MS).astype(np.int64)
    q = np.maximum(q, 0)
    window = q // N_ONSET
    onset = q % N_ONSET
    dur = np.clip(np.round(notes.dur_ms / GRID_MS), 1, N_DUR).astype(np.int64)
    return window, onset, dur, pv_token(notes.pitch, notes.velocity)


def note_triples(onset: np.ndarray, dur: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Interleave (onset step, duration step, pv token) arrays into token ids."""
    out = np.empty(3 * len(onset), dtype=np.int64)
    out[0::3] = ONSET0 + onset
    out[1::3] = DUR0 + dur - 1
    out[2::3] = pv
    return out


def encode_segment(seg: Notes) -> np.ndarray:
    """Tokens of one window whose notes are already relative to the window start (onset 0–4999 ms)."""
    if not len(seg):
        return np.zeros(0, dtype=np.int64)
    onset = np.clip(np.round(seg.onset_ms / GRID_MS), 0, N_ONSET - 1).astype(np.int64)
    dur = np.clip(np.round(seg.dur_ms / GRID_MS), 1, N_DUR).astype(np.int64)
    pv = pv_token(seg.pitch, seg.velocity)
    order = np.lexsort((seg.pitch, onset))
    return note_triples(onset[order], dur[order], pv[order])


def split_segments(notes: Notes, origin_ms: int | None = None) -> list[Notes]:
    """Cut a piece into 5 s windows from its first onset; each window's notes on the 10 ms grid,
    relative to the window start. Empty windows are kept as empty `Notes`."""
    window, onset, dur, pv = quantize(notes, origin_ms)
    n_win = int(window.max()) + 1 if len(window) else 0
    bounds = np.searchsorted(window, np.arange(n_win + 1)) if _nondecreasing(window) else None
    if bounds is None:
        order = np.argsort(window, kind="stable")
        window, onset, dur, pv = window[order], onset[order], dur[order], pv[order]
        bounds = np.searchsorted(window, np.arange(n_win + 1))
    pitch = (pv - PV0) // VEL_BINS + PIANO_LOW
    vel = bin_velocity((pv - PV0) % VEL_BINS)
    out = []
    for k in range(n_win):
        s = slice(bounds[k], bounds[k + 1])
        out.append(Notes(onset[s] * GRID_MS, dur[s] * GRID_MS, pitch[s], vel[s], notes.tempo))
    return out


def _nondecreasing(a: np.ndarray) -> bool:
    return bool(np.all(a[1:] >= a[:-1]))


def encode(notes: Notes, origin_ms: int | None = None) -> np.ndarray:
    """A whole piece: each window's note tokens, windows separated by `T` (empty windows kept)."""
    if not len(notes):
        return np.zeros(0, dtype=np.int64)
    window, onset, dur, pv = quantize(notes, origin_ms)
    order = np.lexsort((notes.pitch, onset, window))
    window, onset, dur, pv = window[order], onset[order], dur[order], pv[order]
    n_win = int(window[-1]) + 1
    out = np.full(3 * len(onset) + n_win - 1, T, dtype=np.int64)
    pos = 3 * np.arange(len(onset)) + window
    out[pos] = ONSET0 + onset
    out[pos + 1] = DUR0 + dur - 1
    out[pos + 2] = pv
    return out


def decode(ids, origin_ms: int = 0, tempo: TempoMap | None = None) -> Notes:
    """Tokens of a piece (windows separated by `T`) back to notes; malformed triples are skipped."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    window = np.cumsum(ids == T)
    is_note = (ids >= ONSET0) & (ids < NOTE_END)
    note_ids, note_win = ids[is_note], window[is_note]
    n = len(note_ids) // 3
    a = note_ids[: 3 * n].reshape(n, 3) if n else np.zeros((0, 3), dtype=np.int64)
    strict = (len(note_ids) == 3 * n and np.all((a[:, 0] < DUR0)) and np.all((a[:, 1] >= DUR0) & (a[:, 1] < PV0))
              and np.all(a[:, 2] >= PV0))
    if strict:
        win = note_win[0::3][:n]
    else:
        a, win = _parse_lenient(note_ids, note_win)
    onset = (a[:, 0] - ONSET0) * GRID_MS + win * SEGMENT_MS + origin_ms
    dur = (a[:, 1] - DUR0 + 1) * GRID_MS
    pv = a[:, 2] - PV0
    return Notes(onset, dur, pv // VEL_BINS + PIANO_LOW, bin_velocity(pv % VEL_BINS), tempo or TempoMap())


def _parse_lenient(ids: np.ndarray, win: np.ndarray):
    """Keep only complete onset → dur → pv runs, as a model's raw output may break the grammar."""
    rows, wins = [], []
    state, cur = 0, []
    for tok, w in zip(ids.tolist(), win.tolist()):
        kind = 0 if tok < DUR0 else (1 if tok < PV0 else 2)
        if kind == 0:
            state, cur = 1, [tok]
        elif kind == state:
            cur.append(tok)
            state += 1
            if state == 3:
                rows.append(cur)
                wins.append(w)
                state, cur = 0, []
        else:
            state, cur = 0, []
    a = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return a, np.array(wins, dtype=np.int64)


def decode_segment(ids) -> Notes:
    """One window's tokens back to notes relative to the window start."""
    return decode([i for i in np.asarray(ids).tolist() if i != T])


def token_kind(ids: np.ndarray) -> np.ndarray:
    """0 onset, 1 duration, 2 pitch-velocity, -1 anything else."""
    ids = np.asarray(ids)
    k = np.full(ids.shape, -1, dtype=np.int8)
    k[(ids >= ONSET0) & (ids < DUR0)] = 0
    k[(ids >= DUR0) & (ids < PV0)] = 1
    k[(ids >= PV0) & (ids < NOTE_END)] = 2
    return k


# ---------------------------------------------------------------- controls
def density_bucket(n_notes: int, seconds: float = SEGMENT_MS / 1000) -> int:
    return int(np.searchsorted(DENSITY_EDGES, n_notes / max(seconds, 1e-9), side="right"))


def _sounding(seg: Notes) -> tuple[np.ndarray, np.ndarray]:
    """(count of sounding notes, length in ms) of each stretch between consecutive note events."""
    start = seg.onset_ms.astype(np.int64)
    end = start + seg.dur_ms
    t = np.concatenate([start, end])
    delta = np.concatenate([np.ones(len(start)), -np.ones(len(end))])
    order = np.lexsort((delta, t))
    t, delta = t[order], delta[order]
    return np.cumsum(delta)[:-1], np.diff(t)


def mean_polyphony(seg: Notes) -> float:
    """Mean count of sounding notes over the time in which at least one note sounds."""
    if not len(seg):
        return 0.0
    level, span = _sounding(seg)
    sounding = span[level > 0].sum()
    return float((level * span).sum() / sounding) if sounding else 1.0


def polyphony_rate(seg: Notes) -> float:
    """Share of the time in which at least one note sounds during which more than one does."""
    if not len(seg):
        return 0.0
    level, span = _sounding(seg)
    sounding = span[level > 0].sum()
    return float(span[level > 1].sum() / sounding) if sounding else 0.0


def polyphony_bucket(seg: Notes) -> int:
    if not len(seg):
        return 0
    return int(np.searchsorted(POLYPHONY_EDGES, mean_polyphony(seg), side="right"))


# ----------------------------------------------------------------- vocabulary
@dataclass
class Tokenizer:
    """The full vocabulary: fixed note tokens, then corruption, genre, artist and control tokens.

    >>> tok = Tokenizer(artists=["Art Tatum", "Bill Evans"])
    >>> ids = tok.encode(Notes.from_midi("song.mid"))
    >>> notes = tok.decode(ids)
    >>> tok.id("genre:jazz"), tok.artist_id("Art Tatum"), tok.artist_id("Someone Else")  # → artist:other
    """

    artists: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=lambda: list(GENRES))
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))

    def __post_init__(self):
        self.tokens: list[str] = list(SPECIALS)
        self.tokens += [f"onset:{i * GRID_MS}" for i in range(N_ONSET)]
        self.tokens += [f"dur:{(i + 1) * GRID_MS}" for i in range(N_DUR)]
        self.tokens += [f"pv:{p}:{b}" for p in range(PIANO_LOW, PIANO_HIGH + 1) for b in range(VEL_BINS)]
        self.tokens += [f"corrupt:{c}" for c in self.corruptions]
        self.tokens += [f"genre:{g}" for g in self.genres]
        self.tokens += [f"artist:{a}" for a in self.artists] + ["artist:other", "NULL_STYLE"]
        self.tokens += [f"density:{i}" for i in range(len(DENSITY_EDGES) + 1)] + ["density:any"]
        self.tokens += [f"poly:{i}" for i in range(len(POLYPHONY_EDGES) + 1)] + ["poly:any"]
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise TatumError("vocabulary has repeated names (a genre, artist or corruption given twice?)")

    # lookups
    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        try:
            return self._ids[token]
        except KeyError:
            raise TatumError(f"unknown token {token!r}") from None

    def has(self, token: str) -> bool:
        return token in self._ids

    def genre_id(self, genre: str | None) -> int:
        if genre is None:
            return self._ids["NULL_STYLE"]
        if f"genre:{genre}" not in self._ids:
            raise TatumError(f"unknown style {genre!r}; known: {', '.join(self.genres)}")
        return self._ids[f"genre:{genre}"]

    def artist_id(self, artist: str | None) -> int:
        """An artist's token; a pianist outside the vocabulary is `artist:other`, None is NULL_STYLE."""
        if artist is None:
            return self._ids["NULL_STYLE"]
        return self._ids.get(f"artist:{artist}", self._ids["artist:other"])

    def corruption_id(self, name: str) -> int:
        """The token of a corruption; a registered one of the user's is shown to the model as the
        built-in it was registered `like` (tatum.corruption)."""
        if f"corrupt:{name}" not in self._ids:
            from tatum.corruption import token_name

            stand_in = token_name(name) if name not in self.corruptions else name
            if f"corrupt:{stand_in}" not in self._ids:
                raise TatumError(f"unknown corruption {name!r}; known: {', '.join(self.corruptions)}")
            return self._ids[f"corrupt:{stand_in}"]
        return self._ids[f"corrupt:{name}"]

    def density_id(self, bucket: int | None) -> int:
        return self._control("density", bucket, len(DENSITY_EDGES))

    def polyphony_id(self, bucket: int | None) -> int:
        return self._control("poly", bucket, len(POLYPHONY_EDGES))

    def _control(self, kind: str, bucket: int | None, top: int) -> int:
        key = f"{kind}:any" if bucket is None else f"{kind}:{bucket}"
        if key not in self._ids:
            name = "density" if kind == "density" else "polyphony"
            raise TatumError(f"{name} bucket must be 0–{top}, 'any' or 'source', not {bucket!r}")
        return self._ids[key]

    @property
    def null_style(self) -> int:
        return self._ids["NULL_STYLE"]

    # note tokens
    encode = staticmethod(encode)
    decode = staticmethod(decode)
    encode_segment = staticmethod(encode_segment)
    decode_segment = staticmethod(decode_segment)
    split_segments = staticmethod(split_segments)

    # persistence
    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "grid_ms": GRID_MS, "segment_ms": SEGMENT_MS,
                "velocity_bin_width": VEL_WIDTH, "pitch_range": [PIANO_LOW, PIANO_HIGH],
                "density_edges": list(DENSITY_EDGES), "polyphony_edges": list(POLYPHONY_EDGES),
                "genres": self.genres, "artists": self.artists, "corruptions": self.corruptions,
                "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict, source: str | None = None) -> "Tokenizer":
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise TatumError(f"token format version {version} is not supported (this tatum reads "
                             f"version {FORMAT_VERSION})", source)
        tok = cls(artists=list(d["artists"]), genres=list(d["genres"]), corruptions=list(d["corruptions"]))
        if "tokens" in d and d["tokens"] != tok.tokens:
            raise TatumError("vocabulary does not match its own format description", source)
        return tok

    def save(self, path: str | os.PathLike) -> None:
        from tatum.io import write_atomic
        write_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise TatumError(f"cannot read vocabulary ({e})", path) from None
        return cls.from_dict(d, str(path))

    @classmethod
    def default(cls) -> "Tokenizer":
        """The vocabulary of the shipped models: the pianists with the most hours in PiJAMA train."""
        return cls.load(Path(__file__).with_name("vocab.json"))

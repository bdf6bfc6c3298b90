"""Training and validation windows for the classifiers, read straight from prepared token shards.

All notes of a split are decoded once into flat arrays (onsets in ms from each piece's first window),
so drawing a random 15 s window is two binary searches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tatum.data.shards import ShardSet
from tatum.errors import TatumError
from tatum.evaluate.noise import Window
from tatum.notes import PIANO_LOW
from tatum.tokenizer import DUR0, GRID_MS, ONSET0, PV0, SEGMENT_MS, VEL_BINS, bin_velocity


@dataclass
class Corpus:
    onset: np.ndarray        # int64 ms from the piece's first window, sorted within each piece
    dur: np.ndarray
    pitch: np.ndarray
    vel: np.ndarray
    start: np.ndarray        # [pieces + 1] note offsets of each piece
    length_ms: np.ndarray    # [pieces] length of each piece (its windows × 5 s)
    genre: np.ndarray        # [pieces] genre index
    artist: np.ndarray       # [pieces] artist index (len(artists) = "other"), −1 when not jazz
    meta: list[dict]

    def __len__(self) -> int:
        return len(self.meta)

    def window(self, i: int, t0: int, span_ms: int) -> Window:
        """Piece i's notes with onsets in [t0, t0 + span_ms), onsets relative to t0."""
        a, b = self.start[i], self.start[i + 1]
        on = self.onset[a:b]
        lo, hi = np.searchsorted(on, [t0, t0 + span_ms])
        s = slice(a + lo, a + hi)
        return self.onset[s] - t0, self.dur[s], self.pitch[s], self.vel[s]


def artist_index(artist: str | None, genre: str, artists: list[str]) -> int:
    if genre != "jazz":
        return -1
    return artists.index(artist) if artist in artists else len(artists)


def load_corpus(shards: ShardSet, split: str, genres: list[str], artists: list[str]) -> Corpus:
    """Every piece of `split` whose genre is one of `genres`, decoded to note arrays."""
    pieces = [p for p in shards.split(split) if p.genre in genres and p.n_segments]
    if not pieces:
        raise TatumError(f"no pieces of split {split!r} with genres {genres}", shards.root)
    parts, start, length = [], [0], []
    for p in pieces:
        segs = shards.segments(p)
        lens = np.array([len(s) for s in segs])
        if np.any(lens % 3):
            raise TatumError(f"piece {p.piece_id} has a window that is not whole notes", shards.root)
        tok = np.concatenate(segs).astype(np.int64) if lens.sum() else np.zeros(0, dtype=np.int64)
        win = np.repeat(np.arange(len(segs)), lens // 3)
        onset = (tok[0::3] - ONSET0) * GRID_MS + win * SEGMENT_MS
        dur = (tok[1::3] - DUR0 + 1) * GRID_MS
        pv = tok[2::3] - PV0
        order = np.lexsort((pv, onset))
        parts.append((onset[order], dur[order], pv[order] // VEL_BINS + PIANO_LOW, bin_velocity(pv[order] % VEL_BINS)))
        start.append(start[-1] + len(onset))
        length.append(len(segs) * SEGMENT_MS)
    cat = lambda k, dt: np.concatenate([x[k] for x in parts]).astype(dt)  # noqa: E731
    return Corpus(cat(0, np.int64), cat(1, np.int32), cat(2, np.int16), cat(3, np.int16),
                  np.array(start), np.array(length),
                  np.array([genres.index(p.genre) for p in pieces]),
                  np.array([artist_index(p.artist, p.genre, artists) for p in pieces]),
                  [dict(p.meta) for p in pieces])

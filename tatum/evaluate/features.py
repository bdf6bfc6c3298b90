"""What the classifiers read: ≈15 s windows of notes as one row of small integers per note.

Inputs are put on the token format's grid first (10 ms onsets and durations, velocity bins, 5 s
durations at most), so a MIDI file scored here and a window read from the training shards look
alike. Every attribute is bucketed; the network embeds each bucket and sums the embeddings.
"""

from __future__ import annotations

import numpy as np

from tatum.notes import PIANO_LOW, Notes
from tatum.tokenizer import GRID_MS, N_DUR, SEGMENT_MS, VEL_WIDTH, VEL_BINS

WINDOW_MS = 3 * SEGMENT_MS         # scores are means over windows of three token windows
HOP_MS = SEGMENT_MS                # … one starting every 5 s: pianist per PiJAMA val track 0.957, not 0.935
MAX_NOTES = 512                    # a window keeps its first 512 notes (the densest 15 s of PiJAMA exceed it)
MIN_NOTES = 4                      # emptier windows say nothing and are left out of a score

N_PITCH = 88
N_VEL = VEL_BINS
N_TIME = 32                        # log buckets of durations and inter-onset gaps, 10 ms … 5 s
MAX_INTERVAL = 24
N_INTERVAL = 2 * MAX_INTERVAL + 2  # −24 … +24 semitones, and "first note of the window"
N_POS = 15                         # position of the onset in the window, 1 s steps
FIELDS = ("pitch", "velocity", "duration", "gap", "interval", "position")
SIZES = (N_PITCH, N_VEL, N_TIME, N_TIME, N_INTERVAL, N_POS)

# Bucket edges in grid steps: 0 (same step), then log-spaced up to N_DUR steps.
_TIME_EDGES = np.unique(np.round(np.geomspace(1, N_DUR, N_TIME - 1)).astype(np.int64))


def time_bucket(steps: np.ndarray) -> np.ndarray:
    """Grid steps (10 ms) → 0 … N_TIME−1, log-spaced; 0 means "no gap"."""
    b = np.searchsorted(_TIME_EDGES, np.asarray(steps, dtype=np.int64), side="right")
    return np.minimum(b, N_TIME - 1)


def encode_window(onset_ms: np.ndarray, dur_ms: np.ndarray, pitch: np.ndarray,
                  velocity: np.ndarray) -> np.ndarray:
    """One window's notes (onsets relative to the window start, sorted by onset then pitch) →
    int64 [n, len(FIELDS)], at most MAX_NOTES rows."""
    onset = np.round(np.asarray(onset_ms, dtype=np.float64) / GRID_MS).astype(np.int64)[:MAX_NOTES]
    n = len(onset)
    dur = np.clip(np.round(np.asarray(dur_ms[:n], dtype=np.float64) / GRID_MS), 1, N_DUR).astype(np.int64)
    p = np.clip(np.asarray(pitch[:n], dtype=np.int64) - PIANO_LOW, 0, N_PITCH - 1)
    out = np.empty((n, len(FIELDS)), dtype=np.int64)
    out[:, 0] = p
    out[:, 1] = np.clip(np.asarray(velocity[:n], dtype=np.int64) // VEL_WIDTH, 0, N_VEL - 1)
    out[:, 2] = time_bucket(dur)
    gap = np.diff(onset, prepend=onset[:1]) if n else onset
    out[:, 3] = time_bucket(np.maximum(gap, 0))
    interval = np.clip(np.diff(p, prepend=p[:1]), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
    if n:
        interval[0] = N_INTERVAL - 1
    out[:, 4] = interval
    out[:, 5] = np.clip(onset * GRID_MS // 1000, 0, N_POS - 1)
    return out


def cut(notes: Notes, window_ms: int = WINDOW_MS, hop_ms: int = HOP_MS) -> list[tuple[np.ndarray, ...]]:
    """A piece as windows of `window_ms` every `hop_ms` from its first onset, the last one reaching
    the last onset: (onset relative to the window, duration, pitch, velocity) int64 arrays. Windows
    with fewer than MIN_NOTES notes are dropped."""
    if not len(notes):
        return []
    onset = notes.onset_ms.astype(np.int64) - notes.start_ms
    starts = np.arange(0, max(1, int(onset[-1]) - window_ms + hop_ms + 1), hop_ms)
    lo = np.searchsorted(onset, starts)
    hi = np.searchsorted(onset, starts + window_ms)
    return [(onset[a:b] - t, notes.dur_ms[a:b].astype(np.int64), notes.pitch[a:b].astype(np.int64),
             notes.velocity[a:b].astype(np.int64))
            for t, a, b in zip(starts.tolist(), lo.tolist(), hi.tolist()) if b - a >= MIN_NOTES]


def windows(notes: Notes, window_ms: int = WINDOW_MS, hop_ms: int = HOP_MS) -> list[np.ndarray]:
    """The piece's windows (see `cut`), each encoded."""
    return [encode_window(*w) for w in cut(notes, window_ms, hop_ms)]


def pad_batch(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Windows → (int64 [B, L, F] padded with zeros, bool [B, L] true on real notes)."""
    length = max(1, max((len(r) for r in rows), default=1))
    x = np.zeros((len(rows), length, len(FIELDS)), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, r in enumerate(rows):
        x[i, :len(r)] = r
        mask[i, :len(r)] = True
    return x, mask

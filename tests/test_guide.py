"""The replay guide: the bias on the pitch head that draws a re-played window toward the one it replaces."""

from __future__ import annotations

import numpy as np

from tatum import tokenizer as tk
from tatum.generate.guide import SLICES, Guide, guide_bias
from tatum.notes import Notes


def per_key(bias) -> np.ndarray:
    """[SLICES, keys]: the bias of each piano key in each slice of the window (the same for each of
    its velocity bins)."""
    b = bias.numpy().reshape(SLICES, -1, tk.VEL_BINS)
    assert np.all(b == b[:, :, :1])
    return b[:, :, 0]


def key(midi: int) -> int:
    return midi - tk.PIANO_LOW


def slice_at(ms: int) -> int:
    return ms * SLICES // tk.SEGMENT_MS


def test_a_c_major_window_favours_its_pitch_classes_its_register_and_its_tune_where_it_sounds():
    # C major chords from C3 to E5 at 0, 1 and 2 s, the tune on top: E5, D5, C5
    on = np.array([0, 0, 0, 1000, 1000, 1000, 2000, 2000, 2000])
    pitch = np.array([48, 64, 76, 43, 59, 74, 48, 55, 72])
    notes = Notes(on, np.full(9, 900), pitch, np.full(9, 80))
    b = per_key(guide_bias(notes, Guide(harmony=1.5, tune=1.0, register=1.0)))
    assert b.shape == (SLICES, tk.PIANO_HIGH - tk.PIANO_LOW + 1)
    late = slice_at(4000)                              # no tune sounds there: harmony and register only
    assert b[late, key(61)] == -1.5                    # C#: not sounded, the full cost
    assert -1.5 < b[late, key(62)] < b[late, key(60)] <= 0   # D sounds less than C
    assert b[late, key(100)] < b[late, key(88)] - 1.0  # far above the window's range costs more
    # the tune's keys gain 1 where they sound, and only there
    assert b[slice_at(0), key(76)] == b[late, key(76)] + 1.0
    assert b[slice_at(1000), key(74)] == b[late, key(74)] + 1.0
    assert b[slice_at(1000), key(76)] == b[late, key(76)]
    assert b[slice_at(2000), key(72)] == b[late, key(72)] + 1.0
    assert b[slice_at(0), key(64)] == b[late, key(64)]     # the E an octave below the tune's: no gain


def test_no_guide_and_too_few_notes_change_nothing():
    notes = Notes(np.array([0, 500, 900]), np.full(3, 400), np.array([60, 64, 67]), np.full(3, 80))
    assert np.all(per_key(guide_bias(notes, Guide(0, 0, 0))) == 0)
    assert guide_bias(notes.select(np.array([True, True, False])), Guide()) is None
    assert Guide().scaled(2) == Guide(3.0, 2.0, 2.0)

"""Untouched is untouched: a note a task gives back as it went in is the original note, exactly.

The model reads and writes notes on the token grid (10 ms, velocity bins of 16), so a window it never
rewrote, or a note it kept (the tune laid back on top, a note a pass left alone), would come back
moved by up to 5 ms and re-velocitied. `restore` puts the originals back: every result note that
equals an original note on the grid (same onset step, duration step, key and velocity bin) is that
original note, with its own milliseconds and velocity.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tatum import tokenizer as tk
from tatum.notes import Notes


def grid_keys(notes: Notes, origin_ms: int) -> list[tuple[int, int, int]]:
    """(onset step from `origin_ms`, duration step, pv token) per note: what the tokens keep of it."""
    window, onset, dur, pv = tk.quantize(notes, origin_ms)
    step = window * tk.N_ONSET + onset
    return list(zip(step.tolist(), dur.tolist(), pv.tolist()))


def restore(original: Notes, result: Notes, origin_ms: int) -> Notes:
    """`result` with each note that matches an original note on the grid replaced by that original
    (each original serves one result note); the other notes are new and stay as generated."""
    if not len(original) or not len(result):
        return result
    pool: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(grid_keys(original, origin_ms)):
        pool[key].append(i)
    take = np.full(len(result), -1, dtype=np.int64)
    for j, key in enumerate(grid_keys(result, origin_ms)):
        if pool.get(key):
            take[j] = pool[key].pop(0)
    kept = take >= 0
    if not kept.any():
        return result
    return Notes.merge([result.select(~kept), original.select(take[kept])])   # the result's tempo map

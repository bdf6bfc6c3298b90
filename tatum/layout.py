"""The note-event layout of the NoteLM model: one position per note, the fill-in-the-middle order.

An *event* is one position of the model's input, three token ids of the version-1 vocabulary: a note is
(onset, dur, pv); anything else is (special, PAD, PAD). A window of clean notes is opened by a `T`
event, so "this window has no more notes" is the prediction of the next `T`.

    [genre] [artist] [density] [polyphony] [corrupt:X]  corrupted target …  SEP
    T n n … T n …            (right context, windows +1, +2, …)               SEP
    T n n … T n n …          (left context, windows −k … −1)
    T n n n …  T             (the target window 0, closed by the next window's T)

Everything the model may need to know sits before the target, and the target continues the left
context without a break, so the same layout serves refinement (a corrupted target), infill (MASK,
both contexts), continuation (MASK, no right context) and real-time streaming (the clean stream simply
goes on). The loss covers every clean event whose predecessor is clean too — context and target
alike — which is most of the sequence, not only the target window.

Each event also carries a *place*: 0 for meta tokens, 1 for the corrupted target, and 2 + K + d for a
clean event of window d relative to the target (d clamped to ±K); and a *time*: its onset in 10 ms steps
from the target window's start (a window's T at the window's start, meta events and masked onsets at
0). Some attention heads rotate by time instead of by position, so a target note finds the corrupted
notes and the context at its own moment without having to count positions. Training and generation
both build their inputs here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tatum import tokenizer as tk

K = 8
N_PLACES = 2 + 2 * K + 1
META, CORRUPT = 0, 1
N_STYLE = 4            # genre, artist, density, polyphony: the leading events, mixable


def clean_place(d: int | np.ndarray) -> int | np.ndarray:
    return 2 + K + np.clip(d, -K, K)


TARGET_PLACE = 2 + K


def events_of(ids: np.ndarray) -> np.ndarray:
    """A window's version-1 tokens (onset, dur, pv triples; masks in their slots) as events [n, 3].
    A lone special (whole_mask's MASK) is one event."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) % 3:
        if len(ids) == 1:
            return np.array([[ids[0], tk.PAD, tk.PAD]], dtype=np.int64)
        raise ValueError(f"{len(ids)} tokens are not whole notes")
    return ids.reshape(-1, 3)


def special(token: int, n: int = 1) -> np.ndarray:
    out = np.full((n, 3), tk.PAD, dtype=np.int64)
    out[:, 0] = token
    return out


def is_note(events: np.ndarray) -> np.ndarray:
    first = np.asarray(events)[..., 0]
    return (first >= tk.ONSET0) & (first < tk.DUR0)


def event_time(events: np.ndarray, window: int | np.ndarray = 0) -> np.ndarray:
    """Onset in grid steps from the target window's start; events without an onset sit at their
    window's start."""
    first = np.asarray(events)[..., 0]
    onset = np.where((first >= tk.ONSET0) & (first < tk.DUR0), first - tk.ONSET0, 0)
    return (np.asarray(window) * tk.N_ONSET + onset).astype(np.int64)


def window_events(windows: list[np.ndarray], first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean windows numbered from `first` (relative to the target), each opened by a T event:
    events, places, times."""
    ev, pl, tm = [], [], []
    for j, w in enumerate(windows):
        e = np.concatenate([special(tk.T), events_of(w) if len(w) else np.zeros((0, 3), np.int64)])
        ev.append(e)
        pl.append(np.full(len(e), clean_place(first + j), dtype=np.int64))
        tm.append(event_time(e, first + j))
    if not ev:
        return np.zeros((0, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ev), np.concatenate(pl), np.concatenate(tm)


@dataclass
class Layout:
    """One model input. `events` [L, 3], `place` and `time` [L]; `loss` marks events the model is
    trained to predict (from the one before), `target` those of the target window and its closing T
    (the per-task measures); `prefix` is where the target window opens (generation feeds
    events[:prefix])."""

    events: np.ndarray
    place: np.ndarray
    time: np.ndarray
    loss: np.ndarray
    target: np.ndarray
    prefix: int
    aligned: np.ndarray | None = None   # [L, 3]: at the target's j-th position, the corrupted target's
                                        # j-th note (what the next note would be were nothing changed)

    def __len__(self) -> int:
        return len(self.events)


def build(style: tuple[int, int, int, int], corruption_id: int, corrupted: np.ndarray,
          left: list[np.ndarray], right: list[np.ndarray], target: np.ndarray | None, max_len: int,
          reserve: int = 0) -> Layout:
    """Lay out one example, trimming context (far windows first, symmetrically) to fit `max_len` events
    of input. With `target` None the layout ends where the target opens, leaving room for `reserve`
    events to be generated."""
    meta = special(0, N_STYLE + 1)
    meta[:N_STYLE, 0] = style
    meta[N_STYLE, 0] = corruption_id
    corr = events_of(corrupted) if len(corrupted) else np.zeros((0, 3), np.int64)
    corr = corr[: max_len // 4]                      # a target too dense: keep the notes that fit
    tgt = None if target is None else events_of(target) if len(target) else np.zeros((0, 3), np.int64)
    opened = special(tk.T)
    closed = tgt is not None and len(tgt) + 1 <= max_len // 2
    if tgt is not None:
        tgt = tgt[: max_len // 2 - 1]
    fixed = len(meta) + len(corr) + 2 + 1 + (reserve if tgt is None else len(tgt))
    room = max(0, max_len - fixed)
    r_ev, r_pl, r_tm = window_events(right, 1)
    l_ev, l_pl, l_tm = window_events(left, -len(left))
    n_left = min(len(l_ev), max(room // 2, room - len(r_ev)))
    n_right = min(len(r_ev), room - n_left)
    cut = len(l_ev) - n_left
    l_ev, l_pl, l_tm = l_ev[cut:], l_pl[cut:], l_tm[cut:]
    r_ev, r_pl, r_tm = r_ev[:n_right], r_pl[:n_right], r_tm[:n_right]

    sep = special(tk.SEP)
    parts = [(meta, META, 0), (corr, CORRUPT, event_time(corr)), (sep, META, 0), (r_ev, r_pl, r_tm),
             (sep, META, 0), (l_ev, l_pl, l_tm), (opened, TARGET_PLACE, 0)]
    if tgt is not None:
        parts.append((tgt, TARGET_PLACE, event_time(tgt)))
        if closed:
            parts.append((opened, TARGET_PLACE + 1, tk.N_ONSET))
    events = np.concatenate([p[0] for p in parts])
    place = np.concatenate([np.broadcast_to(np.asarray(p[1], np.int64), len(p[0])) for p in parts])
    time = np.concatenate([np.broadcast_to(np.asarray(p[2], np.int64), len(p[0])) for p in parts])
    prefix = len(meta) + len(corr) + 2 + len(r_ev) + len(l_ev) + 1
    clean = place >= 2
    loss = np.zeros(len(events), dtype=bool)
    loss[1:] = clean[1:] & clean[:-1]
    target_mask = np.zeros(len(events), dtype=bool)
    target_mask[prefix:] = True
    return Layout(events, place, time, loss, target_mask, prefix, aligned_notes(corr, prefix - 1, len(events)))


def aligned_notes(corrupted: np.ndarray, opener: int, length: int) -> np.ndarray:
    """[length, 3]: from the target's opening T (at `opener`) on, position opener + j holds the
    corrupted target's j-th note, where it has one (PAD elsewhere)."""
    out = np.full((length, 3), tk.PAD, dtype=np.int64)
    notes = corrupted[is_note(corrupted) | (corrupted[:, 0] == tk.ONSET_MASK)] if len(corrupted) else corrupted
    n = max(0, min(len(notes), length - opener))
    out[opener:opener + n] = notes[:n]
    return out

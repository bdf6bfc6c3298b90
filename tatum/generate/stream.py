"""The real-time contract (DESIGN §6): Magenta RealTime's `generate_chunk`, on symbolic music.

    chunk, state = stream.generate_chunk(state, conditioning, sampling, chunk_s=2.0, live=notes)

`state=None` starts a jam. The state is explicit and serialisable (`State.to_dict` / `from_dict`): a
jam can be saved and resumed exactly. Time runs in milliseconds from the jam's start, cut into the
model's 5 s windows. Each window is a continuation (the last ≈10 s as left context, nothing on the
right) decoded only as far as the chunk needs (plus `LOOKAHEAD_MS`) and extended call by call, the
notes already decided kept as the decoder's prefix: the work per call follows the chunk's
length, not the window's. A change of conditioning takes effect inside the current window: the part
already played stays as the prefix and the rest is redrawn under the new conditioning, its first note
within `ANSWER_MS` (in the next window when this one ends first). Live notes (the musician's) join the context, and in two
modes shape what the engine plays:

- `respond` (call and response): while the player plays, the engine listens (plays nothing); once the
  player pauses for `gap_ms`, it answers, continuing from what was just played;
- `accompany`: the player's notes so far are part of the window, and the engine plays only under the
  player's line (nothing at or above the lowest note the player holds or just played).

What the model computed is kept between calls, outside the state (per thread, rebuilt when absent):
the keys and values of the window being played (tatum.generate.decode.Reuse), so a call feeds only the
notes that changed instead of prefilling the ≈400 events of context again, and the last decodes, so a
replay from a saved state (the scheduler's rewind) costs nothing. Neither changes a note: a state
restored from JSON on a fresh stream plays on exactly as the uninterrupted jam.

No I/O here: ports, audio and servers are adapters in `tatum/realtime/` that call this.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import numpy as np

from tatum import layout
from tatum import tokenizer as tk
from tatum.errors import TatumError
from tatum.generate.decode import Interrupted, Reuse, Row, decode_rows, prime
from tatum.generate.sampling import Pace
from tatum.generate.engine import ROOM, Conditioning
from tatum.generate.sampling import Sampling
from tatum.model.notelm import NoteLM
from tatum.notes import Notes

W = tk.SEGMENT_MS
CONTEXT_WINDOWS = 2          # ≈ 10 s of context
LOOKAHEAD_MS = 0             # each call decodes this far past the end of its chunk (more only delays a
                             # redraw and answers the player's latest notes later; the plan is extended
                             # call by call at no extra cost, the model's keys and values being kept)
MODES = ("solo", "respond", "accompany")
MEMO = 16                    # decodes remembered per thread, for replays (see Stream._decode)
ANSWER_MS = 100              # after a change of conditioning the first note comes within this: the
                             # change is heard at once, not after a rest the model happened to draw


@dataclass
class State:
    """Everything a jam needs to go on. Notes are (onset ms from the jam's start, dur ms, pitch,
    velocity) lists, so the state is plain JSON."""

    played_ms: int = 0                               # the clock: chunks returned up to here
    chunk_index: int = 0
    window: int = -1                                 # the window planned in `plan`
    plan: list[list[int]] = field(default_factory=list)   # its engine notes, times within the window
    plan_key: str = ""                               # the conditioning it was drawn under
    plan_ms: int = 0                                 # and when
    plan_until: int = 0                              # ms within the window it is complete up to (W: all)
    history: list[list[int]] = field(default_factory=list)  # engine notes played (absolute times)
    live: list[list[int]] = field(default_factory=list)     # the player's notes (absolute times)
    last_live_ms: int = -10**9                       # when the player last started a note
    answer_by_ms: int = -1                           # after a change: its first note comes by then (-1: none due)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def copy(self) -> "State":
        """A deep copy (what `from_dict(to_dict())` gives, without walking it generically)."""
        return replace(self, plan=[list(r) for r in self.plan], history=[list(r) for r in self.history],
                       live=[list(r) for r in self.live])


def _notes(rows: list[list[int]]) -> Notes:
    if not rows:
        return Notes.empty()
    a = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return Notes(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


def _rows(notes: Notes, shift_ms: int = 0) -> list[list[int]]:
    return [[int(o) + shift_ms, int(d), int(p), int(v)]
            for o, d, p, v in zip(notes.onset_ms, notes.dur_ms, notes.pitch, notes.velocity)]


def _window_tokens(notes: Notes, w: int) -> np.ndarray:
    """Tokens of window `w` of notes on the jam's clock."""
    seg = notes.select((notes.onset_ms >= w * W) & (notes.onset_ms < (w + 1) * W)).shift(-w * W)
    return tk.encode_segment(seg)


def _key(conditioning: Conditioning) -> str:
    return json.dumps(asdict(conditioning), sort_keys=True)


@dataclass
class Stream:
    """A model and its vocabulary, jamming: `generate_chunk` is the whole interface."""

    model: object
    tok: object
    mode: str = "solo"
    gap_ms: int = 600            # respond: the pause after which the engine answers
    context_windows: int = CONTEXT_WINDOWS
    lookahead_ms: int = LOOKAHEAD_MS
    keep: bool = True            # False: keep nothing between calls (the same notes, slower; for tests)
    # Windows begin at multiples of this: the first call to reach one computes its context (a prefill),
    # so a scheduler keeps the short first chunk after a change inside one.
    window_ms = W
    # Not part of any state: what the model computed for the last calls, per thread (each jam decodes
    # on its own thread). Absent (a new stream, another thread) it is rebuilt, and nothing changes.
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise TatumError(f"unknown jam mode {self.mode!r}; modes: {', '.join(MODES)}")

    def kept(self) -> tuple[Reuse, OrderedDict]:
        """This thread's accelerators: the model's cache of the window being played (decode.Reuse) and
        the last decodes (for replays)."""
        local = self._local
        if not self.keep:
            return Reuse(), OrderedDict()
        if not hasattr(local, "reuse"):
            local.reuse, local.memo = Reuse(), OrderedDict()
        return local.reuse, local.memo

    def prepare(self, state: State | None, conditioning: Conditioning | None = None,
                sampling: Sampling | None = None, at_ms: int | None = None, live: Notes | None = None,
                slack_ms: int = 0) -> None:
        """Compute now what a coming `generate_chunk` under `conditioning` will need from jam time
        `at_ms` (default: the state's clock) on: the model's context of that window and the notes played
        in it. Draws nothing and changes no state, only how long that call takes: on a change of style
        the scheduler calls it first, then chooses when the change takes over. `live`: the player's notes
        that call will be given; `slack_ms`: it may start up to this much later than `at_ms`."""
        if state is None or not self.keep or not isinstance(self.model, NoteLM):
            return
        conditioning = conditioning or Conditioning(genre={"jazz": 1.0})
        sampling = sampling or Sampling()
        at = state.played_ms if at_ms is None else int(at_ms)
        w = at // W
        # as generate_chunk will merge them (the same order, so the same tokens)
        players = state.live + (_rows(live) if live is not None and len(live) else [])
        played = Notes.merge([_notes(state.history), _notes(players)])
        # The notes before the latest start too: the cache then holds every note the call's prefix can
        # hold, and a call from earlier finds its own in it (a prefix of them) and feeds nothing.
        until = min(at + max(0, int(slack_ms)), (w + 1) * W)
        enc, style, pace, _ = self._context(w, played, conditioning)
        before = played.select((played.onset_ms >= w * W) & (played.onset_ms < until)).shift(-w * W)
        prime(self.model, Row(enc, played=tk.encode_segment(before), pace=pace), sampling, self.kept()[0], style,
              self.tok.null_style, (self.tok.density_id(None), self.tok.polyphony_id(None)))

    @contextmanager
    def interruptible(self, stop: Callable[[], bool]) -> Iterator[None]:
        """Within it, decoding on this thread asks `stop()` before each note and, when True, gives up:
        `generate_chunk` raises `Interrupted` and leaves no trace (the state given to it is unchanged)."""
        old = getattr(self._local, "stop", None)
        self._local.stop = stop
        try:
            yield
        finally:
            self._local.stop = old

    # ------------------------------------------------------------- the contract
    def generate_chunk(self, state: State | None, conditioning: Conditioning | None = None,
                       sampling: Sampling | None = None, chunk_s: float = 2.0,
                       live: Notes | None = None) -> tuple[Notes, State]:
        """The engine's notes for the next `chunk_s` seconds (onsets on the jam's clock), and the new
        state. `live`: the player's notes since the last call, on the same clock."""
        if not 0.05 <= chunk_s <= W / 1000:
            raise TatumError(f"chunk length must be 0.05–{W // 1000} s, not {chunk_s}")
        state = State() if state is None else state.copy()
        conditioning = conditioning or Conditioning(genre={"jazz": 1.0})
        sampling = sampling or Sampling()
        if live is not None and len(live):
            state.live += _rows(live)
            state.last_live_ms = max(state.last_live_ms, int(live.onset_ms.max()))
        start, end = state.played_ms, state.played_ms + round(chunk_s * 1000)
        out = []
        for w in range(start // W, (end - 1) // W + 1):
            lo, hi = max(start, w * W), min(end, (w + 1) * W)
            self._plan(state, w, lo, min(hi + self.lookahead_ms, (w + 1) * W), conditioning, sampling)
            plan = _notes(state.plan).shift(w * W)
            out.append(plan.select((plan.onset_ms >= lo) & (plan.onset_ms < hi)))
        chunk = self._filter(state, Notes.merge(out), start, end)
        state.history += _rows(chunk)
        state.played_ms, state.chunk_index = end, state.chunk_index + 1
        self._forget(state)
        return chunk, state

    # ------------------------------------------------------------- planning
    def _plan(self, state: State, w: int, now: int, need: int, cond: Conditioning, sampling: Sampling) -> None:
        """Make sure window `w` is planned under `cond` from `now` up to `need` (jam ms): drawn afresh
        when the clock enters it, redrawn from `now` when the conditioning changed or the player
        played since, extended when the plan stops short."""
        key = _key(cond)
        heard = any(r[0] >= state.plan_ms and w * W <= r[0] < now for r in state.live)
        answering = self.mode == "accompany" or (self.mode == "respond" and state.last_live_ms <= now - self.gap_ms)
        same = state.window == w and state.plan_key == key and not (heard and answering)
        if same and state.plan_until >= need - w * W:
            return
        played = Notes.merge([_notes(state.history), _notes(state.live)])
        before = played.select((played.onset_ms >= w * W) & (played.onset_ms < now)).shift(-w * W)
        kept = _notes(state.plan).select(_notes(state.plan).onset_ms >= now - w * W) if same else Notes.empty()
        start = state.plan_until if same else now - w * W
        if not same and state.plan_key not in ("", key):
            state.answer_by_ms = now + ANSWER_MS     # a change: heard at once, in this window or the next
        due = state.answer_by_ms - w * W if state.answer_by_ms >= 0 else None
        answer = due if due is not None and start <= due < W else None
        # decoded at least to the note due, which a horizon before it would draw and then drop
        until = need - w * W if answer is None else min(W, max(need - w * W, answer + tk.GRID_MS))
        prefix = tk.encode_segment(Notes.merge([before, kept]))
        ids, ended = self._decode(state, w, played, prefix, start, until, cond, sampling, answer_ms=answer)
        new = tk.decode_segment(ids[len(prefix):])
        if len(new) or (due is not None and due < start):
            state.answer_by_ms = -1                  # answered (or too late to be)
        state.plan = _rows(Notes.merge([kept, new]))
        state.plan_until = W if ended else until
        if not same:
            state.window, state.plan_key, state.plan_ms = w, key, now

    def _context(self, w: int, played: Notes, cond: Conditioning):
        """The model's input for window `w` continued from the notes `played` before it, the style
        mixtures, the pace asked and the tokens of window w - 1 (None for the first): the last
        `context_windows` windows on the left, nothing on the right."""
        left = [_window_tokens(played, k) for k in range(max(0, w - self.context_windows), w)]
        previous = left[-1] if left else _window_tokens(played, w - 1) if w > 0 else None
        last = played.select((played.onset_ms >= (w - 1) * W) & (played.onset_ms < w * W)).shift(-(w - 1) * W)
        style_ids, style = cond.tokens(self.tok, last)
        mask = np.array([tk.MASK])
        if isinstance(self.model, NoteLM):
            enc = layout.build(style_ids, self.tok.corruption_id("whole_mask"), mask, left, [], None,
                               self.model.cfg.max_len, reserve=ROOM)
        else:
            from tatum.data.examples import build_encoder_input
            enc = build_encoder_input(self.tok, style_ids, left, "whole_mask", mask, [],
                                      self.model.cfg.max_enc_len)
        return enc, style, Pace.from_tokens(self.tok, style_ids[2], style_ids[3]), previous

    def _decode(self, state: State, w: int, played: Notes, prefix: np.ndarray, from_ms: int, until_ms: int,
                cond: Conditioning, sampling: Sampling, answer_ms: int | None = None) -> tuple[np.ndarray, bool]:
        """Window `w` continued after `prefix` from `from_ms` up to `until_ms` (ms in the window): its
        tokens (prefix included) and whether the model ended the window. `answer_ms`: its first note
        comes by then (when the window lasts that long)."""
        enc, style, pace, previous = self._context(w, played, cond)
        salt = state.chunk_index * 7919 + w
        answer = None if answer_ms is None else answer_ms // tk.GRID_MS
        row = Row(enc, played=prefix, from_step=-(-from_ms // tk.GRID_MS), until_step=-(-until_ms // tk.GRID_MS),
                  pace=pace, answer_by=answer, previous=previous)
        reuse, memo = self.kept()
        key = _decode_key(self.model, enc, style, sampling, salt, prefix, row.from_step) + (answer,)
        if key in memo and memo[key][2] >= row.until_step:
            # The same decode was done (a replay: the scheduler rewinding to a saved state), as far
            # or further: its notes up to this horizon are what decoding again would draw.
            return _shorter(*memo[key], prefix, row.until_step)
        ids = decode_rows(self.model, [row], sampling, style, self.tok.null_style, sampling.generator(salt=salt),
                          any_controls=(self.tok.density_id(None), self.tok.polyphony_id(None)),
                          reuse=reuse if isinstance(self.model, NoteLM) else None,
                          stop=getattr(self._local, "stop", None))[0]
        memo[key] = (ids, row.ended, row.until_step)
        memo.move_to_end(key)
        while len(memo) > MEMO:
            memo.popitem(last=False)
        return ids, row.ended

    # ------------------------------------------------------------- live input
    def _filter(self, state: State, chunk: Notes, start: int, end: int) -> Notes:
        if self.mode == "respond" and state.last_live_ms > start - self.gap_ms:
            return Notes.empty()          # the player is playing: listen
        if self.mode == "accompany" and state.live:
            recent = _notes(state.live)
            recent = recent.select(recent.onset_ms + recent.dur_ms > start - 1000)
            if len(recent):
                return chunk.select(chunk.pitch < int(recent.pitch.min()))
        return chunk

    def _forget(self, state: State) -> None:
        """Keep only what the context can still reach."""
        horizon = (state.played_ms // W - self.context_windows - 1) * W
        state.history = [r for r in state.history if r[0] >= horizon]
        state.live = [r for r in state.live if r[0] >= horizon]


def _decode_key(model, enc, style, sampling: Sampling, salt: int, prefix: np.ndarray, from_step: int) -> tuple:
    """Everything a window's decode depends on but its horizon."""
    arrays = (enc.events, enc.place, enc.time, enc.aligned) if isinstance(enc, layout.Layout) else (enc,)
    return (id(model), repr(asdict(style)), repr(asdict(sampling)), salt, from_step, prefix.tobytes(),
            *(np.asarray(a).tobytes() for a in arrays if a is not None))


def _shorter(ids: np.ndarray, ended: bool, until_step: int, prefix: np.ndarray, until: int) -> tuple[np.ndarray, bool]:
    """A decode cut back to a nearer horizon: its notes before the first onset at or after `until`
    (decoding stops there), and whether it still ended the window."""
    new = ids[len(prefix):].reshape(-1, 3)
    cut = int(np.searchsorted(new[:, 0] - tk.ONSET0, until, side="left"))
    return np.concatenate([prefix, new[:cut].reshape(-1)]), ended and cut == len(new)


def generate_chunk(stream: Stream, state: State | None, conditioning: Conditioning | None = None,
                   sampling: Sampling | None = None, chunk_s: float = 2.0,
                   live: Notes | None = None) -> tuple[Notes, State]:
    """`stream.generate_chunk(...)` as a function, for symmetry with Magenta RT's module API."""
    return stream.generate_chunk(state, conditioning, sampling, chunk_s, live)

"""The jam's heart: call `generate_chunk` ahead of time, play what comes back on time.

Two threads. The *generator* keeps at least `buffer_s` of music drawn ahead of the clock (at least
one chunk), calling the stream with the controls and the player's notes of the moment. The *player*
sleeps until each note-on / note-off is due and hands it to the sinks (MIDI out, the recorder), and
measures how late each one went out.

A change of controls must not wait for the buffer to play out. The stream's state is explicit, so the
generator keeps the state from before every chunk; on a change it stops the chunk it is drawing (the
stream's `interruptible`), picks the cut point c = now + prepare + margin (prepare: the least it took
lately; margin ≈ how long the rest of a redraw takes here, learnt from the last ones; the edge of the
stream's window when c falls just before one), lets the stream compute for c what does not depend on
the new chunk (`prepare`: the model's context under the new style, the notes played before c, the
player's too), moves c later if that ran late, rewinds to the last chunk boundary before c, replays
that chunk up to c under the old controls (it reproduces exactly what is buffered: same plan, same
seed — the stream remembers it), drops every buffered note from c on, and draws on from c under the new
controls: a short first chunk (inside one window), then each as long as the music buffered ahead, up to
the usual length; the player's newer notes wait for that one. So a change is heard after about
prepare + margin, whatever the buffer. The player's notes can trigger the same rewind (respond /
accompany), so the engine reacts to them without waiting for the buffer either.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tatum.errors import Interrupted, TatumError
from tatum.notes import Notes
from tatum.realtime.controls import Controls
from tatum.realtime.live import LiveInput
from tatum.realtime.timeline import ON, Event, Timeline
from tatum.realtime.transport import JamClock

MIN_CHUNK_MS = 50          # the contract's shortest chunk
MIN_MARGIN_MS = 60.0       # cut this far ahead at least: the player must not be reached mid-edit
# After a rewind, the first chunk. The margin must cover its call, whose cost follows the notes it draws
# (the new style's context and the notes before the cut are prepared): short, so that cost stays small
# and the change is heard soon; not so short that the calls after it, each with a fixed cost of its
# own, fall behind.
FIRST_CHUNK_MS = 150
SWITCH_S = 0.0005          # the GIL changes hands this often while a jam plays (Python's default: 5 ms)
_running = 0               # jams playing in this process
_switch = [sys.getswitchinterval()]


def _raise_priority() -> str:
    """Give the calling thread real-time priority if the system allows it (JACK users usually may),
    else a better nice value, else nothing: a note due must not wait behind the model. Priority 1,
    the lowest real-time one: above every ordinary thread, below JACK's own (≥ 10), which must run
    for what is sent to reach the port."""
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
        return "fifo"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, tid, -10)
        return "nice"
    except (AttributeError, OSError):
        return "normal"


@dataclass
class Stats:
    chunks: int = 0
    underruns: int = 0          # chunks that came back after the clock had reached their start
    late_notes: int = 0         # note-ons dropped because they were due more than late_ms ago
    notes: int = 0              # note-ons played
    cuts: int = 0
    lateness_ms: deque = field(default_factory=lambda: deque(maxlen=200_000))   # sent − due, per event
    latencies_ms: list[float] = field(default_factory=list)   # control change → first note under it
    gen_s: deque = field(default_factory=lambda: deque(maxlen=10_000))          # per generate_chunk call
    ramp_need_ms: list[float] = field(default_factory=list)   # per rewind: the margin it needed (see _ramped)
    prepare_s: list[float] = field(default_factory=list)  # a rewind: the stream's prepare
    interrupted: int = 0        # calls given up for a newer request
    rewinds: deque = field(default_factory=lambda: deque(maxlen=1000))   # per rewind: its times, in ms
    underrun_log: deque = field(default_factory=lambda: deque(maxlen=1000))   # per underrun: what was late
    music_ms: float = 0.0       # music drawn

    def summary(self) -> dict:
        lat = np.asarray(self.lateness_ms, dtype=np.float64)
        dev = np.abs(lat - np.median(lat)) if len(lat) else lat
        return {"chunks": self.chunks, "underruns": self.underruns, "late_notes": self.late_notes,
                "notes": self.notes, "cuts": self.cuts,
                "lateness_p50_ms": _q(lat, 50), "lateness_p95_ms": _q(lat, 95),
                "jitter_p95_ms": _q(dev, 95), "jitter_max_ms": float(dev.max()) if len(dev) else None,
                "latency_p50_ms": _q(np.asarray(self.latencies_ms), 50),
                "latency_p95_ms": _q(np.asarray(self.latencies_ms), 95),
                "gen_s_total": float(sum(self.gen_s)), "interrupted": self.interrupted,
                "ramp_need_p95_ms": _q(np.asarray(self.ramp_need_ms), 95),
                "prepare_p95_ms": _q(np.asarray(self.prepare_s) * 1000, 95)}


def _q(a: np.ndarray, q: float) -> float | None:
    return float(np.percentile(a, q)) if len(a) else None


@dataclass
class _Snapshot:
    start_ms: int            # the chunk began here …
    state: object            # … from this state,
    live: Notes | None       # with these player's notes,
    controls: Controls       # under these controls,
    stream: object           # drawn by this stream,
    chunk_ms: int
    epoch: int


class Scheduler:
    """Runs a jam. `on_notes(notes, epoch)` gets each chunk as soon as it is drawn (times already
    quantized, in ms of the DAW's timeline from the jam's start); `on_cut(ms)` says that everything
    from `ms` on was dropped; `on_event(event, due_wall)` is each note-on / note-off at its time
    (only with `timed=True`)."""

    def __init__(self, stream, controls: Controls, clock: JamClock, *, chunk_s: float = 1.0,
                 buffer_s: float = 2.0, live: LiveInput | None = None, rewind_on_live: bool = False,
                 quantize_beats: float | None = None, late_ms: float = 40.0, timed: bool = True):
        if not 0.05 <= chunk_s <= 5.0:
            raise TatumError(f"chunk length must be 0.05–5 s, not {chunk_s:g}")
        if not chunk_s <= buffer_s <= 30.0:
            raise TatumError(f"the buffer must hold at least one chunk ({chunk_s:g} s) and at most 30 s, "
                             f"not {buffer_s:g}")
        if quantize_beats is not None and not 1 / 64 <= quantize_beats <= 4:
            raise TatumError(f"quantize grid must be 1/64–4 beats, not {quantize_beats:g}")
        self.stream, self.controls, self.clock = stream, controls, clock
        self.chunk_ms, self.buffer_ms = round(chunk_s * 1000), buffer_s * 1000.0
        self.live, self.rewind_on_live = live, rewind_on_live
        self.quantize_beats, self.late_ms, self.timed = quantize_beats, late_ms, timed
        self.seed = controls.seed if controls.seed is not None else secrets.randbelow(2**31)
        self.on_notes: list[Callable[[Notes, int], None]] = []
        self.on_cut: list[Callable[[float], None]] = []
        self.on_event: list[Callable[[Event, float], None]] = []
        self.stats = Stats()
        self.timeline = Timeline()
        self.state = None
        self.horizon = 0                   # jam ms drawn up to
        self.epoch = 0
        self.started = False
        self._snapshots: list[_Snapshot] = []
        self._carry: list[Notes] = []      # player's notes of chunks dropped by a rewind, to give again
        self._pending: tuple | None = None
        self._waiting: list[tuple[int, float]] = []   # (epoch, wall of the request) for the latency
        self._plan_s = 0.0                 # how long a slow (planning) call takes here, recent max
        self._cost: deque = deque(maxlen=10)   # (ms the call took, ms of music) of the last chunks drawn
        # After a rewind the chunks ramp up from a short one: `_ramp` is the last one's length (0 before
        # the first, None when chunks are back to their usual length); `_ramp_t0` when the cut was
        # chosen, `_ramp_music` the music drawn since, `_ramp_need` the margin this ramp needed so far,
        # `_need_ms` what recent ramps needed (recent max): the next margin.
        self._ramp: int | None = None
        self._ramp_t0 = 0.0
        self._ramp_music = self._ramp_need = 0.0
        self._need_ms: float | None = None
        self._primed = False               # the ramp follows a prepared cut (see _generate)
        self._interrupt = threading.Event()   # a newer request: give up the chunk being drawn
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.error: BaseException | None = None
        self.priority = "normal"          # what the player thread got: fifo, nice or normal
        if live is not None and rewind_on_live:
            live.listeners.append(lambda ms, pitch, vel: self.request(None, None, reason="live"))

    # ---------------------------------------------------------------- control
    def start(self, lead_s: float = 0.05) -> float:
        """Draw the first buffer, put jam time 0 on the clock (the next bar of a DAW) and play;
        returns the perf_counter time jam time 0 falls at."""
        self.clock.prepare()
        while self.horizon < self.buffer_ms:
            self._generate(-np.inf)
        global _running
        if _running == 0:
            _switch[0] = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_S)     # the player thread gets the GIL within 0.5 ms of waking
        _running += 1
        wall0 = self.clock.start(lead_s=lead_s + 0.01)
        self.started = True
        self._threads = [threading.Thread(target=self._guard(self._generate_loop), name="tatum-generate",
                                          daemon=True)]
        if self.timed:
            self._threads.append(threading.Thread(target=self._guard(self._play_loop), name="tatum-play",
                                                  daemon=True))
        for t in self._threads:
            t.start()
        return wall0

    def stop(self) -> None:
        global _running
        if self.started and not self._stop.is_set():
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_switch[0])
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        with self.timeline.cond:
            self.timeline.cond.notify_all()
        for t in self._threads:
            t.join(10)
        self._threads = []

    @property
    def running(self) -> bool:
        return self.started and not self._stop.is_set()

    def request(self, controls: Controls | None, stream=None, reason: str = "controls") -> None:
        """Ask for new controls (and/or a new stream, e.g. another pianist's model) from as soon as
        a redraw can be ready; returns at once."""
        with self._cv:
            old = self._pending
            if reason == "live" and old is not None:
                return            # a rewind is already on its way; it will take these notes too
            keep_c = old[0] if old else None
            keep_s = old[1] if old else None
            self._pending = (controls or keep_c, stream or keep_s, time.perf_counter(),
                             reason if old is None else old[3])
            if reason != "live":          # (the player's notes would never let a chunk finish)
                self._interrupt.set()
            self._cv.notify_all()

    # ---------------------------------------------------------------- threads
    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:          # the CLI / server report it; the jam stops
                self.error = e
                self._stop.set()
        return run

    def _generate_loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                change, self._pending = self._pending, None
                self._interrupt.clear()
            now = self.clock.now_ms()
            if change is not None:
                self._rewind(now, *change)
                continue
            if self.horizon - now < self.buffer_ms:
                self._generate(now)
            else:
                with self._cv:
                    if self._pending is None and not self._stop.is_set():
                        self._cv.wait(min(0.05, (self.horizon - self.buffer_ms - now) / 1000 + 0.001))

    def _margin_ms(self) -> float:
        """How far ahead to cut: what the rest of a redraw takes (learnt from the last rewinds; before
        the first, from the slowest recent calls), with room to spare."""
        # before the first rewind: a guess from the slowest recent calls (what a ramp needs under load)
        need = self._need_ms if self._need_ms is not None else 600 * self._plan_s
        # Never less than the first chunk at three times the recent cost per ms of music (a change's first
        # notes come denser than the average): the last ramps may all have begun with few notes, and the
        # machine may have become slower since.
        if self._cost:
            need = max(need, 3 * FIRST_CHUNK_MS * sum(t for t, _ in self._cost) / sum(m for _, m in self._cost))
        # half again: a first chunk may hold several times the notes of the ones the need was learnt from
        return max(MIN_MARGIN_MS, 1.5 * need + 20.0)

    def _take_live(self, now: float, new: bool = True) -> Notes | None:
        """The player's notes to give with the next call: those given back by a rewind, and (`new`)
        those played since the last call."""
        new = new and self.live is not None and now > -np.inf
        parts = self._carry + ([self.live.take(now)] if new else [])
        self._carry = []
        parts = [p for p in parts if p is not None and len(p)]
        return Notes.merge(parts) if parts else None

    def _call(self, stream, state, controls: Controls, chunk_ms: int, live: Notes | None,
              interruptible: bool = False):
        cond, sampling = controls.conditioning(), controls.sampling(self.seed)
        t = time.perf_counter()
        scope = getattr(stream, "interruptible", None) if interruptible else None
        with scope(self._interrupt.is_set) if scope is not None else contextlib.nullcontext():
            chunk, new = stream.generate_chunk(state, cond, sampling, chunk_ms / 1000, live)
        dt = time.perf_counter() - t
        self.stats.gen_s.append(dt)
        # the margin follows the slow calls (those that decode a window), forgetting slowly; the
        # very first call also pays for warming up, so it does not count
        if len(self.stats.gen_s) > 1:
            self._plan_s = max(dt, self._plan_s * 0.9) if dt > 0.02 else self._plan_s * 0.98
        return chunk, new

    def _chunk_ms(self) -> int:
        """The next chunk's length: as asked, but after a rewind first a short one, then each as long as
        the music buffered ahead (so it comes back before it is due, however slow the machine has become)
        but no shorter than the last, up to the usual length; behind the clock already, the usual length
        (long chunks catch up soonest)."""
        if self._ramp is None or not self.started:
            return self.chunk_ms
        if self._ramp == 0:               # the first chunk under the change
            n = min(self.chunk_ms, FIRST_CHUNK_MS)
            edge = self._next_edge(self.horizon)   # (a cut that ran late past the planned one: see _rewind)
            if edge is not None and edge - self.horizon >= MIN_CHUNK_MS:
                n = min(n, int(edge - self.horizon))
            return n
        ahead = self.horizon - self.clock.now_ms()
        if ahead <= 0:
            return self.chunk_ms
        return int(min(self.chunk_ms, max(self._ramp, ahead)))

    def _next_edge(self, ms: float) -> float | None:
        """The start of the stream's next window after jam time `ms` (None: the stream has no windows)."""
        window = getattr(self.stream, "window_ms", None)
        return (ms // window + 1) * window if window else None

    def _ramped(self, chunk_ms: int) -> None:
        """A chunk of the ramp came back: how far past the cut it did, less the music before it, is the
        margin it needed to be on time; the largest over the ramp teaches the next margins."""
        need = (time.perf_counter() - self._ramp_t0) * 1000 - self._ramp_music
        self._ramp_need = max(self._ramp_need, need)
        if self._ramp == 0 and self.stats.rewinds:
            self.stats.rewinds[-1]["first_call"] = self.stats.gen_s[-1] * 1000
        self._ramp_music += chunk_ms
        self._ramp = chunk_ms
        if chunk_ms >= self.chunk_ms:
            self._learn()

    def _learn(self) -> None:
        if self._ramp is None:
            return
        if self._ramp_music > 0:
            need = self._ramp_need
            self.stats.ramp_need_ms.append(need)
            if self.stats.rewinds:
                self.stats.rewinds[-1]["need"] = need
            # (forgetting slowly: a ramp's need follows how many notes its first chunk holds, which the
            # last few ramps say little about)
            self._need_ms = need if self._need_ms is None else max(need, 0.95 * self._need_ms + 0.05 * need)
        self._ramp = None

    def _generate(self, now: float) -> None:
        # While the chunks ramp up after a prepared cut they get the player's notes prepare saw, not
        # newer ones (the first usual-length chunk gives those): a newer note falls before the cut, so
        # the call would feed it and every note after it again, and one in the window before redraws
        # the whole context (≈ a prefill each call), which is what the short chunks cannot pay for.
        live = self._take_live(now, new=self._ramp is None or not self._primed)
        start = self.horizon
        ramp = self._ramp
        chunk_ms = self._chunk_ms()
        try:
            chunk, state = self._call(self.stream, self.state, self.controls, chunk_ms, live,
                                      interruptible=self.started)
        except Interrupted:               # a newer request came: the loop takes it up first
            if live is not None:
                self._carry.append(live)  # (given again with the next chunk)
            self._ramp = ramp
            self.stats.interrupted += 1
            return
        self._snapshots.append(_Snapshot(start, self.state, live, self.controls, self.stream,
                                         chunk_ms, self.epoch))
        self.state, self.horizon = state, start + chunk_ms
        self._cost.append((self.stats.gen_s[-1] * 1000, chunk_ms))
        self.stats.chunks += 1
        self.stats.music_ms += chunk_ms
        if self._ramp is not None and self.started:
            self._ramped(chunk_ms)
        if self.started and self.clock.now_ms() > start:
            self.stats.underruns += 1
            self.stats.underrun_log.append({"start_ms": start, "late_ms": self.clock.now_ms() - start,
                                            "chunk_ms": chunk_ms, "call_ms": self.stats.gen_s[-1] * 1000,
                                            "ramp": ramp is not None, "cuts": self.stats.cuts})
        self._emit(chunk, start)
        # keep only the states a rewind can still reach
        floor = (self.clock.now_ms() if self.started else 0) - self.chunk_ms
        while len(self._snapshots) > 1 and self._snapshots[1].start_ms <= floor:
            self._snapshots.pop(0)

    def _emit(self, chunk: Notes, start: int) -> None:
        notes = self._quantize(chunk, start)
        if self.stats.rewinds and "first_ms" not in self.stats.rewinds[-1] and len(notes) and self.started:
            self.stats.rewinds[-1]["first_ms"] = float(notes.onset_ms.min())
        self.timeline.add(notes, self.epoch)
        if not self.timed and self.started and self._waiting and len(notes):
            self._measure(self.clock.wall_at(float(notes.onset_ms.min())), self.epoch)
        if self.on_notes and len(notes):
            out = Notes(np.round(self.clock.real_ms(notes.onset_ms)),
                        np.maximum(1, np.round(self.clock.real_ms(notes.onset_ms + notes.dur_ms)
                                               - self.clock.real_ms(notes.onset_ms))),
                        notes.pitch, notes.velocity)
            for cb in self.on_notes:
                cb(out, self.epoch)

    def _quantize(self, chunk: Notes, start: int) -> Notes:
        if self.quantize_beats is None or not len(chunk):
            return chunk
        grid = self.quantize_beats * self.clock.ms_per_beat
        onset = np.round(chunk.onset_ms / grid) * grid
        onset = np.where(onset < start, onset + grid, onset)     # never before the chunk (the cut)
        return Notes(np.round(onset), chunk.dur_ms, chunk.pitch, chunk.velocity)

    def _rewind(self, now: float, controls: Controls | None, stream, asked: float, reason: str) -> None:
        began = time.perf_counter()
        self.epoch += 1
        if reason != "live":
            with self._cv:
                self._waiting.append((self.epoch, asked))
        if controls is not None:
            self.controls = controls
        if stream is not None:
            self.stream = stream
        self._learn()                     # (a ramp cut short by this change still teaches)
        margin = self._margin_ms()
        prepare = getattr(self.stream, "prepare", None)
        self._primed = prepare is not None and self.state is not None and self.started
        cut = -np.inf
        if self._primed:
            # Prepared first, the cut needs to cover only the rest of the redraw; prepared for the cut itself
            # (the notes before it, the player's it will be given) the first chunk feeds no note again.
            # Just before a window's edge the change starts at the edge: a first chunk reaching into the
            # next window would compute that window's context, which the margin does not plan for.
            pending = self._take_live(now)
            self._carry = [pending] if pending is not None else []
            took = 1000 * min(self.stats.prepare_s[-5:], default=0.1)    # (later if it takes longer)
            cut = now + took + margin
            edge = self._next_edge(cut)
            if edge is not None and edge - cut < FIRST_CHUNK_MS / 2:
                cut = edge
            late = 1000 * max(self.stats.prepare_s[-5:], default=0.1) - took    # (a prepare running late)
            t = time.perf_counter()
            prepare(self.state, self.controls.conditioning(), self.controls.sampling(self.seed), int(np.ceil(cut)),
                    live=pending, slack_ms=int(np.ceil(late)) + MIN_CHUNK_MS)
            self.stats.prepare_s.append(time.perf_counter() - t)
            now = self.clock.now_ms()
        cut = max(cut, now + margin)
        self._ramp, self._ramp_t0, self._ramp_music, self._ramp_need = 0, time.perf_counter(), 0.0, 0.0
        self.stats.rewinds.append({"waited": (began - asked) * 1000, "prepare": (self._ramp_t0 - began) * 1000,
                                   "margin": cut - now, "reason": reason})
        if cut >= self.horizon:
            return                        # nothing drawn beyond the cut: the next chunk has it all
        snaps = [s for s in self._snapshots if s.start_ms <= cut]
        if not snaps:
            return                        # (only before the first chunk)
        snap = snaps[-1]
        dropped = self._snapshots[self._snapshots.index(snap) + 1:]
        self._carry = [s.live for s in dropped if s.live is not None] + self._carry
        self._snapshots = self._snapshots[:self._snapshots.index(snap)]
        self.state, self.horizon = snap.state, snap.start_ms
        cut = int(np.ceil(cut))
        if cut > snap.start_ms:
            cut = max(cut, snap.start_ms + MIN_CHUNK_MS)
            # replay up to the cut under what drew it: the same notes, so the state knows what is played
            _, state = self._call(snap.stream, snap.state, snap.controls, cut - snap.start_ms, snap.live)
            self._snapshots.append(_Snapshot(snap.start_ms, snap.state, snap.live, snap.controls, snap.stream,
                                             cut - snap.start_ms, snap.epoch))
            self.state, self.horizon = state, cut
        elif snap.live is not None:
            self._carry.insert(0, snap.live)
        self.timeline.cut(self.horizon)
        self.stats.rewinds[-1]["cut_ms"] = self.horizon
        self.stats.rewinds[-1]["replay"] = (time.perf_counter() - self._ramp_t0) * 1000
        self.stats.cuts += 1
        for cb in self.on_cut:
            cb(float(self.clock.real_ms(np.array([self.horizon]))[0]))

    def _measure(self, wall: float, epoch: int) -> None:
        with self._cv:
            done = [w for w in self._waiting if w[0] <= epoch]
            self._waiting = [w for w in self._waiting if w[0] > epoch]
        for _, asked in done:
            self.stats.latencies_ms.append((wall - asked) * 1000)

    def _play_loop(self) -> None:
        self.priority = _raise_priority()
        tl = self.timeline
        dropped: set[int] = set()
        while not self._stop.is_set():
            ev = tl.peek()
            if ev is None:
                with tl.cond:
                    tl.cond.wait(0.05)
                continue
            due = self.clock.wall_at(ev.ms)
            dt = due - time.perf_counter()
            if dt > 0.002:
                with tl.cond:          # woken early by a new chunk or a cut
                    tl.cond.wait(min(dt - 0.0015, 0.05))
                continue
            if dt > 0.0003:
                time.sleep(dt - 0.0003)
            while time.perf_counter() < due:
                pass
            if not tl.pop_if(ev):
                continue
            late = time.perf_counter() - due
            if ev.kind == ON:
                if late * 1000 > self.late_ms:
                    self.stats.late_notes += 1
                    dropped.add(ev.note)
                    continue
                self.stats.notes += 1
                if self._waiting and ev.epoch >= self._waiting[0][0]:
                    self._measure(time.perf_counter(), ev.epoch)
            elif ev.note in dropped:
                dropped.discard(ev.note)
                continue
            for cb in self.on_event:
                cb(ev, due)
            self.stats.lateness_ms.append((time.perf_counter() - due) * 1000)

"""Where the beat is: a free-running clock, an Ableton Link session, or a DAW's MIDI clock.

A transport answers one question, `read() -> (wall, beat, bpm)`: at perf_counter time `wall` the
shared timeline is at `beat` and moving at `bpm`. `JamClock` puts the jam on it: the jam's
milliseconds (what the model plays in) run at the tempo the DAW had when the jam started, beat 0 of
the jam is a bar line of the DAW, and every later tempo change stretches what is still to come, so
what tatum plays stays on the DAW's beat. The clock also keeps the tempo changes it saw, for a
recording on the DAW's tempo map.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Protocol

import numpy as np

from tatum.errors import TatumError
from tatum.notes import TempoMap


class Transport(Protocol):
    name: str

    def read(self) -> tuple[float, float, float]:
        """(perf_counter time, beat at that time, tempo in bpm)."""

    def ready(self) -> bool:
        """Whether the timeline is running (a DAW's transport may be stopped)."""

    def close(self) -> None: ...


class FreeTransport:
    """tatum is the master: a steady tempo from the moment it is made."""

    name = "free"

    def __init__(self, bpm: float = 120.0):
        _check_bpm(bpm)
        self.bpm, self.origin = float(bpm), time.perf_counter()

    def read(self) -> tuple[float, float, float]:
        now = time.perf_counter()
        return now, (now - self.origin) * self.bpm / 60.0, self.bpm

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


class LinkTransport:
    """A peer in an Ableton Link session (aalink). Link needs an asyncio loop of its own, so it lives
    on a small background thread; reading the beat is a plain call from any thread."""

    name = "link"

    def __init__(self, bpm: float = 120.0, quantum: int = 4):
        _check_bpm(bpm)
        try:
            from aalink import Link
        except ImportError:
            raise TatumError("Ableton Link needs the realtime extra: pip install 'tatum[realtime]' (aalink)") from None
        self.quantum = quantum
        made = threading.Event()
        box: dict = {}

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            box["loop"] = loop

            async def make() -> None:
                try:
                    link = Link(float(bpm))
                    link.quantum = quantum
                    link.enabled = True
                    box["link"] = link
                except Exception as e:  # no network interface for Link, …
                    box["error"] = e
                made.set()

            loop.run_until_complete(make())
            if "link" in box:
                loop.run_forever()

        self._thread = threading.Thread(target=run, name="tatum-link", daemon=True)
        self._thread.start()
        made.wait(10)
        if "link" not in box:
            raise TatumError(f"Ableton Link did not start: {box.get('error', 'timed out')}")
        self.link, self._loop = box["link"], box["loop"]

    @property
    def peers(self) -> int:
        return int(self.link.num_peers)

    def read(self) -> tuple[float, float, float]:
        now = time.perf_counter()
        beat, bpm = float(self.link.beat), float(self.link.tempo)
        return (now + time.perf_counter()) / 2, beat, bpm

    def ready(self) -> bool:
        return True

    def set_tempo(self, bpm: float) -> None:
        _check_bpm(bpm)
        self._loop.call_soon_threadsafe(setattr, self.link, "tempo", float(bpm))

    def close(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.is_running():
            def stop() -> None:
                self.link.enabled = False
                loop.stop()
            loop.call_soon_threadsafe(stop)
            self._thread.join(2)


class MidiClockTransport:
    """Follows a DAW's MIDI clock: 24 clocks per quarter note, Start / Stop / Continue and Song
    Position. `feed(message, wall)` is called with every message from the clock input port.

    The tempo comes from the clocks of the last two beats, robust to late ones; between clocks the
    beat is extrapolated at that tempo, never further than one clock.

    A clock can be lost on the way (JACK drops the MIDI of a cycle it misses on a loaded machine), and
    counting alone would then leave the jam a clock behind the DAW for good. Where clocks arrive
    evenly, a gap of two to four clock periods after which the clocks keep arriving that many whole
    periods late is counted as the clocks that went missing; a gap followed by a burst (a late sender
    catching up), by clocks falling ever later (a slower tempo) or by lateness short of a period is not.
    """

    name = "midi-clock"
    PPQ = 24

    def __init__(self, window: int = 48):
        self._lock = threading.Lock()
        self._times: list[float] = []
        self.window = window
        self.running = False
        self.clocks = 0           # clocks since the song position origin
        self._last = (0.0, 0.0)   # (wall, beat) of the last clock
        self._bpm: float | None = None
        self._gap: tuple[float, float, list[float]] | None = None   # (wall before, period, clocks late)

    def feed(self, message: list[int] | bytes, wall: float | None = None) -> None:
        wall = time.perf_counter() if wall is None else wall
        if not message:
            return
        status = message[0]
        with self._lock:
            if status == 0xFA:                  # Start: the next clock is beat 0
                self.running, self.clocks, self._times, self._gap = True, -1, [], None
            elif status == 0xFB:                # Continue from the song position
                self.running, self._times, self._gap = True, [], None
                self.clocks -= 1
            elif status == 0xFC:
                self.running = False
            elif status == 0xF2 and len(message) >= 3:   # Song Position: sixteenths since the start
                self.clocks, self._gap = (message[1] | (message[2] << 7)) * 6, None
            elif status == 0xF8 and self.running:
                self.clocks += 1
                self._times = (self._times + [wall])[-(self.window + 1):]
                self._recount_lost()
                self._last = (wall, self.clocks / self.PPQ)

    def _recount_lost(self) -> None:
        """Counts the clocks lost in a gap once the five clocks from it on say so: each arrives that
        many periods late, neither catching up (a stall) nor falling further behind (a slower tempo)."""
        t = self._times
        if self._gap is None:
            if len(t) <= self.PPQ:              # (a beat of clocks, for a grid to judge a gap by)
                return
            period = _period(t[:-1])
            if period <= 0 or not 1.5 < (t[-1] - t[-2]) / period < 4.5:
                return
            # Only where clocks arrive evenly: MIDI stamped per JACK cycle comes late by up to a cycle,
            # and once a cycle is not well under a clock that lateness alone could pass for a lost one.
            if _spread(t[:-1], period) <= 0.1 * period:
                self._gap = (t[-2], period, [(t[-1] - t[-2]) / period - 1])
            return
        before, period, late = self._gap
        late.append((t[-1] - before) / period - (len(late) + 1))    # clocks late, from the gap on
        if len(late) < 5:
            return
        median = float(np.median(late))
        missing = round(median)
        drift = float(np.median(late[3:]) - np.median(late[1:3]))      # (medians: one clock may be late)
        if missing >= 1 and abs(median - missing) < 0.3 and abs(drift) < 0.6:
            self.clocks += missing
            k = len(t) - 6                     # the clock before the gap; the lost ones lay after it
            t[k + 1:k + 1] = [before + period * (i + 1) for i in range(missing)]
            self._times = t[-(self.window + 1):]
        self._gap = None

    def tempo(self) -> float:
        """The clock's tempo, to 0.1 bpm; it changes only when the estimate moves by more than 0.4 %,
        so the jitter of clock messages does not become a stream of tempo changes."""
        with self._lock:
            t = self._times
            if len(t) < 3:
                return self._bpm or 120.0
            est = 60.0 / (self.PPQ * _period(t))
            if self._bpm is None or abs(est - self._bpm) > 0.004 * self._bpm:
                self._bpm = round(est, 1)
            return self._bpm

    def read(self) -> tuple[float, float, float]:
        bpm = self.tempo()
        with self._lock:
            wall, beat = self._last
        now = time.perf_counter()
        # never run more than one clock past the last one: a DAW that stops or stalls stops us too
        ahead = min(max(0.0, now - wall) * bpm / 60.0, 1.0 / self.PPQ) if self.running else 0.0
        return now, beat + ahead, bpm

    def ready(self) -> bool:
        with self._lock:
            # two beats: over one, a DAW's first few clocks held back would still sway the tempo
            return self.running and len(self._times) >= self.window and self._gap is None

    def close(self) -> None:
        pass


def _period(times: list[float]) -> float:
    """Seconds per clock: the median slope over pairs of clocks at least half a beat apart
    (Theil–Sen). One late clock, or a stall and the burst of clocks that catches up, moves only a
    minority of the pairs, where a single one-beat span would carry its whole delay."""
    t = np.asarray(times)
    i, j = np.triu_indices(len(t), k=min(MidiClockTransport.PPQ // 2, len(t) - 1))
    return float(np.median((t[j] - t[i]) / (j - i)))


def _spread(times: list[float], period: float) -> float:
    """How far arrivals typically stray from an even grid of `period` (the median distance): large
    when every clock is late by some of a long JACK cycle, small when a few are held back now and then."""
    r = np.asarray(times) - period * np.arange(len(times))
    return float(np.median(np.abs(r - np.median(r))))


def _check_bpm(bpm: float) -> None:
    if not (isinstance(bpm, (int, float)) and math.isfinite(bpm) and 20 <= bpm <= 400):
        raise TatumError(f"tempo must be 20–400 bpm, not {bpm:g}")


class JamClock:
    """The jam's milliseconds on a transport's beats: ms = (beat − beat0) · 60000 / ref_bpm."""

    def __init__(self, transport: Transport, quantum: int = 4):
        self.transport, self.quantum = transport, quantum
        self.beat0: float | None = None
        self.ref_bpm = 120.0
        self.tempi: list[tuple[float, float]] = []     # (jam ms, bpm) where the tempo changed
        self._lock = threading.Lock()

    @property
    def ms_per_beat(self) -> float:
        return 60_000.0 / self.ref_bpm

    def prepare(self) -> None:
        """Take the transport's tempo as the jam's own (before drawing the first notes)."""
        self.ref_bpm = self.transport.read()[2]
        self.tempi = [(0.0, self.ref_bpm)]

    def start(self, lead_s: float = 0.1, bar: bool = True) -> float:
        """Put jam time 0 on the next bar line (or beat) at least `lead_s` ahead; returns its wall time."""
        if not self.tempi:
            self.prepare()
        wall, beat, bpm = self.transport.read()
        first = beat + lead_s * bpm / 60.0
        step = self.quantum if bar else 1
        self.beat0 = math.ceil(first / step - 1e-9) * step if self.transport.name != "free" else first
        self.tempi = [(0.0, bpm)]            # jam ms keep the tempo they were drawn at (ref_bpm)
        return wall + (self.beat0 - beat) * 60.0 / bpm

    def _read(self) -> tuple[float, float, float]:
        wall, beat, bpm = self.transport.read()
        with self._lock:
            if self.tempi and abs(bpm - self.tempi[-1][1]) > 0.01:
                ms = max((beat - self.beat0) * self.ms_per_beat, self.tempi[-1][0])
                self.tempi.append((ms, bpm))
        return wall, beat, bpm

    def now_ms(self) -> float:
        wall, beat, _ = self._read()
        return (beat - self.beat0) * self.ms_per_beat

    def wall_at(self, ms: float) -> float:
        """The perf_counter time jam time `ms` falls at, at the tempo now."""
        wall, beat, bpm = self._read()
        return wall + (self.beat0 + ms / self.ms_per_beat - beat) * 60.0 / bpm

    def ms_at_wall(self, wall: float) -> float:
        now, beat, bpm = self._read()
        return (beat + (wall - now) * bpm / 60.0 - self.beat0) * self.ms_per_beat

    def bpm(self) -> float:
        return self.transport.read()[2]

    # ---------------------------------------------------------------- recording
    def real_ms(self, ms: np.ndarray) -> np.ndarray:
        """Jam times → milliseconds of the DAW's timeline from beat0, through the tempo changes seen."""
        ms = np.asarray(ms, dtype=np.float64)
        with self._lock:
            tempi = list(self.tempi) or [(0.0, self.ref_bpm)]
        starts = np.array([t for t, _ in tempi])
        ratio = np.array([self.ref_bpm / b for _, b in tempi])       # real ms per jam ms
        seg_real = np.concatenate([[0.0], np.cumsum(np.diff(starts) * ratio[:-1])])
        i = np.clip(np.searchsorted(starts, ms, side="right") - 1, 0, len(starts) - 1)
        return seg_real[i] + (ms - starts[i]) * ratio[i]

    def tempo_map(self) -> TempoMap:
        with self._lock:
            tempi = list(self.tempi) or [(0.0, self.ref_bpm)]
        times = self.real_ms(np.array([t for t, _ in tempi]))
        return TempoMap(times, np.array([b for _, b in tempi]), np.zeros(1), np.array([[4, 4]]), 480)

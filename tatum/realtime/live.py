"""The player's notes, as they arrive (from a MIDI input port or the browser), turned into `Notes` on
the jam's clock for the next `generate_chunk(..., live=...)`."""

from __future__ import annotations

import threading
import time
from typing import Callable

from tatum.notes import Notes

MIN_HELD_MS = 50     # a key still down when a chunk is drawn counts as held at least this long


class LiveInput:
    def __init__(self, ms_at_wall: Callable[[float], float | None]):
        self._ms_at_wall = ms_at_wall
        self._lock = threading.Lock()
        self._down: dict[int, tuple[float, int]] = {}         # pitch → (onset ms, velocity)
        self._done: list[tuple[float, float, int, int]] = []   # released, not yet taken
        self._taken: set[tuple[float, int]] = set()            # (onset, pitch) of held notes handed out
        self.listeners: list[Callable[[float, int, int], None]] = []   # (ms, pitch, velocity) on note-on
        self.count = 0

    def message(self, data: list[int] | bytes, wall: float | None = None) -> None:
        """A raw MIDI channel message (note-on / note-off); everything else is ignored."""
        if len(data) < 3:
            return
        kind, pitch, vel = data[0] & 0xF0, int(data[1]), int(data[2])
        if kind == 0x90 and vel > 0:
            self.note_on(pitch, vel, wall)
        elif kind == 0x80 or (kind == 0x90 and vel == 0):
            self.note_off(pitch, wall)

    def note_on(self, pitch: int, velocity: int, wall: float | None = None) -> None:
        ms = self._ms_at_wall(time.perf_counter() if wall is None else wall)
        if ms is None:           # before the jam starts
            return
        with self._lock:
            if pitch in self._down:
                self._release(pitch, ms)
            self._down[pitch] = (ms, velocity)
            self.count += 1
        for listener in self.listeners:
            listener(ms, pitch, velocity)

    def note_off(self, pitch: int, wall: float | None = None) -> None:
        ms = self._ms_at_wall(time.perf_counter() if wall is None else wall)
        if ms is None:
            return
        with self._lock:
            if pitch in self._down:
                self._release(pitch, ms)

    def _release(self, pitch: int, ms: float) -> None:
        onset, vel = self._down.pop(pitch)
        if (onset, pitch) in self._taken:      # handed out while held: already in the context
            self._taken.discard((onset, pitch))
            return
        self._done.append((onset, max(1.0, ms - onset), pitch, vel))

    def take(self, now_ms: float) -> Notes | None:
        """Notes begun since the last call: released ones with their length, held ones as held so far."""
        with self._lock:
            rows = list(self._done)
            self._done = []
            for pitch, (onset, vel) in self._down.items():
                if (onset, pitch) not in self._taken:
                    self._taken.add((onset, pitch))
                    rows.append((onset, max(MIN_HELD_MS, now_ms - onset), pitch, vel))
        if not rows:
            return None
        onset, dur, pitch, vel = zip(*rows)
        return Notes([round(o) for o in onset], [round(d) for d in dur], pitch, vel)

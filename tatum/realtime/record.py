"""Recording what the jam played to a MIDI file on the DAW's tempo map."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tatum.notes import Notes
from tatum.realtime.timeline import ON, Event
from tatum.realtime.transport import JamClock


class MidiRecorder:
    """Collects note-ons / note-offs as they are played (jam ms) and writes them in the DAW's time:
    tick 0 is the bar the jam started on, and the file's tempo map is the tempi the DAW went through,
    so the notes sit on the same beats in the DAW as they were heard."""

    def __init__(self, clock: JamClock):
        self.clock = clock
        self._open: dict[int, tuple[float, int, int]] = {}
        self._rows: list[tuple[float, float, int, int]] = []
        self._lock = threading.Lock()

    def on_event(self, ev: Event, due: float) -> None:
        with self._lock:
            if ev.kind == ON:
                self._open[ev.note] = (ev.ms, ev.pitch, ev.velocity)
            elif ev.note in self._open:
                onset, pitch, vel = self._open.pop(ev.note)
                self._rows.append((onset, ev.ms, pitch, vel))

    def notes(self, until_ms: float | None = None) -> Notes:
        """What was played before `until_ms` (default: now), in jam ms; notes still sounding then end there."""
        until = self.clock.now_ms() if until_ms is None else until_ms
        with self._lock:
            rows = self._rows + [(o, max(until, o + 1), p, v) for o, p, v in self._open.values()]
        rows = [(o, min(e, until), p, v) for o, e, p, v in rows if o < until]   # a jam of N s is N s long
        if not rows:
            return Notes.empty()
        a = np.asarray(rows, dtype=np.float64)
        return Notes(np.round(a[:, 0]), np.maximum(1, np.round(a[:, 1] - a[:, 0])), a[:, 2], a[:, 3])

    def daw_notes(self, until_ms: float | None = None) -> Notes:
        """The same notes in ms of the DAW's timeline from the jam's first bar, with its tempo map."""
        n = self.notes(until_ms)
        if not len(n):
            return Notes.empty(self.clock.tempo_map())
        on = self.clock.real_ms(n.onset_ms)
        end = self.clock.real_ms(n.onset_ms.astype(np.float64) + n.dur_ms)
        return Notes(np.round(on), np.maximum(1, np.round(end - on)), n.pitch, n.velocity,
                     self.clock.tempo_map())

    def save(self, path: str | Path, until_ms: float | None = None) -> Notes:
        notes = self.daw_notes(until_ms)
        notes.to_midi(path)
        return notes

"""Notes waiting to be played, as note-on / note-off events on the jam's clock, with the one edit a
jam needs: cut everything from a moment on (a style change redraws the buffered tail)."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import numpy as np

from tatum.notes import Notes

OFF, ON = 0, 1      # at one instant a note-off goes first, so a repeated key is released then struck


@dataclass(frozen=True, order=True)
class Event:
    ms: float
    kind: int
    pitch: int
    velocity: int
    note: int           # the note's id: its on and its off share it
    epoch: int = 0      # the conditioning it was drawn under (counts changes)


class Timeline:
    def __init__(self):
        self._events: list[Event] = []
        self._next_id = 0
        self.cond = threading.Condition()

    def __len__(self) -> int:
        with self.cond:
            return len(self._events)

    def add(self, notes: Notes, epoch: int = 0) -> None:
        with self.cond:
            for o, d, p, v in zip(notes.onset_ms.tolist(), notes.dur_ms.tolist(), notes.pitch.tolist(),
                                  notes.velocity.tolist()):
                nid, self._next_id = self._next_id, self._next_id + 1
                bisect.insort(self._events, Event(float(o), ON, int(p), int(v), nid, epoch))
                bisect.insort(self._events, Event(float(o + max(d, 1)), OFF, int(p), 0, nid, epoch))
            self.cond.notify_all()

    def cut(self, at_ms: float) -> int:
        """Drop the notes that start at or after `at_ms` (their offs too); notes already started keep
        their offs. Returns how many notes were dropped."""
        with self.cond:
            gone = {e.note for e in self._events if e.kind == ON and e.ms >= at_ms}
            self._events = [e for e in self._events if e.note not in gone]
            self.cond.notify_all()
            return len(gone)

    def peek(self) -> Event | None:
        with self.cond:
            return self._events[0] if self._events else None

    def pop_if(self, event: Event) -> bool:
        """Take `event` if it is still the first one (a cut may have removed it meanwhile)."""
        with self.cond:
            if self._events and self._events[0] == event:
                self._events.pop(0)
                return True
            return False

    def drain(self) -> list[Event]:
        with self.cond:
            out, self._events = self._events, []
            return out

    def last_ms(self) -> float:
        with self.cond:
            return self._events[-1].ms if self._events else -np.inf

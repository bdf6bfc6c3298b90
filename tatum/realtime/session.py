"""One browser's jam: a scheduler (no MIDI timing of its own: the browser plays the audio), the notes
for its piano roll, and the audio as 40 ms blocks of float32 stereo PCM. Everything it produces goes
to `send(item)`, which must be safe to call from any thread: a dict becomes a JSON message, bytes a
binary audio message (8-byte little-endian first frame index, then interleaved float32 L/R)."""

from __future__ import annotations

import struct
import threading
import time
from typing import Callable

import numpy as np

from tatum.realtime.controls import Controls
from tatum.realtime.scheduler import Scheduler
from tatum.realtime.transport import FreeTransport, JamClock

AUDIO_LEAD_MS = 120.0     # audio is sent this far ahead of the jam's clock; the browser buffers it


class WebJam:
    def __init__(self, stream_for: Callable[[Controls], object], controls: Controls,
                 send: Callable[[object], None], *, artists: list[str], genres: list[str], chunk_s: float = 1.0,
                 buffer_s: float = 2.0, soundfont=None, audio: bool = True):
        self.stream_for, self.controls, self.send = stream_for, controls, send
        self.artists, self.genres = artists, genres
        self.chunk_s, self.buffer_s, self.soundfont, self.with_audio = chunk_s, buffer_s, soundfont, audio
        self.scheduler: Scheduler | None = None
        self.audio = self.pacer = None
        self._lock = threading.Lock()
        self._status_stop = threading.Event()

    @property
    def playing(self) -> bool:
        return self.scheduler is not None

    def play(self) -> None:
        with self._lock:
            if self.scheduler is not None:
                return
            clock = JamClock(FreeTransport())
            sched = Scheduler(self.stream_for(self.controls), self.controls, clock, chunk_s=self.chunk_s,
                              buffer_s=self.buffer_s, timed=False)
            sched.on_notes.append(self._notes)
            sched.on_cut.append(lambda ms: self.send({"type": "cut", "at_ms": round(ms)}))
            if self.with_audio:
                from tatum.realtime.audio import AudioPacer, AudioStream

                self.audio = AudioStream(self.soundfont)
                sched.on_notes.append(lambda notes, epoch: self.audio.add(notes))
                sched.on_cut.append(self.audio.cut)
                self.pacer = AudioPacer(self.audio, lambda: clock.now_ms() if clock.beat0 is not None else 0.0,
                                        self._frames, lead_ms=AUDIO_LEAD_MS)
            self.scheduler = sched
            self.send({"type": "state", "playing": True, "sample_rate": 48_000})
            sched.start()
            if self.pacer is not None:
                self.pacer.start()
            self._status_stop.clear()
            threading.Thread(target=self._status_loop, args=(sched,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sched, self.scheduler = self.scheduler, None
            self._status_stop.set()
            if sched is not None:
                sched.stop()
            if self.pacer is not None:
                self.pacer.stop()
                self.pacer = None
            if self.audio is not None:
                self.audio.close()
                self.audio = None
        if sched is not None:
            self.send({"type": "state", "playing": False})

    def update(self, changes: dict) -> Controls:
        """Check and apply new controls (a TatumError says what is wrong); a new pianist may bring
        another model."""
        new = self.controls.updated(changes, artists=self.artists, genres=self.genres)
        with self._lock:
            old_stream = self.stream_for(self.controls)
            self.controls = new
            if self.scheduler is not None:
                stream = self.stream_for(new)
                self.scheduler.request(new, stream if stream is not old_stream else None)
        return new

    # ------------------------------------------------------------------ output
    def _notes(self, notes, epoch: int) -> None:
        rows = np.stack([notes.onset_ms, notes.dur_ms, notes.pitch, notes.velocity], 1).astype(int).tolist()
        self.send({"type": "notes", "notes": rows, "epoch": epoch})

    def _frames(self, frames: np.ndarray, first: int) -> None:
        self.send(struct.pack("<q", first) + np.ascontiguousarray(frames, dtype="<f4").tobytes())

    def _status_loop(self, sched: Scheduler) -> None:
        while not self._status_stop.wait(0.5):
            if sched.error is not None:
                self.send({"type": "error", "message": f"the jam stopped: {sched.error}"})
                threading.Thread(target=self.stop, daemon=True).start()
                return
            s = sched.stats
            now = sched.clock.now_ms()
            self.send({"type": "status", "ms": round(now), "ahead_ms": round(sched.horizon - now),
                       "underruns": s.underruns, "chunks": s.chunks, "cuts": s.cuts,
                       "latency_ms": round(s.latencies_ms[-1]) if s.latencies_ms else None,
                       "style": sched.controls.label(), "time": time.time()})

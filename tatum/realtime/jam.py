"""A jam in one object: the scheduler wired to MIDI ports, DAW sync, audio and recording, as
`tatum jam` and the benchmark run it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tatum.errors import TatumError
from tatum.realtime.controls import GENRES, Controls
from tatum.realtime.live import LiveInput
from tatum.realtime.record import MidiRecorder
from tatum.realtime.scheduler import Scheduler
from tatum.realtime.timeline import ON, Event
from tatum.realtime.transport import FreeTransport, JamClock, LinkTransport, MidiClockTransport

SYNCS = ("free", "link", "midi-clock")
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def note_name(pitch: int) -> str:
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class JamOptions:
    mode: str = "solo"
    chunk_s: float = 1.0
    buffer_s: float = 2.0
    sync: str = "free"
    bpm: float = 120.0
    quantize_beats: float | None = None
    ports: bool = True              # open MIDI ports (out, in, and the clock in for midi-clock)
    midi_api: str = "auto"
    out_port: str | None = None     # an existing port to play into (default: a virtual port tatum:out)
    in_port: str | None = None      # an existing port to listen to (default: a virtual port tatum-in:in)
    clock_port: str | None = None   # midi-clock: a port with the DAW's clock (default: tatum-clock:clock)
    audio: bool = False             # play through JACK's outputs
    wav: Path | None = None
    soundfont: Path | None = None
    engine: str = "fluidsynth"      # or "magenta": Magenta RealTime 2 plays the notes in `style_text`
    style_text: str = "1950s solo piano recording"
    mrt_size: str = "mrt2_small"
    client: str = "tatum"


class Jam:
    def __init__(self, stream, controls: Controls, options: JamOptions):
        if options.sync not in SYNCS:
            raise TatumError(f"unknown sync {options.sync!r}; use {', '.join(SYNCS)}")
        self.options, self._closers = options, []
        self.out_sink = self.audio = self.wav = self.pacer = self.jack_audio = None
        self.in_port = None
        self.controls = controls          # the last asked for (the scheduler takes them up soon after)
        self.paused = False
        self._held: list = []             # notes drawn while paused, for the audio on resuming
        self._lock = threading.Lock()
        try:
            self._build(stream, controls, options)
        except BaseException:
            self.close()
            raise

    def _build(self, stream, controls: Controls, o: JamOptions) -> None:
        api = None
        if o.ports or o.sync == "midi-clock":
            from tatum.realtime.ports import choose_api

            api = choose_api(o.midi_api)
        if o.sync == "link":
            self.transport = LinkTransport(o.bpm)
        elif o.sync == "midi-clock":
            self.transport = MidiClockTransport()
        else:
            self.transport = FreeTransport(o.bpm)
        self._closers.append(self.transport.close)
        self.clock = JamClock(self.transport)
        self.live = LiveInput(self._ms_at_wall)
        self.scheduler = Scheduler(stream, controls, self.clock, chunk_s=o.chunk_s, buffer_s=o.buffer_s,
                                   live=self.live, rewind_on_live=o.mode in ("respond", "accompany"),
                                   quantize_beats=o.quantize_beats)
        self.recorder = MidiRecorder(self.clock)
        self.scheduler.on_event.append(self._unless_paused(self.recorder.on_event))
        self.watch = None
        if api is not None:
            from tatum.realtime.ports import JackWatch, MidiOutSink, api_name, open_input, open_output

            if api_name(api) == "jack":
                self.watch = JackWatch(f"{o.client}-watch")
                self._closers.append(self.watch.close)

            if o.sync == "midi-clock":
                port = open_input(api, self.transport.feed, o.clock_port, "clock", f"{o.client}-clock", clock=True)
                self._closers.append(port.delete)
            if o.ports:
                alive = (lambda: self.watch.alive) if self.watch is not None else (lambda: True)
                self.out_sink = MidiOutSink(open_output(api, o.out_port, "out", o.client), alive=alive)
                # on the sink itself, so that the sink's listener is still `out_sink.on_event`
                self.out_sink.on_event = self._unless_paused(self.out_sink.on_event)
                self._closers.append(self.out_sink.close)
                self.scheduler.on_event.append(self.out_sink.on_event)
                self.in_port = open_input(api, self.live.message, o.in_port, "in", f"{o.client}-in")
                self._closers.append(self.in_port.delete)
        if o.audio or o.wav:
            from tatum.realtime.audio import AudioPacer, AudioStream, JackAudioOut, WavRecorder

            if o.engine == "magenta":
                from tatum.audio.magenta import MagentaAudioStream, MagentaSound

                self.audio = MagentaAudioStream(MagentaSound(o.style_text, size=o.mrt_size))
            elif o.engine == "fluidsynth":
                self.audio = AudioStream(o.soundfont)
            else:
                raise TatumError(f"unknown --engine {o.engine!r}; use fluidsynth or magenta")
            self._closers.append(self.audio.close)
            self.scheduler.on_notes.append(self._to_audio)
            self.scheduler.on_cut.append(self._cut_audio)
            if o.wav:
                self.wav = WavRecorder(o.wav)
                self.audio.sinks.append(self.wav)
            send = lambda frames, first: None  # noqa: E731  (the WAV sink already has them)
            if o.audio:
                self.jack_audio = JackAudioOut(o.client)
                self._closers.append(self.jack_audio.close)
                send = self.jack_audio.send
            self.pacer = AudioPacer(self.audio, self._now_or_zero, send, lead_ms=100.0)

    def _ms_at_wall(self, wall: float) -> float | None:
        return self.clock.ms_at_wall(wall) if self.clock.beat0 is not None else None

    def _now_or_zero(self) -> float:
        return self.clock.now_ms() if self.clock.beat0 is not None else 0.0

    # ---------------------------------------------------------------- running
    def wait_for_transport(self, timeout_s: float | None = None) -> None:
        """MIDI clock: wait until the DAW plays (its Start and two beats of clocks)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.transport.ready():
            if deadline is not None and time.monotonic() > deadline:
                raise TatumError("no MIDI clock arrived; press play in the DAW (it must send clock to tatum-clock:clock)")
            time.sleep(0.02)

    def start(self) -> float:
        """Play; returns the perf_counter time the jam's first beat falls at."""
        wall0 = self.scheduler.start()
        if self.pacer is not None:
            self.pacer.start()
        return wall0

    def check(self) -> None:
        """Raise what went wrong in a background thread, if anything, or if the JACK server stopped."""
        if self.watch is not None and not self.watch.alive:
            raise TatumError(f"the JACK server stopped ({self.watch.reason or 'gone'}); the jam ended")
        for part in (self.scheduler, self.pacer):
            err = getattr(part, "error", None)
            if err is not None:
                raise err

    def set_controls(self, changes: dict, artists: Sequence[str] = (), genres: Sequence[str] = GENRES) -> Controls:
        """Check `changes` (a dict of control names, as the browser page sends them) against the
        model's vocabulary and play them from as soon as a redraw is ready."""
        with self._lock:        # built on the last asked for, so quick changes add up before they are heard
            new = self.controls.updated(changes, artists, genres)
            self.controls = new
            self.scheduler.request(new)
        return new

    # ---------------------------------------------------------------- pause
    # Pausing silences what comes next and lets what sounds end; the model goes on drawing, so a
    # resume is heard at once (no redraw to wait for), in the MIDI, the recording and the audio alike.
    def _unless_paused(self, listener):
        def on_event(ev: Event, due: float) -> None:
            if ev.kind != ON or not self.paused:       # (note-offs end the notes that were sounding)
                listener(ev, due)
        return on_event

    def _real_now(self) -> float:
        return float(self.clock.real_ms(np.array([self._now_or_zero()]))[0])

    def _to_audio(self, notes, epoch: int) -> None:
        with self._lock:
            if self.paused:
                self._held.append(notes)
                return
        self.audio.add(notes)

    def _cut_audio(self, at_ms: float) -> None:
        with self._lock:
            self._held = [n.select(n.onset_ms < at_ms) for n in self._held]
        self.audio.cut(at_ms)

    def pause(self) -> None:
        with self._lock:
            self.paused = True
        if self.audio is not None:
            self.audio.cut(self._real_now())

    def resume(self) -> None:
        with self._lock:
            self.paused, held, self._held = False, self._held, []
        if self.audio is not None:
            now = self._real_now()
            self.audio.cut(now)          # (what was rendered ahead while paused is silence)
            for notes in held:
                self.audio.add(notes.select(notes.onset_ms >= now))

    def status(self) -> dict:
        s = self.scheduler
        now = self.clock.now_ms() if self.clock.beat0 is not None else 0.0
        played = self.recorder.notes(now)     # (what was heard: no notes while paused)
        recent = played.select(played.onset_ms >= now - 1500)
        c = self.controls
        return {"style": c.label(), "temperature": c.temperature, "density": c.density, "guidance": c.guidance,
                "paused": self.paused, "bpm": self.clock.bpm(), "seconds": now / 1000,
                "notes": len(played), "ahead_s": (s.horizon - now) / 1000, "underruns": s.stats.underruns,
                "late": s.stats.late_notes, "live": self.live.count,
                "last": " ".join(note_name(int(p)) for p in recent.pitch[-6:]),
                "peers": getattr(self.transport, "peers", None)}

    def stop(self) -> float:
        """Stop playing; returns the jam time it stopped at."""
        now = self.clock.now_ms() if self.clock.beat0 is not None else 0.0
        self.scheduler.stop()
        if self.pacer is not None:
            self.pacer.stop()
        if self.out_sink is not None:
            self.out_sink.all_off()
        return now

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        self._closers = []

    def save(self, midi: Path | None, until_ms: float, png: Path | None = None) -> None:
        if midi is not None:
            self.recorder.save(midi, until_ms)
        if png is not None:
            from tatum.plot import piano_roll

            piano_roll(png, self.recorder.daw_notes(until_ms), titles=("", "jam"))
        if self.wav is not None:
            self.wav.close()

    def abort_outputs(self) -> None:
        if self.wav is not None:
            self.wav.abort()


def stats_line(summary: dict) -> str:
    def ms(v):
        return "–" if v is None or not np.isfinite(v) else f"{v:.1f} ms"
    return (f"{summary['notes']} notes, {summary['underruns']} underruns, {summary['late_notes']} late; "
            f"timing jitter p95 {ms(summary['jitter_p95_ms'])}, control latency p95 {ms(summary['latency_p95_ms'])}")

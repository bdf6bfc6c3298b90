"""Audio for the jam: FluidSynth (as tatum.audio.render plays it) at 48 kHz stereo, rendered a little
ahead of the listener, with an equal-power 40 ms crossfade wherever a buffered tail is replaced.

Notes arrive ahead of time (a chunk at once) on the jam's timeline in ms; `take(n)` hands out the
next n frames, rendering as needed. When a style change redraws notes that are already rendered but
not yet handed out, `cut(ms)` drops the old notes from `ms` on and renders that stretch again on a
second synth that first replays the notes still sounding at `ms`; the old audio fades out as the new
fades in (sin/cos ramps, so the power stays constant), as Magenta RT does between its chunks.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from tatum.audio.render import GAIN, _fluidsynth, find_soundfont
from tatum.errors import TatumError
from tatum.notes import Notes

SAMPLE_RATE = 48_000
CROSSFADE_MS = 40
LOOKBACK_MS = 6_000      # longest note (5 s) plus its release: what a fresh synth replays before a cut
SYNTH_BLOCK = 64         # FluidSynth renders in blocks of 64 frames; replays keep the same alignment


class _Voice:
    """A FluidSynth piano as tatum.audio.render's, but loading samples when a key first needs them
    (a session starts in ~40 ms instead of ~250 ms: FluidR3_GM holds every GM instrument), and
    counting the frames it wrote, so a reused one can be put back on the block grid."""

    def __init__(self, soundfont: Path, rate: int, gain: float):
        fs = _fluidsynth()
        self.fs = fs.Synth(gain=gain, samplerate=rate, **{"synth.polyphony": 512, "synth.dynamic-sample-loading": 1})
        sfid = self.fs.sfload(str(soundfont))
        if sfid == -1:
            self.fs.delete()
            raise TatumError("not a readable soundfont", soundfont)
        self.fs.program_select(0, sfid, 0, 0)
        # pyfluidsynth wraps only the 16-bit writer, which clips; the float writer is in the same library
        self._write = fs.cfunc("fluid_synth_write_float", ctypes.c_int,
                               ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
                               ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                               ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1),
                               ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
        self.written = 0

    def write(self, out: np.ndarray) -> None:
        """Fill `out` (n, 2) float32, C-contiguous, with the next n frames."""
        if len(out):
            ptr = out.ctypes.data
            self._write(self.fs.synth, len(out), ptr, 0, 2, ptr, 1, 2)
            self.written += len(out)

    def reset(self) -> None:
        """Silence, as if new: voices off, reverb and chorus cleared, the next frame on a block edge."""
        self.fs.system_reset()
        pad = (-self.written) % SYNTH_BLOCK
        if pad:
            self.write(np.zeros((pad, 2), np.float32))
        self.write(np.zeros((SYNTH_BLOCK, 2), np.float32))

    def close(self) -> None:
        self.fs.delete()


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_in, fade_out) of n frames with fade_in² + fade_out² = 1."""
    theta = (np.arange(n, dtype=np.float64) + 0.5) / n * (np.pi / 2)
    return np.sin(theta).astype(np.float32), np.cos(theta).astype(np.float32)


class AudioStream:
    def __init__(self, soundfont=None, sample_rate: int = SAMPLE_RATE, crossfade_ms: float = CROSSFADE_MS,
                 gain: float = GAIN):
        self.soundfont, self.rate, self.gain = find_soundfont(soundfont), sample_rate, gain
        self.xfade = max(1, round(crossfade_ms * sample_rate / 1000))
        self._synth = _Voice(self.soundfont, sample_rate, gain)
        self._spare: _Voice | None = None
        self._lock = threading.RLock()
        self._notes = np.zeros((0, 4), np.int64)      # onset, end (samples), pitch, velocity
        self._rendered = 0                              # the live synth's time, in frames
        self._taken = 0                                 # frames handed out
        self._buf = np.zeros((0, 2), np.float32)       # frames [taken, rendered)
        self.crossfades = 0
        self._fade: tuple[int, np.ndarray] | None = None   # (frame of a cut, old audio to fade out)
        self.sinks: list = []                           # get every frame handed out (e.g. WavRecorder)
        threading.Thread(target=self._make_spare, daemon=True).start()   # ready for the first cut

    def _make_spare(self) -> None:
        spare = _Voice(self.soundfont, self.rate, self.gain)
        with self._lock:
            if self._spare is None:
                self._spare = spare
                return
        spare.close()

    # ------------------------------------------------------------------ input
    def add(self, notes: Notes) -> None:
        """Notes on the jam's timeline (ms from its start); one that should already have begun starts now."""
        if not len(notes):
            return
        s = self.rate / 1000.0
        on = np.round(notes.onset_ms.astype(np.float64) * s).astype(np.int64)
        end = on + np.maximum(1, np.round(notes.dur_ms.astype(np.float64) * s)).astype(np.int64)
        rows = np.stack([on, end, notes.pitch.astype(np.int64), notes.velocity.astype(np.int64)], 1)
        with self._lock:
            late = rows[:, 0] < self._rendered
            rows[late, 1] += self._rendered - rows[late, 0]
            rows[late, 0] = self._rendered
            self._notes = np.concatenate([self._notes, rows])
            self._notes = self._notes[np.argsort(self._notes[:, 0], kind="stable")]

    def cut(self, at_ms: float) -> None:
        """Drop the notes from `at_ms` on. Audio already rendered past it is rendered again (on a fresh
        synth brought to that point) with whatever notes are added next, and the first 40 ms of it
        crossfade with the old; audio already handed out stays as it was."""
        with self._lock:
            at = max(int(round(at_ms * self.rate / 1000.0)), self._taken)
            self._notes = self._notes[self._notes[:, 0] < at]
            if at >= self._rendered:
                return
            old = self._buf[at - self._taken:at - self._taken + self.xfade].copy()
            self._buf = self._buf[:at - self._taken]
            fresh = self._spare or _Voice(self.soundfont, self.rate, self.gain)
            self._spare = None
            self._replay(fresh, at)
            self._synth, old_synth = fresh, self._synth
            self._rendered = at
            self._fade = (at, old)
            self.crossfades += 1
        threading.Thread(target=self._recycle, args=(old_synth,), daemon=True).start()

    def _recycle(self, synth: "_Voice") -> None:
        synth.reset()
        with self._lock:
            if self._spare is None:
                self._spare = synth
                return
        synth.close()

    def _replay(self, synth: _Voice, at: int) -> int:
        """Bring a fresh synth to frame `at`: strike the notes of the last LOOKBACK_MS before `at`
        (silently), starting on the live synth's block grid so both render alike."""
        look = self._notes[(self._notes[:, 0] >= at - LOOKBACK_MS * self.rate // 1000) & (self._notes[:, 0] < at)]
        start = (int(look[:, 0].min()) if len(look) else at) // SYNTH_BLOCK * SYNTH_BLOCK
        if start < at:
            scratch = np.zeros((at - start, 2), np.float32)
            self._render(synth, start_frame=start, out=scratch, notes=look)
        return start

    # ------------------------------------------------------------------ output
    def _events(self, notes: np.ndarray, a: int, b: int) -> list[tuple[int, int, int, int]]:
        """(frame, kind, pitch, velocity) in [a, b): offs (kind 0) before ons (kind 1) at one frame."""
        ev = [(int(n[0]), 1, int(n[2]), int(n[3])) for n in notes[(notes[:, 0] >= a) & (notes[:, 0] < b)]]
        ev += [(int(n[1]), 0, int(n[2]), 0) for n in notes[(notes[:, 1] >= a) & (notes[:, 1] < b)]]
        return sorted(ev)

    def _render(self, synth: _Voice, start_frame: int, out: np.ndarray, notes: np.ndarray | None = None) -> None:
        notes = self._notes if notes is None else notes
        now, end = start_frame, start_frame + len(out)
        for frame, kind, pitch, vel in self._events(notes, start_frame, end) + [(end, -1, 0, 0)]:
            if frame > now:
                synth.write(out[now - start_frame:frame - start_frame])
                now = frame
            if kind == 1:
                synth.fs.noteon(0, pitch, vel)
            elif kind == 0:
                synth.fs.noteoff(0, pitch)

    def render_until(self, frame: int) -> None:
        with self._lock:
            if frame <= self._rendered:
                return
            block = np.zeros((frame - self._rendered, 2), np.float32)
            self._render(self._synth, self._rendered, block)
            if self._fade is not None:
                at, old = self._fade
                a, b = max(at, self._rendered), min(at + len(old), frame)
                if a < b:
                    fade_in, fade_out = equal_power(self.xfade)
                    i, j = a - at, b - at
                    seg = block[a - self._rendered:b - self._rendered]
                    seg[:] = seg * fade_in[i:j, None] + old[i:j] * fade_out[i:j, None]
                if frame >= at + len(old):
                    self._fade = None
            self._buf = np.concatenate([self._buf, block])
            self._rendered = frame

    def take(self, n: int) -> np.ndarray:
        """The next n frames (float32, stereo)."""
        with self._lock:
            self.render_until(self._taken + n)
            out, self._buf = self._buf[:n].copy(), self._buf[n:]
            self._taken += n
            # forget notes that can no longer sound or be replayed
            floor = self._taken - (LOOKBACK_MS + 1000) * self.rate // 1000
            if len(self._notes) and self._notes[0, 1] < floor:
                self._notes = self._notes[self._notes[:, 1] >= floor]
        for sink in self.sinks:
            sink.write(out)
        return out

    @property
    def taken(self) -> int:
        return self._taken

    @property
    def rendered(self) -> int:
        return self._rendered

    def close(self) -> None:
        with self._lock:
            self._synth.close()
            if self._spare is not None:
                self._spare.close()
                self._spare = None


class WavRecorder:
    """Writes the frames it is given to a 16-bit stereo WAV, atomically: the file appears complete at
    `close()`, or not at all."""

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE):
        import soundfile as sf

        from tatum.io import atomic_output

        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_output(path))
        self._file = self._stack.enter_context(sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=2,
                                                            subtype="PCM_16", format="WAV"))
        self.frames, self.path = 0, Path(path)
        self._lock = threading.Lock()

    def write(self, frames: np.ndarray) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(np.clip(frames, -1.0, 1.0))
                self.frames += len(frames)

    def close(self) -> None:
        with self._lock:
            self._file = None
            self._stack.close()

    def abort(self) -> None:
        with self._lock:
            self._file = None
            try:
                self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass


class AudioPacer:
    """Hands the stream's frames on as the jam's clock passes, `lead_ms` ahead of it, in blocks of
    40 ms (Magenta RT's frame): `send(frames, first_frame)` gets each block."""

    def __init__(self, stream: AudioStream, now_ms, send, lead_ms: float = 150.0, block: int = 1920):
        self.stream, self.now_ms, self.send = stream, now_ms, send
        self.lead_ms, self.block = lead_ms, block
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tatum-audio", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                target = (self.now_ms() + self.lead_ms) * self.stream.rate / 1000.0
                while self.stream.taken + self.block <= target and not self._stop.is_set():
                    first = self.stream.taken
                    self.send(self.stream.take(self.block), first)
                self._stop.wait(0.01)
        except BaseException as e:
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


class JackAudioOut:
    """Plays blocks on two JACK output ports (connected to the system's playback when it has one).
    The pacer fills a FIFO; JACK's process callback empties it, and plays silence if it runs dry."""

    def __init__(self, client_name: str = "tatum", connect: bool = True, max_ms: float = 500.0):
        try:
            import jack
        except (ImportError, OSError):
            raise TatumError("audio out needs JACK-Client and libjack: pip install 'tatum[realtime]', "
                             "apt-get install jackd2") from None
        from tatum.realtime.ports import quiet_stderr

        try:
            with quiet_stderr():
                self.client = jack.Client(f"{client_name}-audio", no_start_server=True)
        except jack.JackError:
            raise TatumError("no JACK server is running for audio; start one with `jackd -d dummy -r 48000 &`") from None
        if self.client.samplerate != SAMPLE_RATE:
            rate = self.client.samplerate
            self.client.close()
            raise TatumError(f"the JACK server runs at {rate} Hz; tatum plays at 48000 (jackd -r 48000)")
        self.ports = [self.client.outports.register(f"out_{side}") for side in ("L", "R")]
        self._fifo = np.zeros((0, 2), np.float32)
        self._lock = threading.Lock()
        self.max_frames = int(max_ms * SAMPLE_RATE / 1000)
        self.dry = 0
        self.client.set_process_callback(self._process)
        self.client.activate()
        if connect:
            playback = self.client.get_ports(is_physical=True, is_input=True, is_audio=True)
            for src, dst in zip(self.ports, playback):
                self.client.connect(src, dst)

    def send(self, frames: np.ndarray, first: int) -> None:
        with self._lock:
            self._fifo = np.concatenate([self._fifo, frames])[-self.max_frames:]

    def _process(self, n: int) -> None:
        with self._lock:
            out, self._fifo = self._fifo[:n], self._fifo[n:]
        if len(out) < n:
            self.dry += 1
            out = np.concatenate([out, np.zeros((n - len(out), 2), np.float32)])
        for i, port in enumerate(self.ports):
            port.get_array()[:] = out[:, i]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

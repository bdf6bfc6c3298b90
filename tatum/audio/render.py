"""MIDI → audio through FluidSynth (pyfluidsynth) and a General MIDI piano soundfont.

Rendering is offline and event-driven: the synth runs exactly up to each note or pedal event, so
timing is sample-exact and the result does not depend on the machine's speed. Audio is produced in
blocks, so a long piece is written to disk without holding it all in memory.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tatum.errors import TatumError
from tatum.io import atomic_output
from tatum.notes import Notes

SAMPLE_RATE = 48_000
BLOCK = 48_000  # samples per block handed to the writer (1 s at 48 kHz)
TAIL_S = 3.0  # longest release rendered after the last event
SILENCE = 1e-4  # a tail block quieter than this ends the render
GAIN = 1.0  # FluidR3 piano: PiJAMA val excerpts peak at 0.25–0.55 (−12 to −5 dBFS) at this gain

# Where Debian/Ubuntu (fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont), Fedora and
# Homebrew put a GM soundfont; the first that exists is used.
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
INSTALL_HINT = ("install one with `sudo apt-get install fluid-soundfont-gm`, or pass --soundfont PATH "
                "(or set TATUM_SOUNDFONT)")


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: `path`, else $TATUM_SOUNDFONT, else the first system GM soundfont found."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise TatumError("soundfont not found", p)
        return p
    env = os.environ.get("TATUM_SOUNDFONT")
    if env:
        if not Path(env).is_file():
            raise TatumError("soundfont named by TATUM_SOUNDFONT not found", env)
        return Path(env)
    for cand in SOUNDFONT_PATHS:
        if Path(cand).is_file():
            return Path(cand)
    raise TatumError(f"no General MIDI soundfont found; {INSTALL_HINT}")


def _fluidsynth():
    try:
        import fluidsynth
    except ImportError as e:
        if "FluidSynth" in str(e) or "fluidsynth" in str(e):
            raise TatumError("the FluidSynth library was not found; install it with "
                             "`sudo apt-get install libfluidsynth3` and `pip install pyfluidsynth`") from None
        raise
    return fluidsynth


class _Synth:
    """One FluidSynth instance with a piano on channel 0, writing float samples without clipping."""

    def __init__(self, soundfont: Path, sample_rate: int, gain: float):
        fs = _fluidsynth()
        # Offline rendering: no audio driver, enough voices for a pedalled two-handed texture.
        self.synth = fs.Synth(gain=gain, samplerate=sample_rate, **{"synth.polyphony": 512})
        sfid = self.synth.sfload(str(soundfont))
        if sfid == -1:
            self.synth.delete()
            raise TatumError("not a readable soundfont", soundfont)
        self.synth.program_select(0, sfid, 0, 0)
        # pyfluidsynth only wraps the 16-bit writer, which clips; the float writer is in the same library.
        self._write = fs.cfunc("fluid_synth_write_float", ctypes.c_int,
                               ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
                               ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1),
                               ("lincr", ctypes.c_int, 1), ("rout", ctypes.c_void_p, 1),
                               ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))

    def write(self, out: np.ndarray) -> None:
        """Fill `out` (n, 2) float32, C-contiguous, with the next n frames."""
        if len(out):
            ptr = out.ctypes.data
            self._write(self.synth.synth, len(out), ptr, 0, 2, ptr, 1, 2)

    def close(self) -> None:
        self.synth.delete()


def _events(notes: Notes, pedal_ms: np.ndarray | None, sample_rate: int) -> np.ndarray:
    """Sorted (sample, kind, pitch, velocity) rows; kind 0 note-off, 1 pedal up, 2 pedal down, 3 note-on.

    At one instant a note-off comes before a note-on, so a repeated key is released then struck again.
    """
    on = np.maximum(notes.onset_ms, 0).astype(np.float64)
    off = on + notes.dur_ms
    rows = [np.stack([on, np.full_like(on, 3), notes.pitch, notes.velocity], 1),
            np.stack([off, np.zeros_like(on), notes.pitch, np.zeros_like(on)], 1)]
    if pedal_ms is not None and len(pedal_ms):
        ps, pe = pedal_ms[:, 0].astype(np.float64), pedal_ms[:, 1].astype(np.float64)
        rows += [np.stack([ps, np.full_like(ps, 2), np.zeros_like(ps), np.full_like(ps, 127)], 1),
                 np.stack([pe, np.ones_like(pe), np.zeros_like(pe), np.zeros_like(pe)], 1)]
    ev = np.concatenate(rows)
    ev[:, 0] = np.round(ev[:, 0] * (sample_rate / 1000.0))
    ev = ev.astype(np.int64)
    return ev[np.lexsort((ev[:, 1], ev[:, 0]))]


def render_blocks(notes: Notes, soundfont: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE,
                  pedal_ms: np.ndarray | None = None, gain: float = GAIN) -> Iterator[np.ndarray]:
    """Yield the performance as float32 stereo blocks of shape (≤ BLOCK, 2), then its release tail.

    `pedal_ms` holds sustain-pedal (down, up) times for notes whose durations do not already include
    the pedal (as read with `Notes.from_midi(..., pedal=False)`); tatum's own Notes have it folded in.
    """
    synth = _Synth(find_soundfont(soundfont), sample_rate, gain)
    try:
        ev = _events(notes, pedal_ms, sample_rate)
        buf = np.zeros((BLOCK, 2), np.float32)
        filled, i, now = 0, 0, 0  # frames in buf, next event, synth time in samples
        end = int(ev[-1, 0]) if len(ev) else 0
        while now < end or i < len(ev):
            # play every event due now, then run the synth up to the next event or the block's end
            while i < len(ev) and ev[i, 0] <= now:
                _, kind, pitch, vel = (int(x) for x in ev[i])
                if kind == 3:
                    synth.synth.noteon(0, pitch, vel)
                elif kind == 0:
                    synth.synth.noteoff(0, pitch)
                else:
                    synth.synth.cc(0, 64, 127 if kind == 2 else 0)
                i += 1
            nxt = int(ev[i, 0]) if i < len(ev) else end
            n = max(0, min(nxt - now, BLOCK - filled))
            synth.write(buf[filled:filled + n])
            filled += n
            now += n
            if filled == BLOCK:
                yield buf.copy()
                filled = 0
        # the release tail: until it falls silent, at most TAIL_S
        tail_left = int(TAIL_S * sample_rate)
        while tail_left > 0:
            n = min(BLOCK - filled, tail_left)
            synth.write(buf[filled:filled + n])
            quiet = np.abs(buf[filled:filled + n]).max(initial=0.0) < SILENCE
            filled += n
            tail_left -= n
            if filled == BLOCK or quiet or tail_left == 0:
                yield buf[:filled].copy()
                filled = 0
            if quiet:
                break
    finally:
        synth.close()


def render(notes: Notes, soundfont: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE,
           pedal_ms: np.ndarray | None = None) -> np.ndarray:
    """Render `notes` to a float32 array of shape (frames, 2) at `sample_rate` (48 kHz by default)."""
    blocks = list(render_blocks(notes, soundfont, sample_rate, pedal_ms))
    return np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)


def read_midi_for_render(path: str | os.PathLike) -> tuple[Notes, np.ndarray]:
    """A MIDI file's notes with their written lengths and its sustain-pedal spans (ms), for `render`,
    so FluidSynth itself holds the pedal as a piano would."""
    notes = Notes.from_midi(path, pedal=False)
    from symusic import Score

    score = Score(str(path), ttype="second")  # already read without error by from_midi
    spans = [np.stack([p["time"], p["time"] + p["duration"]], 1) * 1000.0
             for t in score.tracks if not t.is_drum and len(t.pedals) for p in [t.pedals.numpy()]]
    return notes, (np.concatenate(spans) if spans else np.zeros((0, 2)))


def write_wav(path: str | os.PathLike, notes: Notes, soundfont: str | os.PathLike | None = None,
              sample_rate: int = SAMPLE_RATE, pedal_ms: np.ndarray | None = None,
              on_progress: Callable[[float], None] | None = None) -> float:
    """Render to a 16-bit stereo WAV, block by block, written atomically; returns the length in seconds.

    `on_progress` gets the seconds rendered so far after each block.
    """
    import soundfile as sf

    frames = 0
    with atomic_output(path) as tmp, sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=2,
                                                  subtype="PCM_16", format="WAV") as f:
        for block in render_blocks(notes, soundfont, sample_rate, pedal_ms):
            f.write(np.clip(block, -1.0, 1.0))
            frames += len(block)
            if on_progress is not None:
                on_progress(frames / sample_rate)
    return frames / sample_rate

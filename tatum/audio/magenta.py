"""Magenta RealTime as tatum's sound, when it is installed with its weights (tatum ships neither).

Magenta RealTime 2 (`pip install "magenta-rt[jax]"`, or `[mlx]` on Apple silicon) generates 48 kHz
stereo audio 40 ms frame by frame: `system.generate(conditioning, cfg_scales, temperature, top_k,
frames, state) -> (waveform, state)`. Besides a MusicCoCa style (a text such as "1950s solo piano
recording", key `mulan_tokens_25hz`), every frame takes **notes**: a 25 Hz piano roll of 128 pitch
slots (key `pianoroll_with_onsets_tokens`: −1 masked, 0 off, 1 held, 2 onset, 3 free), with its own
guidance scale. So tatum improvises the notes and MRT2 plays them in a style:

- `piano_roll(notes)` turns Notes into those frames (exact rules in its docstring);
- `MagentaSound` renders Notes offline (`tatum render --engine magenta`) or streams 40 ms frames for a
  jam (`tatum jam --engine magenta`, through `MagentaAudioStream`);
- `prompt_audio(text)` is the older path: audio from a text prompt alone, which `tatum pipeline
  --from-prompt` transcribes. It also drives Magenta RT v1 (`magenta_rt.system.MagentaRT`) when that
  is what is installed.

Weights: `mrt models init` (MusicCoCa and SpectroStream), then `mrt checkpoints download mrt2_small`
for the JAX backend (`mrt models download mrt2_small` for MLX); they land in
~/Documents/Magenta/magenta-rt-v2 unless MAGENTA_HOME says otherwise.
"""

from __future__ import annotations

import math
import platform
import threading

import numpy as np

from tatum.errors import TatumError
from tatum.notes import Notes

FRAME_RATE = 25
FRAME_MS = 1000 // FRAME_RATE            # 40 ms
SAMPLE_RATE = 48_000
FRAME_SAMPLES = SAMPLE_RATE // FRAME_RATE  # 1920
MASKED, OFF, HELD, ONSET, FREE = -1, 0, 1, 2, 3
NOTES_KEY = "pianoroll_with_onsets_tokens"
STYLE_KEY = "mulan_tokens_25hz"
DEFAULT_STYLE = "1950s solo piano recording"
SIZES = ("mrt2_small", "mrt2_base")
BACKENDS = ("auto", "jax", "mlx")

INSTALL_HINT = ("Magenta RealTime and its weights are needed: `pip install \"magenta-rt[jax]\"` (or [mlx] on "
                "Apple silicon; see github.com/magenta/magenta-realtime), then `mrt models init` and "
                "`mrt checkpoints download mrt2_small` for the weights")


# ------------------------------------------------------------------ notes → frames
def piano_roll(notes: Notes, n_frames: int | None = None, start_ms: int = 0, onsets: bool = True,
               unmask_width: int | None = None) -> np.ndarray:
    """MRT2's note conditioning for `notes`: an int8 array (frames, 128), frame k covering
    [start_ms + 40k, start_ms + 40(k+1)).

    - A note's onset frame (the frame its onset falls in) is ONSET (2), even when the note ends inside
      that frame (MRT2 latches onsets the same way).
    - Each later frame whose start lies strictly inside the note (onset < frame start < end) is HELD (1);
      a note that began before `start_ms` and still sounds is HELD from frame 0.
    - With `onsets=False` every frame where a note sounds is FREE (3): the model decides between
      striking and holding (MRT2's onset mode 0).
    - Other pitches are OFF (0) when `unmask_width` is None (every pitch explicit). With a width w they
      are OFF only within ±w semitones of a pitch sounding in that frame and MASKED (−1) elsewhere,
      left to the model; w = 0 specifies only the sounding pitches.
    - A new onset on a pitch wins over a held earlier note of the same pitch.

    `n_frames` defaults to the frames up to the end of the last note.
    """
    on = notes.onset_ms.astype(np.int64) - start_ms
    end = on + notes.dur_ms.astype(np.int64)
    if n_frames is None:
        n_frames = int(math.ceil(end.max() / FRAME_MS)) if len(notes) else 0
    roll = np.zeros((n_frames, 128), np.int8)
    sounding = np.zeros((n_frames, 128), bool)
    for o, e, p in zip(on.tolist(), end.tolist(), notes.pitch.tolist()):
        first = o // FRAME_MS if o >= 0 else 0
        if first >= n_frames or e <= 0:
            continue
        held_from = o // FRAME_MS + 1 if o >= 0 else 0      # frames starting inside (onset, end)
        held_to = min(n_frames, -(-e // FRAME_MS))           # first frame starting at or after the end
        if held_from < held_to:
            seg = roll[held_from:held_to, p]
            seg[seg != ONSET] = HELD if onsets else FREE
            sounding[held_from:held_to, p] = True
        if o >= 0:
            roll[first, p] = ONSET if onsets else FREE
            sounding[first, p] = True
    if unmask_width is not None:
        w = max(0, int(unmask_width))
        near = np.zeros_like(sounding)
        for shift in range(-w, w + 1):
            near |= np.roll(sounding, shift, axis=1) & _no_wrap(shift)
        roll[~near & (roll == OFF)] = MASKED
    return roll


def _no_wrap(shift: int) -> np.ndarray:
    keep = np.ones(128, bool)
    if shift > 0:
        keep[:shift] = False
    elif shift < 0:
        keep[shift:] = False
    return keep


# ------------------------------------------------------------------ the system
def _magenta():
    try:
        import magenta_rt
    except ImportError:
        raise TatumError(INSTALL_HINT) from None
    return magenta_rt


def load_system(size: str = "mrt2_small", backend: str = "auto", temperature: float = 1.3, top_k: int = 40,
                cfg_style: float = 3.0, cfg_notes: float = 1.0):
    """An MRT2 system (MagentaRT2Jax / MagentaRT2Mlx) with its weights loaded and compiled."""
    if size not in SIZES:
        raise TatumError(f"unknown Magenta RT 2 size {size!r}; sizes: {', '.join(SIZES)}")
    if backend not in BACKENDS:
        raise TatumError(f"unknown Magenta RT backend {backend!r}; backends: {', '.join(BACKENDS)}")
    mrt = _magenta()
    if backend == "auto":
        backend = "mlx" if platform.system() == "Darwin" and platform.machine() == "arm64" else "jax"
    try:
        cls = mrt.MagentaRT2Mlx if backend == "mlx" else mrt.MagentaRT2Jax
    except ImportError:
        raise TatumError(f"Magenta RT 2's {backend} backend is not installed: pip install \"magenta-rt[{backend}]\"") from None
    except AttributeError:
        raise TatumError("the installed magenta_rt is not Magenta RealTime 2; " + INSTALL_HINT) from None
    try:
        return cls(size=size, temperature=temperature, top_k=top_k,
                   cfg_scales={"musiccoca": cfg_style, "notes": cfg_notes, "drums": 1.0})
    except FileNotFoundError as e:
        raise TatumError(f"Magenta RT 2 weights not found ({e.filename or e}); run `mrt models init` and "
                         f"`mrt checkpoints download {size}`") from None
    except Exception as e:  # no accelerator, a broken download, …: Magenta RT's own message
        raise TatumError(f"Magenta RealTime 2 failed to start: {' '.join(str(e).split())[:200]}") from None


class MagentaSound:
    """tatum's notes played by MRT2 in a text style. `frames(roll)` streams: the system's state is
    carried from call to call, so consecutive calls sound as one performance."""

    def __init__(self, style: str = DEFAULT_STYLE, system=None, *, size: str = "mrt2_small", backend: str = "auto",
                 temperature: float = 1.3, top_k: int = 40, cfg_style: float = 3.0, cfg_notes: float = 1.0,
                 unmask_width: int | None = None):
        if not style.strip():
            raise TatumError("the Magenta RT style needs some text, e.g. \"1950s solo piano recording\"")
        self.system = system or load_system(size, backend, temperature, top_k, cfg_style, cfg_notes)
        self.cfg = {"musiccoca": cfg_style, "notes": cfg_notes}
        self.temperature, self.top_k, self.unmask_width = temperature, top_k, unmask_width
        try:
            tokens = self.system.tokenize_style(self.system.embed_style(style))
        except Exception as e:
            raise TatumError(f"Magenta RT could not embed the style: {' '.join(str(e).split())[:160]}") from None
        # tokens once here, not per call: `generate` would re-tokenize a float embedding every time
        self.style_tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
        self.state = None

    def frames(self, roll: np.ndarray) -> np.ndarray:
        """Audio (len(roll) · 1920, 2) float32 for piano-roll frames; runs of equal frames go to the
        model in one call."""
        out = []
        i = 0
        while i < len(roll):
            j = i + 1
            while j < len(roll) and np.array_equal(roll[j], roll[i]):
                j += 1
            cond = {STYLE_KEY: self.style_tokens, NOTES_KEY: [int(v) for v in roll[i]]}
            wave, self.state = self.system.generate(conditioning=cond, cfg_scales=self.cfg,
                                                    temperature=self.temperature, top_k=self.top_k,
                                                    frames=j - i, state=self.state)
            samples = np.asarray(getattr(wave, "samples", wave), dtype=np.float32)
            out.append(samples.reshape(len(samples), -1))
            i = j
        if not out:
            return np.zeros((0, 2), np.float32)
        audio = np.concatenate(out)
        return np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio

    def render(self, notes: Notes, tail_s: float = 1.0) -> np.ndarray:
        """All of `notes` (from 0 ms) plus `tail_s` of release, as (samples, 2) float32 at 48 kHz."""
        n = int(math.ceil((notes.end_ms / 1000 + tail_s) * FRAME_RATE)) if len(notes) else 0
        return self.frames(piano_roll(notes.shift(-min(0, notes.start_ms)) if len(notes) else notes, n,
                                      unmask_width=self.unmask_width))


def write_wav(path, notes: Notes, sound: MagentaSound, tail_s: float = 1.0) -> float:
    """Render with MRT2 into a 16-bit stereo WAV, written atomically; returns the seconds written."""
    import soundfile as sf

    from tatum.io import atomic_output

    audio = sound.render(notes, tail_s)
    with atomic_output(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return len(audio) / SAMPLE_RATE


class MagentaAudioStream:
    """`tatum.realtime.audio.AudioStream`'s interface on MRT2, for a jam: 40 ms frames rendered just
    in time (the runtime's own way: a few frames ahead), so a redrawn tail is usually not yet audio —
    and where it is, the new notes simply take over from the next frame (MRT2 keeps its own state and
    cannot rewind)."""

    rate = SAMPLE_RATE

    def __init__(self, sound: MagentaSound):
        self.sound = sound
        self._lock = threading.Lock()
        self._notes = Notes.empty()
        self._buf = np.zeros((0, 2), np.float32)
        self._taken = 0
        self._frame = 0              # next MRT2 frame to render
        self.crossfades = 0
        self.sinks: list = []

    @property
    def taken(self) -> int:
        return self._taken

    def add(self, notes: Notes) -> None:
        with self._lock:
            self._notes = Notes.merge([self._notes, notes])

    def cut(self, at_ms: float) -> None:
        with self._lock:
            self._notes = self._notes.select(self._notes.onset_ms < at_ms)

    def take(self, n: int) -> np.ndarray:
        with self._lock:
            while len(self._buf) < n:
                roll = piano_roll(self._notes, 1, start_ms=self._frame * FRAME_MS, unmask_width=self.sound.unmask_width)
                self._buf = np.concatenate([self._buf, self.sound.frames(roll)])
                self._frame += 1
                # notes that ended more than a frame ago can no longer change a frame
                self._notes = self._notes.select(self._notes.onset_ms + self._notes.dur_ms > (self._frame - 1) * FRAME_MS)
            out, self._buf = self._buf[:n], self._buf[n:]
            self._taken += n
        for sink in self.sinks:
            sink.write(out)
        return out

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ prompt → audio
def prompt_audio(text: str, seconds: float = 20.0, seed: int | None = None,
                 tag: str = "base") -> tuple[np.ndarray, int]:
    """(samples (n, 2) float32, sample rate): `seconds` of music generated from `text` alone.

    Magenta RT 2 when installed (`tag` "base" or "small"; it takes no seed: its sampling state is its
    own); Magenta RT v1's `magenta_rt.system.MagentaRT` otherwise."""
    if not text.strip():
        raise TatumError("--from-prompt needs some text, e.g. \"solo stride piano\"")
    mrt = _magenta()
    if _has_mrt2(mrt):
        system = load_system(f"mrt2_{tag}" if not tag.startswith("mrt2_") else tag)
        try:
            tokens = system.tokenize_style(system.embed_style(text))
            wave, _ = system.generate(conditioning={STYLE_KEY: [int(t) for t in np.asarray(tokens).reshape(-1)]},
                                      frames=max(1, round(seconds * FRAME_RATE)))
        except Exception as e:
            raise TatumError(f"Magenta RealTime 2 failed: {' '.join(str(e).split())[:160]}") from None
        audio = np.asarray(wave.samples, dtype=np.float32)
        rate = int(getattr(wave, "sample_rate", SAMPLE_RATE))
        audio = audio.reshape(len(audio), -1)[: int(seconds * rate)]
        return (np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio), rate
    return _prompt_audio_v1(text, seconds, seed, tag)


def _has_mrt2(mrt) -> bool:
    return "MagentaRT2Jax" in getattr(mrt, "__all__", ())


def _prompt_audio_v1(text: str, seconds: float, seed: int | None, tag: str) -> tuple[np.ndarray, int]:
    try:
        from magenta_rt import system
    except ImportError:
        raise TatumError(INSTALL_HINT) from None
    try:
        mrt = system.MagentaRT(tag=tag, lazy=False)
        style = mrt.embed_style(text)
        state, chunks, rate = None, [], SAMPLE_RATE
        for _ in range(max(1, math.ceil(seconds / 2.0))):
            # v1 seeds each chunk itself from seed + chunk index
            chunk, state = mrt.generate_chunk(state=state, style=style, seed=seed)
            samples = np.asarray(getattr(chunk, "samples", chunk), dtype=np.float32)
            rate = int(getattr(chunk, "sample_rate", rate))
            chunks.append(samples.reshape(len(samples), -1))
    except TatumError:
        raise
    except Exception as e:  # missing weights, no accelerator, …: Magenta RT's own message
        raise TatumError(f"Magenta RealTime failed: {' '.join(str(e).split())[:160]}") from None
    audio = np.concatenate(chunks)[: int(seconds * rate)]
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return audio, rate

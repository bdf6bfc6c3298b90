"""Audio → piano notes with basic-pitch's ONNX model (no TensorFlow).

The file is read and transcribed in chunks with overlapping margins, so memory stays bounded however
long the recording is: each chunk keeps the notes that start in its core, and a note reaching into the
next chunk's core is seen whole from the margin.
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from tatum.errors import TatumError
from tatum.notes import Notes, resolve_overlaps

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff")
CHUNK_S = 60.0  # core of a chunk
# Post-processing chosen on 7 PiJAMA *train* excerpts (60 s each) rendered by `tatum render`: onset
# threshold 0.6 / frame 0.3 / 50 ms minimum / no "melodia trick" gave onset F1 0.83 (P 0.86, R 0.81);
# basic-pitch's defaults (0.5 / 0.3 / 127 ms / melodia) over-detect on piano (P ≈ 0.6).
MARGIN_S = 6.0  # each side; longer notes than this crossing a chunk border are cut there
BATCH = 16  # basic-pitch windows per ONNX call


class AudioError(TatumError):
    """Audio that cannot be read or holds no notes."""


def _basic_pitch():
    try:
        # basic-pitch logs a warning per absent backend (TensorFlow, CoreML, TFLite) and resampy warns
        # about pkg_resources; neither concerns a user of the ONNX model.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                from basic_pitch import constants, inference, note_creation
            finally:
                logging.disable(logging.NOTSET)
    except ImportError as e:
        raise TatumError(f"transcription needs basic-pitch with onnxruntime ({e}); install them as "
                         "DEVELOPERS.md says (`make venv` does it)") from None
    return constants, inference, note_creation


@lru_cache(maxsize=1)
def _model():
    _, inference, _ = _basic_pitch()
    import basic_pitch

    path = Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"
    return inference.Model(path)


def open_audio(path: str | os.PathLike):
    """Open an audio file for chunked reading; a clear `AudioError` when it cannot be."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError("no such file", p)
    if p.is_dir():
        raise AudioError("is a folder, not an audio file", p)
    if p.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioError(f"unsupported audio format {p.suffix or '(no extension)'!r}; use "
                         f"{', '.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)}", p)
    try:
        f = sf.SoundFile(str(p))
    except Exception as e:  # libsndfile's own message says what is wrong
        msg = " ".join(str(e).split()).replace(f"Error opening {str(p)!r}: ", "")
        raise AudioError(f"not a readable audio file ({msg[:100]})", p) from None
    if f.frames == 0:
        f.close()
        raise AudioError("empty audio file", p)
    return f


def _frames_to_notes(out: dict, t0: float, keep: tuple[float, float], onset_threshold: float,
                     frame_threshold: float, min_note_ms: float) -> list[tuple[float, float, int, float]]:
    constants, _, nc = _basic_pitch()
    min_len = int(round(min_note_ms / 1000.0 * constants.ANNOTATIONS_FPS))
    events = nc.output_to_notes_polyphonic(out["note"], out["onset"], onset_thresh=onset_threshold,
                                           frame_thresh=frame_threshold, min_note_len=min_len,
                                           infer_onsets=True, max_freq=None, min_freq=None,
                                           melodia_trick=False)
    times = nc.model_frames_to_time(out["note"].shape[0]) + t0
    notes = []
    for start, end, pitch, amp in events:
        s = float(times[start])
        if keep[0] <= s < keep[1]:
            notes.append((s, float(times[min(end, len(times) - 1)]), int(pitch), float(amp)))
    return notes


def _infer(audio: np.ndarray) -> dict:
    """basic-pitch's windowing and unwrapping, with windows batched into fewer ONNX calls."""
    constants, inference, _ = _basic_pitch()
    n_overlap = 30
    overlap_len = n_overlap * constants.FFT_HOP
    hop = constants.AUDIO_N_SAMPLES - overlap_len
    padded = np.concatenate([np.zeros(overlap_len // 2, np.float32), audio.astype(np.float32)])
    windows = [w for w, _ in inference.window_audio_file(padded, hop)]
    model = _model()
    outs: dict[str, list] = {"note": [], "onset": [], "contour": []}
    for i in range(0, len(windows), BATCH):
        for k, v in model.predict(np.stack(windows[i:i + BATCH])).items():
            outs[k].append(v)
    return {k: inference.unwrap_output(np.concatenate(v), len(audio), n_overlap) for k, v in outs.items()}


def _read_mono(f, lo: int, hi: int, step: int = 1 << 18) -> np.ndarray:
    """Frames [lo, hi) of an open file mixed to mono, read a few seconds at a time (a stereo float
    copy of a whole chunk would double its memory)."""
    out = np.empty(hi - lo, np.float32)
    f.seek(lo)
    for i in range(0, hi - lo, step):
        block = f.read(min(step, hi - lo - i), dtype="float32", always_2d=True)
        out[i:i + len(block)] = block.mean(axis=1)
    return out


def transcribe(path: str | os.PathLike, onset_threshold: float = 0.6, frame_threshold: float = 0.3,
               min_note_ms: float = 50.0, end_s: float | None = None,
               on_progress: Callable[[float, float], None] | None = None) -> Notes:
    """Transcribe a piano recording (wav, flac, mp3, ogg, aiff) to `Notes` in the piano range.

    Velocities come from basic-pitch's note amplitudes; `end_s` stops reading there.
    `on_progress(done_s, total_s)` is called after each chunk. Raises `AudioError` for unreadable
    audio and for audio in which no note is found.
    """
    import librosa

    constants, _, _ = _basic_pitch()
    sr_model = constants.AUDIO_SAMPLE_RATE
    f = open_audio(path)
    notes: list[tuple[float, float, int, float]] = []
    try:
        sr, total = f.samplerate, f.frames
        if end_s is not None:
            total = max(1, min(total, int(end_s * sr)))
        total_s = total / sr
        core = int(CHUNK_S * sr)
        margin = int(MARGIN_S * sr)
        for start in range(0, total, core):
            lo = max(0, start - margin)
            mono = _read_mono(f, lo, min(total, start + core + margin))
            if sr != sr_model:
                mono = librosa.resample(mono, orig_sr=sr, target_sr=sr_model, res_type="soxr_hq")
            out = _infer(mono)
            keep = (start / sr, (start + core) / sr)
            notes += _frames_to_notes(out, lo / sr, keep, onset_threshold, frame_threshold, min_note_ms)
            if on_progress is not None:
                on_progress(min(total, start + core) / sr, total_s)
    except AudioError:
        raise
    except Exception as e:  # a decoder failing mid-file (truncated mp3, …)
        raise AudioError(f"cannot decode audio ({' '.join(str(e).split())[:100]})", path) from None
    finally:
        f.close()
    if not notes:
        raise AudioError("no notes found (silence or no pitched sound)", path)
    a = np.array(notes)
    onset = np.round(a[:, 0] * 1000.0).astype(np.int64)
    dur = np.maximum(1, np.round((a[:, 1] - a[:, 0]) * 1000.0)).astype(np.int64)
    pitch = np.clip(a[:, 2], 21, 108).astype(np.int32)
    vel = np.clip(np.round(a[:, 3] * 127.0), 1, 127).astype(np.int32)
    return Notes(*resolve_overlaps(onset, dur, pitch, vel))

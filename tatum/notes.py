"""`Notes`: the one in-memory representation of a piano performance, and its MIDI I/O.

A performance is four parallel numpy arrays sorted by (onset, pitch), in milliseconds of absolute
time from the start of the file, with the sustain pedal already folded into durations. The source's
tempo map and time signatures ride along so that a written file lines up with its source in a DAW.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tatum.errors import MidiError

PIANO_LOW, PIANO_HIGH = 21, 108
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")

PathLike = str | os.PathLike


@dataclass
class TempoMap:
    """Tempo changes (ms, quarter notes per minute) and time signatures (ms, numerator, denominator)."""

    tempo_ms: np.ndarray = field(default_factory=lambda: np.zeros(1))
    qpm: np.ndarray = field(default_factory=lambda: np.full(1, 120.0))
    timesig_ms: np.ndarray = field(default_factory=lambda: np.zeros(1))
    timesig: np.ndarray = field(default_factory=lambda: np.array([[4, 4]]))
    tpq: int = 480

    def scaled(self, factor: float) -> "TempoMap":
        """The same map for a performance played `factor` times longer."""
        return TempoMap(self.tempo_ms * factor, self.qpm / factor, self.timesig_ms * factor,
                        self.timesig.copy(), self.tpq)

    def shifted(self, ms: float) -> "TempoMap":
        """The map with its events moved by `ms`; whatever is in force at the new time 0 stays at 0."""
        def move(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            t = times + ms
            before = np.flatnonzero(t <= 0)
            i = before[-1] if len(before) else 0
            keep = t > 0
            return np.concatenate([[0.0], t[keep]]), np.concatenate([values[i:i + 1], values[keep]])
        tm, q = move(self.tempo_ms, self.qpm)
        sm, s = move(self.timesig_ms, self.timesig)
        return TempoMap(tm, q, sm, s, self.tpq)


def _sorted(onset, dur, pitch, vel):
    order = np.lexsort((pitch, onset))
    return onset[order], dur[order], pitch[order], vel[order]


@dataclass(eq=False)
class Notes:
    """A piano performance as struct-of-arrays, sorted by (onset, pitch).

    >>> n = Notes.from_midi("song.mid")
    >>> n.onset_ms[:3], len(n), n.duration_s
    >>> n.slice(10_000, 20_000).transpose(2).to_midi("excerpt.mid")
    """

    onset_ms: np.ndarray
    dur_ms: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    tempo: TempoMap = field(default_factory=TempoMap)

    def __post_init__(self):
        onset = np.asarray(self.onset_ms, dtype=np.int32).reshape(-1)
        dur = np.asarray(self.dur_ms, dtype=np.int32).reshape(-1)
        pitch = np.asarray(self.pitch, dtype=np.int16).reshape(-1)
        vel = np.asarray(self.velocity, dtype=np.int16).reshape(-1)
        if not (len(onset) == len(dur) == len(pitch) == len(vel)):
            raise ValueError("onset_ms, dur_ms, pitch and velocity must have the same length")
        if len(onset) > 1 and not _is_sorted(onset, pitch):
            onset, dur, pitch, vel = _sorted(onset, dur, pitch, vel)
        self.onset_ms, self.dur_ms, self.pitch, self.velocity = onset, dur, pitch, vel

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.onset_ms)

    def __repr__(self) -> str:
        return f"Notes({len(self)} notes, {self.duration_s:.1f} s)"

    @classmethod
    def empty(cls, tempo: TempoMap | None = None) -> "Notes":
        z = np.zeros(0)
        return cls(z, z, z, z, tempo or TempoMap())

    @property
    def start_ms(self) -> int:
        return int(self.onset_ms[0]) if len(self) else 0

    @property
    def end_ms(self) -> int:
        return int((self.onset_ms.astype(np.int64) + self.dur_ms).max()) if len(self) else 0

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0

    def copy(self) -> "Notes":
        return self._replace()

    def _replace(self, onset=None, dur=None, pitch=None, vel=None, tempo=None) -> "Notes":
        return Notes(self.onset_ms.copy() if onset is None else onset,
                     self.dur_ms.copy() if dur is None else dur,
                     self.pitch.copy() if pitch is None else pitch,
                     self.velocity.copy() if vel is None else vel,
                     self.tempo if tempo is None else tempo)

    def playable(self) -> "Notes":
        """The notes as a piano, and a MIDI file, hold them: one key per pitch, so a note is cut where
        its pitch is struck again and a repeat at the same onset is dropped (`from_midi` reads them so)."""
        return Notes(*resolve_overlaps(self.onset_ms, self.dur_ms, self.pitch, self.velocity), self.tempo)

    def select(self, mask: np.ndarray) -> "Notes":
        """The notes where `mask` (boolean or index array) holds; order is kept."""
        return Notes(self.onset_ms[mask], self.dur_ms[mask], self.pitch[mask], self.velocity[mask],
                     self.tempo)

    # ------------------------------------------------------------ transforms
    def slice(self, start_ms: float, end_ms: float, clip: bool = False) -> "Notes":
        """Notes whose onset lies in [start_ms, end_ms); with `clip`, durations end by `end_ms`."""
        keep = (self.onset_ms >= start_ms) & (self.onset_ms < end_ms)
        out = self.select(keep)
        if clip:
            out.dur_ms = np.maximum(1, np.minimum(out.dur_ms, end_ms - out.onset_ms)).astype(np.int32)
        return out

    def shift(self, ms: int) -> "Notes":
        """Move every note (and the tempo map) by `ms` milliseconds."""
        return self._replace(onset=self.onset_ms.astype(np.int64) + int(ms),
                             tempo=self.tempo.shifted(ms))

    def transpose(self, semitones: int) -> "Notes":
        """Shift pitches; notes pushed off the keyboard fold back by octaves into 21–108."""
        return self._replace(pitch=fold_to_piano(self.pitch.astype(np.int32) + int(semitones)))

    def stretch(self, factor: float) -> "Notes":
        """Play `factor` times longer (factor 2 = half speed); the tempo map follows."""
        if factor <= 0:
            raise ValueError("stretch factor must be positive")
        onset = np.round(self.onset_ms * factor)
        dur = np.maximum(1, np.round(self.dur_ms * factor))
        return self._replace(onset=onset, dur=dur, tempo=self.tempo.scaled(factor))

    @staticmethod
    def concatenate(parts: list["Notes"], gap_ms: int = 0) -> "Notes":
        """Play `parts` one after another, each starting `gap_ms` after the previous one ends."""
        if not parts:
            return Notes.empty()
        out, t = [], 0
        for i, p in enumerate(parts):
            if not len(p):
                continue
            offset = 0 if not out else t + gap_ms - p.start_ms
            out.append(p.shift(offset) if offset else p)
            t = out[-1].end_ms
        if not out:
            return Notes.empty(parts[0].tempo)
        return Notes(np.concatenate([p.onset_ms for p in out]), np.concatenate([p.dur_ms for p in out]),
                     np.concatenate([p.pitch for p in out]), np.concatenate([p.velocity for p in out]),
                     parts[0].tempo)

    @staticmethod
    def merge(parts: list["Notes"]) -> "Notes":
        """Overlay `parts` in their own absolute times (the first part's tempo map is kept)."""
        if not parts:
            return Notes.empty()
        return Notes(np.concatenate([p.onset_ms for p in parts]), np.concatenate([p.dur_ms for p in parts]),
                     np.concatenate([p.pitch for p in parts]), np.concatenate([p.velocity for p in parts]),
                     parts[0].tempo)

    # ---------------------------------------------------------------- MIDI I/O
    @classmethod
    def from_midi(cls, source: PathLike | bytes, pedal: bool = True) -> "Notes":
        """Load a type 0/1 MIDI file as one piano stream.

        Drum tracks are dropped, all other tracks merged; the sustain pedal (CC64 ≥ 64) extends a note
        that ends while the pedal is down to the pedal's release; overlapping notes of one pitch are
        cut where the next one starts. Raises `MidiError` with a one-line reason on any bad input.
        (`read_midi` also says which note of which track each one is, to write a result back over
        its source: tatum.edit.)
        """
        return read_midi(source, pedal).notes

    def to_midi(self, path: PathLike | None = None) -> bytes:
        """Write a one-track piano MIDI file in ticks of the source's tempo map; returns the bytes.

        The file is written atomically: an existing file is replaced only once the new one is complete.
        """
        from symusic import Note, Score, Tempo, TimeSignature, Track

        tm = self.tempo
        score = Score(int(tm.tpq), ttype="second")
        for t, q in zip(tm.tempo_ms, tm.qpm):
            score.tempos.append(Tempo(float(t) / 1000.0, float(q), ttype="second"))
        for t, (num, den) in zip(tm.timesig_ms, tm.timesig):
            score.time_signatures.append(TimeSignature(float(t) / 1000.0, int(num), int(den), ttype="second"))
        track = Track(name="Piano", program=0, ttype="second")
        if len(self):
            onset = np.maximum(self.onset_ms, 0)
            track.notes.extend(Note.from_numpy(
                time=onset.astype(np.float64) / 1000.0, duration=self.dur_ms.astype(np.float64) / 1000.0,
                pitch=self.pitch.astype(np.int8), velocity=np.clip(self.velocity, 1, 127).astype(np.int8),
                ttype="second"))
        score.tracks.append(track)
        data = score.to("tick").dumps_midi()
        if path is not None:
            from tatum.io import write_atomic
            write_atomic(path, data)
        return data


# ------------------------------------------------------------------- reading
@dataclass
class MidiSource:
    """A MIDI file as read: its notes as one piano stream, the tick score they came from, and per note
    `track << 32 | index` of its note in that score (drum tracks are in the score, not in `notes`)."""

    notes: Notes
    ids: np.ndarray
    score: object          # symusic.Score in ticks


def read_midi(source: PathLike | bytes, pedal: bool = True) -> MidiSource:
    """`Notes.from_midi`, keeping the source score and where each note came from."""
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    data = _read_bytes(source, name)
    from symusic import Score

    try:
        score = Score.from_midi(bytes(data))
        if score.tpq <= 0:
            raise MidiError("0 ticks per quarter note: no time in it", name)
        zero = [t.time for t in score.tempos if t.mspq <= 0 and t.time < score.end()]
        if zero:   # from there on every note would fall on one instant
            raise MidiError(f"a tempo of 0 µs per quarter note (tick {zero[0]}): no time in it", name)
        sec = score.to("second")
    except MidiError:
        raise
    except Exception as e:  # symusic raises RuntimeError with a C++ message
        raise MidiError(f"not a readable MIDI file ({_short(e)})", name) from None
    tracks = [(i, t) for i, t in enumerate(sec.tracks) if len(t.notes)]
    if not tracks:
        raise MidiError("no notes", name)
    if all(t.is_drum for _, t in tracks):
        raise MidiError("only drum tracks, no piano notes", name)
    parts = []
    limit = 2**31 - 2**24  # int32 milliseconds, ≈ 24 days
    for i, t in tracks:
        if t.is_drum:
            continue
        a = t.notes.numpy()
        onset = a["time"].astype(np.float64) * 1000.0
        dur = a["duration"].astype(np.float64) * 1000.0
        if not (np.all(np.isfinite(onset)) and np.all(np.isfinite(dur))) or (onset + dur).max() > limit:
            raise MidiError("note times out of range (corrupt tempo map?)", name)
        if pedal and len(t.pedals):
            p = t.pedals.numpy()
            ps = p["time"].astype(np.float64) * 1000.0
            pe = ps + p["duration"].astype(np.float64) * 1000.0
            if np.all(np.isfinite(ps)) and np.all(np.isfinite(pe)):
                dur = apply_pedal(onset, dur, ps, pe)
        ids = (np.int64(i) << 32) + np.arange(len(onset), dtype=np.int64)
        parts.append((onset, dur, a["pitch"], a["velocity"], ids))
    onset = np.concatenate([p[0] for p in parts])
    dur = np.concatenate([p[1] for p in parts])
    if (onset + dur).max() > limit:
        raise MidiError("note times out of range (corrupt tempo map?)", name)
    onset = np.round(onset).astype(np.int64)
    dur = np.maximum(1, np.round(dur)).astype(np.int64)
    pitch = fold_to_piano(np.concatenate([p[2] for p in parts]).astype(np.int32))
    vel = np.clip(np.concatenate([p[3] for p in parts]), 1, 127)
    onset, dur, pitch, vel, ids = resolve_overlaps(onset, dur, pitch, vel, np.concatenate([p[4] for p in parts]))
    return MidiSource(Notes(onset, dur, pitch, vel, _tempo_map(sec)), ids, score)


# -------------------------------------------------------------------- helpers
def _is_sorted(onset: np.ndarray, pitch: np.ndarray) -> bool:
    d = np.diff(onset)
    return bool(np.all((d > 0) | ((d == 0) & (np.diff(pitch) >= 0))))


def _short(e: Exception) -> str:
    msg = " ".join(str(e).split())
    return msg[:120] or type(e).__name__


def _read_bytes(source: PathLike | bytes, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        p = Path(source)
        if not p.exists():
            raise MidiError("no such file", name)
        if p.is_dir():
            raise MidiError("is a folder, not a MIDI file", name)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise MidiError(f"cannot read ({e.strerror})", name) from None
    if not data:
        raise MidiError("empty file", name)
    if data[:4] != b"MThd" and not (data[:4] == b"RIFF" and b"MThd" in data[:64]):
        raise MidiError("not a MIDI file (no MThd header)", name)
    return data


def fold_to_piano(pitch: np.ndarray) -> np.ndarray:
    """Move pitches outside the piano's 21–108 into range by whole octaves."""
    p = np.asarray(pitch, dtype=np.int32).copy()
    low = p < PIANO_LOW
    p[low] += 12 * ((PIANO_LOW - p[low] + 11) // 12)
    high = p > PIANO_HIGH
    p[high] -= 12 * ((p[high] - PIANO_HIGH + 11) // 12)
    return p.astype(np.int16)


def apply_pedal(onset: np.ndarray, dur: np.ndarray, ped_start: np.ndarray, ped_end: np.ndarray) -> np.ndarray:
    """Extend each note that ends strictly inside a pedal-down interval to that interval's end."""
    order = np.argsort(ped_start, kind="stable")
    ps, pe = ped_start[order], ped_end[order]
    end = onset + dur
    i = np.searchsorted(ps, end, side="left") - 1
    ok = i >= 0
    inside = np.zeros(len(end), dtype=bool)
    inside[ok] = end[ok] < pe[i[ok]]
    new_end = np.where(inside, pe[np.maximum(i, 0)], end)
    return new_end - onset


def resolve_overlaps(onset, dur, pitch, vel, ids=None):
    """Sort by (onset, pitch); cut a note where the next note of its pitch starts; drop exact repeats.
    `ids`, one per note, ride along (and are returned as a fifth array) when given."""
    order = np.lexsort((onset, pitch))
    o, d = onset[order].astype(np.int64), dur[order].astype(np.int64)
    p, v = pitch[order], vel[order]
    same_next = np.append(p[:-1] == p[1:], False)
    nxt = np.append(o[1:], np.iinfo(np.int64).max)
    cut = same_next & (o + d > nxt)
    d = np.where(cut, nxt - o, d)
    # A note cut to nothing started together with its twin: keep the twin only.
    keep = d > 0
    o, d, p, v = o[keep], d[keep], p[keep], v[keep]
    if ids is None:
        return _sorted(o, d, p, v)
    i = np.asarray(ids)[order][keep]
    s = np.lexsort((p, o))
    return o[s], d[s], p[s], v[s], i[s]


def _tempo_map(score) -> TempoMap:
    tempos = [(t.time * 1000.0, t.qpm) for t in score.tempos]
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0.0, 120.0))
    sigs = [(s.time * 1000.0, s.numerator, s.denominator) for s in score.time_signatures]
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0.0, 4, 4))
    ta = np.array(tempos, dtype=np.float64)
    sa = np.array(sigs, dtype=np.float64)
    qpm = np.clip(ta[:, 1], 1.0, 1000.0)
    return TempoMap(ta[:, 0], qpm, sa[:, 0], sa[:, 1:].astype(np.int32), int(score.tpq) or 480)


def is_midi_path(path: PathLike) -> bool:
    return str(path).lower().endswith(MIDI_SUFFIXES)

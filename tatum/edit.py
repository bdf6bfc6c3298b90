"""A result written as an edit of its source MIDI file, so that what tatum did not change is exactly
what the user gave it.

tatum reads a file as one piano stream (tracks merged, drums left out, the pedal folded into the
durations). Writing that stream back would move every note to the nearest tick of a new tempo map and
throw the other tracks away. Instead, `write_edit` starts from the source score itself:

- each source note the result still holds (the same milliseconds, pitch and velocity) stays on its
  own track at its own ticks; one the result holds shortened (cut at the end of a prompt or of
  `--first`) stays there too, with its new end;
- the source's piano notes the result no longer holds (the rewritten windows) are left out;
- drum tracks stay as they were (up to `end_ms` when the result ends before the source);
- every new note goes on one more track, "tatum", in ticks of the source's own tempo map.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tatum.notes import MidiSource, Notes, read_midi

TRACK = "tatum"


@dataclass
class EditReport:
    kept: int = 0                       # source notes kept on their tracks (some shortened)
    new: int = 0                        # notes on the "tatum" track
    replaced: int = 0                   # source piano notes left out (rewritten or cut away)
    tracks: list[str] = field(default_factory=list)    # source tracks written back (with notes left)
    drums: list[str] = field(default_factory=list)     # of which drum tracks


def write_edit(source: str | os.PathLike | bytes | MidiSource, result: Notes, path: str | os.PathLike, *,
               end_ms: int | None = None) -> EditReport:
    """Write `result` over `source` (a MIDI file, its bytes, or what `read_midi` made of it) to `path`,
    atomically. See the module's docstring for what goes where."""
    from symusic import Note, Track

    src = source if isinstance(source, MidiSource) else read_midi(source)
    score = src.score.copy()
    tick = _tick_map(score)
    keep, new = _match(src, result)
    report = EditReport(new=int(len(new)))
    end_tick = None if end_ms is None else int(tick(np.array([end_ms], np.float64))[0])
    sec = score.to("second")
    for ti, track in enumerate(score.tracks):
        if not len(track.notes):
            continue
        a = track.notes.numpy()
        if track.is_drum:
            mask = np.ones(len(a["time"]), bool) if end_tick is None else a["time"] < end_tick
            report.drums.append(track.name or f"track {ti + 1}")
            durations = a["duration"]
        else:
            ids = (np.int64(ti) << 32) + np.arange(len(a["time"]), dtype=np.int64)
            mask = np.array([i in keep for i in ids.tolist()], dtype=bool)
            report.replaced += int((~mask).sum())
            durations = a["duration"].copy()
            start_s = sec.tracks[ti].notes.numpy()["time"]
            for j in np.flatnonzero(mask):
                short = keep[int(ids[j])]
                if short is not None:   # kept, ending earlier: the same start tick, a new end
                    end = tick(np.array([start_s[j] * 1000.0 + short], np.float64))[0]
                    durations[j] = max(1, int(end) - int(a["time"][j]))
            report.kept += int(mask.sum())
        track.notes = Note.from_numpy(time=a["time"][mask], duration=durations[mask], pitch=a["pitch"][mask],
                                      velocity=a["velocity"][mask])
        if len(track.notes):
            report.tracks.append(track.name or f"track {ti + 1}")
    if len(new):
        on = tick(new.onset_ms.astype(np.float64))
        off = tick(new.onset_ms.astype(np.float64) + new.dur_ms)
        program = next((t.program for t in score.tracks if not t.is_drum and len(t.notes)), 0)
        out = Track(name=TRACK, program=program)
        out.notes = Note.from_numpy(time=on.astype(np.int32), duration=np.maximum(1, off - on).astype(np.int32),
                                    pitch=new.pitch.astype(np.int8),
                                    velocity=np.clip(new.velocity, 1, 127).astype(np.int8))
        score.tracks.append(out)
    from tatum.io import write_atomic

    write_atomic(Path(path), score.dumps_midi())
    return report


def _match(src: MidiSource, result: Notes) -> tuple[dict[int, int | None], Notes]:
    """Source notes the result holds (id → None, or the shorter duration in ms it holds them with),
    and the result's other notes, the new ones."""
    exact: dict[tuple, list[int]] = defaultdict(list)
    loose: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    n = src.notes
    for o, d, p, v, i in zip(n.onset_ms.tolist(), n.dur_ms.tolist(), n.pitch.tolist(), n.velocity.tolist(),
                             src.ids.tolist()):
        exact[(o, d, p, v)].append(i)
        loose[(o, p, v)].append((d, i))
    keep: dict[int, int | None] = {}
    new = np.ones(len(result), dtype=bool)
    rows = list(zip(result.onset_ms.tolist(), result.dur_ms.tolist(), result.pitch.tolist(),
                    result.velocity.tolist()))
    for k, (o, d, p, v) in enumerate(rows):          # exact matches first, so none is taken loosely
        ids = exact.get((o, d, p, v))
        if ids:
            keep[ids.pop()] = None
            new[k] = False
    for k in np.flatnonzero(new):
        o, d, p, v = rows[k]
        longer = [i for dd, i in loose.get((o, p, v), ()) if dd > d and i not in keep]
        if longer:
            keep[longer[0]] = d
            new[k] = False
    return keep, result.select(new)


def _tick_map(score):
    """ms (float array) → ticks (int64) under the score's tempo map."""
    tpq = score.tpq
    tempos = sorted((t.time, t.qpm) for t in score.tempos) or [(0, 120.0)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0, 120.0))
    ticks = np.array([t for t, _ in tempos], np.float64)
    qpm = np.array([q for _, q in tempos], np.float64)
    ms_per_tick = 60_000.0 / (qpm * tpq)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * ms_per_tick[:-1])])

    def to_ticks(ms: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(starts, ms, side="right") - 1, 0, len(starts) - 1)
        return np.round(ticks[k] + (ms - starts[k]) / ms_per_tick[k]).astype(np.int64)
    return to_ticks

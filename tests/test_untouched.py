"""Issue 17 item 3: untouched is untouched. On a multi-track, multi-tempo file with drums and pedal,
notes outside the rewritten windows come back with their exact ticks, durations, velocities and
tracks; drums and the tempo map come back as they were; new notes sit on a track of their own. Through
the real command (a tiny random model: what is kept must not depend on what is generated) and the
Python API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from conftest import build_midi, tiny_checkpoint
from tatum.edit import TRACK, write_edit
from tatum.generate import tasks
from tatum.notes import Notes, read_midi
from tatum import tokenizer as tk

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "80"}
FIELDS = ("time", "duration", "pitch", "velocity")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("untouched-model") / "tiny")


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    """≈ 40 s, three tempos, 4/4 then 3/4, two piano tracks (one with the sustain pedal) and drums, onsets
    off any grid (odd ticks) and velocities that are no velocity bin's centre."""
    q = 480
    rh = [(i * 229 + 11, 180 + i % 7, 60 + (i * 5) % 19, 21 + (i * 13) % 100) for i in range(150)]
    lh = [(i * 487 + 3, 430, 36 + (i * 7) % 12, 67 + i % 5) for i in range(70)]
    drums = [(i * q // 2 + 1, 50, 42 + 4 * (i % 2), 99) for i in range(140)]
    pedal = [(0, 64, 127), (1900, 64, 0), (2000, 64, 110), (5000, 64, 0)]
    path = tmp_path_factory.mktemp("untouched") / "song.mid"
    path.write_bytes(build_midi([{"notes": rh, "name": "RH", "controls": pedal}, {"notes": lh, "name": "LH"},
                                 {"notes": drums, "name": "Drums", "drum": True}],
                                tempos=((0, 96.0), (8 * q, 133.0), (40 * q, 71.5)), timesigs=((0, 4, 4), (16 * q, 3, 4))))
    return path


def tatum(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


def tracks(path: Path) -> dict[str, dict[str, np.ndarray]]:
    score = Score(str(path))
    sec = score.to("second")
    out = {}
    for t, s in zip(score.tracks, sec.tracks):
        a = t.notes.numpy()
        out[t.name] = {k: a[k] for k in FIELDS} | {"ms": s.notes.numpy()["time"] * 1000.0,
                                                  "controls": len(t.controls)}
    return out


def rows(track: dict, mask=None) -> set[tuple]:
    mask = np.ones(len(track["time"]), bool) if mask is None else mask
    return set(zip(*(track[k][mask].tolist() for k in FIELDS)))


def test_improvise_keeps_the_untouched_notes_tick_exact_on_their_tracks(song, ckpt, tmp_path):
    out = tmp_path / "out.mid"
    r = tatum("improvise", song, "-o", out, "--model", ckpt, "--seed", 1, "--plan", "skyline:1,whole_mask:1",
              "--preserve-structure", 0)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "new notes on track 'tatum'" in r.stderr and "Drums (drums)" in r.stderr
    before, after = tracks(song), tracks(out)
    assert list(after) == ["RH", "LH", "Drums", TRACK]
    first = min(float(t["ms"].min()) for name, t in before.items() if name != "Drums")
    last = first + 5000 * (len(tk.split_segments(Notes.from_midi(song))) - 1)   # the last window is kept too
    rewritten = set()
    for name in ("RH", "LH"):
        early = before[name]["ms"] < first + 10_000 - 5           # the kept first 10 s (--keep-first)
        assert early.sum() > 10
        assert rows(before[name], early) <= rows(after[name]), name         # exact ticks, lengths, velocities
        late = (before[name]["ms"] >= first + 10_000) & (before[name]["ms"] < last)
        rewritten |= rows(before[name], late) - rows(after[name])
        assert rows(before[name], before[name]["ms"] >= last + 5) <= rows(after[name]), name
    assert len(rewritten) > 10     # the middle was rewritten (all but the tune, which the skyline passes keep)
    assert rows(before["Drums"]) == rows(after["Drums"])                   # drums as they were
    assert after["RH"]["controls"] == before["RH"]["controls"]             # the pedal too
    src, res = Score(str(song)), Score(str(out))
    assert [(t.time, t.mspq) for t in res.tempos] == [(t.time, t.mspq) for t in src.tempos]
    assert [(t.time, t.numerator, t.denominator) for t in res.time_signatures] == \
        [(t.time, t.numerator, t.denominator) for t in src.time_signatures]
    assert res.tpq == src.tpq
    new = after[TRACK]["ms"]
    assert len(new) and new.min() >= first + 10_000 - 5 and new.max() < last + 5


def test_continue_and_infill_keep_what_they_were_given(song, ckpt, tmp_path):
    r = tatum("continue", song, "-o", tmp_path / "cont.mid", "--model", ckpt, "--seed", 1, "--prompt-seconds", 20,
              "--seconds", 5)
    assert r.returncode == 0, r.stderr[-2000:]
    before, after = tracks(song), tracks(tmp_path / "cont.mid")
    for name in ("RH", "LH"):
        # notes of the prompt are kept as they were (these all end within a second, before its end);
        # one ringing past the prompt's end would keep its start tick and be cut there
        t = before[name]
        assert rows(t, t["ms"] < 19_000) <= rows(after[name])
    assert after["Drums"]["ms"].max() < 25_000 + 5                        # up to the end of the result
    r = tatum("infill", song, "-o", tmp_path / "fill.mid", "--model", ckpt, "--seed", 1, "--start", 10, "--end", 20)
    assert r.returncode == 0, r.stderr[-2000:]
    after = tracks(tmp_path / "fill.mid")
    for name in ("RH", "LH"):
        t = before[name]
        outside = (t["ms"] < 10_000) | (t["ms"] >= 20_000)
        assert rows(t, outside) == rows(after[name])
        assert not (after[name]["ms"] >= 10_000).__and__(after[name]["ms"] < 20_000).any()


def test_the_python_api_gives_back_the_input_notes_exactly(song, ckpt):
    notes = Notes.from_midi(song)
    model = tasks.get_model(str(ckpt))
    out = tasks.improvise(notes, plan="whole_mask:1", seed=2, preserve_structure=0, model=model)
    kept = notes.select(notes.onset_ms < notes.start_ms + 9_995)
    have = set(zip(out.onset_ms.tolist(), out.dur_ms.tolist(), out.pitch.tolist(), out.velocity.tolist()))
    assert set(zip(kept.onset_ms.tolist(), kept.dur_ms.tolist(), kept.pitch.tolist(), kept.velocity.tolist())) <= have
    # and written over the source, those notes are the file's own, on their tracks
    src = read_midi(song)
    assert len(src.ids) == len(src.notes) and len(set(src.ids.tolist())) == len(src.ids)


def test_write_edit_keeps_a_shortened_note_on_its_track(song, tmp_path):
    src = read_midi(song)
    n = src.notes
    cut = n.copy()
    cut.dur_ms = np.minimum(cut.dur_ms, 100).astype(np.int32)        # every note kept, but shorter
    report = write_edit(src, cut, tmp_path / "cut.mid")
    assert report.new == 0 and report.kept == len(n)
    before, after = tracks(song), tracks(tmp_path / "cut.mid")
    for name in ("RH", "LH"):
        assert np.array_equal(before[name]["time"], after[name]["time"])
        assert np.all(after[name]["duration"] <= before[name]["duration"])

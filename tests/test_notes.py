"""`Notes` and its MIDI I/O (DESIGN §1) on small files built here, a Bach chorale and PiJAMA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from symusic import Score

from tatum.errors import MidiError, TatumError
from tatum.notes import Notes, TempoMap, fold_to_piano, resolve_overlaps

# 480 ticks per quarter at 120 qpm: one tick is 500/480 ms, a quarter is 500 ms.
Q = 480


def rows(n: Notes) -> list[tuple[int, int, int, int]]:
    return list(zip(n.onset_ms.tolist(), n.dur_ms.tolist(), n.pitch.tolist(), n.velocity.tolist()))


def assert_sorted(n: Notes) -> None:
    keys = list(zip(n.onset_ms.tolist(), n.pitch.tolist()))
    assert keys == sorted(keys)


def assert_dtypes(n: Notes) -> None:
    assert n.onset_ms.dtype == np.int32 and n.dur_ms.dtype == np.int32
    assert n.pitch.dtype == np.int16 and n.velocity.dtype == np.int16


# --------------------------------------------------------------- loading
def test_type1_tracks_merged_drums_dropped_sorted(make_midi):
    data = make_midi([
        {"notes": [(Q, Q, 72, 90), (0, Q, 67, 80), (2 * Q, Q // 2, 76, 100)], "name": "RH"},
        {"notes": [(0, 2 * Q, 48, 70), (Q, Q, 55, 60)], "name": "LH", "program": 32},
        {"notes": [(0, 60, 36, 127), (Q, 60, 38, 127), (Q // 2, 60, 42, 127)], "drum": True},
    ])
    assert data[8:10] == b"\x00\x01" and data[10:12] == b"\x00\x03"  # format 1, three tracks
    n = Notes.from_midi(data)
    assert_dtypes(n)
    assert_sorted(n)
    assert rows(n) == [(0, 1000, 48, 70), (0, 500, 67, 80), (500, 500, 55, 60), (500, 500, 72, 90),
                       (1000, 250, 76, 100)]
    assert 36 not in n.pitch and 42 not in n.pitch


def test_type0_channels_merged_channel9_dropped(make_type0):
    build, note, tempo = make_type0
    events = [tempo(0, 120)]
    events += note(0, Q, Q, 64, 90) + note(0, 0, Q, 60, 100)       # channel 1 (0-based 0)
    events += note(1, 0, 2 * Q, 43, 70) + note(1, Q, Q, 47, 75)    # channel 2
    events += note(9, 0, 60, 36, 120) + note(9, Q // 2, 60, 35, 120)  # channel 10: drums
    data = build(events)
    assert data[8:10] == b"\x00\x00" and data[10:12] == b"\x00\x01"  # format 0, one track
    n = Notes.from_midi(data)
    assert_dtypes(n)
    assert_sorted(n)
    assert rows(n) == [(0, 1000, 43, 70), (0, 500, 60, 100), (500, 500, 47, 75), (500, 500, 64, 90)]


def test_from_midi_accepts_path_and_bytes(tmp_path, small_midi):
    p = tmp_path / "song.mid"
    p.write_bytes(small_midi)
    a, b = Notes.from_midi(p), Notes.from_midi(small_midi)
    assert rows(a) == rows(b) and len(a) == 60


def test_only_drums_and_no_notes_are_errors(make_midi):
    with pytest.raises(MidiError, match="only drum tracks"):
        Notes.from_midi(make_midi([{"notes": [(0, 60, 36, 100)], "drum": True}]))
    with pytest.raises(MidiError, match="no notes"):
        Notes.from_midi(make_midi([{"notes": []}]))


def test_bad_paths_raise_midi_error(tmp_path):
    assert issubclass(MidiError, TatumError)
    cases = {"missing.mid": None, "folder.mid": "dir", "empty.mid": b"", "text.mid": b"not a midi file\n"}
    for name, content in cases.items():
        p = tmp_path / name
        if content == "dir":
            p.mkdir()
        elif content is not None:
            p.write_bytes(content)
        with pytest.raises(MidiError) as e:
            Notes.from_midi(p)
        assert e.value.path == str(p) and "\n" not in str(e.value)


def test_a_zero_tempo_before_the_notes_end_is_refused(make_type0):
    build, note, _ = make_type0
    notes = [e for i in range(8) for e in note(0, i * Q, Q // 2, 60 + i, 80)]
    with pytest.raises(MidiError, match=r"a tempo of 0 µs per quarter note \(tick 0\): no time in it"):
        Notes.from_midi(build([(0, b"\xff\x51\x03\x00\x00\x00")] + notes))
    ok = Notes.from_midi(build([(8 * Q, b"\xff\x51\x03\x00\x00\x00")] + notes))   # after the last note: harmless
    assert len(ok) == 8


def test_pitches_outside_piano_fold_by_octaves(make_midi):
    n = Notes.from_midi(make_midi([{"notes": [(0, Q, 10, 80), (Q, Q, 120, 80), (2 * Q, Q, 0, 80),
                                               (3 * Q, Q, 127, 80), (4 * Q, Q, 21, 80), (5 * Q, Q, 108, 80)]}]))
    assert n.pitch.tolist() == [22, 108, 24, 103, 21, 108]


@given(st.lists(st.integers(-300, 400), max_size=50))
@settings(max_examples=100, deadline=None, derandomize=True)
def test_fold_to_piano_properties(pitches):
    p = np.array(pitches, dtype=np.int32)
    f = fold_to_piano(p).astype(np.int32)
    assert f.dtype == np.int32 and len(f) == len(p)
    assert np.all((f >= 21) & (f <= 108))
    assert np.all((f - p) % 12 == 0)
    inside = (p >= 21) & (p <= 108)
    assert np.array_equal(f[inside], p[inside])
    # the smallest move: a folded note is within an octave of the edge it came over
    assert np.all(f[p < 21] < 33) and np.all(f[p > 108] > 96)


# -------------------------------------------------------------- sustain pedal
def test_sustain_pedal_extends_notes_released_while_down(make_midi):
    pedal = [(0, 64, 127), (2 * Q, 64, 0), (4 * Q, 64, 90), (6 * Q, 64, 20)]   # down 0–1000, 2000–3000 ms
    notes = [
        (0, Q // 2, 60, 80),          # ends at 250 ms inside the first pedal → 1000 ms
        (0, 3 * Q, 64, 80),           # ends at 1500 ms, after the release → untouched
        (3 * Q, Q // 2, 67, 80),      # 1500–1750 ms, pedal up → untouched
        (3 * Q, Q, 69, 80),           # ends exactly at the second press (2000 ms) → untouched
        (5 * Q, Q // 4, 72, 80),      # 2500–2625 inside the second pedal → to 3000
        (7 * Q, Q // 2, 74, 80),      # after both pedals
    ]
    data = make_midi([{"notes": notes, "controls": pedal}])
    with_pedal = Notes.from_midi(data)
    raw = Notes.from_midi(data, pedal=False)
    assert rows(raw) == [(0, 250, 60, 80), (0, 1500, 64, 80), (1500, 250, 67, 80), (1500, 500, 69, 80),
                         (2500, 125, 72, 80), (3500, 250, 74, 80)]
    assert rows(with_pedal) == [(0, 1000, 60, 80), (0, 1500, 64, 80), (1500, 250, 67, 80),
                                (1500, 500, 69, 80), (2500, 500, 72, 80), (3500, 250, 74, 80)]


def test_pedal_restrike_cuts_the_held_note(make_midi):
    # pitch 62 struck twice under one pedal: the first sounds until the second strike, the second until
    # the pedal lifts.
    data = make_midi([{"notes": [(0, 100, 62, 80), (Q, 100, 62, 90)], "controls": [(0, 64, 127), (4 * Q, 64, 0)]}])
    assert rows(Notes.from_midi(data)) == [(0, 500, 62, 80), (500, 1500, 62, 90)]


def test_pedal_applies_to_its_own_track_only(make_midi):
    data = make_midi([{"notes": [(0, Q // 2, 60, 80)], "controls": [(0, 64, 127), (4 * Q, 64, 0)]},
                      {"notes": [(0, Q // 2, 48, 80)], "program": 1}])
    assert rows(Notes.from_midi(data)) == [(0, 250, 48, 80), (0, 2000, 60, 80)]


def test_pedal_on_real_transcription(pijama_file):
    with_pedal, raw = Notes.from_midi(pijama_file), Notes.from_midi(pijama_file, pedal=False)
    assert len(with_pedal) == len(raw)
    # The pedal only lengthens notes; a re-strike cuts a held note back, but never below its raw length.
    assert with_pedal.dur_ms.sum() > raw.dur_ms.sum()
    assert np.array_equal(with_pedal.onset_ms, raw.onset_ms) and np.array_equal(with_pedal.pitch, raw.pitch)
    assert np.all(with_pedal.dur_ms >= raw.dur_ms)


# ------------------------------------------------------------- overlaps
def test_overlapping_same_pitch_cut_and_duplicates_collapse(make_midi):
    data = make_midi([
        {"notes": [(0, 2 * Q, 60, 80), (4 * Q, Q, 65, 80)]},
        {"notes": [(Q, Q // 2, 60, 90), (4 * Q, Q, 65, 80), (0, Q, 64, 70)], "program": 1},
        {"notes": [(4 * Q, Q, 65, 80)], "program": 2},
    ])
    assert rows(Notes.from_midi(data)) == [(0, 500, 60, 80), (0, 500, 64, 70), (500, 250, 60, 90),
                                           (2000, 500, 65, 80)]


def test_resolve_overlaps_directly():
    onset = np.array([100, 0, 0, 50, 300])
    dur = np.array([100, 500, 20, 10, 50])
    pitch = np.array([60, 60, 61, 60, 61])
    vel = np.array([1, 2, 3, 4, 5])
    o, d, p, v = resolve_overlaps(onset, dur, pitch, vel)
    assert list(zip(o.tolist(), d.tolist(), p.tolist(), v.tolist())) == [
        (0, 50, 60, 2), (0, 20, 61, 3), (50, 10, 60, 4), (100, 100, 60, 1), (300, 50, 61, 5)]


# ------------------------------------------------------------ tempo map & writing
def _tick_notes(data: bytes) -> dict[str, np.ndarray]:
    """All non-drum notes of a file in ticks, as symusic reads them, sorted by (tick, pitch)."""
    score = Score.from_midi(data)
    parts = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    a = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in ("time", "duration", "pitch", "velocity")}
    order = np.lexsort((a["pitch"], a["time"]))
    return {k: v[order] for k, v in a.items()}


def test_tempo_map_round_trip_keeps_ticks(make_midi):
    notes = [(i * 240 + (i % 3) * 7, 200 + 11 * (i % 5), 48 + i, 60 + i) for i in range(40)]
    src = make_midi([{"notes": notes}], tempos=((0, 100.0), (1920, 60.0)),
                    timesigs=((0, 3, 4), (2880, 6, 8)))
    n = Notes.from_midi(src)
    np.testing.assert_allclose(n.tempo.qpm, [100, 60], rtol=1e-5)
    np.testing.assert_allclose(n.tempo.tempo_ms, [0, 2400], atol=0.01)  # 4 quarters at 100 qpm
    np.testing.assert_allclose(n.tempo.timesig_ms, [0, 4400], atol=0.01)  # + 2 quarters at 60 qpm
    assert n.tempo.timesig.tolist() == [[3, 4], [6, 8]] and n.tempo.tpq == 480
    out = n.to_midi()
    a, b = _tick_notes(src), _tick_notes(out)
    assert len(a) == len(b)
    assert np.abs(a["time"] - b["time"]).max() <= 1
    assert np.abs(a["duration"] - b["duration"]).max() <= 1
    assert np.array_equal(a["pitch"], b["pitch"]) and np.array_equal(a["velocity"], b["velocity"])
    written = Score.from_midi(out)
    assert written.tpq == 480
    assert [t.time for t in written.tempos] == [0, 1920]
    np.testing.assert_allclose([t.qpm for t in written.tempos], [100, 60], rtol=1e-4)
    assert [(s.time, s.numerator, s.denominator) for s in written.time_signatures] == [(0, 3, 4), (2880, 6, 8)]


def test_chorale_round_trip_keeps_ticks(chorale):
    path, _ = chorale
    src = path.read_bytes()
    out = Notes.from_midi(src).to_midi()
    a, b = _tick_notes(src), _tick_notes(out)
    # Unison doublings between voices collapse to one note: compare the distinct (tick, pitch) keys.
    ka = sorted(set(zip(a["time"].tolist(), a["pitch"].tolist())))
    kb = list(zip(b["time"].tolist(), b["pitch"].tolist()))
    assert len(ka) == len(kb)
    # Notes keeps whole milliseconds: at 10080 ticks per quarter a millisecond is ~16 ticks, so the
    # written ticks agree to half a millisecond.
    score = Score.from_midi(src)
    assert Score.from_midi(out).tpq == score.tpq
    half_ms = score.tpq * score.tempos[0].qpm / 60_000 / 2
    assert max(abs(x[0] - y[0]) for x, y in zip(ka, kb)) <= half_ms + 1
    assert [x[1] for x in ka] == [y[1] for y in kb]


def test_chorale_note_count_matches_music21(chorale):
    path, score = chorale
    qpm = score.metronomeMarkBoundaries()[0][2].getQuarterBPM()
    keys = set()
    for part in score.parts:
        for el in part.flatten().notes:
            tie = None if el.isChord else el.tie
            if tie is not None and tie.type in ("continue", "stop"):
                continue  # music21 writes a tied chain as one MIDI note
            for p in el.pitches:
                keys.add((round(float(el.getOffsetInHierarchy(score)) * 60_000 / qpm), p.midi))
    raw = sum(len(t.notes) for t in Score.from_midi(path.read_bytes()).tracks)
    n = Notes.from_midi(path)
    assert len(score.parts) == 4 and raw > len(n)  # doubled unisons between voices collapse
    assert len(n) == len(keys)
    assert set(zip(n.onset_ms.tolist(), n.pitch.tolist())) == keys
    assert_dtypes(n)
    assert_sorted(n)


def test_to_midi_writes_atomically_and_reloads(tmp_path, small_midi):
    n = Notes.from_midi(small_midi)
    path = tmp_path / "out.mid"
    path.write_bytes(b"old content")
    data = n.to_midi(path)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mid"]
    back = Notes.from_midi(path, pedal=False)
    assert len(back) == len(n)
    assert np.abs(back.onset_ms - n.onset_ms).max() <= 1
    assert np.abs(back.dur_ms - n.dur_ms).max() <= 1
    assert np.array_equal(back.pitch, n.pitch) and np.array_equal(back.velocity, n.velocity)
    # into a folder that does not exist yet
    deep = tmp_path / "a" / "b" / "c.mid"
    n.to_midi(deep)
    assert deep.read_bytes() == data


def test_to_midi_failure_leaves_old_file_and_no_temp(tmp_path, small_midi, monkeypatch):
    path = tmp_path / "keep.mid"
    path.write_bytes(b"precious")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tatum.io.os.fsync", broken_fsync)
    with pytest.raises(OSError):
        Notes.from_midi(small_midi).to_midi(path)
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mid"]


def test_real_file_round_trip(pijama_file, tmp_path):
    n = Notes.from_midi(pijama_file)
    assert len(n) > 100 and n.tempo.tpq > 0
    back = Notes.from_midi(n.to_midi(tmp_path / "x.mid"), pedal=False)
    assert len(back) == len(n)
    assert np.abs(back.onset_ms - n.onset_ms).max() <= 1
    assert np.abs(back.dur_ms - n.dur_ms).max() <= 1
    assert np.array_equal(back.pitch, n.pitch)


def test_empty_notes_write_a_valid_file():
    data = Notes.empty().to_midi()
    with pytest.raises(MidiError, match="no notes"):
        Notes.from_midi(data)


def test_overlong_note_is_refused_or_kept_positive(make_type0):
    build, _, tempo = make_type0
    # 1 tick per quarter at the slowest MIDI tempo (16.8 s per quarter): a 200,000-tick note lasts
    # ≈ 3.4e9 ms, beyond int32 milliseconds.
    data = build([(0, b"\xff\x51\x03\xff\xff\xff"), (0, b"\x90\x3c\x64"), (200_000, b"\x80\x3c\x00")], tpq=1)
    try:
        n = Notes.from_midi(data)
    except MidiError:
        return
    assert np.all(n.dur_ms >= 1) and n.end_ms > n.start_ms


# ----------------------------------------------------------------- transforms
@pytest.fixture
def piece(make_midi) -> Notes:
    notes = [(i * Q, Q // 2, 60 + i, 64 + i) for i in range(8)] + [(0, 4 * Q, 48, 50), (4 * Q, 4 * Q, 43, 50)]
    return Notes.from_midi(make_midi([{"notes": notes}], tempos=((0, 120.0), (4 * Q, 60.0)),
                                     timesigs=((0, 4, 4),)), pedal=False)


def test_piece_fixture(piece):
    assert piece.onset_ms.tolist() == [0, 0, 500, 1000, 1500, 2000, 2000, 3000, 4000, 5000]
    assert piece.start_ms == 0 and piece.end_ms == 6000 and piece.duration_s == 6.0


def test_slice(piece):
    s = piece.slice(1000, 3000)
    assert s.onset_ms.tolist() == [1000, 1500, 2000, 2000]
    assert s.dur_ms.tolist() == [250, 250, 4000, 500]
    assert s.tempo is piece.tempo
    c = piece.slice(1000, 3000, clip=True)
    assert c.dur_ms.tolist() == [250, 250, 1000, 500]
    assert piece.slice(2999, 3000, clip=True).dur_ms.tolist() == []
    assert piece.slice(2000, 2001, clip=True).dur_ms.tolist() == [1, 1]
    assert len(piece.slice(6000, 9000)) == 0
    assert len(piece) == 10 and piece.dur_ms[5] == 4000  # the source is untouched


def test_shift(piece):
    s = piece.shift(250)
    assert (s.onset_ms - piece.onset_ms).tolist() == [250] * 10
    assert np.array_equal(s.dur_ms, piece.dur_ms) and np.array_equal(s.pitch, piece.pitch)
    # the tempo in force at time 0 stays there; the source's changes move with the notes
    np.testing.assert_allclose(s.tempo.tempo_ms, [0, 250, 2250], atol=0.01)
    np.testing.assert_allclose(s.tempo.qpm[0], s.tempo.qpm[1])
    back = piece.shift(-2500)
    assert back.onset_ms[0] == -2500 and back.onset_ms[-1] == 2500
    # the tempo in force at the new time 0 (60 qpm since 2000 ms) stands at time 0
    np.testing.assert_allclose(back.tempo.tempo_ms, [0.0])
    np.testing.assert_allclose(back.tempo.qpm, [60.0], rtol=1e-5)
    assert back.tempo.timesig.tolist() == [[4, 4]] and back.tempo.timesig_ms.tolist() == [0.0]


def test_shift_later_keeps_initial_tempo_at_zero(piece):
    s = piece.shift(1000)
    assert s.tempo.tempo_ms[0] == 0 and s.tempo.qpm[0] == pytest.approx(120.0)  # piece starts at 120
    slow = piece.stretch(2.0).shift(1000)  # starts at 60 qpm
    written = Score.from_midi(slow.to_midi())
    assert written.tempos[0].time == 0 and written.tempos[0].qpm == pytest.approx(60.0, rel=1e-4)
    assert written.time_signatures[0].time == 0


def test_transpose(piece):
    up = piece.transpose(2)
    assert (up.pitch - piece.pitch).tolist() == [2] * 10 and up.pitch.dtype == np.int16
    assert Notes([0, 0], [10, 10], [22, 100], [64, 64]).transpose(-5).pitch.tolist() == [29, 95]
    assert Notes([0], [10], [100], [64]).transpose(12).pitch.tolist() == [100]
    assert_sorted(Notes([0, 0], [10, 10], [22, 100], [64, 64]).transpose(-5))


def test_stretch(piece):
    s = piece.stretch(2.0)
    assert s.onset_ms.tolist() == [2 * x for x in piece.onset_ms.tolist()]
    assert s.dur_ms.tolist() == [2 * x for x in piece.dur_ms.tolist()]
    np.testing.assert_allclose(s.tempo.qpm, piece.tempo.qpm / 2, rtol=1e-6)
    np.testing.assert_allclose(s.tempo.tempo_ms, piece.tempo.tempo_ms * 2)
    assert Notes([0], [1], [60], [64]).stretch(0.1).dur_ms.tolist() == [1]
    with pytest.raises(ValueError):
        piece.stretch(0)
    # The tempo follows: the stretched file has the notes on the same ticks as the original.
    a, b = _tick_notes(piece.to_midi()), _tick_notes(s.to_midi())
    assert np.abs(a["time"] - b["time"]).max() <= 1


def test_concatenate(piece):
    a, b = piece.slice(0, 1000), piece.slice(4000, 6000)
    c = Notes.concatenate([a, Notes.empty(), b], gap_ms=100)
    # a ends at 2000 ms (the 4-quarter bass note); b starts 100 ms later
    assert c.onset_ms.tolist() == [0, 0, 500, 2100, 3100]
    assert c.dur_ms.tolist() == a.dur_ms.tolist() + b.dur_ms.tolist()
    assert c.pitch.tolist() == a.pitch.tolist() + b.pitch.tolist()
    assert c.tempo is a.tempo
    assert len(Notes.concatenate([])) == 0
    assert len(Notes.concatenate([Notes.empty(), Notes.empty()])) == 0
    back_to_back = Notes.concatenate([b, b])
    assert back_to_back.onset_ms.tolist() == [4000, 5000, 5500, 6500]


def test_merge(piece):
    top = Notes([250, 5000], [100, 100], [90, 91], [100, 100], TempoMap(qpm=np.array([90.0])))
    m = Notes.merge([piece, top])
    assert len(m) == 12
    assert_sorted(m)
    assert set(rows(top)) <= set(rows(m)) and set(rows(piece)) <= set(rows(m))
    assert m.tempo is piece.tempo
    assert len(Notes.merge([])) == 0


def test_constructor_sorts_and_checks():
    n = Notes([30, 10, 10], [1, 2, 3], [60, 64, 62], [1, 2, 3])
    assert rows(n) == [(10, 3, 62, 3), (10, 2, 64, 2), (30, 1, 60, 1)]
    assert_dtypes(n)
    with pytest.raises(ValueError):
        Notes([0, 1], [1], [60], [64])
    assert len(Notes.empty()) == 0 and Notes.empty().duration_s == 0.0
    sel = n.select(n.pitch > 61)
    assert sel.pitch.tolist() == [62, 64]

"""Token format version 1 (DESIGN §2): vocabulary layout, encode/decode round trips, controls."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tatum import tokenizer as tk
from tatum.errors import TatumError
from tatum.notes import Notes
from tatum.tokenizer import (
    BOS,
    DUR0,
    EOS,
    MASK,
    NOTE_END,
    ONSET0,
    PAD,
    PV0,
    SEP,
    T,
    Tokenizer,
    decode,
    decode_segment,
    density_bucket,
    encode,
    encode_segment,
    mean_polyphony,
    polyphony_bucket,
    pv_token,
    split_segments,
)

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)
DUR_MIN, DUR_MAX = 10, 5000


# ---------------------------------------------------------------- vocabulary
def test_fixed_layout_matches_token_names():
    tok = Tokenizer()
    assert tok.tokens[:9] == ["PAD", "BOS", "EOS", "SEP", "T", "MASK", "ONSET_MASK", "DUR_MASK", "PV_MASK"]
    assert [tok.id(s) for s in ("PAD", "BOS", "EOS", "SEP", "T", "MASK")] == [PAD, BOS, EOS, SEP, T, MASK]
    assert tok.id("onset:0") == ONSET0 == 9
    assert tok.id("onset:4990") == DUR0 - 1
    assert tok.id("dur:10") == DUR0 == ONSET0 + 500
    assert tok.id("dur:5000") == PV0 - 1
    assert tok.id("pv:21:0") == PV0 == DUR0 + 500
    assert tok.id("pv:21:7") == PV0 + 7 and tok.id("pv:22:0") == PV0 + 8
    assert tok.id("pv:108:7") == NOTE_END - 1 == PV0 + 88 * 8 - 1
    assert tok.tokens[NOTE_END] == "corrupt:pitch_velocity_mask"
    assert pv_token(np.array([60]), np.array([100]))[0] == tok.id("pv:60:6")
    assert pv_token(np.array([108]), np.array([127]))[0] == tok.id("pv:108:7")
    assert len(tok) == tok.vocab_size == len(set(tok.tokens))
    # the style part follows the note tokens: corruptions, genres, artists, other, NULL_STYLE, controls
    for name in ("genre:classical", "genre:jazz", "genre:pop", "artist:other", "NULL_STYLE",
                 "density:0", "density:7", "density:any", "poly:0", "poly:5", "poly:any"):
        assert tok.id(name) >= NOTE_END
    assert not tok.has("density:8") and not tok.has("poly:6")
    with pytest.raises(TatumError, match="unknown token"):
        tok.id("onset:5000")


def test_layout_is_independent_of_the_style_vocabulary():
    a, b = Tokenizer(), Tokenizer(artists=["Art Tatum", "Bill Evans"], genres=["jazz"])
    assert a.tokens[:NOTE_END] == b.tokens[:NOTE_END]
    assert b.artist_id("Bill Evans") == b.id("artist:Bill Evans") != b.artist_id("Oscar Peterson")


def test_save_load_round_trip(tmp_path):
    tok = Tokenizer(artists=["Art Tatum", "Bill Evans"])
    path = tmp_path / "vocab.json"
    tok.save(path)
    d = json.loads(path.read_text())
    assert d["format_version"] == 1 and d["grid_ms"] == 10 and d["segment_ms"] == 5000
    assert d["pitch_range"] == [21, 108] and d["tokens"] == tok.tokens
    back = Tokenizer.load(path)
    assert back.tokens == tok.tokens and back.artists == tok.artists and back.genres == tok.genres
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # written atomically, no temp left


def test_load_refuses_other_format_and_bad_files(tmp_path):
    path = tmp_path / "vocab.json"
    Tokenizer(artists=["Art Tatum"]).save(path)
    d = json.loads(path.read_text())
    for version in (2, 0, None):
        path.write_text(json.dumps(d | {"format_version": version}))
        with pytest.raises(TatumError, match="format version") as e:
            Tokenizer.load(path)
        assert e.value.path == str(path)
    path.write_text(json.dumps(d | {"tokens": d["tokens"][:-1]}))
    with pytest.raises(TatumError, match="does not match"):
        Tokenizer.load(path)
    path.write_text("{not json")
    with pytest.raises(TatumError, match="cannot read vocabulary"):
        Tokenizer.load(path)
    with pytest.raises(TatumError, match="cannot read vocabulary"):
        Tokenizer.load(tmp_path / "missing.json")


def test_repeated_names_are_refused():
    with pytest.raises(TatumError, match="repeated"):
        Tokenizer(artists=["Art Tatum", "Art Tatum"])
    with pytest.raises(TatumError, match="repeated"):
        Tokenizer(artists=["other"])


def test_default_vocabulary():
    tok = Tokenizer.default()
    assert tok.has("artist:Art Tatum") and "Art Tatum" in tok.artists
    assert tok.artist_id("Art Tatum") == tok.id("artist:Art Tatum")
    assert tok.artist_id("Nobody Inparticular") == tok.id("artist:other")
    assert tok.artist_id(None) == tok.genre_id(None) == tok.null_style == tok.id("NULL_STYLE")
    assert tok.genre_id("jazz") == tok.id("genre:jazz")
    with pytest.raises(TatumError) as e:
        tok.genre_id("polka")
    assert "polka" in str(e.value) and "classical, jazz, pop" in str(e.value)
    with pytest.raises(TatumError, match="known: pitch_velocity_mask"):
        tok.corruption_id("shuffle")
    assert tok.corruption_id("skyline") == tok.id("corrupt:skyline")
    assert tok.density_id(None) == tok.id("density:any") and tok.density_id(3) == tok.id("density:3")
    assert tok.polyphony_id(None) == tok.id("poly:any") and tok.polyphony_id(5) == tok.id("poly:5")
    assert tok.tokens[:NOTE_END] == Tokenizer().tokens[:NOTE_END]
    assert Tokenizer.encode is encode and Tokenizer.decode is decode


# ------------------------------------------------------------- round trips
def matched(src: Notes, back: Notes, origin: int):
    """Pair source and decoded notes: both as (onset, dur, pitch, velocity) arrays in order of
    (grid onset, pitch, grid duration, velocity bin)."""
    q = np.round((src.onset_ms.astype(np.int64) - origin) / 10)
    dq = np.clip(np.round(src.dur_ms / 10), 1, 500)
    i = np.lexsort((tk.vel_bin(src.velocity), dq, src.pitch, q))
    bq = (back.onset_ms.astype(np.int64) - origin) // 10
    j = np.lexsort((tk.vel_bin(back.velocity), back.dur_ms, back.pitch, bq))
    cols = lambda n, k: [a[k].astype(np.int64) for a in (n.onset_ms, n.dur_ms, n.pitch, n.velocity)]
    return cols(src, i), cols(back, j)


def assert_round_trip(src: Notes, ids: np.ndarray, origin: int | None = None) -> None:
    origin = src.start_ms if origin is None else origin
    back = decode(ids, origin_ms=origin)
    assert len(back) == len(src)
    (o, d, p, v), (bo, bd, bp, bv) = matched(src, back, origin)
    assert np.array_equal(p, bp)
    assert np.abs(o - bo).max(initial=0) <= 5
    assert np.abs(np.clip(d, DUR_MIN, DUR_MAX) - bd).max(initial=0) <= 5
    assert np.abs(v - bv).max(initial=0) <= 8


note_rows = st.lists(st.tuples(st.one_of(st.integers(0, 60_000), st.integers(0, 40)), st.integers(DUR_MIN, DUR_MAX),
                               st.integers(21, 108), st.integers(1, 127)), max_size=120)


def to_notes(rows) -> Notes:
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return Notes(a[:, 0], a[:, 1], a[:, 2], a[:, 3])


@given(note_rows, st.integers(0, 100_000))
@SETTINGS
def test_round_trip_synthetic(rows, offset):
    src = to_notes(rows).shift(offset) if rows else to_notes(rows)
    ids = encode(src)
    assert ids.dtype == np.int64
    assert_round_trip(src, ids)
    # grammar: note tokens come in onset, dur, pv triples; only T separates them
    notes_only = ids[ids != T]
    assert len(notes_only) == 3 * len(src)
    assert np.all(tk.token_kind(notes_only) == np.tile([0, 1, 2], len(src)))
    if len(src):
        span = (src.onset_ms.max() - src.start_ms + 5) // 5000  # windows after the first (±5 ms)
        assert abs(int((ids == T).sum()) - span) <= 1
        assert ids[0] != T and ids[-1] != T


def test_round_trip_exact_on_grid():
    src = Notes([0, 0, 4990, 5000, 23_450], [10, 5000, 20, 30, 1230], [21, 108, 60, 61, 62], [8, 120, 24, 40, 56])
    back = decode(encode(src))
    assert [tuple(r) for r in zip(back.onset_ms, back.dur_ms, back.pitch, back.velocity)] == \
           [tuple(r) for r in zip(src.onset_ms, src.dur_ms, src.pitch, src.velocity)]


def test_long_gap_keeps_empty_windows():
    src = Notes([1000, 1100, 13_000], [100, 100, 100], [60, 64, 67], [64, 64, 64])
    ids = encode(src)
    # windows: [1000, 6000) holds two notes, [6000, 11000) is empty, [11000, 16000) holds one
    assert ids.tolist() == [ONSET0, DUR0 + 9, pv_token(60, 64), ONSET0 + 10, DUR0 + 9, pv_token(64, 64),
                            T, T, ONSET0 + 200, DUR0 + 9, pv_token(67, 64)]
    back = decode(ids, origin_ms=1000)
    assert back.onset_ms.tolist() == [1000, 1100, 13_000]
    assert decode(ids).onset_ms.tolist() == [0, 100, 12_000]
    # an explicit origin before the first onset moves the windows
    ids0 = encode(src, origin_ms=0)
    assert (ids0 == T).sum() == 2 and decode(ids0).onset_ms.tolist() == [1000, 1100, 13_000]


def test_durations_clipped_to_format_range():
    src = Notes([0, 0, 0], [3, 7000, 5004], [60, 61, 62], [64, 64, 64])
    assert decode(encode(src)).dur_ms.tolist() == [10, 5000, 5000]


def test_velocity_bins():
    v = np.arange(1, 128)
    back = decode(encode(Notes(np.arange(127) * 20, np.full(127, 10), np.full(127, 60), v)))
    assert np.abs(back.velocity - v).max() <= 8
    assert set(back.velocity.tolist()) == {8, 24, 40, 56, 72, 88, 104, 120}


def test_empty():
    assert encode(Notes.empty()).tolist() == [] and len(decode([])) == 0
    assert split_segments(Notes.empty()) == [] and encode_segment(Notes.empty()).tolist() == []
    assert len(decode_segment([])) == 0


def test_out_of_range_pitches_fold_by_octaves():
    src = Notes([0, 0, 0], [100, 100, 100], [15, 60, 115], [64, 64, 64])
    assert decode(encode(src)).pitch.tolist() == [27, 60, 103]


def test_round_trip_every_pijama_val_file(pijama_val_files):
    t0 = time.perf_counter()
    total = 0
    for path in pijama_val_files:
        src = Notes.from_midi(path)
        ids = encode(src)
        try:
            assert_round_trip(src, ids)
        except AssertionError as e:
            raise AssertionError(f"{path}: {e}") from None
        total += len(src)
    assert len(pijama_val_files) >= 200 and total > 500_000
    assert time.perf_counter() - t0 < 30


# ------------------------------------------------------------------- segments
def assert_segments_agree(src: Notes, origin: int | None = None):
    segs = split_segments(src, origin)
    seg_ids = [encode_segment(s) for s in segs]
    joined = []
    for k, s in enumerate(seg_ids):
        if k:
            joined.append(T)
        joined.extend(s.tolist())
    assert joined == encode(src, origin).tolist()
    start = src.start_ms if origin is None else origin
    whole = decode(encode(src, origin), origin_ms=start)
    for k, (seg, ids) in enumerate(zip(segs, seg_ids)):
        assert np.all((seg.onset_ms >= 0) & (seg.onset_ms < 5000)) and np.all(seg.onset_ms % 10 == 0)
        back = decode_segment(ids)
        assert np.array_equal(back.onset_ms, seg.onset_ms) and np.array_equal(back.dur_ms, seg.dur_ms)
        assert np.array_equal(back.pitch, seg.pitch) and np.array_equal(back.velocity, seg.velocity)
        assert back.onset_ms.dtype == np.int32
        # a segment decoded in place is the same as that window of the whole decode
        window = whole.slice(start + 5000 * k, start + 5000 * (k + 1))
        assert np.array_equal(window.onset_ms - 5000 * k - start, back.onset_ms)
        assert np.array_equal(window.pitch, back.pitch)
    return segs


@given(note_rows)
@settings(max_examples=40, deadline=None, derandomize=True)
def test_segments_agree_with_encode_synthetic(rows):
    src = to_notes(rows)
    segs = assert_segments_agree(src)
    assert sum(len(s) for s in segs) == len(src)


def test_segments_agree_with_encode_real(pijama_file):
    src = Notes.from_midi(pijama_file)
    segs = assert_segments_agree(src.slice(0, 60_000))
    assert len(segs) >= 2
    # origin before the first note, as used for the trimmed PiJAMA performances
    assert_segments_agree(src.slice(src.start_ms + 7_000, src.start_ms + 40_000), origin=src.start_ms)


def test_decode_segment_ignores_t():
    ids = encode_segment(Notes([0, 250], [100, 100], [60, 62], [64, 64]))
    assert decode_segment([T, *ids.tolist(), T]).onset_ms.tolist() == [0, 250]


# ------------------------------------------------------------- malformed streams
def triple(onset_step: int, dur_step: int, pitch: int, vel: int = 64) -> list[int]:
    return [ONSET0 + onset_step, DUR0 + dur_step - 1, int(pv_token(pitch, vel))]


def test_decode_skips_broken_triples():
    good1, good2 = triple(0, 10, 60), triple(50, 20, 64)
    cases = {
        "orphan dur+pv before": [DUR0 + 3, PV0 + 10, *good1, *good2],
        "onset without the rest": [*good1, ONSET0 + 7, *good2],
        "onset, dur then a new onset": [*good1, ONSET0 + 7, DUR0 + 1, *good2],
        "two durations": [*good1[:2], DUR0 + 5, good1[2], *good2],
        "pv twice": [*good1, PV0 + 3, *good2],
        "reversed triple in the middle": [*good1, *triple(10, 5, 70)[::-1], *good2],
        "dangling end": [*good1, *good2, ONSET0, DUR0],
    }
    for name, ids in cases.items():
        back = decode(ids)
        kept = list(zip(back.onset_ms.tolist(), back.dur_ms.tolist(), back.pitch.tolist()))
        if name == "two durations":
            assert kept == [(500, 200, 64)], name
        else:
            assert kept == [(0, 100, 60), (500, 200, 64)], name


def test_decode_ignores_stray_specials_and_out_of_vocab_ids():
    good = triple(0, 10, 60) + triple(50, 20, 64)
    noisy = [BOS, PAD, *good[:3], SEP, MASK, EOS, *good[3:], NOTE_END, NOTE_END + 40, 99_999, -3, EOS, PAD]
    back = decode(noisy)
    assert back.onset_ms.tolist() == [0, 500] and back.pitch.tolist() == [60, 64]
    # T still separates windows in a stream that also has broken parts
    back = decode([*good[:3], ONSET0, T, *good[3:]])
    assert back.onset_ms.tolist() == [0, 5500]


@given(st.lists(st.integers(-5, NOTE_END + 60), max_size=300), st.integers(0, 10**6))
@settings(max_examples=150, deadline=None, derandomize=True)
def test_decode_never_raises(ids, origin):
    back = decode(ids, origin_ms=origin)
    assert len(back) <= sum(1 for i in ids if PV0 <= i < NOTE_END)
    if len(back):
        assert back.onset_ms.min() >= origin
        assert np.all((back.dur_ms >= 10) & (back.dur_ms <= 5000) & (back.dur_ms % 10 == 0))
        assert np.all((back.pitch >= 21) & (back.pitch <= 108))
        assert set(back.velocity.tolist()) <= {8, 24, 40, 56, 72, 88, 104, 120}
    seg = decode_segment(ids)
    assert len(seg) == len(decode([i for i in ids if i != T]))


# ------------------------------------------------------------------ controls
def test_density_bucket():
    assert density_bucket(0) == 0
    assert density_bucket(4) == 0            # 0.8 notes/s
    assert density_bucket(5) == 1            # exactly 1 note/s: the edge belongs to the upper bucket
    assert density_bucket(8) == 1 and density_bucket(9) == 2  # 1.6 and 1.8 notes/s
    assert density_bucket(159) == 6 and density_bucket(160) == 7 and density_bucket(10_000) == 7
    assert density_bucket(10, seconds=1.0) == 5 and density_bucket(3, seconds=0.0) == 7
    assert sorted({density_bucket(n) for n in range(400)}) == list(range(8))


def test_mean_polyphony_and_bucket():
    def notes(*spans):
        return Notes([s for s, _ in spans], [e - s for s, e in spans], [60 + i for i in range(len(spans))],
                     [64] * len(spans))

    assert mean_polyphony(Notes.empty()) == 0.0 and polyphony_bucket(Notes.empty()) == 0
    assert mean_polyphony(notes((0, 100))) == 1.0
    assert mean_polyphony(notes((0, 100), (100, 200))) == 1.0            # back to back
    assert mean_polyphony(notes((0, 100), (1000, 1100))) == 1.0          # silence does not count
    assert mean_polyphony(notes((0, 100), (0, 100))) == 2.0
    assert mean_polyphony(notes((0, 100), (50, 150))) == pytest.approx(4 / 3)
    from tatum.tokenizer import polyphony_rate

    assert polyphony_rate(Notes.empty()) == 0.0 and polyphony_rate(notes((0, 100), (100, 200))) == 0.0
    assert polyphony_rate(notes((0, 100), (50, 150))) == pytest.approx(1 / 3)  # 50 of 150 ms doubled
    assert polyphony_rate(notes((0, 100), (0, 100), (1000, 1100))) == pytest.approx(0.5)
    assert mean_polyphony(notes((0, 300), (100, 200), (100, 200))) == pytest.approx(500 / 300)
    assert polyphony_bucket(notes((0, 100))) == 0
    assert polyphony_bucket(notes((0, 100), (50, 150))) == 1             # 1.33
    assert polyphony_bucket(notes((0, 100), (0, 100))) == 2
    assert polyphony_bucket(notes(*[(0, 100)] * 3)) == 3
    assert polyphony_bucket(notes(*[(0, 100)] * 4)) == 4
    assert polyphony_bucket(notes(*[(0, 100)] * 5)) == 5
    assert polyphony_bucket(notes(*[(0, 100)] * 9)) == 5


def test_controls_on_real_music(pijama_file):
    segs = split_segments(Notes.from_midi(pijama_file))
    dens = [density_bucket(len(s)) for s in segs]
    poly = [polyphony_bucket(s) for s in segs]
    assert all(0 <= d <= 7 for d in dens) and all(0 <= p <= 5 for p in poly)
    assert len(set(dens)) > 1 and max(poly) >= 2  # jazz piano: varied density, chords under the pedal

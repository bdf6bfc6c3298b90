"""Properties of the nine corruptions (DESIGN §3) on random segments and on real PiJAMA music."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tatum import corruption
from tatum.corruption import CORRUPTIONS, corrupt, get, group_onsets, register, skyline_notes
from tatum.errors import TatumError
from tatum.notes import Notes
from tatum.tokenizer import (
    CORRUPTIONS as VOCAB_CORRUPTIONS,
    DUR_MASK,
    MASK,
    ONSET_MASK,
    PV_MASK,
    decode_segment,
    encode_segment,
    split_segments,
    token_kind,
    vel_bin,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FEW = settings(max_examples=60, deadline=None)

# Onsets drawn from a narrow range now and then, so that chords and near-chords are common.
note = st.tuples(st.one_of(st.integers(0, 499), st.integers(0, 12)), st.integers(1, 500),
                 st.integers(21, 108), st.integers(1, 127))
segments = st.lists(note, max_size=60).map(
    lambda rows: Notes(*(np.array([r[i] for r in rows], dtype=np.int64) * (10 if i < 2 else 1)
                         for i in range(4))))
seeds = st.integers(0, 2**32 - 1)


def rows(seg: Notes) -> list[tuple[int, int, int, int]]:
    """(onset, dur, pitch, velocity bin) per note, as the tokens see it."""
    return list(zip(seg.onset_ms.tolist(), seg.dur_ms.tolist(), seg.pitch.tolist(),
                    vel_bin(seg.velocity).tolist()))


def assert_grammatical(ids: np.ndarray) -> None:
    """Note triples in onset → dur → pv order (masks standing in their slots), sorted by (onset, pitch)."""
    assert ids.dtype == np.int64
    assert len(ids) % 3 == 0
    kind = token_kind(ids).astype(np.int64)
    kind[ids == ONSET_MASK], kind[ids == DUR_MASK], kind[ids == PV_MASK] = 0, 1, 2
    assert np.array_equal(kind, np.tile([0, 1, 2], len(ids) // 3))
    decoded = decode_segment(ids)
    if not np.isin(ids, [ONSET_MASK, DUR_MASK, PV_MASK]).any():
        assert len(decoded) == len(ids) // 3
        assert np.array_equal(encode_segment(decoded), ids)    # canonical: sorted, on the grid


def reference_skyline(seg: Notes) -> list[tuple]:
    """A plain-loop statement of the rule: top note of each group of onsets ≤ 50 ms after its first."""
    out, group = [], []
    for r in rows(seg):
        if group and r[0] - group[0][0] > 50:
            out.append(max(group, key=lambda x: x[2]))
            group = []
        group.append(r)
    if group:
        out.append(max(group, key=lambda x: x[2]))
    return sorted(out, key=lambda x: (x[0], x[2]))


# -------------------------------------------------------------- every corruption
@pytest.mark.parametrize("name", VOCAB_CORRUPTIONS)
@FEW
@given(seg=segments, seed=seeds)
def test_output_is_grammatical_and_deterministic(name, seg, seed):
    ids = corrupt(name, seg, np.random.default_rng(seed))
    if name == "whole_mask":
        assert ids.tolist() == [MASK]
    else:
        assert_grammatical(ids)
        if len(seg) == 0:
            assert len(ids) == 0
    assert np.array_equal(ids, corrupt(name, seg, np.random.default_rng(seed)))


def test_registry_matches_vocabulary():
    assert set(VOCAB_CORRUPTIONS) <= set(CORRUPTIONS)


@pytest.mark.parametrize("name", VOCAB_CORRUPTIONS)
def test_empty_segment(name):
    ids = corrupt(name, Notes.empty(), 0)
    assert ids.tolist() == ([MASK] if name == "whole_mask" else [])


# ------------------------------------------------------------------------ masks
@FEW
@given(seg=segments)
def test_masks_keep_every_note_and_the_other_attributes(seg):
    plain = encode_segment(seg)
    pv = corrupt("pitch_velocity_mask", seg, 0)
    od = corrupt("onset_duration_mask", seg, 0)
    assert len(pv) == len(od) == 3 * len(seg)
    assert np.all(pv[2::3] == PV_MASK) and np.array_equal(pv[0::3], plain[0::3])
    assert np.array_equal(pv[1::3], plain[1::3])
    assert np.all(od[0::3] == ONSET_MASK) and np.all(od[1::3] == DUR_MASK)
    assert np.array_equal(od[2::3], plain[2::3])


# ----------------------------------------------------------------- permutations
@FEW
@given(seg=segments, seed=seeds)
def test_permute_pitch_keeps_pitches_and_rhythm(seg, seed):
    out = decode_segment(corrupt("permute_pitch", seg, seed))
    assert Counter(out.pitch.tolist()) == Counter(seg.pitch.tolist())
    assert Counter((o, d, v) for o, d, _, v in rows(out)) == Counter((o, d, v) for o, d, _, v in rows(seg))


@FEW
@given(seg=segments, seed=seeds)
def test_permute_pitch_velocity_keeps_pitches_velocities_and_rhythm(seg, seed):
    out = decode_segment(corrupt("permute_pitch_velocity", seg, seed))
    assert Counter(out.pitch.tolist()) == Counter(seg.pitch.tolist())
    assert Counter(vel_bin(out.velocity).tolist()) == Counter(vel_bin(seg.velocity).tolist())
    assert Counter(zip(out.onset_ms.tolist(), out.dur_ms.tolist())) == \
        Counter(zip(seg.onset_ms.tolist(), seg.dur_ms.tolist()))


# ---------------------------------------------------------------- fragmentation
@FEW
@given(seg=segments.filter(len), seed=seeds)
def test_fragmentation_keeps_the_first_20_to_50_percent(seg, seed):
    n = len(seg)
    ids = corrupt("fragmentation", seg, seed)
    k = len(ids) // 3
    assert max(1, math.floor(0.2 * n)) <= k <= max(1, math.ceil(0.5 * n))
    assert np.array_equal(ids, encode_segment(seg)[: 3 * k])


def test_fragmentation_spans_its_range():
    seg = Notes(np.arange(100) * 40, np.full(100, 30), np.full(100, 60), np.full(100, 80))
    counts = {len(corrupt("fragmentation", seg, s)) // 3 for s in range(200)}
    assert min(counts) <= 25 and max(counts) >= 45 and counts <= set(range(20, 51))


# ------------------------------------------------------- incorrect_transposition
@FEW
@given(seg=segments, seed=seeds)
def test_incorrect_transposition_keeps_notes_in_range(seg, seed):
    out = decode_segment(corrupt("incorrect_transposition", seg, seed))
    assert len(out) == len(seg)
    assert np.array_equal(out.onset_ms, seg.onset_ms)
    assert np.all((out.pitch >= 21) & (out.pitch <= 108))
    assert Counter((o, d, v) for o, d, _, v in rows(out)) == Counter((o, d, v) for o, d, _, v in rows(seg))


def test_incorrect_transposition_moves_about_half_the_notes_by_1_to_5():
    n = 400
    seg = Notes(np.arange(n) * 10, np.full(n, 100), np.full(n, 60), np.full(n, 64))
    out = decode_segment(corrupt("incorrect_transposition", seg, 3))
    moved = np.abs(out.pitch.astype(int) - 60)
    assert np.all(moved <= 5)
    assert 0.4 < np.mean(moved > 0) < 0.6          # no zero offsets: every chosen note changes


def test_incorrect_transposition_at_the_keyboard_edges_still_changes_notes():
    for pitch in (21, 108):
        seg = Notes(np.arange(200) * 20, np.full(200, 10), np.full(200, pitch), np.full(200, 64))
        out = decode_segment(corrupt("incorrect_transposition", seg, 1))
        assert np.all((out.pitch >= 21) & (out.pitch <= 108))
        assert 0.4 < np.mean(out.pitch != pitch) < 0.6


# ---------------------------------------------------------------------- skyline
@FEW
@given(seg=segments)
def test_skyline_keeps_the_top_note_of_every_group(seg):
    out = decode_segment(corrupt("skyline", seg, 0))
    assert rows(out) == reference_skyline(seg)
    assert len(out) == (int(group_onsets(seg.onset_ms).max()) + 1 if len(seg) else 0)


def test_skyline_groups_from_the_first_onset_and_keeps_the_last_group():
    # 0, 30, 60 ms: 60 is more than 50 ms after the group's first note, so it starts a new group,
    # even though it is only 30 ms after the previous note. The last group is a chord.
    seg = Notes([0, 30, 60, 900, 900, 940], [100, 200, 300, 400, 500, 600], [60, 72, 50, 40, 64, 55],
                [30, 40, 50, 60, 70, 80])
    assert group_onsets(seg.onset_ms).tolist() == [0, 0, 1, 2, 2, 2]
    top = skyline_notes(seg)
    assert top.onset_ms.tolist() == [30, 60, 900]
    assert top.pitch.tolist() == [72, 50, 64]
    assert top.dur_ms.tolist() == [200, 300, 500]
    assert top.velocity.tolist() == [40, 50, 70]    # own velocity, not a fixed one


def test_skyline_of_a_single_note_is_that_note():
    seg = Notes([120], [50], [70], [99])
    assert np.array_equal(corrupt("skyline", seg, 0), encode_segment(seg))


def test_group_onsets_rejects_unsorted_input():
    with pytest.raises(ValueError):
        group_onsets(np.array([100, 0]))


# ------------------------------------------------------------ note_modification
@FEW
@given(seg=segments.filter(len), seed=seeds)
def test_note_modification_keeps_the_last_note(seg, seed):
    ids = corrupt("note_modification", seg, seed)
    assert_grammatical(ids)
    out = decode_segment(ids)
    last = (int(seg.onset_ms[-1]), int(seg.pitch[-1]))
    assert last in set(zip(out.onset_ms.tolist(), out.pitch.tolist()))
    assert np.all((out.pitch >= 21) & (out.pitch <= 108))
    assert np.all((out.onset_ms >= 0) & (out.onset_ms < 5000))
    assert np.all((out.dur_ms >= 10) & (out.dur_ms <= 5000))


def test_note_modification_deleted_notes_hand_their_duration_to_the_previous_kept_note():
    # Notes far apart (> 50 ms) and short (no insertion): deleting the middle one lengthens the first.
    seg = Notes([0, 1000, 2000], [100, 200, 300], [60, 62, 64], [64, 64, 64])
    seen = set()
    for seed in range(300):
        out = decode_segment(corrupt("note_modification", seg, seed))
        got = dict(zip(out.onset_ms.tolist(), out.dur_ms.tolist()))
        assert got[2000] == 300                       # the last note is never deleted
        seen.add(tuple(sorted(got)))
        if sorted(got) == [0, 2000]:
            assert got[0] == 300                      # 100 + the deleted 200
        if sorted(got) == [1000, 2000]:
            assert got[1000] == 200                   # nothing before the deleted first note
    assert {(0, 2000), (1000, 2000), (2000,), (0, 1000, 2000)} <= seen


def test_note_modification_does_not_lengthen_for_a_deleted_chord_tone():
    seg = Notes([0, 30, 2000], [100, 200, 300], [60, 64, 67], [64, 64, 64])
    for seed in range(200):
        out = decode_segment(corrupt("note_modification", seg, seed))
        got = dict(zip(out.onset_ms.tolist(), out.dur_ms.tolist()))
        if 0 in got:
            assert got[0] == 100


def test_note_modification_splits_long_notes():
    seg = Notes([0, 3000], [2000, 100], [60, 72], [64, 64])
    split = 0
    for seed in range(200):
        out = decode_segment(corrupt("note_modification", seg, seed))
        first = [i for i in range(len(out)) if out.onset_ms[i] == 0 and out.pitch[i] == 60]
        if len(out) == 3 and first and out.dur_ms[first[0]] == 1000:
            split += 1
            new = [i for i in range(len(out)) if i != first[0] and not (out.onset_ms[i] == 3000
                                                                         and out.pitch[i] == 72)]
            (i,) = new
            assert 0 <= out.onset_ms[i] < 3000 and out.onset_ms[i] % 10 == 0
            assert 1 <= abs(int(out.pitch[i]) - 60) <= 5
            assert 900 <= out.dur_ms[i] <= 1100
    assert split > 0


# --------------------------------------------------------------------- registry
def test_user_can_register_a_corruption(monkeypatch):
    monkeypatch.setattr(corruption, "CORRUPTIONS", dict(CORRUPTIONS))

    @register("drop_bass")
    def drop_bass(seg, rng):
        return encode_segment(seg.select(seg.pitch >= 48))

    seg = Notes([0, 0, 500], [100, 100, 100], [36, 60, 40], [64, 64, 64])
    assert len(corrupt("drop_bass", seg, 0)) == 3
    assert get("drop_bass") is drop_bass

    register("drop_bass", lambda seg, rng: [1, 2, 3])      # re-registering replaces
    assert corrupt("drop_bass", seg, 0).tolist() == [1, 2, 3]


def test_unknown_corruption_names_the_known_ones():
    with pytest.raises(TatumError, match="skyline"):
        corrupt("no_such_corruption", Notes.empty(), 0)


# ------------------------------------------------------------------- real music
@pytest.fixture(scope="module")
def real_segments():
    root = DATA / "pijama" / "midi_kong"
    files = sorted(root.rglob("*.midi")) if root.is_dir() else []
    if not files:
        pytest.skip(f"no PiJAMA MIDI under {root}")
    segs = [s for s in split_segments(Notes.from_midi(files[0])) if len(s)]
    assert segs
    return segs[:40]


@pytest.mark.parametrize("name", VOCAB_CORRUPTIONS)
def test_real_music(name, real_segments):
    rng = np.random.default_rng(0)
    for seg in real_segments:
        ids = corrupt(name, seg, rng)
        if name == "whole_mask":
            assert ids.tolist() == [MASK]
            continue
        assert_grammatical(ids)
        out = decode_segment(ids)
        if name == "skyline":
            assert rows(out) == reference_skyline(seg)
        if name == "note_modification":
            assert (int(seg.onset_ms[-1]), int(seg.pitch[-1])) in set(zip(out.onset_ms.tolist(),
                                                                          out.pitch.tolist()))
        if name in ("pitch_velocity_mask", "onset_duration_mask", "permute_pitch",
                    "permute_pitch_velocity", "incorrect_transposition"):
            assert len(ids) == 3 * len(seg)

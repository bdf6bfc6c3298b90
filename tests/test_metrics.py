"""tatum.evaluate.metrics on small pieces whose answers are worked out by hand in each test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tatum.evaluate import metrics as m
from tatum.notes import Notes

C, D, E, F, G, A, B = 60, 62, 64, 65, 67, 69, 71


def notes(*rows) -> Notes:
    """rows of (onset ms, duration ms, pitch[, velocity=100])."""
    rows = [r if len(r) == 4 else (*r, 100) for r in rows]
    o, d, p, v = zip(*rows)
    return Notes(np.array(o), np.array(d), np.array(p), np.array(v))


def chords(*pitch_sets, step_ms: int = 1000) -> Notes:
    """One chord per second, each held for the whole second."""
    return notes(*[(k * step_ms, step_ms, p) for k, ps in enumerate(pitch_sets) for p in ps])


# ------------------------------------------------------------------- rhythm
def test_note_density_counts_onsets_per_5_seconds():
    scale = notes((0, 1000, C), (1000, 1000, D), (2000, 1000, E), (3000, 1000, F))
    assert m.note_density(scale) == pytest.approx(5.0)                 # 4 notes in 4 s
    assert m.note_density(scale, seconds=10) == pytest.approx(2.0)     # 4 notes asked to fill 10 s
    assert m.note_density(Notes.empty()) == 0.0


def test_mean_ioi_treats_a_rolled_chord_as_one_onset():
    piece = notes((0, 100, C), (20, 100, E), (40, 100, G), (500, 100, D), (1500, 100, E))
    assert m.mean_ioi(piece) == pytest.approx(750.0)                   # gaps 500 and 1000
    assert math.isnan(m.mean_ioi(notes((0, 100, C), (30, 100, E))))    # one onset: no interval


# ------------------------------------------------------------- pitch classes
def test_pitch_class_histogram_weights_duration_and_velocity():
    piece = notes((0, 1000, C, 100), (0, 500, E, 100), (1000, 500, C + 12, 50))
    h = m.pitch_class_histogram(piece)
    # C: 1000·100 + 500·50 = 125 000; E: 500·100 = 50 000
    assert h[0] == pytest.approx(125 / 175) and h[4] == pytest.approx(50 / 175)
    assert h.sum() == pytest.approx(1.0) and np.count_nonzero(h) == 2
    h = m.pitch_class_histogram(piece, velocity=False)                 # C: 1500 ms, E: 500 ms
    assert h[0] == pytest.approx(0.75) and h[4] == pytest.approx(0.25)
    assert not m.pitch_class_histogram(Notes.empty()).any()


def test_pitch_class_kl_direction_and_smoothing():
    only_c = notes((0, 1000, C))
    c_and_d = notes((0, 1000, C), (1000, 1000, D))
    assert m.pitch_class_kl(only_c, only_c) == pytest.approx(0.0)
    # KL(P‖Q) with P = all C, Q = half C half D: log 2, up to the (tiny) smoothing.
    assert m.pitch_class_kl(only_c, c_and_d, eps=1e-9) == pytest.approx(math.log(2), abs=1e-6)
    # The other direction pays for D, where P has (almost) nothing: 0.5·log(0.5/ε') + 0.5·log(0.5/p_C).
    eps = 1e-3
    z = 1 + 12 * eps
    p_c, p_x = (1 + eps) / z, eps / z
    q_cd = (0.5 + eps) / z
    assert m.pitch_class_kl(c_and_d, only_c, eps=eps) == pytest.approx(
        q_cd * math.log(q_cd / p_c) + q_cd * math.log(q_cd / p_x) + 10 * p_x * math.log(p_x / p_x))
    assert m.pitch_class_kl(c_and_d, only_c) > 2.0 > m.pitch_class_kl(only_c, c_and_d)


def test_pctm_counts_consecutive_pitch_classes():
    tune = notes((0, 100, C), (100, 100, D), (200, 100, E), (300, 100, C + 12))
    t = m.pctm(tune)
    assert t[0, 2] == t[2, 4] == t[4, 0] == pytest.approx(1 / 3) and t.sum() == pytest.approx(1.0)
    assert m.pctm_cosine(tune, tune.transpose(12)) == pytest.approx(1.0)      # octaves: same classes
    backwards = notes((0, 100, C), (100, 100, E), (200, 100, D), (300, 100, C))
    assert m.pctm_cosine(tune, backwards) == pytest.approx(0.0)               # no transition shared
    # C→D alone shares one of three equally weighted transitions: (1/3) / (√3/3 · 1) = 1/√3.
    assert m.pctm_cosine(tune, notes((0, 100, C), (100, 100, D))) == pytest.approx(1 / math.sqrt(3))
    assert m.pctm_cosine(tune, notes((0, 100, C))) == 0.0


# -------------------------------------------------------------- texture
def test_polyphony_rate_over_sounding_steps_and_over_all_steps():
    piece = notes((0, 1000, C), (500, 500, E), (2000, 500, G))
    # Sounding 1500 ms (0–1000, 2000–2500), of which 500 ms (500–1000) with two notes.
    assert m.polyphony_rate(piece) == pytest.approx(1 / 3)
    # Over all 2500 ms from the first onset to the last end (ImprovNet's): 500 / 2500.
    assert m.polyphony_rate(piece, include_silence=True) == pytest.approx(0.2)
    assert m.mean_polyphony(piece) == pytest.approx((500 + 2 * 500 + 500) / 1500)


def test_distinct_chords_are_pitch_class_sets_of_onset_groups():
    piece = notes((0, 500, C), (10, 500, E), (30, 500, G),              # C major
                  (1000, 500, G - 12), (1000, 500, B - 12), (1000, 500, D),  # G major
                  (2000, 500, E), (2000, 500, G), (2000, 500, C + 12),  # C major again, inverted
                  (3000, 500, C), (3000, 500, E),                       # a dyad is no chord
                  (4000, 500, C), (4100, 500, E), (4200, 500, G))       # an arpeggio is no chord
    assert m.distinct_chords(piece) == 2
    assert m.distinct_chords(piece, min_classes=2) == 3


def test_rich_chord_share_counts_onsets_with_four_pitch_classes():
    piece = chords((C, E, G, B), (C, E, G))                             # Cmaj7, then C major
    assert m.rich_chord_share(piece) == pytest.approx(0.5)


# ---------------------------------------------------------- chroma and SSM
def test_chroma_measures_sounding_time_per_frame():
    c = m.chroma(notes((500, 1000, C), (0, 2000, E)), 0, 2000)
    assert c.shape == (2, 12)
    assert c[0, 0] == c[1, 0] == 500 and c[0, 4] == c[1, 4] == 1000


def test_chroma_ssm_and_its_correlation():
    c_maj, g_maj = (C, E, G), (G - 12, B - 12, D)
    abab = chords(c_maj, g_maj, c_maj, g_maj)
    ssm = m.chroma_ssm(abab)
    # C and G major share one of three equally held classes (G): cosine 1/3.
    assert ssm[0, 1] == pytest.approx(1 / 3) and ssm[0, 2] == pytest.approx(1.0)
    assert m.ssm_correlation(abab, abab.transpose(2)) == pytest.approx(1.0)   # same structure
    aabb = chords(c_maj, c_maj, g_maj, g_maj)
    # Upper triangles as "same chord" indicators: [0,1,0,0,1,0] vs [1,0,0,0,0,1], correlation −1/2.
    assert m.ssm_correlation(abab, aabb) == pytest.approx(-0.5)
    assert math.isnan(m.ssm_correlation(abab, chords(c_maj, c_maj, c_maj, c_maj)))


def test_chroma_r_follows_the_harmony_frame_by_frame():
    a = chords((C, E, G), (G, B, D))
    assert m.chroma_r(a, a.transpose(12), 0, 2000) == pytest.approx(1.0)
    # A tritone away every frame shares no class: indicator vectors of 3 of 12 classes, r = −1/3.
    assert m.chroma_r(a, a.transpose(6), 0, 2000) == pytest.approx(-1 / 3)


# ------------------------------------------------------------------ register
def test_bass_presence_and_median_pitch():
    piece = notes((0, 1000, 36), (0, 2000, C), (1500, 500, E))
    assert m.bass_presence(piece) == pytest.approx(0.5)                 # bass 1000 of 2000 ms
    assert m.bass_presence(notes((0, 1000, C))) == 0.0
    assert m.median_pitch(piece) == 60.0


# ----------------------------------------------------------------------- key
def test_key_of_a_c_major_cadence():
    cadence = chords((C, E, G), (F, A, C + 12), (G, B, D + 12), (C, E, G))
    assert m.estimate_key(cadence) == (0, "major")
    assert m.estimate_key(cadence.transpose(-3)) == (9, "major")       # A major
    assert m.same_key((0, "major"), (9, "minor")) and m.same_key((9, "minor"), (0, "major"))
    assert not m.same_key((0, "major"), (7, "major"))


def test_key_correlation_is_the_fit_estimate_key_maximises():
    cadence = chords((C, E, G), (F, A, C + 12), (G, B, D + 12), (C, E, G))
    fits = {(t, mode): m.key_correlation(cadence, (t, mode)) for t in range(12) for mode in ("major", "minor")}
    assert max(fits, key=fits.get) == m.estimate_key(cadence) == (0, "major")
    assert fits[(0, "major")] > 0.8 and fits[(6, "major")] < 0
    assert m.key_correlation(Notes.empty(), (0, "major")) == 0.0


def test_melody_kept_within_50_ms():
    melody = notes((0, 100, C), (500, 100, E), (1000, 100, G))
    result = notes((30, 100, C), (500, 100, E + 1), (1000, 100, G), (1000, 100, C))
    assert m.melody_kept(melody, result) == pytest.approx(2 / 3)


def test_summary_of_a_real_performance(pijama_file):
    from tatum.notes import Notes as N

    piece = N.from_midi(pijama_file)
    s = m.summary(piece.slice(piece.start_ms, piece.start_ms + 30_000, clip=True))
    assert 5 < s["notes_per_5s"] < 400 and 0 < s["polyphony_rate"] <= 1 and 21 <= s["median_pitch"] <= 108
    assert s["distinct_chords"] >= 1 and 0 <= s["bass_presence"] <= 1

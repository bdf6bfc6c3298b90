"""Symbolic music measures of a performance (ImprovNet's evaluation and the quality benchmarks').

Every function takes `Notes` (times in ms) and returns plain numbers or numpy arrays. Conventions:

- a *chord* / *onset group* is the notes whose onsets lie within `group_ms` (50 ms) of the group's
  first onset, the same rule as the skyline corruption;
- pitch-class histograms are normalised to sum 1 (all zeros for no notes);
- time-based measures (polyphony, bass presence, chroma) count sounding time: a note sounds from its
  onset to onset + duration. On the token grid (10 ms) "share of time" equals "share of 10 ms steps".
"""

from __future__ import annotations

import numpy as np

from tatum import tokenizer
from tatum.corruption import CHORD_MS, group_onsets
from tatum.notes import Notes
from tatum.tokenizer import SEGMENT_MS, mean_polyphony

__all__ = ["note_density", "mean_ioi", "pitch_class_histogram", "pitch_class_kl", "pctm", "pctm_legato", "pctm_cosine",
           "polyphony_rate", "mean_polyphony", "distinct_chords", "rich_chord_share", "chroma", "chroma_r",
           "unit_rows", "chroma_ssm", "ssm_correlation", "bass_presence", "median_pitch", "estimate_key", "key_correlation",
           "same_key", "melody_kept", "onset_groups", "pulse_clarity", "summary"]

GROUP_MS = CHORD_MS                  # 50 ms, as the skyline corruption
BASS_BELOW = 48                      # C3: below it is the left hand's bass register
KL_EPS = 1e-3


# ------------------------------------------------------------------- rhythm
def note_density(notes: Notes, seconds: float | None = None) -> float:
    """Notes (onsets) per 5 s. Over `seconds` when given (the span the notes were asked to fill),
    else from the first onset to the last note's end."""
    span_s = (notes.end_ms - notes.start_ms) / 1000 if seconds is None else seconds
    if span_s <= 0:
        return 0.0
    return len(notes) / span_s * SEGMENT_MS / 1000


def onset_groups(notes: Notes, group_ms: int = GROUP_MS) -> np.ndarray:
    """Group index of each note: a new group starts at an onset more than `group_ms` after the
    current group's first onset (the skyline corruption's `group_onsets`)."""
    return group_onsets(notes.onset_ms, group_ms)


def mean_ioi(notes: Notes, group_ms: int = GROUP_MS) -> float:
    """Mean inter-onset interval in ms between consecutive onset groups (a chord is one onset);
    NaN with fewer than two groups."""
    if not len(notes):
        return float("nan")
    group = onset_groups(notes, group_ms)
    starts = notes.onset_ms[np.flatnonzero(np.diff(group, prepend=-1))].astype(np.int64)
    return float(np.diff(starts).mean()) if len(starts) > 1 else float("nan")


def pulse_clarity(notes: Notes, lo_ms: int = 250, hi_ms: int = 1500, smooth_ms: int = 30,
                  group_ms: int = GROUP_MS) -> float:
    """How steady a beat the onsets carry: the highest autocorrelation of the onset train at a lag
    between `lo_ms` and `hi_ms` (a beat of 40–240 bpm, or its half or double). The train has one
    spike per onset group (a chord is one onset) on the 10 ms grid, smoothed by a Gaussian of
    `smooth_ms` so expressive timing still lines up, mean removed, each lag normalised by its
    overlap. 1 for a metronome, about 0 for onsets at random times; NaN with fewer than 4 onsets or
    a piece shorter than two `hi_ms` lags."""
    if not len(notes):
        return float("nan")
    group = onset_groups(notes, group_ms)
    starts = notes.onset_ms[np.flatnonzero(np.diff(group, prepend=-1))].astype(np.int64)
    step = tokenizer.GRID_MS
    bins = (starts - starts[0]) // step
    n = int(bins[-1]) + 1
    if len(starts) < 4 or n < 2 * hi_ms // step:
        return float("nan")
    train = np.bincount(bins, minlength=n).astype(np.float64)
    sigma = smooth_ms / step
    k = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
    x = np.convolve(train, np.exp(-0.5 * (k / sigma) ** 2), mode="same")
    x -= x.mean()
    lags = np.arange(lo_ms // step, hi_ms // step + 1)
    # FFT autocorrelation, zero-padded so lags do not wrap around.
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[: n] / (n - np.arange(n))
    return float(min(1.0, np.max(ac[lags]) / ac[0])) if ac[0] > 0 else float("nan")


# ------------------------------------------------------------- pitch classes
def pitch_class_histogram(notes: Notes, velocity: bool = True) -> np.ndarray:
    """[12] share of each pitch class, each note weighted by duration × velocity (duration only with
    `velocity=False`, as a key profile wants)."""
    w = notes.dur_ms.astype(np.float64)
    if velocity:
        w = w * notes.velocity
    h = np.bincount(notes.pitch % 12, weights=w, minlength=12).astype(np.float64)
    total = h.sum()
    return h / total if total > 0 else h


def pitch_class_kl(reference: Notes | np.ndarray, other: Notes | np.ndarray, eps: float = KL_EPS) -> float:
    """KL(reference ‖ other) in nats between pitch-class histograms (Notes or [12] arrays), each
    smoothed by adding `eps` to every bin and renormalising, so an empty bin costs at most
    log(1/eps). The reference is the real music, `other` the generated."""
    p = reference if isinstance(reference, np.ndarray) else pitch_class_histogram(reference)
    q = other if isinstance(other, np.ndarray) else pitch_class_histogram(other)
    p = (p + eps) / (p + eps).sum()
    q = (q + eps) / (q + eps).sum()
    return float(np.sum(p * np.log(p / q)))


def pctm(notes: Notes) -> np.ndarray:
    """[12, 12] pitch-class transition matrix: counts of pitch class i followed by j over consecutive
    notes in (onset, pitch) order, normalised to sum 1."""
    m = np.zeros((12, 12))
    pc = notes.pitch.astype(np.int64) % 12
    if len(pc) > 1:
        np.add.at(m, (pc[:-1], pc[1:]), 1.0)
        m /= m.sum()
    return m


def pctm_legato(notes: Notes, thresh_ms: int = 50) -> np.ndarray:
    """[12, 12] pitch-class transitions by ImprovNet's rule (pretty_midi's transition matrix): every
    pair of notes where one ends within `thresh_ms` of the other's start, normalised to sum 1. Pass
    it to `pctm_cosine` to compare with ImprovNet's published figures."""
    m = np.zeros((12, 12))
    if len(notes) > 1:
        start = notes.onset_ms.astype(np.int64)
        end = start + notes.dur_ms
        src, dst = np.nonzero(np.abs(end[:, None] - start[None, :]) < thresh_ms)
        pc = notes.pitch.astype(np.int64) % 12
        np.add.at(m, (pc[src], pc[dst]), 1.0)
        if m.sum():
            m /= m.sum()
    return m


def pctm_cosine(a: Notes | np.ndarray, b: Notes | np.ndarray) -> float:
    """Cosine similarity of two flattened pitch-class transition matrices (0 when either is empty)."""
    x = (a if isinstance(a, np.ndarray) else pctm(a)).ravel()
    y = (b if isinstance(b, np.ndarray) else pctm(b)).ravel()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    return float(x @ y / (nx * ny)) if nx > 0 and ny > 0 else 0.0


# -------------------------------------------------------------------- chords
def polyphony_rate(notes: Notes, include_silence: bool = False) -> float:
    """Share of the 10 ms steps in which some note sounds during which more than one does; with
    `include_silence`, share of all steps from the first onset to the last note's end (MusPy's and
    ImprovNet's definition, lower wherever the music rests)."""
    rate = tokenizer.polyphony_rate(notes)        # the sweep the tokenizer's controls use
    if include_silence and len(notes):
        rate *= _covered_ms(notes) / max(notes.end_ms - notes.start_ms, 1)
    return rate


def distinct_chords(notes: Notes, min_classes: int = 3, group_ms: int = GROUP_MS) -> int:
    """How many different chords are played: pitch-class sets of onset groups with at least
    `min_classes` distinct pitch classes."""
    if not len(notes):
        return 0
    group = onset_groups(notes, group_ms)
    cuts = np.flatnonzero(np.diff(group)) + 1
    chords = {frozenset(pcs.tolist()) for pcs in np.split(notes.pitch % 12, cuts)}
    return sum(len(c) >= min_classes for c in chords)


def rich_chord_share(notes: Notes) -> float:
    """Share of distinct onset times at which ≥ 4 pitch classes sound (sevenths and extensions,
    common in jazz piano)."""
    if not len(notes):
        return 0.0
    on = notes.onset_ms.astype(np.int64)
    end = on + notes.dur_ms
    times = np.unique(on)
    rich = sum(len(set((notes.pitch[(on <= t) & (end > t)] % 12).tolist())) >= 4 for t in times)
    return rich / len(times)


# ---------------------------------------------------------- chroma and SSM
def chroma(notes: Notes, t0: int, t1: int, frame_ms: int = 1000) -> np.ndarray:
    """[frames, 12] sounding time (ms) of each pitch class in each frame of [t0, t1)."""
    n = max(1, (int(t1) - int(t0)) // frame_ms)
    out = np.zeros((n, 12))
    if not len(notes):
        return out
    a = np.maximum(notes.onset_ms.astype(np.int64), t0) - t0
    b = np.minimum(notes.onset_ms.astype(np.int64) + np.maximum(notes.dur_ms, 1), t1) - t0
    pc = notes.pitch.astype(np.int64) % 12
    for f in range(n):
        lo, hi = f * frame_ms, (f + 1) * frame_ms
        overlap = np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0, None)
        out[f] = np.bincount(pc, weights=overlap, minlength=12)
    return out


def chroma_r(a: Notes, b: Notes, t0: int, t1: int, frame_ms: int = 1000) -> float:
    """Mean over frames of the correlation between two pieces' chroma vectors (frames where either
    is flat are skipped; NaN if all are): does the harmony still follow the original."""
    ca, cb = chroma(a, t0, t1, frame_ms), chroma(b, t0, t1, frame_ms)
    rs = [np.corrcoef(x, y)[0, 1] for x, y in zip(ca, cb) if x.std() > 0 and y.std() > 0]
    return float(np.mean(rs)) if rs else float("nan")


def unit_rows(c: np.ndarray) -> np.ndarray:
    """Each row (a chroma frame) scaled to length 1; all-zero rows (silent frames) stay zero."""
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return np.divide(c, norm, out=np.zeros_like(c, dtype=np.float64), where=norm > 0)


def chroma_ssm(notes: Notes, t0: int | None = None, t1: int | None = None, frame_ms: int = 1000) -> np.ndarray:
    """[frames, frames] cosine self-similarity of the piece's chroma frames (0 where a frame is
    silent). Transposing the piece leaves it unchanged."""
    t0 = notes.start_ms if t0 is None else t0
    t1 = notes.end_ms if t1 is None else t1
    c = unit_rows(chroma(notes, t0, t1, frame_ms))
    return c @ c.T


def ssm_correlation(original: Notes, transformed: Notes, frame_ms: int = 1000,
                    t0: int | None = None, t1: int | None = None) -> float:
    """Pearson correlation between the upper triangles (diagonal excluded) of the chroma SSMs of a
    piece and its transformation over the same frames (default: the original's span): 1 when the
    transformation keeps the piece's structure of repeats and contrasts. NaN if either is constant."""
    t0 = original.start_ms if t0 is None else t0
    t1 = original.end_ms if t1 is None else t1
    a, b = chroma_ssm(original, t0, t1, frame_ms), chroma_ssm(transformed, t0, t1, frame_ms)
    iu = np.triu_indices(len(a), k=1)
    x, y = a[iu], b[iu]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


# ------------------------------------------------------------------ register
def bass_presence(notes: Notes, below: int = BASS_BELOW) -> float:
    """Share of sounding time during which some note below MIDI `below` (C3) sounds."""
    sounding = _covered_ms(notes)
    return _covered_ms(notes.select(notes.pitch < below)) / sounding if sounding else 0.0


def median_pitch(notes: Notes) -> float:
    """Median MIDI pitch of the notes (NaN for none)."""
    return float(np.median(notes.pitch)) if len(notes) else float("nan")


def _covered_ms(notes: Notes) -> int:
    """Length of the union of the notes' sounding intervals."""
    if not len(notes):
        return 0
    start = notes.onset_ms.astype(np.int64)
    end = start + notes.dur_ms
    reach = np.maximum.accumulate(end)               # notes are sorted by onset
    new = np.concatenate([[True], start[1:] > reach[:-1]])
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(start) - 1)
    return int((reach[last] - start[first]).sum())


# ----------------------------------------------------------------------- key
# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _key_fit(profile: np.ndarray, key: tuple[int, str]) -> float:
    """Pearson r between a pitch-class profile and `key`'s rotated probe-tone profile."""
    return float(np.corrcoef(profile, np.roll(_MAJOR if key[1] == "major" else _MINOR, key[0]))[0, 1])


def estimate_key(notes: Notes) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") by Krumhansl–Schmuckler on the duration-weighted
    pitch-class profile."""
    prof = pitch_class_histogram(notes, velocity=False)
    if not prof.any():
        return 0, "major"
    best = max((_key_fit(prof, (t, mode)), t, mode) for mode in ("major", "minor") for t in range(12))
    return best[1], best[2]


def key_correlation(notes: Notes, key: tuple[int, str]) -> float:
    """How well the notes' duration-weighted pitch-class profile fits `key`'s probe-tone profile
    (Pearson r, −1–1; 0 for no notes): the score `estimate_key` maximises."""
    prof = pitch_class_histogram(notes, velocity=False)
    return _key_fit(prof, key) if prof.any() else 0.0


def same_key(a: tuple[int, str], b: tuple[int, str]) -> bool:
    """Equal keys, or relative major/minor (C major ~ A minor)."""
    if a == b:
        return True
    (ta, ma), (tb, mb) = a, b
    rel = (ta + 9) % 12 if ma == "major" else (ta + 3) % 12
    return ma != mb and tb == rel


# -------------------------------------------------------------------- melody
def melody_kept(melody: Notes, result: Notes, tol_ms: int = 50) -> float:
    """Share of `melody`'s notes that `result` plays at the same pitch within `tol_ms`."""
    hits = 0
    for o, p in zip(melody.onset_ms.tolist(), melody.pitch.tolist()):
        same = result.onset_ms[result.pitch == p].astype(np.int64)
        hits += bool(len(same) and np.min(np.abs(same - o)) <= tol_ms)
    return hits / max(len(melody), 1)


# ------------------------------------------------------------------- summary
def summary(notes: Notes, seconds: float | None = None) -> dict[str, float]:
    """The single-piece measures in one dict (for tables and JSON)."""
    return {"notes_per_5s": note_density(notes, seconds), "mean_ioi_ms": mean_ioi(notes),
            "polyphony_rate": polyphony_rate(notes), "mean_polyphony": mean_polyphony(notes),
            "distinct_chords": distinct_chords(notes), "rich_chords": rich_chord_share(notes),
            "bass_presence": bass_presence(notes), "median_pitch": median_pitch(notes)}

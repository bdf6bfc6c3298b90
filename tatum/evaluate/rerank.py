"""Classifier reranking: of K candidates decoded for one window, keep the one the classifiers score
best for the request.

The pass engine decodes each window K times in one batch and hands the candidates to a chooser
(`Engine.choose`); `Reranker` is the chooser built from the shipped classifier:

    score = style · P(asked genre mix) + artist · P(asked pianist mix) − real · random_like
            + structure · SSM agreement with the original (improvise only)
            + keep · agreement with the given music's key, register and bass (continue, infill)
            + beat · beat clarity of the 15 s that end with the candidate

The classifier reads 15 s windows and a candidate is 5 s long, so each candidate is scored in the
context of its neighbours (as the piece stands when the pass began): the mean over every 15 s span of
three token windows that holds it, as a piece's own score is the mean over its 15 s windows, so a
continuation is judged after its prompt and an infill between its two sides. Spans too sparse to
judge are left out, as `Classifier.score` leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tatum import tokenizer as tk
from tatum.evaluate.classify import Classifier
from tatum.evaluate.features import MIN_NOTES, WINDOW_MS, encode_window
from tatum.evaluate.metrics import (bass_presence, chroma, estimate_key, key_correlation, median_pitch,
                                    pulse_clarity, unit_rows)
from tatum.notes import Notes

SPAN = WINDOW_MS // tk.SEGMENT_MS        # token windows in one classifier window (3)
FRAME_MS = 1000                          # chroma frames of the structure term (as metrics.ssm_correlation)


@dataclass
class Weights:
    """How much each term counts. Every term lies in 0–1 (structure in −1–1), so equal weights
    give each an equal say."""

    style: float = 1.0
    artist: float = 1.0
    real: float = 1.0
    structure: float = 1.0
    keep: float = 1.0
    beat: float = 0.0


@dataclass
class Choice:
    """What one call decided, kept for benchmarks: per target, each candidate's terms and the pick."""

    target: int
    terms: dict[str, np.ndarray]
    pick: int


@dataclass
class Reranker:
    """Chooses among candidates for the request: a genre mixture and a pianist mixture (names as the
    generator spells them; names the classifier does not know are ignored), and with `original` (the
    piece's token windows before any pass) the structure term, with `given` (a continuation's prompt, the
    music around an infill's gap) the keep term. Callable as `Engine.choose`."""

    genre: dict[str, float] | None = None
    artist: dict[str, float] | None = None
    original: list[np.ndarray] | None = None
    given: Notes | None = None
    weights: Weights = field(default_factory=Weights)
    classifier: Classifier | None = None
    history: list[Choice] = field(default_factory=list)

    def __post_init__(self):
        self.classifier = self.classifier or Classifier.load()
        self._genre = _mix_vector(self.genre, self.classifier.genres)
        self._artist = _mix_vector(self.artist, self.classifier.artists)
        self._orig = None if self.original is None else _frames([tk.decode_segment(w) for w in self.original])
        self._given = None if self.given is None or not len(self.given) else Manner.of(self.given)

    def __call__(self, piece, targets: list[int], candidates: list[list[np.ndarray]]) -> list[int]:
        """Index of the kept candidate for each target (ties: the first)."""
        out = []
        for t, terms in zip(targets, self.terms(piece, targets, candidates)):
            pick = int(np.argmax(self.total(terms)))
            self.history.append(Choice(t, terms, pick))
            out.append(pick)
        return out

    def total(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        w = self.weights
        total = w.real * -terms["random_like"]
        if self._genre is not None:
            total = total + w.style * terms["style"]
        if self._artist is not None:
            total = total + w.artist * terms["artist"]
        if "structure" in terms:
            total = total + w.structure * terms["structure"]
        if "keep" in terms:
            total = total + w.keep * terms["keep"]
        if "beat" in terms:
            total = total + w.beat * terms["beat"]
        return total

    def terms(self, piece, targets: list[int], candidates: list[list[np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Per target, each term per candidate: style, artist, random_like (and structure, keep, beat)."""
        rows, owner = [], []             # one classifier row per (candidate, span) that can be judged
        count = 0
        for t, cands in zip(targets, candidates):
            for c in cands:
                for s in spans_of(piece, t):
                    notes = in_context(piece, t, c, s)
                    if len(notes) >= MIN_NOTES:
                        rows.append(encode_window(notes.onset_ms, notes.dur_ms, notes.pitch, notes.velocity))
                        owner.append(count)
                count += 1
        p = self.classifier.predict(rows) if rows else {"random": np.zeros(0), "genre": np.zeros((0, 1)),
                                                          "artist": np.zeros((0, 1))}
        owner = np.array(owner, dtype=np.int64)
        judged = np.bincount(owner, minlength=count)

        def mean(values: np.ndarray, empty: float) -> np.ndarray:
            # A candidate with no span to judge is taken as the least musical.
            total = np.bincount(owner, weights=values, minlength=count)
            return np.where(judged > 0, total / np.maximum(judged, 1), empty)

        random_like = mean(p["random"], 1.0)
        style = mean(p["genre"] @ self._genre, 0.0) if self._genre is not None and len(owner) else np.zeros(count)
        artist = mean(p["artist"] @ self._artist, 0.0) if self._artist is not None and len(owner) else np.zeros(count)
        frames = None if self._orig is None else _frames([piece.window_notes(i) for i in range(len(piece))])
        out, k = [], 0
        for t, cands in zip(targets, candidates):
            s = slice(k, k + len(cands))
            k += len(cands)
            terms = {"random_like": random_like[s], "style": style[s], "artist": artist[s]}
            if frames is not None:
                terms["structure"] = np.array([structure_agreement(self._orig, frames, t, tk.decode_segment(c))
                                               for c in cands])
            if self._given is not None:
                terms["keep"] = np.array([self._given.agreement(tk.decode_segment(c)) for c in cands])
            if self.weights.beat:
                terms["beat"] = np.array([beat_clarity(piece, t, c) for c in cands])
            out.append(terms)
        return out


@dataclass
class Manner:
    """What a continuation keeps of the music given before it: its key, its register (median pitch)
    and how much of the time its left hand sounds a bass note."""

    key: tuple[int, str]
    median: float
    bass: float

    @classmethod
    def of(cls, notes: Notes) -> "Manner":
        return cls(estimate_key(notes), median_pitch(notes), bass_presence(notes))

    def agreement(self, notes: Notes) -> float:
        """0–1: the mean of the key's fit ((r + 1) / 2), the register's (1 at the same median pitch,
        0 an octave or more away) and the bass's (1 − the difference in bass presence); 0 for none."""
        if not len(notes):
            return 0.0
        key = (key_correlation(notes, self.key) + 1) / 2
        register = 1 - min(1.0, abs(median_pitch(notes) - self.median) / 12)
        bass = 1 - abs(bass_presence(notes) - self.bass)
        return (key + register + bass) / 3


def _mix_vector(mix: dict[str, float] | str | None, names: list[str]) -> np.ndarray | None:
    if not mix:
        return None
    mix = {mix: 1.0} if isinstance(mix, str) else mix
    v = np.array([max(0.0, float(mix.get(n, 0.0))) for n in names])
    return v / v.sum() if v.sum() > 0 else None


def spans_of(piece, t: int) -> list[int]:
    """First token windows of the classifier spans (SPAN windows each, inside the piece) that hold
    window t; a piece of SPAN windows or fewer is one span."""
    n = len(piece)
    if n <= SPAN:
        return [0]
    return list(range(max(0, t - SPAN + 1), min(t, n - SPAN) + 1))


def in_context(piece, t: int, candidate: np.ndarray, s: int) -> Notes:
    """The candidate's tokens in place of window t, with the other windows of the classifier span
    that starts at window s; times relative to the span's start; as a MIDI file holds them
    (`Notes.playable`), as the classifier scores any notes."""
    parts = []
    for i in range(s, min(len(piece), s + SPAN)):
        seg = tk.decode_segment(candidate) if i == t else piece.window_notes(i)
        if len(seg):
            parts.append(seg.shift((i - s) * tk.SEGMENT_MS))
    return Notes.merge(parts).playable() if parts else Notes.empty()


def beat_clarity(piece, t: int, candidate: np.ndarray) -> float:
    """Beat clarity (`metrics.pulse_clarity`, 0–1) of the classifier span that ends with the candidate
    in window t: a beat is heard against what came before (0 where too short to tell)."""
    clarity = pulse_clarity(in_context(piece, t, candidate, max(0, t - SPAN + 1)))
    return 0.0 if np.isnan(clarity) else clarity


def _frames(windows: list[Notes]) -> np.ndarray:
    """[windows × frames per window, 12] unit chroma vectors (zero where silent)."""
    per = tk.SEGMENT_MS // FRAME_MS
    if not windows:
        return np.zeros((0, 12))
    c = np.concatenate([chroma(w, 0, tk.SEGMENT_MS, FRAME_MS) if len(w) else np.zeros((per, 12)) for w in windows])
    return unit_rows(c)


def structure_agreement(original: np.ndarray, current: np.ndarray, t: int, candidate: Notes) -> float:
    """How well window t, played as `candidate`, keeps its place in the piece's self-similarity: the
    correlation between the original's SSM rows for t's frames and those rows with the candidate in
    the current piece, over the frames outside t (0 where either is flat)."""
    per = tk.SEGMENT_MS // FRAME_MS
    n = min(len(original), len(current))
    own = np.arange(t * per, (t + 1) * per)
    if own[-1] >= n:
        return 0.0
    cur = current[:n].copy()
    cur[own] = unit_rows(chroma(candidate, 0, tk.SEGMENT_MS, FRAME_MS))
    others = np.setdiff1d(np.arange(n), own)
    a = (original[own] @ original[others].T).ravel()
    b = (cur[own] @ cur[others].T).ravel()
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])

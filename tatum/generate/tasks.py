"""The four tasks as plans for the pass engine: improvise, harmonize, continue, infill."""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable

import numpy as np

from tatum import tokenizer as tk
from tatum.corruption import group_onsets, skyline_notes
from tatum.errors import TatumError
from tatum.generate.engine import Conditioning, Engine, Pass, Piece, parse_plan, run_plan
from tatum.generate.sampling import Sampling
from tatum.generate.structure import preserved_segments
from tatum.notes import Notes

StyleArg = str | dict[str, float] | None
_MODELS: dict[str, tuple] = {}
TATUM_MODEL = "tatum-small-tatum"


def _notes(x: Notes | str | os.PathLike) -> Notes:
    return x if isinstance(x, Notes) else Notes.from_midi(x)


def get_model(model=None, artist: StyleArg = None):
    """(model, tokenizer): a loaded pair, a folder or shipped name, or the default — the Art Tatum
    model when the artist is Art Tatum and that model is present."""
    from tatum.model.checkpoint import MODELS_DIR, load_model

    if isinstance(model, tuple):
        return model
    if model is None:
        main = max(artist, key=artist.get) if isinstance(artist, dict) else artist
        model = TATUM_MODEL if main == "Art Tatum" and (MODELS_DIR / TATUM_MODEL / "config.json").exists() else None
    key = str(model)
    if key not in _MODELS:
        _MODELS[key] = load_model(model)
    return _MODELS[key]


def _mix(tok, value: StyleArg, kind: str) -> dict[str, float] | None:
    if value is None:
        return None
    mix = {value: 1.0} if isinstance(value, str) else dict(value)
    known = tok.genres if kind == "style" else tok.artists + ["other"]
    for name, w in mix.items():
        if name not in known:
            raise TatumError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
        if w < 0:
            raise TatumError(f"{kind} weight for {name!r} must not be negative")
    if sum(mix.values()) <= 0:
        raise TatumError(f"{kind} weights must not all be zero")
    return mix


def _engine(model, artist, sampling: Sampling, context: tuple[int, int]) -> Engine:
    m, tok = get_model(model, artist)
    return Engine(m, tok, sampling, context=context)


def _rerank(eng: Engine, candidates: int, reranker, cond: Conditioning, original: list | None = None) -> None:
    """Have `eng` decode `candidates` per window and keep the one `reranker` (default: the shipped
    classifier scoring the requested style and pianist, and with `original` the piece's structure)
    likes best."""
    if int(candidates) != candidates or candidates < 1:
        raise TatumError(f"--candidates must be a whole number, 1 or more, not {candidates}")
    if candidates == 1:
        return
    if reranker is None:
        from tatum.evaluate.rerank import Reranker

        reranker = Reranker(cond.genre, cond.artist, original)
    eng.candidates, eng.choose = int(candidates), reranker


def _check_length(notes: Notes, what: str = "piece") -> None:
    if not len(notes):
        raise TatumError(f"the {what} has no notes")
    if notes.duration_s < tk.SEGMENT_MS / 1000:
        raise TatumError(f"the {what} is {notes.duration_s:.1f} s long; tatum needs at least one 5 s window")


def improvise(notes: Notes | str | os.PathLike, style: StyleArg = "jazz", artist: StyleArg = None,
              plan: str = "improvnet", *, rate: float | None = None, passes: int | None = None,
              corruption: str | None = None, context: tuple[int, int] = (5, 5), keep_first_s: float = 10.0,
              keep_last: bool = True, preserve_structure: float = 0.05, temperature: float = 1.0,
              top_k: int = 50, top_p: float = 1.0, guidance: float = 0.0, density: int | str | None = None,
              polyphony: int | str | None = None, seed: int | None = None, order: str = "parallel",
              keep_melody: bool = True, model=None, candidates: int = 1, reranker=None,
              on_pass: Callable[[int, int], None] | None = None,
              on_notes: Callable[[int, Notes], None] | None = None) -> Notes:
    """Re-play a piece in another style by corruption–refinement passes (ImprovNet's recipe by default).

    `style` and `artist` are a name or a weighted mixture ({"jazz": .7, "classical": .3}). The first
    `keep_first_s` seconds, the last window (`keep_last`) and the windows at the strongest novelty
    peaks (`preserve_structure`, a share of the windows) are left as they are. With `keep_melody`,
    skyline passes reharmonize the piece's own tune (kept on top) instead of reinventing it, so the
    later passes vary a piece that is still recognisable.

    With `candidates` K > 1 each window is decoded K times in one batch and the classifiers keep the
    candidate likeliest in the asked style and manner, least random-like, and closest to the piece's
    own self-similarity (`tatum.evaluate.rerank`; `reranker` replaces that chooser). `on_notes(k,
    notes)` sees the whole piece after each pass.
    """
    notes = _notes(notes)
    _check_length(notes)
    eng = _engine(model, artist, Sampling(temperature, top_k, top_p, guidance, seed), context)
    cond = Conditioning(_mix(eng.tok, style, "style"), _mix(eng.tok, artist, "artist"), density, polyphony)
    steps = _plan(plan, rate, passes, corruption)
    piece = Piece.from_notes(notes)
    n = len(piece)
    start = min(int(math.ceil(keep_first_s * 1000 / tk.SEGMENT_MS)), max(0, n - 2))
    stop = n - 1 if keep_last and n > 1 else n
    keep = preserved_segments([piece.window_notes(i) for i in range(n)], preserve_structure)
    melody = None
    if keep_melody:   # each window's tune; windows without one are left to the plain corruption
        tunes = ((i, skyline_notes(piece.window_notes(i))) for i in range(n))
        melody = {i: tune for i, tune in tunes if len(tune)}
    _rerank(eng, candidates, reranker, cond, list(piece.windows))
    run_plan(eng, piece, steps, cond, start=start, stop=stop, keep=keep, seed=_seed(seed), order=order,
             melody=melody, on_pass=_passed(piece, on_pass, on_notes))
    return piece.notes()


def _passed(piece: Piece, on_pass, on_notes) -> Callable[[int, int], None] | None:
    if on_notes is None:
        return on_pass

    def call(k: int, n: int) -> None:
        if on_pass is not None:
            on_pass(k, n)
        on_notes(k, piece.notes())
    return call


def _plan(plan: str, rate: float | None, passes: int | None, corruption: str | None) -> list[Pass]:
    if corruption is not None:
        steps = [Pass(corruption, 1.0 if rate is None else rate)] * (passes or 1)
    else:
        steps = parse_plan(plan)
        if rate is not None:
            steps = [Pass(p.corruption, rate) for p in steps]
        if passes is not None:
            steps = (steps * math.ceil(passes / len(steps)))[:passes]
    return steps


def _seed(seed: int | None) -> int:
    return int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)


def harmonize(melody: Notes | str | os.PathLike, style: StyleArg = "jazz", artist: StyleArg = None, *,
              passes: int = 5, context: tuple[int, int] = (5, 2), chord_size: int = 3, chord_gap_ms: int = 600,
              polyphony: int | str | None = None, density: int | str | None = None, temperature: float = 1.0,
              top_k: int = 50, top_p: float = 1.0, guidance: float = 0.0, seed: int | None = None,
              strict: bool = False, model=None, on_pass: Callable[[int, int], None] | None = None,
              on_notes: Callable[[int, Notes], None] | None = None) -> Notes:
    """Put chords and accompaniment under a monophonic melody (skyline passes with the chord rule).

    A melody with chords is reduced to its top line with a warning (an error with `strict`).
    Chords are forced only under melody notes at least `chord_gap_ms` apart and held at least that
    long, as a pianist comps on the beat and lets passing notes pass; 0 forces one under every melody
    note, a wall of notes under a fast line (PiJAMA val skylines: 31 notes/s against the pianists' 7;
    600 ms: 19 notes/s, and the held chords keep the polyphony rate at 0.98 or more).
    """
    melody = _notes(melody)
    _check_length(melody, "melody")
    if chord_gap_ms < 0:
        raise TatumError("--chord-gap must be 0 or more milliseconds")
    groups = group_onsets(melody.onset_ms)
    if len(np.unique(groups)) < len(melody):
        if strict:
            raise TatumError("the melody has chords (notes starting together); give a single line")
        warnings.warn("the melody has chords; harmonizing its top line", stacklevel=2)
        melody = skyline_notes(melody)
    eng = _engine(model, artist, Sampling(temperature, top_k, top_p, guidance, seed), context)
    cond = Conditioning(_mix(eng.tok, style, "style"), _mix(eng.tok, artist, "artist"), density, polyphony)
    eng.chord_size, eng.chord_gap_ms = chord_size, chord_gap_ms
    piece = Piece.from_notes(melody)
    # Every pass shows the model the melody itself as the skyline of each window, and after every
    # pass the melody is laid back on top, so the context of the next pass carries the tune.
    lines = {i: piece.window_notes(i) for i in range(len(piece))}
    s = _seed(seed)
    for k in range(passes):
        run_plan(eng, piece, [Pass("skyline", 1.0)], cond, seed=s + k, harmonize=True, melody=lines)
        if on_pass is not None:
            on_pass(k, len(piece))
        if on_notes is not None:
            on_notes(k, piece.notes())
    return piece.notes()


def continue_(prompt: Notes | str | os.PathLike, seconds: float = 15.0, style: StyleArg = "jazz",
              artist: StyleArg = None, *, prompt_seconds: float | None = None, context: int = 5,
              temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, guidance: float = 2.0,
              density: int | str | None = "source", polyphony: int | str | None = "source",
              seed: int | None = None, model=None, candidates: int = 1, reranker=None,
              on_pass: Callable[[int, int], None] | None = None) -> Notes:
    """The prompt followed by `seconds` of new music, one 5 s window at a time.

    `density` and `polyphony` default to the buckets of the prompt's last window ("source"), so the
    new music keeps the prompt's texture; None lets the model choose (ANY), a number sets a bucket.
    `guidance` (2 by default here) makes the model follow those controls: without it the shipped
    model plays about 1.3 density buckets away from the one asked for, with it about 0.7.
    With `candidates` K > 1 each window is decoded K times and the classifiers keep the one likeliest
    in the asked style and manner and least random-like, judged after the music before it.
    """
    prompt = _notes(prompt)
    if prompt_seconds is not None:
        prompt = prompt.slice(0, prompt_seconds * 1000, clip=True)
    _check_length(prompt, "prompt")
    if seconds <= 0:
        raise TatumError("--seconds must be positive")
    end = int(prompt_seconds * 1000) if prompt_seconds is not None else prompt.end_ms
    # A note within half a grid step of the end would round into the first new window.
    late = prompt.onset_ms > end - tk.GRID_MS
    if late.any():
        prompt = prompt.copy()
        prompt.onset_ms = np.where(late, end - tk.GRID_MS, prompt.onset_ms).astype(np.int32)
    # Windows end exactly where the prompt ends, so the continuation starts on a window boundary.
    origin = end - tk.SEGMENT_MS * math.ceil((end - prompt.start_ms) / tk.SEGMENT_MS)
    piece = Piece.from_notes(prompt, origin)
    first_new = (end - origin) // tk.SEGMENT_MS
    piece.windows = piece.windows[:first_new] + [np.zeros(0, np.int64)] * (len(piece.windows) - first_new)
    n_new = math.ceil(seconds * 1000 / tk.SEGMENT_MS)
    while len(piece.windows) < first_new + n_new:
        piece.windows.append(np.zeros(0, dtype=np.int64))
    eng = _engine(model, artist, Sampling(temperature, top_k, top_p, guidance, seed), (context, 0))
    # "source" here means the prompt: the new windows are empty, so take the buckets of its last
    # window that has notes (none: let the model choose).
    last = next((w for w in map(piece.window_notes, range(first_new - 1, -1, -1)) if len(w)), None)
    if density == "source":
        density = None if last is None else tk.density_bucket(len(last))
    if polyphony == "source":
        polyphony = None if last is None else tk.polyphony_bucket(last)
    cond = Conditioning(_mix(eng.tok, style, "style"), _mix(eng.tok, artist, "artist"), density, polyphony)
    _rerank(eng, candidates, reranker, cond)
    s = _seed(seed)
    for k, i in enumerate(range(first_new, first_new + n_new)):
        eng.run_pass(piece, Pass("whole_mask"), cond, [i], seed=s + k, right_context={i: []})
        if on_pass is not None:
            on_pass(k, 1)
    return piece.notes().slice(-10**9, end + seconds * 1000, clip=True)


def infill(notes: Notes | str | os.PathLike, start_s: float, end_s: float, style: StyleArg = "jazz",
           artist: StyleArg = None, *, context: int = 5, temperature: float = 1.0, top_k: int = 50,
           top_p: float = 1.0, guidance: float = 0.0, density: int | str | None = None,
           polyphony: int | str | None = None, seed: int | None = None, model=None, candidates: int = 1,
           reranker=None, on_pass: Callable[[int, int], None] | None = None) -> Notes:
    """Replace the music between `start_s` and `end_s` with new music that joins both sides.

    With `candidates` K > 1 each window is decoded K times and the classifiers keep the one likeliest
    in the asked style and manner and least random-like, judged between its neighbours."""
    notes = _notes(notes)
    _check_length(notes)
    start, end = int(start_s * 1000), int(end_s * 1000)
    if not (0 <= start < end):
        raise TatumError(f"infill range {start_s}–{end_s} s is empty or negative")
    if start >= notes.end_ms or end <= notes.start_ms:
        raise TatumError(f"infill range {start_s}–{end_s} s lies outside the piece "
                         f"({notes.start_ms / 1000:.1f}–{notes.end_ms / 1000:.1f} s)")
    origin = start - tk.SEGMENT_MS * math.ceil(max(0, start - notes.start_ms) / tk.SEGMENT_MS)
    keep_before = notes.slice(-10**9, start, clip=False)
    keep_after = notes.slice(end, 10**12)
    piece = Piece.from_notes(Notes.merge([keep_before, keep_after]), origin)
    g0 = (start - origin) // tk.SEGMENT_MS
    g1 = math.ceil((end - origin) / tk.SEGMENT_MS)
    while len(piece.windows) < g1:
        piece.windows.append(np.zeros(0, dtype=np.int64))
    eng = _engine(model, artist, Sampling(temperature, top_k, top_p, guidance, seed), (context, context))
    cond = Conditioning(_mix(eng.tok, style, "style"), _mix(eng.tok, artist, "artist"), density, polyphony)
    _rerank(eng, candidates, reranker, cond)
    s = _seed(seed)
    for k, i in enumerate(range(g0, g1)):
        right = piece.windows[g1:g1 + context] if i == g1 - 1 else []
        eng.run_pass(piece, Pass("whole_mask"), cond, [i], seed=s + k, right_context={i: right})
        if on_pass is not None:
            on_pass(k, 1)
    out = piece.notes()
    new = out.select((out.onset_ms >= start) & (out.onset_ms < end))
    new.dur_ms = np.minimum(new.dur_ms, np.maximum(1, end + 2000 - new.onset_ms)).astype(np.int32)
    return Notes.merge([keep_before, new, keep_after])



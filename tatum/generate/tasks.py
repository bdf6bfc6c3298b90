"""The four tasks as plans for the pass engine: improvise, harmonize, continue, infill."""

from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Callable

import numpy as np

from tatum import tokenizer as tk
from tatum.corruption import group_onsets, skyline_notes
from tatum.errors import TatumError
from tatum.generate.engine import REPLAY, Engine, Pass, Piece, parse_plan, run_plan
from tatum.generate.guide import Guide, guide_bias
from tatum.generate.splice import restore
from tatum.generate.structure import preserved_segments
from tatum.notes import Notes
from tatum.options import CANDIDATES, OPENING_DRAFTS, RERANK_WEIGHTS, Conditioning, Sampling, resolve

StyleArg = str | dict[str, float] | None
_MODELS: dict[str, tuple] = {}
_LOADING = threading.RLock()
TATUM_MODEL = "tatum-note-tatum"
# a continuation keeps the key, register and bass of the prompt's last 20 s (as `tatum evaluate` reads
# the key a continuation should keep from its 20 s prompt)
KEEP_MS = 20_000


def _notes(x: Notes | str | os.PathLike) -> Notes:
    return x if isinstance(x, Notes) else Notes.from_midi(x)


def get_model(model=None, artist: StyleArg = None, stream: bool = False):
    """(model, tokenizer): a loaded pair, a folder or shipped name, or the default — $TATUM_MODEL when
    set, else the Art Tatum model when the artist is Art Tatum and that model is present, else the
    shipped default (tatum-note). For a real-time `stream`, a NoteLM comes with int8 weights
    (tatum.model.quantize)."""
    from tatum.model.checkpoint import MODELS_DIR, load_model

    if isinstance(model, tuple):
        return model
    if model is None and not os.environ.get("TATUM_MODEL"):   # a default set by the user is used for all
        main = max(artist, key=artist.get) if isinstance(artist, dict) else artist
        if str(main).casefold() == "art tatum" and (MODELS_DIR / TATUM_MODEL / "config.json").exists():
            model = TATUM_MODEL
    key = str(model) if model is not None else f"default:{os.environ.get('TATUM_MODEL', '')}"
    with _LOADING:       # (server sessions starting together load and quantize a model once)
        if key not in _MODELS:
            _MODELS[key] = load_model(model)
        if stream:   # a jam decodes one note at a time on the CPU: int8 weights, a quarter of the bytes to read
            if key + "|int8" not in _MODELS:
                from tatum.model.quantize import int8

                m, tok = _MODELS[key]
                _MODELS[key + "|int8"] = (int8(m), tok)
            key += "|int8"
        return _MODELS[key]


def _mix(tok, value: StyleArg, kind: str) -> dict[str, float] | None:
    """A style or artist mixture checked against `tok`'s vocabulary (kept for callers of the old name)."""
    field = "genre" if kind == "style" else "artist"
    return getattr(Conditioning(**{field: value}).for_vocabulary(tok.genres, tok.artists), field)


def _engine(model, options: dict, verb: str, conditioning: Conditioning | None, sampling: Sampling | None,
            context: tuple[int, int]) -> tuple[Engine, Conditioning]:
    """The engine and the conditioning a task runs with: the options checked, the model chosen by
    them (the Art Tatum model for Art Tatum), and the style and pianist names checked against that
    model's vocabulary."""
    cond, samp = resolve(verb, conditioning, sampling, **options)
    m, tok = get_model(model, cond.artist)
    return Engine(m, tok, samp, context=context), cond.for_vocabulary(tok.genres, tok.artists)


def _at_least(value: float, lo: float, name: str, hi: float | None = None) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= lo and (hi is None or value <= hi)):
        raise TatumError(f"{name} must be {lo:g}–{hi:g}, not {value!r}" if hi is not None
                         else f"{name} must be {lo:g} or more, not {value!r}")


def _rerank(eng: Engine, candidates: int, reranker, cond: Conditioning, original: list | None = None,
            given: Notes | None = None, verb: str | None = None) -> None:
    """Have `eng` decode `candidates` per window and keep the one `reranker` (default: the shipped
    classifier scoring the requested style and pianist, with `original` the piece's structure, with
    `given` agreement with that music's key, register and bass, weighed as `verb`'s
    `options.RERANK_WEIGHTS` say) likes best."""
    if int(candidates) != candidates or candidates < 1:
        raise TatumError(f"--candidates must be a whole number, 1 or more, not {candidates}")
    if candidates == 1:
        return
    if reranker is None:
        from tatum.evaluate.rerank import Reranker, Weights

        reranker = Reranker(cond.genre, cond.artist, original, given, Weights(**RERANK_WEIGHTS.get(verb, {})))
    eng.candidates, eng.choose = int(candidates), reranker


def _check_length(notes: Notes, what: str = "piece") -> None:
    if not len(notes):
        raise TatumError(f"the {what} has no notes")
    if notes.duration_s < tk.SEGMENT_MS / 1000:
        raise TatumError(f"the {what} is {notes.duration_s:.1f} s long; tatum needs at least one 5 s window")


def improvise(notes: Notes | str | os.PathLike, plan: str | None = None, *, conditioning: Conditioning | None = None,
              sampling: Sampling | None = None, rate: float | None = None, passes: int | None = None,
              corruption: str | None = None, context: tuple[int, int] = (5, 5), keep_first_s: float | None = None,
              keep_last: bool = True, preserve_structure: float = 0.05, order: str = "parallel",
              keep_melody: bool = True, model=None, candidates: int | None = None, reranker=None,
              guide: Guide | float | None = None, on_pass: Callable[[int, int], None] | None = None,
              on_notes: Callable[[int, Notes], None] | None = None, **options) -> Notes:
    """Re-play a piece in another style: by corruption–refinement passes (ImprovNet's recipe), or with
    a pianist asked, by re-playing it in their manner (`plan="replay"`; `plan_for`).

    What to play toward and how to draw are `conditioning` and `sampling` (tatum.options), or their
    fields as keywords laid over them: `style` and `artist` (a name or a weighted mixture, {"jazz": .7,
    "classical": .3}), `density`, `polyphony`, `temperature`, `top_k`, `top_p`, `guidance`, `seed`. The
    first `keep_first_s` seconds (10 by default), the last window (`keep_last`) and the windows at the
    strongest novelty peaks (`preserve_structure`, a share of the windows) are left as the passes found
    them. With `keep_melody`, skyline passes reharmonize the piece's own tune (kept on top) instead of
    reinventing it, so the later passes vary a piece that is still recognisable.

    With `candidates` K > 1 each window is decoded K times in one batch and the classifiers keep the
    candidate likeliest in the asked style and manner, least random-like, and closest to the piece's
    own self-similarity (`tatum.evaluate.rerank`; `reranker` replaces that chooser). `on_notes(k,
    notes)` sees the whole piece after each pass.

    `plan="replay"` (the default when a pianist is asked: `plan_for`) re-plays the piece in the manner
    asked instead: after the first `keep_first_s` seconds (none by default), each window is drawn anew
    as a continuation of the music before it (best of `candidates`, default `CANDIDATES["replay"]`;
    the first of `OPENING_DRAFTS` times as many, as the rest continue its manner), pulled toward the
    source window's harmony, tune and register by `guide` (`tatum.generate.guide`; density and
    polyphony "source" mean the model's own here). It sounds far more like the pianist and like real
    music, and follows the piece more loosely (README, "Re-play in a pianist's manner"); `rate`,
    `passes`, `corruption`, `keep_last`, `preserve_structure`, `order` and `keep_melody` do not apply
    to it.

    Notes outside the rewritten windows, and notes a pass gave back as they were (the tune on top),
    are the input's own notes, exactly (`tatum.generate.splice`).
    """
    notes = _notes(notes)
    _check_length(notes)
    if plan is None:
        artist = resolve("improvise", conditioning, sampling, **options)[0].artist
        plan = plan_for(artist, corruption, rate, passes, keep_melody)
    keep_first_s = keep_first_for(plan, keep_first_s)
    _at_least(keep_first_s, 0, "keep_first_s")
    _at_least(preserve_structure, 0, "preserve_structure", 1)
    if min(context) < 0:
        raise TatumError(f"context must be 0 or more windows on each side, not {context}")
    if plan == REPLAY:
        eng, cond = _engine(model, options, "improvise", conditioning, sampling, (context[0], 0))
        guide = Guide() if guide is None else guide if isinstance(guide, Guide) else Guide().scaled(float(guide))
        k = CANDIDATES[REPLAY] if candidates is None else candidates
        return _replay(notes, eng, cond, keep_first_s, guide, k, reranker, on_pass, on_notes)
    candidates = 1 if candidates is None else candidates
    steps = _plan(plan, rate, passes, corruption)
    eng, cond = _engine(model, options, "improvise", conditioning, sampling, context)
    # a classical piece at its own pace re-played with its notes held as the piece held them sounded
    # less like jazz to both classifiers than with the detached touch (README, "improvise keeps ...")
    eng.detached = True
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
    run_plan(eng, piece, steps, cond, start=start, stop=stop, keep=keep, seed=_seed(eng.sampling.seed),
             order=order, melody=melody, on_pass=_passed(piece, notes, on_pass, on_notes))
    return restore(notes, piece.notes(), piece.origin_ms)


def plan_for(artist, corruption: str | None = None, rate: float | None = None, passes: int | None = None,
             keep_melody: bool = True) -> str:
    """improvise's plan when none is named: `replay` when a pianist is asked (`artist`, a name or a
    mixture) and nothing of the passes is asked for (a corruption, a rate, a number of passes, a free
    melody), as a pianist's manner comes only from re-playing (README, "Re-play in a pianist's
    manner"); ImprovNet's passes otherwise."""
    described = corruption is not None or rate is not None or passes is not None or not keep_melody
    return REPLAY if artist and not described else "improvnet"


def keep_first_for(plan: str, keep_first_s: float | None) -> float:
    """The seconds improvise leaves as they were: as given, else 10 for the passes (ImprovNet's) and
    none for replay, whose later windows would otherwise continue the source's own manner."""
    if keep_first_s is not None:
        return keep_first_s
    return 0.0 if plan == REPLAY else 10.0


def improvise_steps(notes: Notes, plan: str, rate: float | None = None, passes: int | None = None,
                    corruption: str | None = None, keep_first_s: float | None = None) -> int:
    """How many times `improvise` calls `on_pass` under `plan` (named): once per pass, or per window
    replay draws."""
    if plan is None:
        raise TatumError("improvise_steps needs the plan named (tasks.plan_for gives the default)")
    keep_first_s = keep_first_for(plan, keep_first_s)
    if plan != REPLAY:
        return len(_plan(plan, rate, passes, corruption))
    if not len(notes):
        return 1
    start, n = replay_start(notes, keep_first_s)
    return n - start


def replay_start(notes: Notes, keep_first_s: float) -> tuple[int, int]:
    """(first window re-played, windows) of `notes` under improvise(plan="replay"): at least the last
    window is re-played, however long `keep_first_s`."""
    n = len(tk.split_segments(notes, notes.start_ms))
    return min(int(math.ceil(keep_first_s * 1000 / tk.SEGMENT_MS)), n - 1), n


def _replay(notes: Notes, eng: Engine, cond: Conditioning, keep_first_s: float, guide: Guide, candidates: int,
            reranker, on_pass, on_notes) -> Notes:
    """improvise(plan="replay"): the windows after the first `keep_first_s` seconds drawn one by one
    after the music before them, each pulled toward the window of `notes` it replaces."""
    piece = Piece.from_notes(notes)
    start, n = replay_start(notes, keep_first_s)
    sources = [piece.window_notes(i) for i in range(n)]
    piece.windows[start:] = [np.zeros(0, np.int64) for _ in range(start, n)]
    # "source" is the piece's texture, which a pianist's manner replaces: the model's own here
    cond = _source_buckets(cond, None)
    _rerank(eng, candidates, reranker, cond)
    s = _seed(eng.sampling.seed)
    end = notes.end_ms + tk.SEGMENT_MS // 5         # the last window's notes may ring a little past the piece

    def result() -> Notes:
        return restore(notes, piece.notes(), piece.origin_ms).slice(-10**9, end, clip=True)

    for k, i in enumerate(range(start, n)):
        eng.candidates = candidates * OPENING_DRAFTS if k == 0 and candidates > 1 else candidates
        eng.run_pass(piece, Pass("whole_mask"), cond, [i], seed=s + k, right_context={i: []},
                     bias={i: guide_bias(sources[i], guide)})
        if on_pass is not None:
            on_pass(k, 1)
        if on_notes is not None:
            on_notes(k, result())
    return result()


def _passed(piece: Piece, original: Notes, on_pass, on_notes) -> Callable[[int, int], None] | None:
    if on_notes is None:
        return on_pass

    def call(k: int, n: int) -> None:
        if on_pass is not None:
            on_pass(k, n)
        on_notes(k, restore(original, piece.notes(), piece.origin_ms))
    return call


def _plan(plan: str, rate: float | None, passes: int | None, corruption: str | None) -> list[Pass]:
    if passes is not None and (int(passes) != passes or passes < 1):
        raise TatumError(f"passes must be a whole number, 1 or more, not {passes}")
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


def harmonize(melody: Notes | str | os.PathLike, *, passes: int = 5, context: tuple[int, int] = (5, 2),
              chord_size: int = 3, chord_gap_ms: int = 600, strict: bool = False,
              conditioning: Conditioning | None = None, sampling: Sampling | None = None, model=None,
              on_pass: Callable[[int, int], None] | None = None,
              on_notes: Callable[[int, Notes], None] | None = None, **options) -> Notes:
    """Put chords and accompaniment under a monophonic melody (skyline passes with the chord rule).

    A melody with chords is reduced to its top line with a warning (an error with `strict`).
    Chords are forced only under melody notes at least `chord_gap_ms` apart and held at least that
    long, as a pianist comps on the beat and lets passing notes pass; 0 forces one under every melody
    note, a wall of notes under a fast line. The polyphony control defaults to bucket 3 here (see
    `tatum.options.VERB_DEFAULTS`): the model alone piles notes under a slow tune.
    The options (`conditioning`, `sampling` or their fields as keywords) are as for `improvise`; the
    melody's own notes come back exactly as given.
    """
    melody = _notes(melody)
    _check_length(melody, "melody")
    if chord_gap_ms < 0:
        raise TatumError("--chord-gap must be 0 or more milliseconds")
    if not 1 <= chord_size <= 10:
        raise TatumError(f"--chord-size must be 1–10 notes, not {chord_size}")
    _plan("skyline", None, passes, None)
    groups = group_onsets(melody.onset_ms)
    if len(np.unique(groups)) < len(melody):
        if strict:
            raise TatumError("the melody has chords (notes starting together); give a single line")
        warnings.warn("the melody has chords; harmonizing its top line", stacklevel=2)
        melody = skyline_notes(melody)
    eng, cond = _engine(model, options, "harmonize", conditioning, sampling, context)
    eng.chord_size, eng.chord_gap_ms = chord_size, chord_gap_ms
    piece = Piece.from_notes(melody)
    # Every pass shows the model the melody itself as the skyline of each window, and after every
    # pass the melody is laid back on top, so the context of the next pass carries the tune.
    lines = {i: piece.window_notes(i) for i in range(len(piece))}
    s = _seed(eng.sampling.seed)
    for k in range(passes):
        run_plan(eng, piece, [Pass("skyline", 1.0)], cond, seed=s + k, harmonize=True, melody=lines)
        if on_pass is not None:
            on_pass(k, len(piece))
        if on_notes is not None:
            on_notes(k, restore(melody, piece.notes(), piece.origin_ms))
    return restore(melody, piece.notes(), piece.origin_ms)


def continue_(prompt: Notes | str | os.PathLike, seconds: float = 15.0, *, prompt_seconds: float | None = None,
              context: int = 5, conditioning: Conditioning | None = None, sampling: Sampling | None = None,
              model=None, candidates: int = CANDIDATES["continue"], reranker=None, on_pass: Callable[[int, int], None] | None = None,
              **options) -> Notes:
    """The prompt followed by `seconds` of new music, one 5 s window at a time.

    `density` and `polyphony` default to the buckets of the prompt's last window ("source"), so the
    new music keeps the prompt's texture; None lets the model choose (ANY), a number sets a bucket.
    The sampler keeps a window inside the asked buckets (`tatum.generate.sampling.Pace`).
    Each window is decoded `candidates` times (default 8; 1 for a single draft) and the one kept is the
    likeliest in the asked style and manner and least random-like, judged after the music before it,
    that best keeps the key, register and bass of the prompt's last 20 s and a clear beat
    (`options.RERANK_WEIGHTS`). The prompt comes back exactly as given (to its end).
    """
    prompt = _notes(prompt)
    _at_least(seconds, 0.01, "seconds", 3600)
    if prompt_seconds is not None:
        _at_least(prompt_seconds, 0.01, "prompt_seconds")
        length = math.ceil(prompt.end_ms / 100) / 10
        if prompt_seconds > length:
            raise TatumError(f"prompt_seconds {prompt_seconds:g} is past the end of the piece ({length:g} s)")
        prompt = prompt.slice(0, prompt_seconds * 1000, clip=True)
    _check_length(prompt, "prompt")
    original = prompt
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
    _at_least(context, 0, "context")
    eng, cond = _engine(model, options, "continue", conditioning, sampling, (context, 0))
    # "source" here means the prompt: the new windows are empty, so take the buckets of its last
    # window that has notes (none: let the model choose).
    last = next((w for w in map(piece.window_notes, range(first_new - 1, -1, -1)) if len(w)), None)
    cond = _source_buckets(cond, last)
    _rerank(eng, candidates, reranker, cond, given=prompt.slice(end - KEEP_MS, end, clip=True), verb="continue")
    s = _seed(eng.sampling.seed)
    for k, i in enumerate(range(first_new, first_new + n_new)):
        eng.run_pass(piece, Pass("whole_mask"), cond, [i], seed=s + k, right_context={i: []})
        if on_pass is not None:
            on_pass(k, 1)
    return restore(original, piece.notes(), piece.origin_ms).slice(-10**9, end + seconds * 1000, clip=True)


def _source_buckets(cond: Conditioning, given: Notes | None) -> Conditioning:
    """`cond` with a "source" density or polyphony read from `given` (None: let the model choose), for
    the verbs whose windows start empty."""
    if cond.density == "source":
        cond = cond.replace(density=None if given is None else tk.density_bucket(len(given)))
    if cond.polyphony == "source":
        cond = cond.replace(polyphony=None if given is None else tk.polyphony_bucket(given))
    return cond


def infill(notes: Notes | str | os.PathLike, start_s: float, end_s: float, *, context: int = 5,
           conditioning: Conditioning | None = None, sampling: Sampling | None = None, model=None,
           candidates: int = CANDIDATES["infill"], reranker=None, on_pass: Callable[[int, int], None] | None = None,
           **options) -> Notes:
    """Replace the music between `start_s` and `end_s` with new music that joins both sides.

    Each window is decoded `candidates` times (default 4; 1 for a single draft) and the one kept is the
    likeliest in the asked style and manner and least random-like, judged between its neighbours, that
    best keeps the key, register and bass of the 10 s on either side and a clear beat. The options are
    as for `improvise`; the music outside the range comes back exactly as given."""
    notes = _notes(notes)
    _check_length(notes)
    _at_least(context, 0, "context")
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise TatumError(f"infill range {start_s}–{end_s} s is not a range of seconds")
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
    eng, cond = _engine(model, options, "infill", conditioning, sampling, (context, context))
    # "source" here means the music given around the gap (the gap itself is empty): the buckets of the
    # nearest window before it that has notes, else the nearest after it.
    order = [*range(g0 - 1, -1, -1), *range(g1, len(piece.windows))]
    cond = _source_buckets(cond, next((w for w in map(piece.window_notes, order) if len(w)), None))
    around = Notes.merge([keep_before.slice(start - KEEP_MS // 2, start), keep_after.slice(end, end + KEEP_MS // 2)])
    _rerank(eng, candidates, reranker, cond, given=around, verb="infill")
    s = _seed(eng.sampling.seed)
    for k, i in enumerate(range(g0, g1)):
        right = piece.windows[g1:g1 + context] if i == g1 - 1 else []
        eng.run_pass(piece, Pass("whole_mask"), cond, [i], seed=s + k, right_context={i: right})
        if on_pass is not None:
            on_pass(k, 1)
    out = piece.notes()
    new = out.select((out.onset_ms >= start) & (out.onset_ms < end))
    new.dur_ms = np.minimum(new.dur_ms, np.maximum(1, end + 2000 - new.onset_ms)).astype(np.int32)
    return Notes.merge([keep_before, new, keep_after])



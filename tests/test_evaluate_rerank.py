"""Classifier reranking (`--candidates K`): the engine decodes K candidates per window in one batch and
keeps the one its chooser picks; `tatum.evaluate.rerank.Reranker` scores candidates in their 15 s
context with the shipped classifier; and the beat-clarity measure the evaluation reports.

Generation runs a `tiny` random model (one thread) on short synthetic pieces; the reranker's own tests
use the shipped classifier (1 MB, milliseconds) on real PiJAMA windows where the data is present.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tatum import tokenizer as tk
from tatum.errors import TatumError
from tatum.evaluate import metrics as mt
from tatum.evaluate import rerank as rr
from tatum.generate import engine as engine_mod
from tatum.generate import tasks
from tatum.generate.engine import Piece
from tatum.notes import Notes

from test_generate import ckpt, grid_piece, pair  # noqa: F401  (fixtures)

torch.set_num_threads(1)


def onsets(times, pitch=60) -> Notes:
    t = np.asarray(sorted(times), dtype=np.int64)
    return Notes(t, np.full(len(t), 100), np.full(len(t), pitch), np.full(len(t), 80))


# ------------------------------------------------------------ beat clarity
def test_pulse_clarity_is_one_for_a_metronome_and_low_for_random_onsets():
    assert mt.pulse_clarity(onsets(range(0, 15_000, 500))) == pytest.approx(1.0, abs=0.01)
    rng = np.random.default_rng(0)
    random = [mt.pulse_clarity(onsets(rng.integers(0, 15_000, 60))) for _ in range(5)]
    assert max(random) < 0.3


def test_pulse_clarity_counts_a_chord_as_one_onset_and_tolerates_small_timing_errors():
    beat = onsets(range(0, 15_000, 600))
    chords = Notes.merge([beat, beat.transpose(4), beat.shift(20).transpose(7)])    # rolled triads
    assert mt.pulse_clarity(chords) == pytest.approx(mt.pulse_clarity(beat), abs=0.02)
    rng = np.random.default_rng(1)
    loose = onsets(np.arange(0, 15_000, 250) + rng.integers(-15, 16, 60))
    assert mt.pulse_clarity(loose) > 0.7


def test_pulse_clarity_needs_a_few_onsets_and_some_length():
    assert math.isnan(mt.pulse_clarity(Notes.empty()))
    assert math.isnan(mt.pulse_clarity(onsets([0, 500, 1000])))            # 3 onsets
    assert math.isnan(mt.pulse_clarity(onsets(range(0, 2500, 250))))      # shorter than two longest lags


def test_pctm_legato_counts_pairs_where_one_note_ends_as_the_other_starts():
    # C (0–500) → E (500–900): legato; G starts 300 ms after E ends: no pair; a chord C+E starting
    # together at 2000 gives no pair either (neither ends at the other's start).
    piece = Notes([0, 500, 1200, 2000, 2000], [500, 400, 300, 200, 200], [60, 64, 67, 60, 64], [80] * 5)
    m = mt.pctm_legato(piece)
    assert m[0, 4] == 1.0 and m.sum() == 1.0
    near = Notes([0, 540], [500, 100], [62, 69], [80, 80])                  # 40 ms apart: counted
    assert mt.pctm_legato(near)[2, 9] == 1.0
    assert not mt.pctm_legato(Notes([0, 600], [500, 100], [62, 69], [80, 80])).any()   # 100 ms: not


# ------------------------------------------------------------ the engine hook
class Recorder:
    """A chooser that keeps the candidate with the most notes and remembers what it was shown."""

    def __init__(self):
        self.calls = []

    def __call__(self, piece, targets, candidates):
        self.calls.append((list(targets), [[c.copy() for c in cs] for cs in candidates]))
        return [int(np.argmax([len(c) for c in cs])) for cs in candidates]


@pytest.fixture(scope="module")
def note_pair(tmp_path_factory):
    """A tiny decoder-only NoteLM, saved and loaded as a checkpoint like the encoder–decoder."""
    from tatum.model.checkpoint import load_model, save_checkpoint
    from tatum.model.config import build_model, preset
    from tatum.tokenizer import Tokenizer

    tok = Tokenizer.default()
    torch.manual_seed(0)
    model = build_model(preset("note-tiny", tok.vocab_size))
    return load_model(save_checkpoint(model, tok, tmp_path_factory.mktemp("note-model") / "note-tiny"))


@pytest.fixture(params=["seq2seq", "notelm"])
def any_pair(request, pair, note_pair):
    return pair if request.param == "seq2seq" else note_pair


def test_candidates_are_decoded_together_and_the_chosen_one_is_kept(any_pair, monkeypatch):
    pair = any_pair
    batches = []
    real = engine_mod.decode_rows

    def spy(model, rows, *args, **kwargs):
        batches.append([id(r) for r in rows])
        return real(model, rows, *args, **kwargs)

    monkeypatch.setattr(engine_mod, "decode_rows", spy)
    model, tok = pair
    piece = Piece.from_notes(grid_piece(30, seed=4))
    chooser = Recorder()
    eng = engine_mod.Engine(model, tok, context=(2, 2), batch_size=8, candidates=3, choose=chooser)
    targets = [1, 2, 3, 4]
    eng.run_pass(piece, engine_mod.Pass("whole_mask"), engine_mod.Conditioning({"jazz": 1.0}), targets, seed=5)
    # 4 windows × 3 candidates in batches of 6 (8 rounded down to whole windows): a window's
    # candidates are never split across batches, and they are the same input decoded 3 times.
    assert [len(b) for b in batches] == [6, 6]
    for b in batches:
        assert b[0] == b[1] == b[2] and b[3] == b[4] == b[5] and b[0] != b[3]
    assert len(chooser.calls) == 1
    got_targets, cands = chooser.calls[0]
    assert got_targets == targets and all(len(c) == 3 for c in cands)
    assert any(len({len(c) for c in cs}) > 1 for cs in cands)      # the candidates differ
    for t, cs in zip(targets, cands):
        best = cs[int(np.argmax([len(c) for c in cs]))]
        assert np.array_equal(piece.windows[t], best)


def test_one_candidate_decodes_as_before_and_never_asks_the_chooser(pair):
    p = grid_piece(30, seed=2)
    chooser = Recorder()
    plain = tasks.infill(p, 10, 20, seed=3, model=pair, candidates=1)
    one = tasks.infill(p, 10, 20, seed=3, model=pair, candidates=1, reranker=chooser)
    assert not chooser.calls
    assert np.array_equal(plain.onset_ms, one.onset_ms) and np.array_equal(plain.pitch, one.pitch)


@pytest.mark.parametrize("verb", ["continue", "infill"])
def test_continue_and_infill_keep_the_best_of_several_drafts_by_default(pair, verb):
    chooser = Recorder()
    p = grid_piece(30, seed=2)
    if verb == "continue":
        tasks.continue_(p, 10, prompt_seconds=20, seed=3, model=pair, reranker=chooser)
    else:
        tasks.infill(p, 10, 20, seed=3, model=pair, reranker=chooser)
    assert chooser.calls and all(len(cs) == tasks.CANDIDATES[verb] == {"continue": 8, "infill": 4}[verb]
                                 for _, cands in chooser.calls for cs in cands)


@pytest.mark.parametrize("task", ["improvise", "continue", "infill"])
def test_every_generated_window_goes_through_the_chooser(any_pair, task):
    pair = any_pair
    p = grid_piece(30, seed=6)
    chooser = Recorder()
    if task == "improvise":
        out = tasks.improvise(p, plan="whole_mask:1", seed=1, model=pair, candidates=2, reranker=chooser,
                              keep_first_s=5, preserve_structure=0)
        expected = [[1, 2, 3, 4]]                                   # first and last windows kept
    elif task == "continue":
        out = tasks.continue_(p, 10, prompt_seconds=20, seed=1, model=pair, candidates=2, reranker=chooser)
        expected = [[4], [5]]
    else:
        out = tasks.infill(p, 10, 20, seed=1, model=pair, candidates=2, reranker=chooser)
        expected = [[2], [3]]
    assert [t for t, _ in chooser.calls] == expected
    assert all(len(c) == 2 for _, cs in chooser.calls for c in cs)
    assert len(out)


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_bad_candidate_counts_are_refused(pair, k):
    with pytest.raises(TatumError, match="candidates"):
        tasks.continue_(grid_piece(20, seed=1), 5, prompt_seconds=10, model=pair, candidates=k)


# ------------------------------------------------------------ the reranker
def test_a_candidate_is_judged_in_every_15_s_span_that_holds_it():
    w = tk.encode_segment(grid_piece(5, seed=0).slice(0, 4990))
    full = Piece([w] * 6, 0)
    assert [rr.spans_of(full, t) for t in range(6)] == [[0], [0, 1], [0, 1, 2], [1, 2, 3], [2, 3], [3]]
    assert rr.spans_of(Piece([w, w], 0), 1) == [0]


def test_in_context_places_the_candidate_among_its_neighbours():
    piece = Piece.from_notes(grid_piece(20, seed=3), 0)
    cand = tk.encode_segment(Notes([0, 2500], [100, 100], [30, 31], [80, 80]))
    for s in (0, 1):
        ctx = rr.in_context(piece, 2, cand, s)
        at = (2 - s) * tk.SEGMENT_MS
        mine = ctx.select((ctx.onset_ms >= at) & (ctx.onset_ms < at + tk.SEGMENT_MS))
        assert mine.pitch.tolist() == [30, 31] and mine.onset_ms.tolist() == [at, at + 2500]
        assert len(ctx) == 2 + sum(len(piece.window_notes(i)) for i in range(s, s + 3) if i != 2)


def test_the_scores_are_means_over_the_spans_the_classifier_can_judge():
    from tatum.evaluate.classify import Classifier
    from tatum.evaluate.features import encode_window

    piece = Piece.from_notes(grid_piece(30, seed=5), 0)
    piece.windows[4] = np.zeros(0, np.int64)                 # the span [3, 5] is judged, [4, 6] does not exist
    cand = piece.windows[3]
    clf = Classifier.load()
    rows = [rr.in_context(piece, 3, cand, s) for s in rr.spans_of(piece, 3)]
    p = clf.predict([encode_window(n.onset_ms, n.dur_ms, n.pitch, n.velocity) for n in rows])
    terms = rr.Reranker({"jazz": 1.0}, classifier=clf).terms(piece, [3], [[cand]])[0]
    assert len(rows) == 3
    assert terms["random_like"][0] == pytest.approx(p["random"].mean())
    assert terms["style"][0] == pytest.approx(p["genre"][:, clf.genres.index("jazz")].mean())


def test_structure_agreement_is_highest_for_the_original_window():
    piece = Piece.from_notes(grid_piece(40, seed=9), 0)
    frames = rr._frames([piece.window_notes(i) for i in range(len(piece))])
    same = rr.structure_agreement(frames, frames, 3, piece.window_notes(3))
    moved = rr.structure_agreement(frames, frames, 3, piece.window_notes(3).transpose(6))
    assert same == pytest.approx(1.0) and moved < 0.9


@pytest.fixture(scope="module")
def real_piece(pijama_file) -> Piece:
    notes = Notes.from_midi(pijama_file)
    return Piece.from_notes(notes.slice(notes.start_ms, notes.start_ms + 30_000, clip=True))


def test_the_reranker_keeps_real_music_over_random_notes(real_piece):
    rng = np.random.default_rng(0)
    n = max(20, len(real_piece.window_notes(3)))
    noise = tk.encode_segment(Notes(np.sort(rng.integers(0, 4990, n)), rng.integers(50, 800, n),
                                    rng.integers(21, 109, n), rng.integers(30, 110, n)))
    real = real_piece.windows[3]
    chooser = rr.Reranker({"jazz": 1.0})
    picks = chooser(real_piece, [3, 3], [[noise, real], [real, noise]])
    assert picks == [1, 0]
    terms = chooser.history[0].terms
    assert terms["random_like"][0] > terms["random_like"][1]
    assert set(terms) == {"random_like", "style", "artist"}           # no original: no structure term


def test_the_structure_term_counts_when_the_original_is_given(real_piece):
    chooser = rr.Reranker({"jazz": 1.0}, original=list(real_piece.windows),
                          weights=rr.Weights(style=0, artist=0, real=0, structure=1))
    original = real_piece.windows[2]
    shifted = tk.encode_segment(real_piece.window_notes(2).transpose(6))
    assert chooser(real_piece, [2], [[shifted, original]]) == [1]
    assert chooser.history[-1].terms["structure"][1] == pytest.approx(1.0)


def test_the_keep_term_prefers_the_given_key_register_and_bass(real_piece):
    given = real_piece.notes().slice(0, 10_000)
    chooser = rr.Reranker(given=given, weights=rr.Weights(style=0, artist=0, real=0))
    same = real_piece.window_notes(2)
    away = Notes(same.onset_ms, same.dur_ms, np.clip(same.pitch + 18, 0, 127), same.velocity)
    assert chooser(real_piece, [2], [[tk.encode_segment(away), real_piece.windows[2]]]) == [1]
    keep = chooser.history[-1].terms["keep"]
    assert 0 <= keep[0] < keep[1] <= 1
    manner = rr.Manner.of(given)
    assert manner.agreement(Notes.empty()) == 0.0
    assert manner.agreement(given) > 0.9                                  # the given music agrees with itself


@pytest.fixture
def made(monkeypatch) -> list:
    """The default rerankers the verbs build, as they build them."""
    built = []

    class Recorded(rr.Reranker):
        def __post_init__(self):
            super().__post_init__()
            built.append(self)

    monkeypatch.setattr(rr, "Reranker", Recorded)
    return built


def test_continue_keeps_the_manner_of_the_prompts_last_20_s(pair, made):
    prompt = grid_piece(30, seed=4)
    tasks.continue_(prompt, 5, model=pair, seed=0)
    given = made[0].given
    assert len(given) and given.start_ms >= prompt.end_ms - tasks.KEEP_MS - tk.GRID_MS
    assert {"keep", "beat"} <= set(made[0].history[0].terms)
    assert made[0].weights == rr.Weights(**tasks.RERANK_WEIGHTS["continue"])


def test_infill_keeps_the_manner_of_both_sides(pair, made):
    tasks.infill(grid_piece(60, seed=5), 20, 40, model=pair, seed=0)
    given = made[0].given
    assert given.start_ms >= 10_000 - tk.GRID_MS and (given.onset_ms >= 40_000).any()
    assert not ((given.onset_ms >= 20_000) & (given.onset_ms < 40_000)).any()
    assert made[0].weights == rr.Weights(**tasks.RERANK_WEIGHTS["infill"])


def test_the_beat_term_prefers_a_steady_pulse():
    piece = Piece([tk.encode_segment(onsets(range(0, 5000, 500)))] * 2 + [np.zeros(0, np.int64)], 0)
    steady = tk.encode_segment(onsets(range(0, 5000, 500)))
    rng = np.random.default_rng(1)
    ragged = tk.encode_segment(onsets(rng.choice(np.arange(0, 4990, 10), 10, replace=False)))
    chooser = rr.Reranker(weights=rr.Weights(style=0, artist=0, real=0, beat=1))
    assert chooser(piece, [2], [[ragged, steady]]) == [1]
    beat = chooser.history[-1].terms["beat"]
    assert beat[1] == pytest.approx(1.0, abs=0.05) and beat[0] < 0.8


def test_a_candidate_too_sparse_to_judge_is_taken_as_least_musical():
    piece = Piece([np.zeros(0, np.int64)] * 3, 0)
    one = tk.encode_segment(Notes([0], [100], [60], [80]))
    chooser = rr.Reranker({"jazz": 1.0}, {"Art Tatum": 1.0})
    terms = chooser.terms(piece, [1], [[one, one]])[0]
    assert terms["random_like"].tolist() == [1.0, 1.0] and terms["style"].tolist() == [0.0, 0.0]

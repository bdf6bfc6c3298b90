"""Generation (DESIGN §5): sampling, the grammar and the chord rule, batched guided decoding, the pass
engine's four tasks, structure preservation, the generation verbs of the CLI and piano rolls.

Everything runs a `tiny` model with random (seeded) weights, one thread, on short synthetic pieces whose
notes lie on the 10 ms grid, so "kept" notes can be compared exactly with the input's quantised notes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_checkpoint
from tatum import tokenizer as tk
from tatum.corruption import corrupt, group_onsets, skyline_notes
from tatum.data.examples import build_encoder_input
from tatum.errors import TatumError
from tatum.generate import engine as engine_mod
from tatum.generate import tasks
from tatum.generate.decode import Row, Style, decode_rows
from tatum.generate.engine import PLANS, Pass, Piece, parse_plan
from tatum.generate.sampling import BURST_S, Grammar, Pace, Sampling, pick
from tatum.generate.structure import novelty, preserved_segments
from tatum.model.checkpoint import load_model
from tatum.model.transformer import Seq2Seq
from tatum.notes import Notes
from tatum.options import OPENING_DRAFTS
from tatum.plot import changed_mask, piano_roll
from tatum.tokenizer import Tokenizer

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ builders
def grid_piece(seconds: float, seed: int, start_ms: int = 0) -> Notes:
    """A melody over occasional chords, every time a multiple of 10 ms (so quantising keeps it)."""
    rng = np.random.default_rng(seed)
    on, du, pi, ve = [], [], [], []
    t = 0
    while t < seconds * 1000:
        p, d = int(rng.integers(55, 84)), int(rng.integers(10, 80)) * 10
        on.append(t), du.append(d), pi.append(p), ve.append(int(rng.integers(30, 110)))
        if rng.random() < 0.3:
            for q in (p - 12, p - 8, p - 5):
                on.append(t), du.append(d), pi.append(q), ve.append(60)
        t += int(rng.integers(5, 40)) * 10
    return Notes(np.array(on) + start_ms, du, pi, ve)


def two_part_piece() -> Notes:
    """4 windows of slow C-major triads low down, then 4 windows of fast F#-major arpeggios up high."""
    on, du, pi, ve = [], [], [], []
    for t in range(0, 20_000, 1000):
        for p in (48, 52, 55):
            on.append(t), du.append(900), pi.append(p), ve.append(70)
    arp = (78, 82, 85, 90)
    for k, t in enumerate(range(20_000, 40_000, 100)):
        on.append(t), du.append(90), pi.append(arp[k % 4]), ve.append(100)
    return Notes(on, du, pi, ve)


def melody_line(windows: int = 4, steps=(300, 800, 1400, 2000, 2600, 3300, 3900, 4400)) -> Notes:
    """A monophonic line whose onsets keep clear of window edges (the chord rule works per window)."""
    on = [0] + [5000 * k + s for k in range(windows) for s in steps]
    pitch = [67 + (i * 5) % 12 for i in range(len(on))]
    return Notes(on, np.full(len(on), 250), pitch, np.full(len(on), 90))


def quantised(notes: Notes, origin: int | None = None) -> Notes:
    """What the engine makes of the input before touching it: 10 ms grid, binned velocities."""
    origin = notes.start_ms if origin is None else origin
    return tk.decode(tk.encode(notes, origin), origin_ms=origin)


def arrays(notes: Notes) -> np.ndarray:
    return np.stack([notes.onset_ms.astype(np.int64), notes.dur_ms, notes.pitch, notes.velocity])


def same(a: Notes, b: Notes) -> bool:
    return len(a) == len(b) and np.array_equal(arrays(a), arrays(b))


def between(notes: Notes, lo: float, hi: float) -> Notes:
    return notes.select((notes.onset_ms >= lo) & (notes.onset_ms < hi))


def check_row(ids: np.ndarray) -> None:
    """Complete onset→dur→pv triples, nothing else, onsets never going back."""
    ids = np.asarray(ids)
    assert len(ids) % 3 == 0
    assert np.all((ids >= tk.ONSET0) & (ids < tk.NOTE_END)), "special token inside a row"
    kinds = tk.token_kind(ids)
    assert np.array_equal(kinds, np.tile([0, 1, 2], len(ids) // 3).astype(kinds.dtype))
    assert np.all(np.diff(ids[0::3]) >= 0), "onsets go back in time"


def near_melody_groups(onset_ms: np.ndarray, melody_ms) -> list[int]:
    """Sizes of the onset groups whose first onset lies within 50 ms of a melody onset."""
    onset_ms = np.sort(np.asarray(onset_ms, dtype=np.int64))
    melody_ms = np.asarray(sorted(melody_ms), dtype=np.int64)
    if not len(onset_ms) or not len(melody_ms):
        return []
    groups = group_onsets(onset_ms)
    sizes = []
    for g in np.unique(groups):
        first = onset_ms[groups == g][0]
        if np.min(np.abs(melody_ms - first)) <= 50:
            sizes.append(int((groups == g).sum()))
    return sizes


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny checkpoint with random but seeded weights and the shipped vocabulary."""
    return tiny_checkpoint(tmp_path_factory.mktemp("gen-model") / "tiny")


@pytest.fixture(scope="module")
def pair(ckpt):
    return load_model(ckpt)


@pytest.fixture(scope="module")
def model(pair) -> Seq2Seq:
    return pair[0]


@pytest.fixture(scope="module")
def tok(pair) -> Tokenizer:
    return pair[1]


@pytest.fixture(scope="module")
def piece40() -> Notes:
    return grid_piece(40, seed=7)


@pytest.fixture(scope="module")
def rows(model, tok, piece40) -> list[Row]:
    """Four encoder inputs of different lengths cut from a real-looking piece."""
    w = [tk.encode_segment(s) for s in tk.split_segments(piece40)]
    style = (tok.genre_id("jazz"), tok.null_style, tok.density_id(None), tok.polyphony_id(None))
    seg = lambda i: tk.decode_segment(w[i])  # noqa: E731
    specs = [([], "skyline", seg(0), []), (w[0:1], "whole_mask", seg(1), []),
             ([], "pitch_velocity_mask", seg(2), w[3:5]), ([], "onset_duration_mask", Notes.empty(), [])]
    out = []
    for i, (left, name, source, right) in enumerate(specs):
        enc = build_encoder_input(tok, style, left, name, corrupt(name, source, i), right,
                                  model.cfg.max_enc_len)
        out.append(Row(enc))
    assert len({len(r.enc) for r in out}) == len(out)
    return out


# ------------------------------------------------------------------ sampling.pick
def test_top_k_one_and_zero_temperature_give_the_allowed_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 40, generator=g)
    allowed = torch.rand(6, 40, generator=g) < 0.4
    allowed[:, 7] = True
    want = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
    for s in (Sampling(top_k=1), Sampling(temperature=0.0), Sampling(temperature=0.0, top_k=0)):
        for _ in range(3):
            assert torch.equal(pick(logits, allowed, s, g), want)


@pytest.mark.parametrize("s", [Sampling(), Sampling(temperature=3.0, top_k=0), Sampling(top_k=5, top_p=0.9),
                               Sampling(temperature=0.5, top_p=0.3)])
def test_masked_tokens_are_never_drawn(s):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 30, generator=g)
    allowed = torch.rand(500, 30, generator=g) < 0.3
    allowed[:, 0] = True
    logits[~allowed] += 50.0          # forbidden tokens are the model's favourites
    drawn = pick(logits, allowed, s, g)
    assert allowed[torch.arange(500), drawn].all()


def _draws(probs: list[float], top_p: float, order=None, n=3000) -> set[int]:
    p = torch.tensor(probs)
    order = order or list(range(len(probs)))
    logits = torch.full((len(probs),), 0.0)
    logits[order] = torch.log(p)
    g = torch.Generator().manual_seed(2)
    drawn = pick(logits.repeat(n, 1), torch.ones(n, len(probs), dtype=torch.bool),
                 Sampling(top_k=0, top_p=top_p), g)
    return set(drawn.tolist())


def test_top_p_keeps_the_smallest_set_reaching_p():
    # Probabilities .6/.3/.1 placed at vocabulary positions 2, 0, 1 (so the sort order matters).
    probs, at = [0.6, 0.3, 0.1], [2, 0, 1]
    assert _draws(probs, 0.5, at) == {2}
    assert _draws(probs, 0.7, at) == {2, 0}
    assert _draws(probs, 0.95, at) == {2, 0, 1}
    assert _draws(probs, 1.0, at) == {2, 0, 1}


def test_top_p_stops_at_exactly_p():
    assert _draws([0.5, 0.25, 0.25], 0.5) == {0}


def test_a_fixed_seed_reproduces_and_salt_or_seed_change_the_draws():
    logits = torch.zeros(200, 50)
    allowed = torch.ones(200, 50, dtype=torch.bool)
    s = Sampling(seed=11)
    a = pick(logits, allowed, s, s.generator(3))
    b = pick(logits, allowed, s, s.generator(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, pick(logits, allowed, s, s.generator(4)))
    assert not torch.equal(a, pick(logits, allowed, Sampling(seed=12), Sampling(seed=12).generator(3)))


# ------------------------------------------------------------------ grammar and decode_rows
def _random_window(g: Grammar, seed: int) -> list[tuple[int, int]]:
    """(onset step, duration steps) of the notes a grammar lets random logits draw, until the window
    ends: onsets and pitches uniform, durations mostly short (as in music: a model that holds every
    note for seconds cannot play ten notes a second with one voice)."""
    gen, s, notes = torch.Generator().manual_seed(seed), Sampling(temperature=1.0, top_k=0), []
    short = torch.zeros(tk.NOTE_END + 40)
    short[tk.DUR0:tk.PV0] = -0.1 * torch.arange(tk.N_DUR)
    for _ in range(3 * 400):
        t = pick(torch.randn(1, tk.NOTE_END + 40, generator=gen) + short, g.allowed(), s, gen)
        if int(t) == tk.EOS:
            break
        if tk.ONSET0 <= int(t) < tk.DUR0:
            notes.append([int(t) - tk.ONSET0, 0])
        elif tk.DUR0 <= int(t) < tk.PV0:
            notes[-1][1] = int(t) - tk.DUR0 + 1
        g.advance(t)
    return [tuple(n) for n in notes]


def sounding_max(notes: list[tuple[int, int]]) -> int:
    held = np.zeros(tk.N_ONSET + tk.N_DUR, int)
    for o, d in notes:
        held[o:o + d] += 1
    return int(held.max())


@pytest.mark.parametrize("density,polyphony", [(1, None), (3, None), (6, None), (5, 1), (4, 2), (None, 0), (None, 3), (0, None)])
def test_the_pace_keeps_the_asked_density_and_polyphony(density, polyphony):
    """Random logits, which left alone play hundreds of notes piled up: under a pace the window holds
    the asked density bucket, reaches the pace's notes only a burst ahead, never sounds more than its
    voices at once, and keeps its mean polyphony under the asked bucket's edge."""
    pace = Pace.of(density, polyphony)
    for seed in range(4):
        notes = _random_window(Grammar(1, tk.NOTE_END + 40, pace=[pace]), seed)
        assert len(notes) >= (1 if density == 0 else 5), "random logits always find notes to play"
        onsets = np.array([o for o, _ in notes])
        if density is not None:
            assert tk.density_bucket(len(notes)) <= density
            if polyphony is None:
                assert len(notes) >= np.floor(pace.low * (5 - BURST_S)), len(notes)
            else:   # (voices held can make notes wait; one bucket is the tolerance)
                assert tk.density_bucket(len(notes)) >= density - 1
            for k in range(len(onsets)):      # the k+1-th note no sooner than the pace allows
                assert onsets[k] >= (k + 1) / pace.high * 100 - BURST_S * 100 - 1e-6
        assert sounding_max(notes) <= pace.voices
        if polyphony is not None and notes:
            played = Notes([10 * o for o, _ in notes], [10 * d for _, d in notes], [60] * len(notes), [80] * len(notes))
            assert tk.polyphony_bucket(played) <= polyphony



@pytest.mark.parametrize("detached", [False, True])
def test_a_note_may_take_the_last_voice_until_the_next_is_due_unless_detached(detached):
    # 3.2–5.6 notes/s and at most 5 voices: one note held for 2 s, then four at 2 s held to 3.5 s
    g = Grammar(1, tk.NOTE_END + 40, pace=[Pace.of(3, 3, detached=detached)])
    g.resume(0, np.array([0, 200, 200, 200, 200]), 200, np.array([200, 150, 150, 150, 150]), np.array([40, 60, 64, 67, 70]))
    g.advance(torch.tensor([tk.ONSET0 + 210]))   # a fifth voice at 2.1 s; the next is due by (6 / 3.2 + 1) s
    allowed = torch.nonzero(g.dur_allowed()[0]).squeeze(1) + 1
    if detached:      # only as long as a voice stays free all along: none does, so the shortest
        assert allowed.tolist() == [1]
    else:             # held up to the time the next note is due, where no voice is free before then
        assert allowed.tolist() == list(range(1, 287 - 210 + 1))

def test_a_resumed_window_counts_its_played_notes_toward_the_pace():
    g = Grammar(1, tk.NOTE_END + 40, pace=[Pace.of(2, None)])     # 1.8–3.2 notes/s: 9 to 15 notes
    g.resume(0, np.arange(0, 140, 10), 140, np.full(14, 5))         # 14 notes in the first 1.4 s
    on = g.allowed()[0, tk.ONSET0:tk.DUR0]
    first = int(torch.nonzero(on)[0])
    assert first == int(np.ceil((15 / 3.2 - BURST_S) * 100))       # the 15th note waits for the pace
    for t in (tk.ONSET0 + first, tk.DUR0, tk.PV0):
        g.advance(torch.tensor([t]))
    a = g.allowed()[0]
    assert a[tk.EOS] and not a[tk.ONSET0:tk.DUR0].any(), "15 notes: the window is full"


def test_no_pace_for_any_density_and_polyphony(tok):
    assert Pace.from_tokens(tok, tok.density_id(None), tok.polyphony_id(None)) is None
    assert Pace.from_tokens(tok, tok.density_id(3), tok.polyphony_id(None)) == Pace(3.2, 5.6, 10)
    assert Pace.from_tokens(tok, tok.density_id(None), tok.polyphony_id(0)).voices == 3


def test_grammar_masks_follow_the_triple_cycle():
    g = Grammar(1, tk.NOTE_END + 40)
    assert g.allowed()[0, tk.ONSET0:tk.DUR0].all() and g.allowed()[0, tk.EOS]
    g.advance(torch.tensor([tk.ONSET0 + 200]))
    a = g.allowed()[0]
    assert a[tk.DUR0:tk.PV0].all() and a.sum() == tk.N_DUR
    g.advance(torch.tensor([tk.DUR0 + 3]))
    a = g.allowed()[0]
    assert a[tk.PV0:tk.NOTE_END].all() and a.sum() == tk.N_PV
    g.advance(torch.tensor([tk.PV0 + 100]))
    a = g.allowed()[0]
    assert a[tk.EOS] and not a[tk.ONSET0:tk.ONSET0 + 200].any() and a[tk.ONSET0 + 200:tk.DUR0].all()


def test_grammar_gives_onsets_just_before_a_melody_note_to_the_melody_onset():
    g = Grammar(2, tk.NOTE_END + 40, melody_onsets=[{100}, set()], chord_size=3)
    logits = torch.full((2, tk.NOTE_END + 40), -10.0)
    logits[:, tk.ONSET0 + 97] = logits[:, tk.ONSET0 + 98] = 2.0   # 20–30 ms early: forbidden for row 0
    logits[:, tk.ONSET0 + 100] = 1.0
    out = g.adjust(logits)
    expect = torch.logsumexp(torch.tensor([2.0, 2.0, 1.0] + [-10.0] * 3), 0)
    assert torch.isclose(out[0, tk.ONSET0 + 100], expect)
    assert torch.equal(out[1], logits[1]), "a row without a melody is untouched"
    probs = torch.softmax(out[0].masked_fill(~g.allowed()[0], float("-inf")), 0)
    assert probs[tk.ONSET0 + 100] > 0.99, "the early onsets' mass goes to the melody onset"


def test_grammar_moves_on_after_ten_notes_in_one_group():
    g = Grammar(1, tk.NOTE_END + 40)
    for i in range(10):
        assert g.allowed()[0, tk.ONSET0 + 50 + (i > 0)], i
        for t in (tk.ONSET0 + 50 + (i > 0), tk.DUR0, tk.PV0 + 8 * i):
            g.advance(torch.tensor([t]))
    on = g.allowed()[0, tk.ONSET0:tk.DUR0]
    assert not on[:56].any() and on[56:].all(), "an eleventh note must start a new group"


def test_grammar_holds_the_chords_at_melody_onsets_with_chord_hold():
    g = Grammar(1, tk.NOTE_END + 40, melody_onsets=[{100: 72, 300: 74}], chord_size=3, chord_hold=40)
    g.advance(torch.tensor([tk.ONSET0 + 40]))     # a free note before the melody: any duration
    assert g.allowed()[0, tk.DUR0:tk.PV0].all()
    for t in (tk.DUR0, tk.PV0, tk.ONSET0 + 100):  # ...then the chord at the melody onset
        g.advance(torch.tensor([t]))
    dur = g.allowed()[0, tk.DUR0:tk.PV0]
    assert not dur[:39].any() and dur[39:].all()  # at least 40 steps (400 ms)


def test_grammar_holds_onsets_in_the_chord_until_it_is_full():
    def onset(g, step):
        for t in (tk.ONSET0 + step, tk.DUR0, tk.PV0):
            g.advance(torch.tensor([t]))

    g = Grammar(1, tk.NOTE_END + 40, melody_onsets=[{100, 300}], chord_size=3)
    onset(g, 40)                                  # far from the melody: free until 50 ms before it
    a = g.allowed()[0]
    on = a[tk.ONSET0:tk.DUR0]
    assert not a[tk.EOS] and on[40:95].all() and not on[95:100].any() and on[100] and not on[101:].any()
    onset(g, 100)                                 # the melody onset: a chord must follow
    for last in (100, 101):                       # onsets stay in [last, 100 + 5 steps], no EOS
        a = g.allowed()[0]
        assert not a[tk.EOS] and a[tk.ONSET0 + last:tk.ONSET0 + 106].all()
        assert not a[tk.ONSET0:tk.ONSET0 + last].any() and not a[tk.ONSET0 + 106:tk.DUR0].any()
        onset(g, 101)
    a = g.allowed()[0]                            # three notes: free again until the next melody onset
    on = a[tk.ONSET0:tk.DUR0]
    assert not a[tk.EOS] and on[101:295].all() and not on[295:300].any() and on[300] and not on[301:].any()
    onset(g, 300)                                 # the last melody note, and its chord
    onset(g, 300)
    onset(g, 301)
    a = g.allowed()[0]
    assert a[tk.EOS] and a[tk.ONSET0 + 301:tk.DUR0].all()


@pytest.mark.parametrize("sampling", [Sampling(seed=0), Sampling(seed=1, temperature=1.5, top_k=0, top_p=0.9),
                                      Sampling(seed=2, temperature=0.0)])
def test_decoded_rows_are_complete_triples_with_rising_onsets(model, tok, rows, sampling):
    out = decode_rows(model, rows, sampling, null_id=tok.null_style)
    assert len(out) == len(rows)
    for ids in out:
        check_row(ids)
    assert sum(len(o) for o in out) > 0


def test_guidance_decodes_cond_and_null_rows_together(model, tok, rows, monkeypatch):
    seen = []
    encode = model.encode

    def spy(enc, mixes=None):
        seen.append((enc.clone(), mixes))
        return encode(enc, mixes)

    monkeypatch.setattr(model, "encode", spy)
    jazz, classical = tok.genre_id("jazz"), tok.genre_id("classical")
    style = Style(genre={jazz: 0.7, classical: 0.3})
    any_controls = (tok.density_id(None), tok.polyphony_id(None))
    rows = [Row(r.enc.copy()) for r in rows]
    for r in rows:                      # rows that ask for a texture
        r.enc[2:4] = tok.density_id(3), tok.polyphony_id(2)
    out = decode_rows(model, rows, Sampling(seed=3, guidance=1.5), style, tok.null_style,
                      any_controls=any_controls)
    for ids in out:
        check_row(ids)
    (enc, mixes), = seen
    n = len(rows)
    assert enc.shape == (2 * n, max(len(r.enc) for r in rows))
    for i, r in enumerate(rows):
        assert enc[i, :len(r.enc)].tolist() == r.enc.tolist()
        # The unconditional copy drops the style to NULL and the density/polyphony asked for to ANY.
        assert enc[n + i, :4].tolist() == [tok.null_style, tok.null_style, *any_controls]
        assert enc[n + i, 4:len(r.enc)].tolist() == r.enc[4:].tolist()
    (pos, ids, w), = mixes
    assert pos == 0 and ids.tolist() == [jazz, classical, tok.null_style]
    torch.testing.assert_close(w[:n], torch.tensor([[0.7, 0.3, 0.0]]).expand(n, 3))
    torch.testing.assert_close(w[n:], torch.tensor([[0.0, 0.0, 1.0]]).expand(n, 3))


def test_zero_guidance_is_exactly_no_guidance(model, tok, rows):
    a = decode_rows(model, rows, Sampling(seed=4, guidance=0.0), null_id=tok.null_style)
    b = decode_rows(model, rows, Sampling(seed=4), null_id=None)
    c = decode_rows(model, rows, Sampling(seed=4))
    assert all(np.array_equal(x, y) and np.array_equal(x, z) for x, y, z in zip(a, b, c))


@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_style_mixtures_of_genres_and_artists_decode(model, tok, rows, guidance):
    style = Style(genre={tok.genre_id("jazz"): 2.0, tok.genre_id("pop"): 1.0},
                  artist={tok.artist_id("Art Tatum"): 0.5, tok.artist_id("Oscar Peterson"): 0.5})
    out = decode_rows(model, rows, Sampling(seed=5, guidance=guidance), style, tok.null_style)
    for ids in out:
        check_row(ids)


def test_chord_rule_fills_groups_at_melody_onsets(model, tok, rows):
    melodies = [set(range(0, 500, 10)), {20, 120, 220, 320, 420}, {0, 250, 499}, set(range(5, 500, 45))]
    chord = 3
    limit_notes = (model.cfg.max_dec_len - 1) // 3
    checked = 0
    for seed in range(3):
        mrows = [Row(r.enc, m) for r, m in zip(rows, melodies)]
        out = decode_rows(model, mrows, Sampling(seed=seed), null_id=tok.null_style, chord_size=chord)
        for ids, mel in zip(out, melodies):
            check_row(ids)
            if len(ids) // 3 >= limit_notes:      # cut by the length limit: the last group may be short
                continue
            sizes = near_melody_groups((ids[0::3] - tk.ONSET0) * tk.GRID_MS, [m * tk.GRID_MS for m in mel])
            assert all(s >= chord for s in sizes), (seed, sizes)
            checked += len(sizes)
    assert checked >= 5


def test_rows_with_and_without_melody_decode_in_one_batch(model, tok, rows):
    mixed = [Row(rows[0].enc, {50, 150}), Row(rows[1].enc, None)]
    out = decode_rows(model, mixed, Sampling(seed=0), null_id=tok.null_style)
    for ids in out:
        check_row(ids)


def test_max_tokens_caps_rows_at_whole_notes(model, tok, rows):
    out = decode_rows(model, rows, Sampling(seed=6, temperature=0.0), null_id=tok.null_style, max_tokens=11)
    for ids in out:
        check_row(ids)
        assert len(ids) <= 9


# ------------------------------------------------------------------ improvise
def test_improvise_keeps_the_first_windows_and_the_last(pair, piece40):
    out = tasks.improvise(piece40, plan="skyline:1,whole_mask:1", seed=1, preserve_structure=0, model=pair)
    assert isinstance(out, Notes) and len(out)
    assert out.pitch.min() >= 21 and out.pitch.max() <= 108
    assert len(tk.split_segments(piece40)) == 8
    # Untouched notes are the input's own, exactly (not their quantised versions).
    assert same(between(out, 0, 10_000), between(piece40, 0, 10_000))        # keep_first_s=10 → windows 0, 1
    assert same(between(out, 35_000, 10**9), between(piece40, 35_000, 10**9))  # the last window
    assert not same(between(out, 10_000, 35_000), between(piece40, 10_000, 35_000))
    # Kept notes are not "new" for the piano roll.
    assert not changed_mask(piece40, out)[out.onset_ms < 10_000].any()


def tune_kept(piece: Notes, out: Notes, windows: range) -> float:
    """Share of the tune (each window's skyline) of `windows` found in `out` at the same onset and pitch."""
    p = Piece.from_notes(piece)
    have = set(zip(out.onset_ms.tolist(), out.pitch.tolist()))
    want = [(p.origin_ms + i * tk.SEGMENT_MS + o, n) for i in windows
            for o, n in zip(*(lambda s: (s.onset_ms.tolist(), s.pitch.tolist()))(skyline_notes(p.window_notes(i))))]
    return sum(w in have for w in want) / len(want)


def test_improvise_keeps_the_tune_on_top_through_every_pass_unless_freed(pair, piece40, monkeypatch):
    shown, after, live = [], [], {}
    rows_for = engine_mod.Engine.rows_for

    def spy_rows(self, piece, targets, names, cond, rng, right_context=None, harmonize=False, inputs=None, bias=None):
        shown.append((names[0], inputs))
        live["piece"] = piece
        return rows_for(self, piece, targets, names, cond, rng, right_context, harmonize, inputs, bias)

    monkeypatch.setattr(engine_mod.Engine, "rows_for", spy_rows)
    kept = tasks.improvise(piece40, plan="improvnet", seed=2, preserve_structure=0, model=pair,
                           on_pass=lambda k, n: after.append(tune_kept(piece40, live["piece"].notes(), range(2, 7))))
    monkeypatch.setattr(engine_mod.Engine, "rows_for", rows_for)
    # Skyline passes are shown the piece's own tune; other corruptions corrupt the current window.
    tune = Piece.from_notes(piece40)
    for name, inputs in shown:
        if name == "skyline":
            assert inputs is not None and same(inputs[3], skyline_notes(tune.window_notes(3)))
        else:
            assert inputs is None
    assert "skyline" in {n for n, _ in shown} and len({n for n, _ in shown}) > 1
    assert after == [1.0] * 10          # the tune is back on top after every one of the ten passes
    free = tasks.improvise(piece40, plan="improvnet", seed=2, preserve_structure=0, keep_melody=False, model=pair)
    rewritten = range(2, 7)   # keep_first_s=10 keeps windows 0–1; the last window (7) is kept too
    assert tune_kept(piece40, kept, rewritten) == 1.0
    assert tune_kept(piece40, free, rewritten) < 0.8
    assert not same(between(kept, 10_000, 35_000), between(quantised(piece40), 10_000, 35_000))
    # Nothing new starts above the tune where the tune starts a note.
    p = Piece.from_notes(piece40)
    for i in rewritten:
        line = skyline_notes(p.window_notes(i))
        for o, n in zip((p.origin_ms + i * tk.SEGMENT_MS + line.onset_ms).tolist(), line.pitch.tolist()):
            assert kept.pitch[kept.onset_ms == o].max() == n


def test_improvise_is_reproducible_by_seed(ckpt, pair, piece40):
    a = tasks.improvise(piece40, plan="light", seed=3, model=pair)
    b = tasks.improvise(piece40, plan="light", seed=3, model=str(ckpt))   # a folder loads the same model
    c = tasks.improvise(piece40, plan="light", seed=4, model=pair)
    assert same(a, b)
    assert not same(a, c)


def test_plans_parse_and_bad_plans_are_refused(pair, piece40):
    assert parse_plan("skyline:1,whole_mask:.5") == [Pass("skyline", 1.0), Pass("whole_mask", 0.5)]
    assert parse_plan(" skyline ") == [Pass("skyline", 1.0)]
    assert parse_plan("improvnet") == PLANS["improvnet"] and len(PLANS["improvnet"]) == 10
    assert tasks._plan("light", None, 5, None) == (PLANS["light"] * 2)[:5]
    assert tasks._plan("light", 0.2, None, None) == [Pass(p.corruption, 0.2) for p in PLANS["light"]]
    assert tasks._plan("x", None, 3, "skyline") == [Pass("skyline", 1.0)] * 3
    with pytest.raises(TatumError, match="corruption:rate"):
        parse_plan("skyline:often")
    with pytest.raises(TatumError, match="unknown plan or corruption 'nonsense'"):
        tasks.improvise(piece40, plan="nonsense", seed=0, model=pair)
    with pytest.raises(TatumError, match="unknown plan or corruption 'scramble'"):
        tasks.improvise(piece40, corruption="scramble", seed=0, model=pair)
    with pytest.raises(TatumError, match="rate"):
        tasks.improvise(piece40, plan="skyline:1.5", seed=0, model=pair)


def test_an_unknown_corruption_in_a_plan_is_refused_even_if_no_window_is_drawn(pair, piece40):
    with pytest.raises(TatumError):
        tasks.improvise(piece40, plan="skyline:1,skylien:0", seed=0, model=pair)


def test_unknown_style_or_artist_lists_the_known_ones(pair, piece40):
    with pytest.raises(TatumError) as e:
        tasks.improvise(piece40, style="bebop", seed=0, model=pair)
    assert "bebop" in str(e.value) and all(g in str(e.value) for g in ("classical", "jazz", "pop"))
    with pytest.raises(TatumError) as e:
        tasks.improvise(piece40, artist="Nobody Atall", seed=0, model=pair)
    assert "Nobody Atall" in str(e.value) and "Art Tatum" in str(e.value) and "Cedar Walton" in str(e.value)
    with pytest.raises(TatumError, match="negative"):
        tasks.improvise(piece40, style={"jazz": 1.0, "pop": -0.5}, seed=0, model=pair)
    with pytest.raises(TatumError, match="zero"):
        tasks.improvise(piece40, style={"jazz": 0.0}, seed=0, model=pair)


def test_style_and_artist_mixtures_reach_the_decoder(pair, tok, piece40, monkeypatch):
    styles = []
    real = engine_mod.decode_rows

    def spy(model, rows, sampling, style=None, *a, **k):
        styles.append(style)
        return real(model, rows, sampling, style, *a, **k)

    monkeypatch.setattr(engine_mod, "decode_rows", spy)
    out = tasks.improvise(piece40, style={"jazz": 0.7, "classical": 0.3},
                          artist={"Art Tatum": 0.6, "Oscar Peterson": 0.4}, plan="skyline:1", seed=2,
                          guidance=1.0, model=pair)
    assert isinstance(out, Notes) and len(out)
    assert same(between(out, 0, 10_000), between(piece40, 0, 10_000))
    assert styles
    for s in styles:
        assert s.genre == {tok.genre_id("jazz"): 0.7, tok.genre_id("classical"): 0.3}
        assert s.artist == {tok.artist_id("Art Tatum"): 0.6, tok.artist_id("Oscar Peterson"): 0.4}


def test_improvise_refuses_a_piece_shorter_than_a_window(pair):
    with pytest.raises(TatumError, match="5 s"):
        tasks.improvise(grid_piece(3, seed=1), seed=0, model=pair)
    with pytest.raises(TatumError, match="no notes"):
        tasks.improvise(Notes.empty(), seed=0, model=pair)


# ------------------------------------------------------------------ structure
def test_novelty_peaks_at_the_section_boundary():
    segs = tk.split_segments(two_part_piece())
    assert len(segs) == 8
    nov = novelty(segs)
    assert int(np.argmax(nov)) in (3, 4, 5)
    for fraction in (0.1, 0.25):
        kept = preserved_segments(segs, fraction)
        assert kept & {3, 4, 5}, (fraction, kept, nov)
        assert len(kept) <= int(np.ceil(fraction * 8))
    assert preserved_segments(segs, 0) == set()
    assert preserved_segments(segs[:3], 0.5) == set()


def test_preserve_structure_keeps_the_boundary_windows(pair):
    piece = two_part_piece()
    segs = tk.split_segments(piece)
    keep = preserved_segments(segs, 0.25)
    assert keep & {3, 4, 5}
    q = Piece.from_notes(piece).windows
    out = Piece.from_notes(tasks.improvise(piece, plan="whole_mask:1", keep_first_s=0, preserve_structure=0.25,
                                           seed=5, model=pair), piece.start_ms).windows
    for i in keep:
        assert np.array_equal(out[i], q[i]), i
    assert any(not np.array_equal(out[i], q[i]) for i in range(len(q) - 1) if i not in keep)
    # Without preservation the same windows are rewritten.
    bare = Piece.from_notes(tasks.improvise(piece, plan="whole_mask:1", keep_first_s=0, preserve_structure=0,
                                            seed=5, model=pair), piece.start_ms).windows
    assert any(not np.array_equal(bare[i], q[i]) for i in keep)


# ------------------------------------------------------------------ harmonize
def test_harmonize_adds_chords_under_the_melody(pair):
    # Four notes a window, so the tiny model's 42-note decoder limit does not cut chords short.
    mel = melody_line(steps=(300, 1400, 2600, 3900))
    limit_notes = (pair[0].cfg.max_dec_len - 1) // 3
    checked = 0
    for seed in range(3):  # the random model sometimes fills a window up to the limit; those are skipped
        out = tasks.harmonize(mel, passes=1, chord_size=3, chord_gap_ms=0, seed=seed, model=pair)
        assert tk.mean_polyphony(out) > tk.mean_polyphony(mel) == 1.0
        # One pass: the chord rule saw the given melody, so every group starting by a melody note is a chord.
        for w, seg in enumerate(tk.split_segments(out, mel.start_ms)):
            if len(seg) >= limit_notes:
                continue
            sizes = near_melody_groups(seg.onset_ms + 5000 * w, mel.onset_ms)
            assert all(s >= 3 for s in sizes), (w, sizes, seg.onset_ms.tolist(), seg.pitch.tolist())
            checked += len(sizes)
    assert checked >= 1


def test_chord_gap_thins_the_onsets_the_chord_rule_serves(pair, monkeypatch):
    assert engine_mod.thin_onsets({0: 60, 10: 62, 25: 64, 31: 65, 60: 67}, 0) == {0: 60, 10: 62, 25: 64, 31: 65, 60: 67}
    # Greedy from the first onset: each served onset is at least 30 steps (300 ms) after the last served.
    assert engine_mod.thin_onsets({0: 60, 10: 62, 25: 64, 31: 65, 61: 67}, 30) == {0: 60, 31: 65, 61: 67}
    served = []
    real = engine_mod.decode_rows

    def spy(model, rows, *args, **kwargs):
        served.extend(sorted(r.melody) for r in rows)
        return real(model, rows, *args, **kwargs)

    monkeypatch.setattr(engine_mod, "decode_rows", spy)
    mel = melody_line(steps=(300, 400, 600, 1400, 1500, 2600))   # grid steps of one window's line
    tasks.harmonize(mel, passes=1, chord_gap_ms=500, seed=0, model=pair)
    assert served and all(b - a >= 50 for onsets in served for a, b in zip(onsets, onsets[1:]))
    with pytest.raises(TatumError, match="chord-gap"):
        tasks.harmonize(mel, passes=1, chord_gap_ms=-1, model=pair)


def test_harmonize_keeps_every_melody_onset(pair):
    mel = melody_line()
    out = tasks.harmonize(mel, passes=2, seed=0, model=pair)
    missing = [o for o in mel.onset_ms if not np.any(np.abs(out.onset_ms.astype(np.int64) - o) <= 50)]
    assert not missing


def test_harmonize_warns_about_chords_or_refuses_them_when_strict(pair):
    mel = melody_line(2)
    chordal = Notes.merge([mel, mel.transpose(-7)])
    with pytest.warns(UserWarning, match="chords"):
        out = tasks.harmonize(chordal, passes=1, seed=0, model=pair)
    assert isinstance(out, Notes)
    with pytest.raises(TatumError, match="chords"):
        tasks.harmonize(chordal, passes=1, seed=0, strict=True, model=pair)


# ------------------------------------------------------------------ continue
def test_continue_keeps_the_prompt_and_stops_in_time(pair, piece40):
    out = tasks.continue_(piece40, 5, prompt_seconds=10, seed=1, model=pair)
    prompt = piece40.slice(0, 10_000, clip=True)     # the prompt exactly as given
    assert same(between(out, -10**9, 10_000), prompt)
    new = between(out, 10_000, 10**9)
    assert len(new)
    assert new.onset_ms.max() < 15_000
    assert out.end_ms <= 15_000 + tk.SEGMENT_MS


def test_continue_a_whole_prompt_that_does_not_start_at_zero(pair):
    prompt = grid_piece(12, seed=3, start_ms=1230)
    out = tasks.continue_(prompt, 6, seed=2, model=pair)
    end = prompt.end_ms
    assert same(between(out, -10**9, end), prompt)
    assert out.onset_ms.max() < end + 6000


def test_continue_keeps_a_prompt_note_just_before_the_prompt_end(pair):
    prompt = Notes([0, 3000, 6000, 9996], [500] * 4, [60, 62, 64, 72], [80] * 4)
    out = tasks.continue_(prompt, 5, prompt_seconds=10, seed=0, model=pair)
    # The nearest grid step inside the prompt's windows is 9990 ms: within one 10 ms step.
    assert np.any((out.pitch == 72) & (np.abs(out.onset_ms.astype(np.int64) - 9996) <= 10))


def test_continue_takes_density_and_polyphony_from_the_prompt_unless_told(pair, piece40, monkeypatch):
    seen = []
    run_pass = engine_mod.Engine.run_pass

    def spy(self, piece, p, cond, *args, **kwargs):
        seen.append((cond.density, cond.polyphony))
        return run_pass(self, piece, p, cond, *args, **kwargs)

    monkeypatch.setattr(engine_mod.Engine, "run_pass", spy)
    tasks.continue_(piece40, 10, prompt_seconds=10, seed=1, model=pair)
    last = Piece.from_notes(piece40.slice(0, 10_000, clip=True), 0).window_notes(1)   # the prompt's last 5 s
    assert len(last) and seen == [(tk.density_bucket(len(last)), tk.polyphony_bucket(last))] * 2
    seen.clear()
    tasks.continue_(piece40, 5, prompt_seconds=10, seed=1, density=None, polyphony=3, model=pair)
    assert seen == [(None, 3)]
    # A prompt that ends in silence (the piece rests from 5 s to 12 s) takes its texture from its last
    # window with notes.
    seen.clear()
    opening = Notes.merge([piece40.slice(0, 5_000, clip=True), Notes([12_000], [500], [60], [80])])
    tasks.continue_(opening, 5, prompt_seconds=10, seed=1, model=pair)
    first = Piece.from_notes(opening, 0).window_notes(0)
    assert seen == [(tk.density_bucket(len(first)), tk.polyphony_bucket(first))]


def test_continue_holds_the_asked_density(pair, piece40):
    """Even a model with random weights (which reads the density token not at all) plays each new
    window inside the asked bucket: the grammar paces it (sampling.Pace)."""
    for density in (1, 4):
        out = tasks.continue_(piece40, 10, prompt_seconds=10, seed=1, density=density, model=pair)
        pace = Pace.of(density, None)
        for start in (10_000, 15_000):
            n = len(between(out, start, start + 5000))
            assert tk.density_bucket(n) <= density and n >= np.floor(pace.low * (5 - BURST_S)), (density, n)


def test_continue_keeps_the_prompts_texture_unguided_by_default(pair, piece40, monkeypatch):
    """The pace keeps the prompt's buckets; guidance toward them is asked for, not the default (it made
    continuations more random-like: benchmarks/continue_sampling.py)."""
    seen = []
    real = engine_mod.decode_rows

    def spy(model, rows, sampling, *args, **kwargs):
        seen.append((sampling.guidance, kwargs.get("any_controls"), [r.pace for r in rows]))
        return real(model, rows, sampling, *args, **kwargs)

    monkeypatch.setattr(engine_mod, "decode_rows", spy)
    _, tok = pair
    tasks.continue_(piece40, 5, prompt_seconds=10, seed=1, model=pair)
    assert seen[0][0] == 0.0 and all(p is not None for p in seen[0][2])
    seen.clear()
    tasks.continue_(piece40, 5, prompt_seconds=10, seed=1, guidance=2.0, model=pair)
    assert seen == [(2.0, (tok.density_id(None), tok.polyphony_id(None)), seen[0][2])]


@pytest.mark.parametrize("seconds", [0, -5, float("nan")])
def test_continue_refuses_nonpositive_seconds(pair, piece40, seconds):
    with pytest.raises(TatumError, match="seconds must be"):
        tasks.continue_(piece40, seconds, prompt_seconds=10, model=pair)


def test_continue_refuses_a_prompt_longer_than_the_piece(pair, piece40):
    with pytest.raises(TatumError, match=r"past the end of the piece \(40"):
        tasks.continue_(piece40, 5, prompt_seconds=100, model=pair)


# ------------------------------------------------------------------ infill
def test_infill_changes_only_the_range(pair, piece40):
    out = tasks.infill(piece40, 12, 18, seed=2, model=pair)
    for lo, hi in ((-10**9, 12_000), (18_000, 10**9)):
        assert same(between(out, lo, hi), between(piece40, lo, hi))
    new = between(out, 12_000, 18_000)
    assert len(new)
    assert not same(new, between(piece40, 12_000, 18_000))
    assert new.onset_ms.min() >= 12_000 and new.onset_ms.max() < 18_000


def test_infill_keeps_the_texture_of_the_music_around_the_gap_when_asked_for_source(pair, piece40, monkeypatch):
    """The gap is empty, so "source" is the buckets of the given window just before it (once, the
    gap's own empty windows: density bucket 0)."""
    seen = []
    real = engine_mod.decode_rows

    def spy(model, rows, sampling, *args, **kwargs):
        seen.extend(r.pace for r in rows)
        return real(model, rows, sampling, *args, **kwargs)

    monkeypatch.setattr(engine_mod, "decode_rows", spy)
    tasks.infill(piece40, 15, 25, seed=2, density="source", polyphony="source", model=pair)
    before = Piece.from_notes(piece40, 0).window_notes(2)
    want = Pace.of(tk.density_bucket(len(before)), tk.polyphony_bucket(before))
    assert len(before) and seen and all(p == want for p in seen)


@pytest.mark.parametrize("start,end", [(500, 600), (41, 45), (18, 12), (15, 15), (-5, 3)])
def test_infill_refuses_empty_or_outside_ranges(pair, piece40, start, end):
    with pytest.raises(TatumError, match="infill range"):
        tasks.infill(piece40, start, end, seed=0, model=pair)


# ------------------------------------------------------------------ piano rolls
def test_changed_mask_marks_exactly_the_new_notes():
    before = Notes([0, 500, 500, 1000, 2000], [400] * 5, [60, 64, 67, 62, 70], [80] * 5)
    on = [0, 520, 500, 1000, 2100, 3000, 1000]
    pitch = [60, 64, 66, 62, 70, 72, 74]
    new = [False, False, True, False, True, True, True]   # 20 ms late is the same note; 100 ms is not
    order = np.lexsort((pitch, on))
    after = Notes(on, [300] * 7, pitch, [50] * 7)
    assert np.array_equal(after.pitch, np.array(pitch)[order])
    assert changed_mask(before, after).tolist() == np.array(new)[order].tolist()
    assert not changed_mask(before, before).any()
    assert changed_mask(Notes.empty(), after).all()
    assert changed_mask(before, Notes.empty()).shape == (0,)


def test_piano_roll_writes_a_png(tmp_path, piece40):
    after = piece40.transpose(2)
    p = piano_roll(tmp_path / "sub" / "roll.png", after, piece40)
    data = p.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    q = piano_roll(tmp_path / "alone.png", after)
    assert q.read_bytes().startswith(PNG_MAGIC) and q.stat().st_size > 5_000
    assert not list(tmp_path.rglob(".*tmp*"))


# ------------------------------------------------------------------ the CLI
def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = p.communicate(timeout=300)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def error_line(r: subprocess.CompletedProcess) -> str:
    """Exit 2, no traceback, and exactly one `tatum: error:` line."""
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("tatum: error: ")]
    assert len(errors) == 1, r.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def cli_runs(ckpt, piece40, tmp_path_factory) -> dict:
    """Every CLI run of this module, the independent ones side by side."""
    d = tmp_path_factory.mktemp("gen-cli")
    piece40.to_midi(d / "in.mid")
    chordal = melody_line(3)
    Notes.merge([chordal, chordal.transpose(-5)]).to_midi(d / "chordal.mid")
    m = ("--model", ckpt, "--seed", "1")
    jobs = {
        "improvise": _start("improvise", d / "in.mid", "-o", d / "out.mid", *m, "--png", d / "out.png",
                            "--plan", "light"),
        "bebop": _start("improvise", d / "in.mid", "-o", d / "bebop.mid", *m, "--style", "bebop"),
        "infill": _start("infill", d / "in.mid", "-o", d / "fill.mid", *m, "--start", 500, "--end", 600),
        "harmonize": _start("harmonize", d / "chordal.mid", "-o", d / "harm.mid", *m, "--passes", 1),
        "continue": _start("continue", d / "in.mid", "-o", d / "cont.mid", *m, "--prompt-seconds", 10,
                           "--seconds", 5, "--density", "any", "--polyphony", "source"),
        "bucket": _start("continue", d / "in.mid", "-o", d / "bucket.mid", *m, "--density", 9),
    }
    runs = {k: _finish(p) for k, p in jobs.items()}
    runs["dir"] = d
    if runs["improvise"].returncode == 0:
        before = (d / "out.mid").read_bytes(), (d / "out.png").read_bytes()
        runs["again"] = _finish(_start("improvise", d / "in.mid", "-o", d / "out.mid", *m, "--png", d / "out.png",
                                       "--plan", "light"))
        runs["again_unchanged"] = before == ((d / "out.mid").read_bytes(), (d / "out.png").read_bytes())
    return runs


def test_cli_improvise_writes_midi_and_png(cli_runs):
    r, d = cli_runs["improvise"], cli_runs["dir"]
    assert r.returncode == 0, r.stderr[-2000:]
    out = Notes.from_midi(d / "out.mid")
    assert len(out) and 30 < out.duration_s < 50
    png = (d / "out.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    assert "tatum: error" not in r.stderr


def test_cli_refuses_to_overwrite_without_force(cli_runs):
    line = error_line(cli_runs["again"])
    assert cli_runs["again"].stderr.strip() == line
    assert "--force" in line and "out.mid" in line
    assert cli_runs["again_unchanged"]


def test_cli_unknown_style_is_one_error_line_with_the_known_styles(cli_runs):
    line = error_line(cli_runs["bebop"])
    assert "bebop" in line and "classical, jazz, pop" in line
    assert not (cli_runs["dir"] / "bebop.mid").exists()


def test_cli_infill_outside_the_piece_is_one_error_line(cli_runs):
    line = error_line(cli_runs["infill"])
    assert "outside the piece" in line
    assert not (cli_runs["dir"] / "fill.mid").exists()


@pytest.mark.parametrize("key", ["bebop", "infill"])
def test_cli_errors_after_the_progress_bar_are_still_alone_on_stderr(cli_runs, key):
    r = cli_runs[key]
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_harmonize_of_chords_warns_and_succeeds(cli_runs):
    r = cli_runs["harmonize"]
    assert r.returncode == 0, r.stderr[-2000:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("tatum: warning: ")]
    assert len(warnings) == 1 and "chordal.mid" in warnings[0]
    assert "chords" in r.stderr
    assert len(Notes.from_midi(cli_runs["dir"] / "harm.mid"))


def test_cli_warning_is_a_single_line(cli_runs):
    r = cli_runs["harmonize"]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("tatum: warning: ")]
    assert len(warnings) == 1 and warnings[0].endswith("the melody has chords; harmonizing its top line"), r.stderr


def test_cli_continue(cli_runs):
    r = cli_runs["continue"]
    assert r.returncode == 0, r.stderr[-2000:]
    out = Notes.from_midi(cli_runs["dir"] / "cont.mid")
    assert len(out) and out.onset_ms.max() < 15_000 + 5


def test_cli_a_control_bucket_out_of_range_is_one_error_line(cli_runs):
    line = error_line(cli_runs["bucket"])
    assert "density bucket must be 0–7" in line and "9" in line
    assert not (cli_runs["dir"] / "bucket.mid").exists()


def test_grammar_strikes_a_key_again_only_after_the_restrike_time():
    g = Grammar(1, tk.NOTE_END + 40, restrike_ms=100)
    c4 = tk.PV0 + (60 - tk.PIANO_LOW) * tk.VEL_BINS                     # middle C, softest bin
    for t in (tk.ONSET0 + 200, tk.DUR0 + 3, c4 + 5, tk.ONSET0 + 200, tk.DUR0):
        g.advance(torch.tensor([t]))
    a = g.allowed()[0, tk.PV0:tk.NOTE_END]
    assert not a[c4 - tk.PV0:c4 - tk.PV0 + tk.VEL_BINS].any() and a.sum() == tk.N_PV - tk.VEL_BINS
    assert torch.equal(g.pv_allowed()[0], a)                             # the fast path's view agrees
    for t in (c4 + 7 + tk.VEL_BINS, tk.ONSET0 + 201, tk.DUR0):           # 10 ms later: not C again (a stutter)
        g.advance(torch.tensor([t]))
    a = g.allowed()[0, tk.PV0:tk.NOTE_END]
    assert not a[c4 - tk.PV0:c4 - tk.PV0 + tk.VEL_BINS].any() and a[c4 - tk.PV0 + 2 * tk.VEL_BINS].all()
    for t in (c4 + 9 * tk.VEL_BINS, tk.ONSET0 + 211, tk.DUR0):          # 100 ms after the last strike: any key
        g.advance(torch.tensor([t]))
    assert g.allowed()[0, tk.PV0:tk.NOTE_END].all()
    g.resume(0, np.array([150, 300]), durs=np.array([5, 5]), pitches=np.array([62, 60]))
    g.advance(torch.tensor([tk.ONSET0 + 300]))
    g.advance(torch.tensor([tk.DUR0]))
    assert not g.pv_allowed()[0, c4 - tk.PV0] and g.pv_allowed()[0, c4 - tk.PV0 + 2 * tk.VEL_BINS]


def test_a_key_struck_under_a_low_melody_note_still_leaves_a_note_to_draw():
    g = Grammar(1, tk.NOTE_END + 40, melody_onsets=[{0: 22}], chord_size=3)
    for t in (tk.ONSET0, tk.DUR0, tk.PV0 + 3, tk.ONSET0, tk.DUR0):     # A0 struck under the melody's B♭0
        g.advance(torch.tensor([t]))
    a = g.allowed()[0]
    assert a[tk.PV0:tk.PV0 + tk.VEL_BINS].all() and not a[tk.EOS], "the rule yields rather than end the note"


def test_grammar_keeps_the_last_keys_of_the_window_before():
    g = Grammar(1, tk.NOTE_END + 40, restrike_ms=100)
    c4 = tk.PV0 + (60 - tk.PIANO_LOW) * tk.VEL_BINS
    g.struck_before(0, np.array([tk.ONSET0 + tk.N_ONSET - 5, tk.DUR0 + 9, c4]))    # C at 4,950 ms
    for t in (tk.ONSET0 + 4, tk.DUR0):                                             # 90 ms later: not C
        g.advance(torch.tensor([t]))
    assert not g.pv_allowed()[0, c4 - tk.PV0] and g.pv_allowed()[0, c4 - tk.PV0 + tk.VEL_BINS]
    for t in (c4 + tk.VEL_BINS, tk.ONSET0 + 5, tk.DUR0):                           # 100 ms later: C again
        g.advance(torch.tensor([t]))
    assert g.pv_allowed()[0, c4 - tk.PV0]


def test_pitch_anchor_costs_only_keys_outside_the_range_around():
    from tatum.generate.sampling import ANCHOR_SPAN, pitch_anchor

    pitches = np.array([48, 52, 55, 60, 64, 67, 72, 76] * 4)
    bias = pitch_anchor(pitches, 1.0).reshape(tk.N_PITCH, tk.VEL_BINS)
    assert torch.all(bias == bias[:, :1])                        # velocity is left alone
    per_key = bias[:, 0].numpy()
    key = lambda midi: per_key[midi - tk.PIANO_LOW]              # noqa: E731
    assert key(48) == key(60) == key(78) == 0                    # inside (widened by a whole tone)
    assert key(90) == pytest.approx(-(90 - 78) / ANCHOR_SPAN) and key(34) == pytest.approx(-12 / ANCHOR_SPAN)
    assert pitch_anchor(pitches, 0.0) is None and pitch_anchor(pitches[:5], 1.0) is None


def test_replay_guides_an_encoder_decoder_too(pair):
    # replay's bias acts at the encoder–decoder's pitch-velocity tokens as at NoteLM's pitch head: on a
    # piece of C, E and G only, the new notes keep to them, where the same random model alone does not
    on = np.arange(60) * 250
    piece = Notes(on, np.full(60, 240), np.array([60, 64, 67, 72] * 15), np.full(60, 80))

    def in_triad(guide: float) -> float:
        new = tasks.improvise(piece, plan="replay", guide=guide, keep_first_s=5, candidates=1, seed=3,
                              model=pair).slice(5000, 10**9)
        assert len(new) >= 5
        return float(np.mean(np.isin(new.pitch % 12, [0, 4, 7])))

    guided, free = in_triad(3.0), in_triad(0.0)
    assert guided >= 0.75 and guided > free + 0.3, (guided, free)


def test_a_pianist_asked_is_replayed_from_the_first_window(pair):
    # with --artist and no plan, improvise re-plays every window (none kept: a kept opening is
    # continued in its own manner); without one, or with passes described, ImprovNet's passes
    piece = grid_piece(15, seed=2)
    steps = []
    out = tasks.improvise(piece, artist="Art Tatum", candidates=1, seed=3, model=pair,
                          on_pass=lambda k, n: steps.append(k))
    assert steps == [0, 1, 2] == list(range(tasks.improvise_steps(piece, tasks.plan_for("Art Tatum"))))
    assert not same(between(out, 0, 5000), between(piece, 0, 5000))
    assert tasks.plan_for("Art Tatum") == tasks.REPLAY
    assert tasks.plan_for(None) == tasks.plan_for("Art Tatum", corruption="skyline") == "improvnet"
    assert tasks.plan_for({"Art Tatum": 1.0}, keep_melody=False) == "improvnet"     # --free-melody: passes
    assert tasks.keep_first_for(tasks.REPLAY, None) == 0 and tasks.keep_first_for("improvnet", None) == 10
    assert tasks.keep_first_for(tasks.REPLAY, 5.0) == 5.0


def test_replays_opening_is_chosen_from_more_drafts(pair):
    # every later window continues the manner the first sets, so it is drawn from OPENING_DRAFTS × K
    seen = []

    def chooser(piece, targets, candidates):
        seen.append(len(candidates[0]))
        return [0] * len(targets)

    tasks.improvise(grid_piece(15, seed=2), plan="replay", candidates=2, reranker=chooser, seed=3, model=pair)
    assert seen == [2 * OPENING_DRAFTS, 2, 2]


def test_the_left_hand_is_asked_for_while_the_window_has_less_bass_than_around_it():
    from tatum.generate.sampling import BASS_AFTER, BASS_BELOW, BASS_GAIN, LeftHand

    hand = LeftHand(np.array([0.6, 0.6, 0.0]), 1.0)
    rows = np.array([0, 1, 2])
    hand.add(rows, np.array([0, 0, 0]), np.array([150, 150, 150]), np.array([72, 40, 72]))
    bias = hand.bias(rows, np.array([100, 100, 100])).reshape(3, tk.N_PITCH, tk.VEL_BINS)[:, :, 0]
    low = np.arange(tk.PIANO_LOW, tk.PIANO_HIGH + 1) < BASS_BELOW
    assert torch.allclose(bias[0, low], torch.tensor(0.6 * BASS_GAIN)) and torch.all(bias[0, ~low] == 0)
    assert torch.all(bias[1] == 0) and torch.all(bias[2] == 0)     # bass enough; none asked
    assert hand.bias(rows, np.array([BASS_AFTER - 1] * 3)) is None   # too soon to judge
    assert hand.bias(rows[1:], np.array([100, 100])) is None         # bass enough, or none asked


def test_the_anchor_draws_each_onset_surer_and_leaves_when_the_next_note_comes():
    # two beats the model hesitates around (10 ms steps 200 and 350, spread ±8 steps) and a chance of
    # ending the window: each beat keeps about its chance and the end its own, each onset falls nearer
    # its beat; a power of 1 changes nothing
    from tatum.generate.sampling import steady

    steps = torch.arange(tk.N_ONSET, dtype=torch.float32)
    p = 0.6 * torch.exp(-0.5 * ((steps - 200) / 8) ** 2) + 0.3 * torch.exp(-0.5 * ((steps - 350) / 8) ** 2)
    p = torch.cat([torch.tensor([0.1]), 0.9 * p / p.sum()])
    logits = (p.log() * 0.9)[None].repeat(2, 1)                     # to be drawn at temperature 0.9
    q = torch.softmax(steady(logits, torch.tensor([1.8, 1.0]), 0.9) / 0.9, dim=-1)
    assert torch.allclose(q[1], p, atol=1e-5)
    q = q[0]
    assert float(q[0]) == pytest.approx(0.1, abs=0.01)
    first, second = slice(1 + 150, 1 + 275), slice(1 + 275, 1 + tk.N_ONSET)
    assert float(q[first].sum()) == pytest.approx(float(p[first].sum()), abs=0.02)
    assert float(q[second].sum()) == pytest.approx(float(p[second].sum()), abs=0.02)
    near = slice(1 + 195, 1 + 206)                                  # within 50 ms of the beat
    assert float(q[near].sum()) > float(p[near].sum()) + 0.03
    assert torch.equal(steady(logits, torch.tensor([1.8, 1.8]), 0.0), logits)   # greedy: the likeliest step either way


def test_onsets_are_sharpened_as_far_as_the_music_around_has_a_beat():
    from tatum.generate.sampling import STEADY_FROM, STEADY_SPAN, TIMING_GAIN, steadiness

    assert steadiness(float("nan"), 1.0) == 1.0 and steadiness(STEADY_FROM, 1.0) == 1.0     # no beat, rubato
    assert steadiness(0.9, 0.0) == 1.0                                                       # not asked
    assert steadiness(STEADY_FROM + STEADY_SPAN / 2, 1.0) == pytest.approx(1 + TIMING_GAIN / 2)
    assert steadiness(0.9, 2.0) == pytest.approx(1 + 2 * TIMING_GAIN)


def test_the_left_hands_target_is_the_bass_of_the_two_windows_before():
    # a C2 through the first half of each of the two windows before the target under a C5 held through
    # them: the target is half (counted from the first window's start, negative times in the layout);
    # the window before those, all bass, is too far back to count
    from tatum import layout as lay
    from tatum.generate.decode import _before, _left_hand

    def window(bass_ms: int) -> np.ndarray:
        return tk.encode_segment(Notes(np.array([0, 0]), np.array([bass_ms, 5000]), np.array([36, 72]), np.full(2, 80)))

    enc = lay.build((0, 0, 0, 0), 0, window(2500), [window(5000), window(2500), window(2500)], [], None, 512)
    hand = _left_hand([Row(enc)], [_before(Row(enc))], 1.0)
    assert hand.target[0] == pytest.approx(0.5, abs=0.01)
    assert _left_hand([Row(enc)], None, 0.0) is None

"""The real-time stream's accelerators (tatum.generate.decode.Reuse, the stream's memo of decodes):
they make calls cheaper and change no note — with or without them, after a restore from JSON, in a
replay from a saved state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tatum import layout
from tatum import tokenizer as tk
from tatum.generate import decode
from tatum.generate.decode import Reuse, Row, decode_rows
from tatum.generate.engine import Conditioning
from tatum.generate.sampling import Sampling
from tatum.generate.stream import State, Stream
from tatum.model.config import build_model, preset
from tatum.model.notelm import NoteLM
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer

torch.set_num_threads(1)
TOK = Tokenizer.default()
JAZZ = Conditioning(genre={"jazz": 1.0})
MIX = Conditioning(genre={"jazz": 0.6, "classical": 0.4}, artist={"Art Tatum": 1.0})


@pytest.fixture(scope="module")
def model() -> NoteLM:
    torch.manual_seed(0)
    m = build_model(preset("note-tiny", TOK.vocab_size, align_input=True)).eval()
    with torch.no_grad():     # a livelier untrained model: more notes per window than the init's few
        m.tok_emb.weight.mul_(10)
        m.tok_emb.weight[tk.T] = 0
    return m


def player(i: int, state: State | None) -> Notes | None:
    """A pianist whose notes arrive late (onsets in the chunk before), as a live input's do."""
    t = state.played_ms if state else 0
    if i % 3 == 2:
        return None
    return Notes([max(0, t - 700), max(0, t - 300), max(0, t - 120)], [200, 150, 400], [60 + i % 5, 67, 71], [80, 70, 90])


def jam(stream: Stream, chunks: int, *, state=None, cond=JAZZ, sampling=Sampling(seed=5), chunk_s=0.7, live=player,
        first: int = 0):
    out = []
    for i in range(first, first + chunks):
        c = cond(i) if callable(cond) else cond
        notes, state = stream.generate_chunk(state, c, sampling, chunk_s, live(i, state) if live else None)
        out.append(notes)
    return out, state


def same(a: list[Notes], b: list[Notes]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.onset_ms, y.onset_ms) and np.array_equal(x.pitch, y.pitch) and np.array_equal(x.dur_ms, y.dur_ms)
        and np.array_equal(x.velocity, y.velocity) for x, y in zip(a, b))


@pytest.mark.parametrize("sampling", [Sampling(seed=5), Sampling(seed=9, guidance=1.5, top_k=0)])
def test_kept_and_unkept_streams_play_the_same_notes(model, sampling):
    cond = lambda i: MIX if 5 <= i < 9 else JAZZ  # noqa: E731  (a change of style inside a window)
    kept, _ = jam(Stream(model, TOK), 16, cond=cond, sampling=sampling)
    unkept, _ = jam(Stream(model, TOK, keep=False), 16, cond=cond, sampling=sampling)
    assert sum(len(c) for c in kept) > 20
    assert same(kept, unkept)


def test_a_state_restored_from_json_on_a_new_stream_goes_on_as_the_uninterrupted_jam(model):
    whole, _ = jam(Stream(model, TOK), 12)
    assert sum(len(c) for c in whole[5:]) > 10
    first, saved = jam(Stream(model, TOK), 5)
    restored = State.from_dict(json.loads(saved.to_json()))
    rest, _ = jam(Stream(model, TOK), 7, state=restored, first=5)     # nothing kept: rebuilt from the state
    assert same(whole, first + rest)


def test_a_window_is_prefilled_once_and_each_call_feeds_only_what_changed(model):
    stream = Stream(model, TOK, lookahead_ms=0)
    # 0–4.9 s: one window (a seed whose untrained draws fall in several of the calls)
    out, _ = jam(stream, 7, chunk_s=0.7, live=None, sampling=Sampling(seed=22))
    reuse = stream.kept()[0]
    assert reuse.prefills == 1 and len(reuse.fed) >= 10
    # each call fed (one forward) what it drew the call before, from the start of its block, only
    drawn = np.cumsum([len(c) for c in out])
    assert reuse.forwards <= 7 and reuse.fed_notes <= drawn[-2] + 6 * (decode.REUSE_BLOCK - 1)


def test_a_replay_from_a_saved_state_is_the_same_notes_without_decoding_again(model, monkeypatch):
    import tatum.generate.stream as stream_mod

    stream = Stream(model, TOK)
    _, state = jam(stream, 3)
    chunk, _ = stream.generate_chunk(state, JAZZ, Sampling(seed=5), 1.0, None)
    calls = []
    real = stream_mod.decode_rows
    monkeypatch.setattr(stream_mod, "decode_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    short, after = stream.generate_chunk(state, JAZZ, Sampling(seed=5), 0.4, None)   # the scheduler's replay
    assert not calls
    assert same([short], [chunk.select(chunk.onset_ms < state.played_ms + 400)])
    fresh, fresh_after = Stream(model, TOK).generate_chunk(state, JAZZ, Sampling(seed=5), 0.4, None)
    assert same([short], [fresh]) and after.to_dict() == fresh_after.to_dict()


def test_fed_blocks_in_one_forward_equal_a_forward_per_block(model):
    assert decode.fuses(model, 1) and decode.fuses(model, 2)      # this machine's BLAS: rows alike
    # and a row decodes the same whether its notes were fed fused or block by block
    segs = [tk.encode_segment(Notes(np.arange(0, 4000, 90), np.full(45, 80), 40 + np.arange(45) % 30,
                                    np.full(45, 70)))]
    enc = layout.build((TOK.genre_id("jazz"), TOK.artist_id(None), TOK.density_id(None), TOK.polyphony_id(None)),
                       TOK.corruption_id("whole_mask"), np.array([tk.MASK]), segs, [], None, model.cfg.max_len,
                       reserve=128)
    played = segs[0][: 3 * 40]
    out = []
    for fused in (True, False):
        decode._FUSES[model] = {1: fused}
        out.append(decode_rows(model, [Row(enc, played=played, from_step=360)], Sampling(seed=2), None,
                               TOK.null_style, reuse=Reuse())[0])
    decode._FUSES.pop(model)
    assert np.array_equal(out[0], out[1])


def test_feed_is_a_multi_event_step(model):
    torch.manual_seed(3)
    ev = torch.randint(tk.ONSET0, tk.DUR0, (1, 30, 3))
    place = torch.full((1, 30), layout.TARGET_PLACE)
    time = torch.arange(30)[None]
    with torch.no_grad():
        h, cache = model.prefill(ev[:, :20], place[:, :20], time[:, :20], torch.zeros(1, 20, dtype=torch.bool), max_new=20)
        fed = model.feed(ev[:, 20:], place[:, 20:], time[:, 20:], cache)
        h2, cache2 = model.prefill(ev[:, :20], place[:, :20], time[:, :20], torch.zeros(1, 20, dtype=torch.bool), max_new=20)
        stepped = [model.step(ev[:, j], place[:, j], time[:, j], cache2) for j in range(20, 30)]
    assert cache.pos == cache2.pos == 30
    assert torch.allclose(fed[0], torch.cat(stepped), atol=1e-5)
    assert all(torch.allclose(a[:, :, :30], b[:, :, :30], atol=1e-5) for a, b in zip(cache.k + cache.v, cache2.k + cache2.v))


def test_prepare_computes_the_new_styles_context_ahead_and_changes_no_note(model):
    cond = lambda i: MIX if i >= 4 else JAZZ  # noqa: E731
    plain, _ = jam(Stream(model, TOK), 8, cond=cond)
    stream = Stream(model, TOK)
    first, state = jam(stream, 4)
    # prepared for a call that may start up to 300 ms after at_ms, with the player's notes it will get
    stream.prepare(state, MIX, Sampling(seed=5), state.played_ms - 100, live=player(4, state), slack_ms=300)
    reuse = stream.kept()[0]
    before = reuse.prefills, reuse.fed_notes
    changed, state = jam(stream, 1, state=state, cond=cond, first=4)
    assert (reuse.prefills, reuse.fed_notes) == before    # the change found its context and notes ready
    rest, _ = jam(stream, 3, state=state, cond=cond, first=5)
    assert same(plain, first + changed + rest)


def interrupted_then_resumed(model, chunks: int) -> tuple[int, bool]:
    """Jam `chunks` chunks twice: once straight, once interrupted (at the third check) during the second
    half and resumed from the state saved before it. (How many checks were made, the same notes?)"""
    from tatum.generate.stream import Interrupted

    half = chunks // 2
    whole, _ = jam(Stream(model, TOK), chunks)
    stream = Stream(model, TOK)
    first, state = jam(stream, half)
    saved = state.to_json()
    asked = []
    with stream.interruptible(lambda: asked.append(1) or len(asked) > 2):
        with pytest.raises(Interrupted):
            for i in range(half, chunks):       # some call of these decodes a note: it gives up there
                _, state = stream.generate_chunk(state, JAZZ, Sampling(seed=5), 0.7, player(i, state))
    rest, _ = jam(stream, chunks - half, state=State.from_dict(json.loads(saved)), first=half)
    return len(asked), same(whole, first + rest)


def test_an_interrupted_call_leaves_no_trace(model):
    asked, same_notes = interrupted_then_resumed(model, 8)
    assert asked and same_notes


def test_the_encoder_decoder_can_be_interrupted_too_and_leaves_no_trace():
    """The shipped models are encoder–decoders: a jam's style change must not wait for their call to end."""
    from tatum.model.transformer import Seq2Seq

    torch.manual_seed(0)
    asked, same_notes = interrupted_then_resumed(Seq2Seq(preset("tiny", TOK.vocab_size)).eval(), 6)
    assert asked == 3                           # it gave up at the third token it was about to draw
    assert same_notes


def whole_mask_row(model: NoteLM) -> np.ndarray:
    """A masked window after two windows of a melody over a bass: the input both draws below decode."""
    segs = [tk.encode_segment(Notes(np.arange(0, 4900, 130), np.full(38, 200), 50 + (np.arange(38) * 7) % 30,
                                    np.full(38, 70)))] * 2
    return layout.build((TOK.genre_id("jazz"), TOK.artist_id(None), TOK.density_id(None), TOK.polyphony_id(None)),
                        TOK.corruption_id("whole_mask"), np.array([tk.MASK]), segs, [], None, model.cfg.max_len,
                        reserve=128)


@pytest.mark.parametrize("sampling", [Sampling(seed=1, top_k=50, temperature=1.0), Sampling(seed=8),
                                      Sampling(seed=3, temperature=0.0), Sampling(seed=4, top_p=0.8, top_k=50, temperature=1.3),
                                      Sampling(seed=5, guidance=1.5, top_k=7)])
def test_drawing_on_a_heads_own_classes_is_the_same_draw(model, monkeypatch, sampling):
    enc = whole_mask_row(model)
    out = []
    for fast in (True, False):
        monkeypatch.setattr(decode, "FAST_PICK", fast)
        out.append(decode_rows(model, [Row(enc, until_step=400), Row(enc, until_step=250)], sampling, None,
                               TOK.null_style))
    assert sampling.temperature == 0 or sum(len(o) for o in out[0]) >= 30
    assert all(np.array_equal(a, b) for a, b in zip(*out))


def test_a_model_that_loves_one_key_plays_it_once_per_onset(monkeypatch):
    torch.manual_seed(0)
    lm = build_model(preset("note-tiny", TOK.vocab_size, align_input=True)).eval()
    favourite = torch.zeros(tk.N_PV)
    favourite[(60 - tk.PIANO_LOW) * tk.VEL_BINS:(61 - tk.PIANO_LOW) * tk.VEL_BINS] = 30.0
    real_pv = lm.pv_logits
    monkeypatch.setattr(lm, "pv_logits", lambda g, dur: real_pv(g, dur) + favourite)
    enc = whole_mask_row(lm)
    drawn = []
    for fast in (True, False):       # the heads' own classes and the whole vocabulary: the same draw
        monkeypatch.setattr(decode, "FAST_PICK", fast)
        drawn.append(decode_rows(lm, [Row(enc)] * 4, Sampling(seed=3), None, TOK.null_style))
    assert all(np.array_equal(a, b) for a, b in zip(*drawn))
    notes = [tk.decode_segment(x) for x in drawn[0]]
    assert sum(len(n) for n in notes) >= 20 and all((n.pitch == 60).any() for n in notes if len(n))
    for n in notes:
        pairs = list(zip(n.onset_ms.tolist(), n.pitch.tolist()))
        assert len(pairs) == len(set(pairs)), "a key struck twice at one onset"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_change_of_style_is_answered_with_a_note_at_once(model, seed):
    from tatum.generate.stream import ANSWER_MS

    cond = lambda i: MIX if i >= 3 else JAZZ  # noqa: E731  (the change at 3 × 0.7 s, inside the first window)
    out, _ = jam(Stream(model, TOK), 4, cond=cond, sampling=Sampling(seed=seed, temperature=1.2), live=None)
    assert len(out[3]) and out[3].onset_ms.min() < 2100 + ANSWER_MS


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_change_is_answered_at_once_after_a_short_first_chunk_and_across_a_window_edge(model, seed):
    from tatum.generate.stream import ANSWER_MS

    s = Sampling(seed=seed, temperature=1.2)
    stream = Stream(model, TOK)
    _, state = jam(stream, 3, sampling=s, live=None)                    # 0–2.1 s under jazz
    first, state = stream.generate_chunk(state, MIX, s, 0.05)           # a 50 ms first chunk
    rest, state = stream.generate_chunk(state, MIX, s, 0.7)
    assert Notes.merge([first, rest]).onset_ms.min() < 2100 + ANSWER_MS
    # a change 80 ms before the window's edge: answered in the next window if not in this one
    _, state = stream.generate_chunk(state, JAZZ, s, (4920 - state.played_ms) / 1000)
    a, state = stream.generate_chunk(state, MIX, s, 0.08)
    b, state = stream.generate_chunk(state, MIX, s, 0.5)
    assert Notes.merge([a, b]).onset_ms.min() < 4920 + ANSWER_MS

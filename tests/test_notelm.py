"""NoteLM (DESIGN §4 revised): the note-event layout, the decoder-only model and its cache, training
and validation per note, checkpoints, and generation through the pass engine.

Everything runs the `note-tiny` preset with seeded random weights, one thread, on small synthetic
pieces.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tatum import layout
from tatum import tokenizer as tk
from tatum.corruption import corrupt
from tatum.data.examples import ExampleConfig, ExampleDataset, collate
from tatum.generate import tasks
from tatum.generate.decode import Row, Style, decode_rows
from tatum.generate.sampling import Sampling
from tatum.model.checkpoint import load_model, save_checkpoint
from tatum.model.config import build_model, preset
from tatum.model.notelm import NoteLM
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer
from tatum.train import TrainConfig, lr_at, train
from tatum.validation import nats_per_note, tasks as val_tasks

from test_generate import check_row, grid_piece, melody_line, near_melody_groups
from test_train import shards  # noqa: F401  (the synthetic shard folder fixture)

torch.set_num_threads(1)
TOK = Tokenizer.default()


def window(notes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Tokens of one window from (onset ms, dur ms, pitch, velocity)."""
    on, du, pi, ve = zip(*notes) if notes else ((), (), (), ())
    return tk.encode_segment(Notes(list(on), list(du), list(pi), list(ve)))


def style_ids(tok: Tokenizer = TOK) -> tuple[int, int, int, int]:
    return (tok.genre_id("jazz"), tok.artist_id("Art Tatum"), tok.density_id(3), tok.polyphony_id(2))


@pytest.fixture(scope="module")
def model() -> NoteLM:
    torch.manual_seed(0)
    return build_model(preset("note-tiny", TOK.vocab_size)).eval()


# ------------------------------------------------------------------ layout
def test_layout_orders_prefix_context_and_target_with_places_times_and_loss():
    left = [window([(0, 100, 60, 64), (500, 100, 64, 64)]), window([(1000, 200, 67, 80)])]
    right = [window([(250, 100, 72, 64)])]
    target = window([(100, 300, 62, 64), (100, 300, 65, 64), (4000, 500, 69, 90)])
    corrupted = corrupt("pitch_velocity_mask", tk.decode_segment(target), 0)
    lay = layout.build(style_ids(), TOK.corruption_id("pitch_velocity_mask"), corrupted, left, right, target, 512)

    first = lay.events[:, 0].tolist()
    sep = [i for i, t in enumerate(first) if t == tk.SEP]
    assert first[:5] == list(style_ids()) + [TOK.corruption_id("pitch_velocity_mask")]
    assert sep == [8, 11]                                      # 5 meta + 3 corrupted notes, 1 right window
    assert lay.events[5:8, 2].tolist() == [tk.PV_MASK] * 3     # the corrupted notes, masks in their slot
    # right context: T, one note; left context: T n n T n; the target: T, three notes, closing T
    assert first[9] == tk.T and first[12] == tk.T and first[15] == tk.T and first[17] == tk.T
    assert lay.prefix == 18 and np.array_equal(lay.events[18:21].reshape(-1), target)
    assert first[21] == tk.T and len(lay) == 22
    assert lay.place[:5].tolist() == [layout.META] * 5 and lay.place[5:8].tolist() == [layout.CORRUPT] * 3
    assert lay.place[9:11].tolist() == [layout.TARGET_PLACE + 1] * 2
    assert lay.place[12:15].tolist() == [layout.TARGET_PLACE - 2] * 3 and lay.place[15:17].tolist() == [layout.TARGET_PLACE - 1] * 2
    assert lay.place[17:21].tolist() == [layout.TARGET_PLACE] * 4 and lay.place[21] == layout.TARGET_PLACE + 1
    # times: 10 ms steps from the target window's start, windows at multiples of 500
    assert lay.time[5:8].tolist() == [10, 10, 400] and lay.time[18:21].tolist() == [10, 10, 400]
    assert lay.time[12:17].tolist() == [-1000, -1000, -950, -500, -400] and lay.time[9:11].tolist() == [500, 525]
    # loss: every clean event after a clean one (not the openers right after SEP); target: what follows T(0)
    assert np.flatnonzero(lay.loss).tolist() == [10, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    assert np.flatnonzero(lay.target).tolist() == [18, 19, 20, 21]


def test_layout_trims_far_context_first_and_leaves_room_for_generation():
    dense = [window([(k * 50, 100, 50 + k % 30, 64) for k in range(90)]) for _ in range(6)]
    target = dense[0]
    lay = layout.build(style_ids(), TOK.corruption_id("whole_mask"), np.array([tk.MASK]), dense, dense, target, 256)
    assert len(lay) - 1 <= 256
    sep = np.flatnonzero(lay.events[:, 0] == tk.SEP)
    right, left = lay.place[sep[0] + 1:sep[1]], lay.place[sep[1] + 1:lay.prefix - 1]
    # the room left by the target is shared evenly, the nearest windows kept
    assert len(left) + len(right) == 256 - (5 + 1 + 2 + 1 + 90) and abs(len(left) - len(right)) <= 1
    assert set(left.tolist()) == {layout.TARGET_PLACE - 1} and set(right.tolist()) == {layout.TARGET_PLACE + 1}
    assert lay.events[5, 0] == tk.MASK and lay.events[6, 0] == tk.SEP
    gen = layout.build(style_ids(), TOK.corruption_id("whole_mask"), np.array([tk.MASK]), dense, [], None, 256,
                       reserve=100)
    assert gen.prefix == len(gen) and len(gen) + 100 <= 256 and gen.events[-1, 0] == tk.T
    assert gen.place[-1] == layout.TARGET_PLACE and not gen.target.any()


# ------------------------------------------------------------------ model
@pytest.mark.parametrize("align", [False, True])
def test_prefill_and_step_on_left_padded_rows_match_the_full_forward(align):
    torch.manual_seed(0)
    model = build_model(preset("note-tiny", TOK.vocab_size, align_input=align)).eval()
    lays = [layout.build(style_ids(), TOK.corruption_id(c), corrupt(c, grid_piece(5, s).slice(0, 4990), s),
                         [tk.encode_segment(w) for w in tk.split_segments(grid_piece(10, s + 1))], [],
                         tk.encode_segment(grid_piece(5, s).slice(0, 4990)), 192)
            for s, c in ((0, "pitch_velocity_mask"), (3, "whole_mask"))]
    b = collate([{"events": l.events, "place": l.place, "time": l.time, "aligned": l.aligned, "loss": l.loss,
                  "target": l.target, "corruption": 0} for l in lays])
    with torch.no_grad():
        full = model.hidden(b["events"][:, :-1], b["place"][:, :-1], b["time"][:, :-1], aligned=b["aligned"][:, :-1])
        P = [l.prefix for l in lays]
        W = max(P)
        ev, al = torch.zeros(2, W, 3, dtype=torch.long), torch.zeros(2, W, 3, dtype=torch.long)
        pl, tm = torch.zeros(2, W, dtype=torch.long), torch.zeros(2, W, dtype=torch.long)
        pad = torch.ones(2, W, dtype=torch.bool)
        for r, n in enumerate(P):
            ev[r, W - n:], pl[r, W - n:], tm[r, W - n:] = b["events"][r, :n], b["place"][r, :n], b["time"][r, :n]
            al[r, W - n:] = b["aligned"][r, :n]
            pad[r, W - n:] = False
        h, cache = model.prefill(ev, pl, tm, pad, max_new=4, aligned=al)
        for r in range(2):
            torch.testing.assert_close(h[r], full[r, P[r] - 1], atol=1e-5, rtol=1e-4)
        for k in range(3):
            idx = torch.tensor([P[0] + k, P[1] + k])
            rows = torch.arange(2)
            h = model.step(b["events"][rows, idx], b["place"][rows, idx], b["time"][rows, idx], cache,
                           b["aligned"][rows, idx])
            for r in range(2):
                torch.testing.assert_close(h[r], full[r, idx[r]], atol=1e-5, rtol=1e-4)
    # the pitch-velocity-masked target: its j-th position carries the corrupted note j
    lay = lays[0]
    opener = lay.prefix - 1
    corr = lay.events[lay.place == layout.CORRUPT]
    assert np.array_equal(lay.aligned[opener:opener + len(corr)], corr)
    assert (lay.aligned[:opener] == tk.PAD).all() and (lay.aligned[opener + len(corr):] == tk.PAD).all()
    assert np.array_equal(corr[:, :2], lay.events[lay.prefix:lay.prefix + len(corr), :2])  # onsets, durations


def test_event_nll_is_the_sum_of_the_three_factorised_heads(model):
    h = torch.randn(3, model.cfg.d_model)
    nxt = torch.tensor([[tk.ONSET0 + 7, tk.DUR0 + 4, tk.PV0 + 100], [tk.T, tk.PAD, tk.PAD],
                        [tk.ONSET0, tk.DUR0, tk.PV0]])
    with torch.no_grad():
        nll = model.event_nll(h, nxt)
        on = torch.log_softmax(model.onset_logits(h), -1)
        dur, g = model.dur_logits(h, nxt[:, 0].clamp(min=tk.ONSET0))
        pv = torch.log_softmax(model.pv_logits(g, nxt[:, 1].clamp(min=tk.DUR0)), -1)
        dur = torch.log_softmax(dur, -1)
    expect0 = -(on[0, 8] + dur[0, 4] + pv[0, 100])
    torch.testing.assert_close(nll[0], expect0)
    torch.testing.assert_close(nll[1], -on[1, 0])          # a window's end is one decision
    torch.testing.assert_close(nll[2], -(on[2, 1] + dur[2, 0] + pv[2, 0]))


def test_checkpoint_round_trip_keeps_the_architecture(model, tmp_path):
    folder = save_checkpoint(model, TOK, tmp_path / "note")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "tatum-notelm" and config["model"]["n_layers"] == 2
    loaded, tok = load_model(folder)
    assert isinstance(loaded, NoteLM) and loaded.cfg == model.cfg and tok.tokens == TOK.tokens
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert "decoder-only" in (folder / "README.md").read_text()


# ------------------------------------------------------------------ training and validation
def test_training_lowers_the_loss_and_validates_per_note_per_task(shards, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    last = train(TrainConfig(shards=str(shards), out=str(out), preset="note-tiny", max_steps=30, lr=3e-3, warmup=5,
                             val_every=15, save_every=15, batch_size=4, threads=1, log_every=5,
                             val_per_corruption=4), progress=False)
    lines = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    losses = [l["loss"] for l in lines if "loss" in l]
    assert losses[-1] < losses[0] - 1.0
    val = [l for l in lines if "val" in l]
    names = set(val_tasks(list(tk.CORRUPTIONS))) | {"all"}
    assert set(val[-1]["val"]) == names and set(val[-1]["unigram"]) == names
    assert val[-1]["val"]["all"] < val[0]["val"]["all"] < val[0]["unigram"]["all"]
    assert all(l["cpu_s"] > 0 for l in lines)
    m, _ = load_model(out / "best")
    assert isinstance(m, NoteLM)
    card = (out / "checkpoint" / "README.md").read_text()
    assert "nats per note" in card and "continuation" in card
    assert last["step"] == 30


def test_a_cpu_budget_ends_the_run_with_a_validated_checkpoint(shards, tmp_path):  # noqa: F811
    out = tmp_path / "budget"
    last = train(TrainConfig(shards=str(shards), out=str(out), preset="note-tiny", max_steps=10_000, warmup=2,
                             val_every=1000, batch_size=2, threads=1, val_per_corruption=2, budget_cpu_s=1.0),
                 progress=False)
    assert last["step"] < 10_000
    lines = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert "val" in lines[-1] and lines[-1]["cpu_s"] >= 1.0
    assert (out / "checkpoint" / "config.json").exists()


def test_a_wall_budget_paces_the_schedule_and_ends_the_run(shards, tmp_path):  # noqa: F811
    cfg = TrainConfig(shards=str(shards), out=str(tmp_path / "wall"), preset="note-tiny", max_steps=10_000,
                      warmup=2, lr=1e-3, min_lr=1e-4, val_every=1000, batch_size=2, threads=1,
                      val_per_corruption=2, budget_wall_s=1.0)
    assert lr_at(50, cfg, wall_s=0.5) == pytest.approx((1e-3 + 1e-4) / 2)    # half the time: half way down
    assert lr_at(50, cfg, wall_s=2.0) == pytest.approx(1e-4)
    last = train(cfg, progress=False)
    assert last["step"] < 10_000
    lines = [json.loads(l) for l in (tmp_path / "wall" / "log.jsonl").read_text().splitlines()]
    assert "val" in lines[-1] and lines[-1]["elapsed"] >= 1.0


def test_validation_measures_both_layouts_on_the_same_notes(shards):  # noqa: F811
    from tatum.data.shards import ShardSet
    from tatum.model.transformer import Seq2Seq

    sh = ShardSet(shards)
    tok = sh.tokenizer
    for cfg, m in ((ExampleConfig(layout="notelm", max_len=192), build_model(preset("note-tiny", tok.vocab_size))),
                   (ExampleConfig(max_enc_len=256, max_dec_len=128), Seq2Seq(preset("tiny", tok.vocab_size)))):
        from tatum.validation import validation_set
        val = validation_set(sh, cfg, tok, 3)
        scores = nats_per_note(m, val)
        # an untrained model is about uniform: log(501) + log(500) + log(704) nats per note, give or take
        assert 15 < scores["no_context"] < 25 and set(scores) == set(val) | {"all"}
    ds = ExampleDataset(sh, "val", ExampleConfig(layout="notelm", max_len=192, augment=False), tok)
    ex = ds.example(0, corruption="whole_mask", context=(2, 0))
    assert (ex["place"] > layout.TARGET_PLACE + 1).sum() == 0      # no right context
    assert ex["events"][5, 0] == tk.MASK


# ------------------------------------------------------------------ generation
def rows_for(piece: Notes, melody=None) -> list[Row]:
    segs = [tk.encode_segment(s) for s in tk.split_segments(piece)]
    rows = []
    for i in (1, 2):
        lay = layout.build(style_ids(), TOK.corruption_id("whole_mask"), np.array([tk.MASK]), segs[:i], segs[i + 1:],
                           None, 192, reserve=64)
        rows.append(Row(lay, None if melody is None else melody[i]))
    return rows


def test_decode_writes_grammatical_windows_with_and_without_guidance(model):
    rows = rows_for(grid_piece(20, 1))
    for guidance in (0.0, 1.5):
        out = decode_rows(model, rows, Sampling(seed=2, guidance=guidance), Style(genre={TOK.genre_id("jazz"): .7,
                          TOK.genre_id("classical"): .3}), TOK.null_style, max_tokens=120,
                          any_controls=(TOK.density_id(None), TOK.polyphony_id(None)))
        assert len(out) == 2
        for ids in out:
            check_row(ids)
            assert 0 < len(ids) // 3 <= 40
    a = decode_rows(model, rows, Sampling(seed=5), null_id=TOK.null_style, max_tokens=60)
    b = decode_rows(model, rows, Sampling(seed=5), null_id=TOK.null_style, max_tokens=60)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_chord_rule_puts_chords_under_every_melody_note(model):
    line = melody_line(4)
    steps = {}
    for k, seg in enumerate(tk.split_segments(line)):
        steps[k] = {int(o // tk.GRID_MS): int(p) for o, p in zip(seg.onset_ms, seg.pitch)}
    out = decode_rows(model, rows_for(grid_piece(20, 3), steps), Sampling(seed=1), null_id=TOK.null_style,
                      chord_size=3, max_tokens=360)
    for i, ids in zip((1, 2), out):
        check_row(ids)
        notes = tk.decode_segment(ids)
        sizes = near_melody_groups(notes.onset_ms, [s * tk.GRID_MS for s in steps[i]])
        assert len(sizes) == len(steps[i]) and min(sizes) >= 3


def test_tasks_run_on_a_notelm_model(model):
    piece = grid_piece(25, 4)
    pair = (model, TOK)
    out = tasks.continue_(piece, seconds=10, prompt_seconds=15, model=pair, seed=1)
    assert out.end_ms > piece.start_ms + 15_000 and len(out) > 0
    out = tasks.improvise(piece, style="jazz", artist="Art Tatum", model=pair, seed=1, plan="light")
    assert len(out) > 0
    out = tasks.infill(piece, start_s=5, end_s=15, model=pair, seed=1)
    assert len(out) > 0


# ------------------------------------------------------------------ streaming (DESIGN §6)
from tatum.errors import TatumError  # noqa: E402
from tatum.generate.engine import Conditioning  # noqa: E402
from tatum.generate.stream import State, Stream  # noqa: E402

JAZZ, TATUM = Conditioning(genre={"jazz": 1.0}), Conditioning(genre={"jazz": 1.0}, artist={"Art Tatum": 1.0})


def jam(stream: Stream, chunks: int, chunk_s: float = 1.0, state: State | None = None, cond=JAZZ, live=None):
    out = []
    for i in range(chunks):
        notes, state = stream.generate_chunk(state, cond(i) if callable(cond) else cond, Sampling(seed=7),
                                             chunk_s, live(i, state) if live else None)
        out.append(notes)
    return out, state


def test_chunks_tile_the_clock_and_a_saved_state_resumes_exactly(model):
    stream = Stream(model, TOK)
    chunks, state = jam(stream, 8)
    assert state.played_ms == 8000 and state.chunk_index == 8
    for i, c in enumerate(chunks):
        assert np.all((c.onset_ms >= 1000 * i) & (c.onset_ms < 1000 * (i + 1)))
    assert sum(len(c) for c in chunks) > 0
    # a jam saved as JSON after 4 chunks and resumed plays what the uninterrupted one played
    first, saved = jam(stream, 4)
    restored = State.from_dict(json.loads(saved.to_json()))
    rest, _ = jam(stream, 4, state=restored)
    assert all(np.array_equal(a.pitch, b.pitch) and np.array_equal(a.onset_ms, b.onset_ms)
               for a, b in zip(chunks[4:], rest))


def test_a_style_change_redraws_the_rest_of_the_current_window_only(model):
    stream = Stream(model, TOK)
    base, _ = jam(stream, 5)
    switched, state = jam(stream, 5, cond=lambda i: TATUM if i >= 2 else JAZZ)
    assert all(np.array_equal(a.onset_ms, b.onset_ms) for a, b in zip(base[:2], switched[:2]))  # already played
    assert state.window == 0 and json.loads(state.plan_key)["artist"] == {"Art Tatum": 1.0}
    assert state.plan_ms == 2000        # redrawn inside window 0, from the moment of the change


def test_respond_listens_while_the_player_plays_and_answers_after_a_pause(model):
    stream = Stream(model, TOK, mode="respond", gap_ms=500)

    def player(_, state):     # a phrase in the jam's chunks 1-3, then silence
        t, i = (state.played_ms, state.chunk_index) if state else (0, 0)
        return Notes([t + 100, t + 400], [250, 250], [72, 76], [90, 90]) if 1 <= i <= 3 else None

    chunks, state = jam(stream, 4, chunk_s=0.5, live=player)
    assert all(len(c) == 0 for c in chunks[1:4])                      # listening
    chunks, state = jam(stream, 12, chunk_s=0.5, live=player, state=state)
    assert state.plan_ms >= 1900 + 500 or state.window > 0              # redrawn once the player paused
    assert state.live and sum(len(c) for c in chunks) > 0                # and answered


def test_accompany_plays_under_the_players_line(model):
    stream = Stream(model, TOK, mode="accompany")

    def player(i, state):
        t = state.played_ms if state else 0
        return Notes([t + 50], [900], [64], [90])

    chunks, _ = jam(stream, 6, live=player)
    played = Notes.merge(chunks)
    assert np.all(played.pitch < 64)


def test_stream_refuses_bad_settings(model):
    with pytest.raises(TatumError, match="chunk length"):
        Stream(model, TOK).generate_chunk(None, chunk_s=7)
    with pytest.raises(TatumError, match="jam mode"):
        Stream(model, TOK, mode="duet")


def test_decoding_feeds_each_note_its_aligned_corrupted_note(monkeypatch):
    torch.manual_seed(0)
    model = build_model(preset("note-tiny", TOK.vocab_size, align_input=True)).eval()
    target = tk.split_segments(grid_piece(20, 9))[1]
    corrupted = corrupt("pitch_velocity_mask", target, 0)
    segs = [tk.encode_segment(s) for s in tk.split_segments(grid_piece(20, 9))]
    lay = layout.build(style_ids(), TOK.corruption_id("pitch_velocity_mask"), corrupted, segs[:1], segs[2:], None,
                       192, reserve=64)
    seen = []
    real = NoteLM.step
    monkeypatch.setattr(NoteLM, "step", lambda self, e, p, t, c, aligned=None: seen.append(aligned[0].tolist())
                        or real(self, e, p, t, c, aligned))
    done = window([(0, 100, 60, 64)])
    out = decode_rows(model, [Row(lay, played=done)], Sampling(seed=1), null_id=TOK.null_style, max_tokens=30)[0]
    corr = layout.events_of(corrupted)
    n = len(out) // 3
    expect = [corr[k].tolist() if k < len(corr) else [tk.PAD] * 3 for k in range(2, n + 1)]
    assert seen[:n - 1] == expect[:n - 1]


def test_decoding_continues_after_notes_already_played(model):
    rows = rows_for(grid_piece(20, 5))
    done = window([(100, 200, 60, 64), (900, 300, 67, 80)])
    rows = [Row(r.enc, played=done, from_step=150) for r in rows]
    for ids in decode_rows(model, rows, Sampling(seed=1), null_id=TOK.null_style, max_tokens=90):
        check_row(ids)
        assert np.array_equal(ids[:6], done)
        assert np.all(ids[6::3] - tk.ONSET0 >= 150)      # nothing new before the present


def test_the_stream_also_plays_an_encoder_decoder_model():
    from tatum.model.transformer import Seq2Seq

    torch.manual_seed(1)
    s2s = Seq2Seq(preset("tiny", TOK.vocab_size)).eval()
    chunks, state = jam(Stream(s2s, TOK), 4, cond=lambda i: TATUM if i >= 2 else JAZZ)
    assert state.played_ms == 4000 and state.plan_ms == 2000
    for i, c in enumerate(chunks):
        assert np.all((c.onset_ms >= 1000 * i) & (c.onset_ms < 1000 * (i + 1)))


def test_finetuning_a_notelm_on_one_pianist_with_lora_exports_a_plain_notelm(shards, tmp_path):  # noqa: F811
    from tatum.model.lora import has_lora
    from tatum.data.shards import ShardSet

    tok = ShardSet(shards).tokenizer
    torch.manual_seed(2)
    base = save_checkpoint(build_model(preset("note-tiny", tok.vocab_size, align_input=True)), tok, tmp_path / "base")
    out = tmp_path / "ft"
    train(TrainConfig(shards=str(shards), out=str(out), init=str(base), artist="Art Tatum", max_steps=4, val_every=2,
                      save_every=2, batch_size=2, threads=1, val_per_corruption=2, lora_rank=4), progress=False)
    model, _ = load_model(out / "checkpoint")
    assert isinstance(model, NoteLM) and not has_lora(model) and model.cfg.align_input
    training = json.loads((out / "checkpoint" / "config.json").read_text())["training"]
    assert training["artist"] == "Art Tatum" and training["lora_rank"] == 4
    before, _ = load_model(base)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before.state_dict()[k])]
    assert changed and all(k.endswith("weight") for k in changed)     # adapters merged into Linears only


def test_decoding_stops_at_the_horizon_and_says_whether_the_window_ended(model):
    rows = [Row(r.enc, until_step=120) for r in rows_for(grid_piece(20, 6))]
    out = decode_rows(model, rows, Sampling(seed=2), null_id=TOK.null_style)
    for r, ids in zip(rows, out):
        check_row(ids)
        assert np.all(ids[0::3] - tk.ONSET0 < 120)
    full = [Row(r.enc) for r in rows]
    decode_rows(model, full, Sampling(seed=2), null_id=TOK.null_style)
    assert all(r.ended for r in full)           # a whole window ends with its end drawn


def test_each_chunk_decodes_only_as_far_as_it_needs(model, monkeypatch):
    import tatum.generate.stream as stream_mod

    horizons = []
    real = stream_mod.decode_rows
    monkeypatch.setattr(stream_mod, "decode_rows", lambda m, rows, *a, **k: horizons.append(rows[0].until_step)
                        or real(m, rows, *a, **k))
    jam(Stream(model, TOK), 6, chunk_s=0.5)
    assert horizons and max(horizons) <= (3000 + stream_mod.LOOKAHEAD_MS) // tk.GRID_MS
    assert all(h <= tk.N_ONSET for h in horizons)


def test_evaluate_nll_prints_the_per_task_table(shards, tmp_path):  # noqa: F811
    import subprocess
    import sys

    from tatum.data.shards import ShardSet

    tok = ShardSet(shards).tokenizer
    ckpt = save_checkpoint(build_model(preset("note-tiny", tok.vocab_size)), tok, tmp_path / "m")
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "evaluate", "--task", "nll", "--data", f"{shards}:val",
                        "--n", "2", "--model", str(ckpt), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    assert "continuation" in r.stdout and "no_context" in r.stdout
    scores = json.loads((tmp_path / "out" / "results.json").read_text())["scores"][str(ckpt)]
    assert set(scores) == set(val_tasks(list(tk.CORRUPTIONS))) | {"all"}

"""The encoder–decoder of DESIGN §4: incremental decoding, style mixtures, presets, checkpoint folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tatum.errors import TatumError
from tatum.model import checkpoint as ckpt
from tatum.model.checkpoint import MODELS_DIR, load_model, save_checkpoint
from tatum.model.config import PRESETS, ModelConfig, preset
from tatum.model.transformer import Seq2Seq
from tatum.tokenizer import FORMAT_VERSION, PAD, Tokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.default()


@pytest.fixture(scope="module")
def model(tok) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(preset("tiny", tok.vocab_size, dropout=0.0)).eval()


@pytest.fixture(scope="module")
def batch(tok):
    """Three encoder rows (the middle one ends in PAD) and decoder inputs, all random but fixed."""
    g = torch.Generator().manual_seed(1)
    V = tok.vocab_size
    enc = torch.randint(1, V, (3, 40), generator=g)
    enc[1, 28:] = PAD
    dec_in = torch.randint(1, V, (3, 14), generator=g)
    return enc, dec_in


# ------------------------------------------------------------ incremental decoding
@torch.no_grad()
def test_decode_step_one_token_at_a_time_matches_forward(model, batch):
    enc, dec_in = batch
    full = model(enc, dec_in)
    memory, mask, anchor = model.encode(enc)
    assert mask.shape == (3, 1, 1, 40) and not mask[1, ..., 28:].any() and mask[0].all()
    cache = model.start(memory, mask, anchor)
    for t in range(dec_in.shape[1]):
        logits = model.decode_step(dec_in[:, t:t + 1], cache)
        assert logits.shape == (3, model.cfg.vocab_size)
        torch.testing.assert_close(logits, full[:, t], atol=1e-4, rtol=0)
    assert cache.pos == dec_in.shape[1]


@torch.no_grad()
def test_decode_step_prefix_then_single_tokens_matches_forward(model, batch):
    enc, dec_in = batch
    full = model(enc, dec_in)
    cache = model.start(*model.encode(enc))
    logits = model.decode_step(dec_in[:, :6], cache)  # a prompt of six tokens at once
    torch.testing.assert_close(logits, full[:, 5], atol=1e-4, rtol=0)
    assert cache.pos == 6
    logits = model.decode_step(dec_in[:, 6:9], cache)  # and a second multi-token chunk
    torch.testing.assert_close(logits, full[:, 8], atol=1e-4, rtol=0)
    for t in range(9, dec_in.shape[1]):
        torch.testing.assert_close(model.decode_step(dec_in[:, t:t + 1], cache), full[:, t], atol=1e-4, rtol=0)


@torch.no_grad()
def test_padding_does_not_leak_into_a_row(model, batch):
    """The padded row decodes as it would alone, without its PAD tail."""
    enc, dec_in = batch
    full = model(enc, dec_in)
    alone = model(enc[1:2, :28], dec_in[1:2])
    torch.testing.assert_close(full[1:2], alone, atol=1e-4, rtol=0)


@torch.no_grad()
def test_cache_select_keeps_rows_consistently(model, batch):
    enc, dec_in = batch
    full = model(enc, dec_in)
    cache = model.start(*model.encode(enc))
    model.decode_step(dec_in[:, :5], cache)
    rows = torch.tensor([0, 2])
    kept = cache.select(rows)
    assert kept.pos == cache.pos == 5
    assert kept.mem_mask.shape[0] == 2 and all(k.shape[0] == 2 for k in kept.self_k + kept.cross_k)
    for t in range(5, dec_in.shape[1]):
        torch.testing.assert_close(model.decode_step(dec_in[rows, t:t + 1], kept), full[rows, t],
                                   atol=1e-4, rtol=0)
    # The padded row alone, picked by a boolean mask, and decoded after the others moved on.
    one = cache.select(torch.tensor([False, True, False]))
    for t in range(5, 8):
        torch.testing.assert_close(model.decode_step(dec_in[1:2, t:t + 1], one), full[1:2, t], atol=1e-4, rtol=0)


@torch.no_grad()
def test_cache_refuses_to_grow_past_its_length(model, batch):
    enc, dec_in = batch
    cache = model.start(*model.encode(enc), max_len=4)
    model.decode_step(dec_in[:, :4], cache)
    with pytest.raises(ValueError, match="cache is full"):
        model.decode_step(dec_in[:, 4:5], cache)


def test_encoder_input_longer_than_max_is_refused(model):
    with pytest.raises(ValueError, match="max_enc_len"):
        model.encode(torch.ones(1, model.cfg.max_enc_len + 1, dtype=torch.long))


# ------------------------------------------------------------------ style mixtures
def _first_block_input(model: Seq2Seq, enc, mixes=None) -> torch.Tensor:
    """The embeddings (token + position) that enter the first encoder block."""
    seen = []
    handle = model.encoder[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            model.encode(enc, mixes)
    finally:
        handle.remove()
    return seen[0]


@torch.no_grad()
def test_anchored_positions_place_the_target_alike_whatever_the_left_context(tok):
    from tatum import tokenizer as tk
    from tatum.data.examples import build_encoder_input

    torch.manual_seed(0)
    m = Seq2Seq(preset("tiny", tok.vocab_size, enc_positions="anchored", dropout=0.0)).eval()
    assert m.enc_pos.num_embeddings == 2 * m.cfg.max_enc_len
    style = (tok.genre_id("jazz"), tok.null_style, tok.density_id(None), tok.polyphony_id(None))
    note = lambda o, p: [tk.ONSET0 + o, tk.DUR0 + 10, tk.PV0 + 8 * (p - 21) + 4]  # noqa: E731
    target = torch.tensor(note(0, 60) + note(50, 64), dtype=torch.long).numpy()
    rows = [build_encoder_input(tok, style, [torch.tensor(note(0, 40) * k).numpy()], "whole_mask", target, [],
                                m.cfg.max_enc_len) for k in (1, 5)]
    pos = [m.enc_positions(m.anchors(torch.tensor(r)[None]), len(r))[0] for r in rows]
    starts = [int((torch.tensor(r) == tk.SEP).int().argmax()) for r in rows]
    assert starts[0] != starts[1]
    assert all(p[:4].tolist() == [0, 1, 2, 3] for p in pos), "style positions stay fixed"
    same = [p[s:s + 2 + len(target)].tolist() for p, s in zip(pos, starts)]
    assert same[0] == same[1] == list(range(m.cfg.max_enc_len, m.cfg.max_enc_len + 2 + len(target)))
    # a full forward and incremental decoding agree as with absolute positions
    enc = torch.tensor(rows[1])[None]
    dec_in = torch.tensor([[tk.BOS, *target[:5].tolist()]])
    full = m(enc, dec_in)
    cache = m.start(*m.encode(enc))
    for t in range(dec_in.shape[1]):
        torch.testing.assert_close(m.decode_step(dec_in[:, t:t + 1], cache), full[:, t], atol=1e-4, rtol=0)


@torch.no_grad()
def test_aligned_cross_attention_centres_each_step_on_its_target_token(tok, tmp_path):
    from tatum import tokenizer as tk

    torch.manual_seed(0)
    cfg = preset("tiny", tok.vocab_size, enc_positions="anchored", cross_bias="aligned", dropout=0.0)
    m = Seq2Seq(cfg).eval()
    g = torch.Generator().manual_seed(3)
    enc = torch.randint(tk.ONSET0, tok.vocab_size, (2, 60), generator=g)
    enc[enc == tk.SEP] = tk.T
    enc[0, 20], enc[1, 9] = tk.SEP, tk.SEP
    enc[1, 50:] = PAD
    dec_in = torch.randint(tk.ONSET0, tok.vocab_size, (2, 12), generator=g)
    anchor = m.anchors(enc)
    assert anchor.tolist() == [20, 9]
    bias = m.cross_mask((enc != PAD)[:, None, None, :], anchor, torch.arange(12), 60)
    assert bias.shape == (2, cfg.n_heads, 12, 60)
    # head 0 peaks exactly where the j-th corrupted token sits (SEP, corruption, then the target)
    assert bias[0, 0].argmax(-1).tolist() == [22 + j for j in range(12)]
    assert bias[1, 0].argmax(-1).tolist() == [11 + j for j in range(12)]
    assert torch.all(bias[:, -1][bias[:, -1].isfinite()] == 0), "the last head is unbiased"
    assert torch.isinf(bias[1, :, :, 50:]).all(), "padding stays masked"
    full = m(enc, dec_in)
    memory, mask, _ = m.encode(enc)
    with pytest.raises(ValueError, match="anchors"):
        m.decode_step(dec_in[:, :1], m.start(memory, mask))
    cache = m.start(memory, mask, anchor)
    for t in range(dec_in.shape[1]):
        torch.testing.assert_close(m.decode_step(dec_in[:, t:t + 1], cache), full[:, t], atol=1e-4, rtol=0)
    m2, _ = load_model(save_checkpoint(m, tok, tmp_path / "aligned"))
    assert m2.cfg.cross_bias == "aligned" and m2.cfg.enc_positions == "anchored"
    torch.testing.assert_close(m2(enc, dec_in), full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_one_hot_mixture_equals_the_token(model, tok, batch):
    enc, _ = batch
    jazz, classical = tok.id("genre:jazz"), tok.id("genre:classical")
    ids = torch.tensor([jazz, classical])
    for k, token in enumerate((jazz, classical)):
        w = torch.zeros(3, 2)
        w[:, k] = 1.0
        plain = enc.clone()
        plain[:, 0] = token
        m1, mask1, _ = model.encode(enc, mixes=[(0, ids, w)])
        m2, mask2, _ = model.encode(plain)
        torch.testing.assert_close(m1, m2, atol=1e-6, rtol=0)
        assert torch.equal(mask1, mask2)


@torch.no_grad()
def test_half_half_mixture_is_the_mean_embedding(model, tok, batch):
    enc, dec_in = batch
    jazz, classical = tok.id("genre:jazz"), tok.id("genre:classical")
    ids = torch.tensor([jazz, classical])
    a, b = enc.clone(), enc.clone()
    a[:, 0], b[:, 0] = jazz, classical
    half = [(0, ids, torch.full((3, 2), 0.5))]
    xa, xb, xm = _first_block_input(model, a), _first_block_input(model, b), _first_block_input(model, enc, half)
    torch.testing.assert_close(xm[:, 0], (xa[:, 0] + xb[:, 0]) / 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(xm[:, 1:], xa[:, 1:], atol=0, rtol=0)  # other positions untouched
    expected = (model.tok_emb.weight[jazz] + model.tok_emb.weight[classical]) / 2 + model.enc_pos.weight[0]
    torch.testing.assert_close(xm[:, 0], expected.expand(3, -1), atol=1e-6, rtol=0)
    la, lb, lm = model(a, dec_in), model(b, dec_in), model(enc, dec_in, mixes=half)
    assert not torch.allclose(lm, la, atol=1e-5) and not torch.allclose(lm, lb, atol=1e-5)


@torch.no_grad()
def test_mixture_weights_may_vary_by_row(model, tok, batch):
    enc, _ = batch
    ids = torch.tensor([tok.id("genre:jazz"), tok.id("genre:classical"), tok.id("genre:pop")])
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    mixed = model.encode(enc, mixes=[(0, ids, w)]).memory
    for row in range(3):
        alone = model.encode(enc[row:row + 1], mixes=[(0, ids, w[row:row + 1])]).memory
        torch.testing.assert_close(mixed[row:row + 1], alone, atol=1e-5, rtol=0)
    plain = enc.clone()
    plain[0, 0], plain[1, 0] = ids[0], ids[2]
    ref = model.encode(plain).memory
    torch.testing.assert_close(mixed[:2], ref[:2], atol=1e-5, rtol=0)
    # Two positions mixed at once (genre and artist), and the decode path takes mixtures too.
    artists = torch.tensor([tok.artist_id("Art Tatum"), tok.artist_id("Bill Evans")])
    mixes = [(0, ids, w), (1, artists, torch.tensor([[0.7, 0.3]] * 3))]
    x = _first_block_input(model, enc, mixes)
    expected = 0.7 * model.tok_emb.weight[artists[0]] + 0.3 * model.tok_emb.weight[artists[1]] + model.enc_pos.weight[1]
    torch.testing.assert_close(x[:, 1], expected.expand(3, -1), atol=1e-6, rtol=0)
    dec_in = batch[1]
    cache = model.start(*model.encode(enc, mixes))
    torch.testing.assert_close(model.decode_step(dec_in[:, :4], cache), model(enc, dec_in[:, :4], mixes)[:, 3],
                               atol=1e-4, rtol=0)


# ---------------------------------------------------------------------- presets
def _meta_model(name: str, vocab: int) -> Seq2Seq:
    with torch.device("meta"):  # shapes only: no memory, no time spent initialising
        return Seq2Seq(preset(name, vocab))


def test_paper_preset_has_improvnet_shape(tok):
    cfg = preset("paper", tok.vocab_size)
    assert (cfg.enc_layers, cfg.dec_layers, cfg.n_heads, cfg.d_model, cfg.d_ff) == (12, 12, 8, 512, 2048)
    assert (cfg.max_enc_len, cfg.max_dec_len) == (2048, 512)
    m = _meta_model("paper", tok.vocab_size)
    assert len(m.encoder) == 12 and len(m.decoder) == 12
    assert m.encoder[0].attn.h == 8 and m.decoder[0].cross.h == 8
    assert m.encoder[0].mlp.fc.weight.shape == (2048, 512)
    # anchored positions: the encoder table spans offsets −2048…+2047 around the target
    assert (cfg.enc_positions, cfg.cross_bias) == ("anchored", "aligned")
    assert m.enc_pos.weight.shape == (4096, 512) and m.dec_pos.weight.shape == (512, 512)
    assert m.tok_emb.weight.shape == (tok.vocab_size, 512)


def test_small_preset_shape(tok):
    cfg = preset("small", tok.vocab_size)
    assert cfg == ModelConfig(vocab_size=tok.vocab_size, **PRESETS["small"])
    assert (cfg.d_model, cfg.n_heads, cfg.enc_layers, cfg.dec_layers, cfg.d_ff) == (256, 4, 3, 4, 1024)
    assert (cfg.max_enc_len, cfg.max_dec_len, cfg.dropout) == (512, 512, 0.0)
    m = _meta_model("small", tok.vocab_size)
    assert len(m.encoder) == 3 and len(m.decoder) == 4 and m.encoder[0].attn.h == 4
    assert cfg.d_model % cfg.n_heads == 0


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_output_is_tied_to_the_token_embedding(name, tok):
    m = _meta_model(name, tok.vocab_size)
    vocab_sized = [n for n, p in m.named_parameters() if tok.vocab_size in p.shape]
    assert vocab_sized == ["tok_emb.weight"]
    assert all(tok.vocab_size not in b.shape for b in m.buffers())


def test_tied_output_logits_use_the_embedding(model, batch):
    enc, dec_in = batch
    with torch.no_grad():
        logits = model(enc, dec_in)
        memory, mask, anchor = model.encode(enc)
        # Recompute the last layer by hand: logits are the final hidden state times tok_emb.
        pos = torch.arange(dec_in.shape[1])
        x = model.tok_emb(dec_in) + model.dec_pos(pos)
        cmask = model.cross_mask(mask, anchor, pos, enc.shape[1])
        for block in model.decoder:
            k, v = block.cross.memory_kv(memory)
            x = block(x, k, v, cmask)
        torch.testing.assert_close(logits, model.dec_ln(x) @ model.tok_emb.weight.T, atol=1e-5, rtol=0)


def test_unknown_preset_is_refused(tok):
    with pytest.raises(TatumError, match="unknown model preset"):
        preset("huge", tok.vocab_size)


# -------------------------------------------------------------------- checkpoints
@pytest.fixture
def saved(tmp_path, model, tok) -> Path:
    return save_checkpoint(model, tok, tmp_path / "ckpt", training={"steps": 3, "data": {"pieces": 2}})


def _dot_leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_checkpoint_round_trip(saved, model, tok, batch):
    enc, dec_in = batch
    loaded, tok2 = load_model(saved)
    assert not loaded.training
    assert tok2.tokens == tok.tokens and loaded.cfg == model.cfg
    with torch.no_grad():
        assert torch.equal(loaded(enc, dec_in), model(enc, dec_in))
    config = json.loads((saved / "config.json").read_text())
    assert config["architecture"] == "tatum-seq2seq" and config["format_version"] == FORMAT_VERSION == 1
    assert config["model"] == model.cfg.to_dict()
    assert config["tokenizer"]["format_version"] == 1 and config["tokenizer"]["tokens"] == tok.tokens
    assert config["training"] == {"steps": 3, "data": {"pieces": 2}}
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors"} <= names <= {"config.json", "model.safetensors", "README.md"}
    assert not [n for n in names if n.endswith((".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt"))]
    with safe_open(str(saved / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    assert _dot_leftovers(saved.parent) == []


def test_saving_over_a_checkpoint_replaces_it(saved, tok, batch):
    enc, dec_in = batch
    torch.manual_seed(5)
    other = Seq2Seq(preset("tiny", tok.vocab_size, dropout=0.0)).eval()
    save_checkpoint(other, tok, saved, training={"steps": 9})
    loaded, _ = load_model(saved)
    with torch.no_grad():
        assert torch.equal(loaded(enc, dec_in), other(enc, dec_in))
    assert json.loads((saved / "config.json").read_text())["training"] == {"steps": 9}
    assert _dot_leftovers(saved.parent) == []
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]


def test_failed_save_leaves_the_old_checkpoint(saved, model, tok, batch, monkeypatch):
    enc, dec_in = batch

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken)
    torch.manual_seed(6)
    other = Seq2Seq(preset("tiny", tok.vocab_size, dropout=0.0))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(other, tok, saved)
    loaded, _ = load_model(saved)
    with torch.no_grad():
        assert torch.equal(loaded(enc, dec_in), model(enc, dec_in))
    assert _dot_leftovers(saved.parent) == []


def test_fp16_checkpoint_loads_as_float32(tmp_path, model, tok, batch):
    enc, dec_in = batch
    folder = save_checkpoint(model, tok, tmp_path / "half", dtype=torch.float16)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    full_size = sum(p.numel() * 4 for p in model.state_dict().values())
    assert (folder / "model.safetensors").stat().st_size < 0.6 * full_size
    loaded, _ = load_model(folder)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    with torch.no_grad():
        torch.testing.assert_close(loaded(enc, dec_in), model(enc, dec_in), atol=2e-3, rtol=1e-2)


# ------------------------------------------------------------------ load refusals
def _edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))


def test_missing_folder_is_refused_with_shipped_models(tmp_path):
    with pytest.raises(TatumError, match="shipped models") as e:
        load_model(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)
    with pytest.raises(TatumError, match="shipped models"):
        load_model("no-such-shipped-model")


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TatumError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_invalid_json_config_is_refused(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(TatumError, match="not valid JSON"):
        load_model(saved)


def test_other_format_version_is_refused(saved):
    _edit_config(saved, lambda c: c.update(format_version=2))
    with pytest.raises(TatumError, match="format 2"):
        load_model(saved)


def test_other_tokenizer_format_version_is_refused(saved):
    _edit_config(saved, lambda c: c["tokenizer"].update(format_version=2))
    with pytest.raises(TatumError, match="version 2"):
        load_model(saved)


def test_other_architecture_is_refused(saved):
    _edit_config(saved, lambda c: c.update(architecture="gpt2"))
    with pytest.raises(TatumError, match="tatum-seq2seq"):
        load_model(saved)


@pytest.mark.parametrize("change", [dict(enc_layers=3), dict(dec_layers=1)])
def test_weights_of_another_depth_are_refused(saved, change):
    _edit_config(saved, lambda c: c["model"].update(change))
    with pytest.raises(TatumError, match="do not fit the config"):
        load_model(saved)


@pytest.mark.parametrize("change", [dict(d_ff=256), dict(max_enc_len=300)])
def test_weights_of_another_width_are_refused(saved, change):
    _edit_config(saved, lambda c: c["model"].update(change))
    with pytest.raises(TatumError, match="do not fit the config"):
        load_model(saved)


def test_vocabulary_size_mismatch_is_refused(saved):
    _edit_config(saved, lambda c: c["model"].update(vocab_size=c["model"]["vocab_size"] + 1))
    with pytest.raises(TatumError, match="vocabulary sizes disagree"):
        load_model(saved)


def test_missing_or_garbled_weights_are_refused(saved, tmp_path):
    other = tmp_path / "garbled"
    shutil.copytree(saved, other)
    (other / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(TatumError, match="unreadable"):
        load_model(other)
    (saved / "model.safetensors").unlink()
    with pytest.raises(TatumError, match="missing"):
        load_model(saved)


def test_default_model_is_the_shipped_note_model():
    if not (MODELS_DIR / "tatum-note" / "config.json").exists():
        pytest.skip("tatum/models/tatum-note is not there yet")
    from tatum.model.config import NOTE_PRESETS

    model, tok = load_model()
    assert not model.training and model.cfg.vocab_size == tok.vocab_size
    assert model.cfg.d_model == NOTE_PRESETS["note-small"]["d_model"] and hasattr(model, "step")

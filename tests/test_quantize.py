"""Int8 weights for the real-time stream (tatum.model.quantize): close to the float model, and a jam on
them keeps the stream's promises (the same notes with or without what was kept, after a restore)."""

from __future__ import annotations

import json

import torch

from tatum import tokenizer as tk
from tatum.generate.sampling import Sampling
from tatum.generate.stream import State, Stream
from tatum.model.config import build_model, preset
from tatum.model.quantize import int8
from tatum.tokenizer import Tokenizer
from test_stream_reuse import JAZZ, jam, same

torch.set_num_threads(1)
TOK = Tokenizer.default()


def tiny():
    torch.manual_seed(0)
    m = build_model(preset("note-tiny", TOK.vocab_size, align_input=True)).eval()
    with torch.no_grad():
        m.tok_emb.weight.mul_(10)
        m.tok_emb.weight[tk.T] = 0
    return m


def test_int8_copy_has_int8_linears_and_leaves_the_model_alone():
    m = tiny()
    q = int8(m)
    assert q is not m and getattr(q, "quantized", False)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert not any(type(x) is torch.nn.Linear for x in q.modules())
    assert sum(isinstance(x, dynamic) for x in q.modules()) >= 4 * len(m.blocks)
    assert any(type(x) is torch.nn.Linear for x in m.modules())   # the float model is untouched


def test_int8_hidden_states_are_close_to_the_float_models():
    m = tiny()
    q = int8(m)
    g = torch.Generator().manual_seed(1)
    T = 40
    ev = torch.randint(tk.ONSET0, tk.NOTE_END, (2, T, 3), generator=g)
    place = torch.zeros(2, T, dtype=torch.long)
    time = torch.arange(T)[None].expand(2, -1).contiguous()
    with torch.no_grad():
        a, b = m.hidden(ev, place, time), q.hidden(ev, place, time)
    assert torch.nn.functional.cosine_similarity(a, b, dim=-1).min() > 0.99


def test_a_jam_on_int8_weights_is_the_same_with_or_without_what_was_kept_and_after_a_restore():
    q = int8(tiny())
    whole, _ = jam(Stream(q, TOK), 10)
    assert sum(len(c) for c in whole) > 20
    unkept, _ = jam(Stream(q, TOK, keep=False), 10)
    assert same(whole, unkept)
    first, saved = jam(Stream(q, TOK), 5)
    rest, _ = jam(Stream(q, TOK), 5, state=State.from_dict(json.loads(saved.to_json())), first=5)
    assert same(whole, first + rest)


def test_the_encoder_decoder_comes_back_as_it_is():
    m = build_model(preset("tiny", TOK.vocab_size)).eval()
    assert int8(m) is m

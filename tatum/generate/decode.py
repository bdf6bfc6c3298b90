"""Batched autoregressive decoding of many segments at once, with classifier-free guidance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tatum import tokenizer as tk
from tatum.generate.sampling import Grammar, Sampling, pick
from tatum.model.transformer import Seq2Seq


@dataclass
class Row:
    """One segment to decode: its encoder input, and for the chord rule the melody as {onset step:
    pitch} (or a set of onset steps)."""

    enc: np.ndarray
    melody: dict[int, int] | set[int] | None = None


@dataclass
class Style:
    """Weighted token mixtures for the genre and artist positions (None: keep the input's token)."""

    genre: dict[int, float] | None = None
    artist: dict[int, float] | None = None


def _mixes(style: Style, rows: int, cond: int, null_id: int, device) -> list:
    """`Seq2Seq.encode` mixes: style weights on conditional rows, NULL_STYLE on the rest."""
    mixes = []
    for pos, mix in ((0, style.genre), (1, style.artist)):
        if not mix:
            continue
        ids = list(mix) + [null_id]
        w = torch.zeros(rows, len(ids), device=device)
        total = sum(mix.values())
        w[:cond, :-1] = torch.tensor([v / total for v in mix.values()], device=device)
        w[cond:, -1] = 1.0
        mixes.append((pos, torch.tensor(ids, device=device), w))
    return mixes


@torch.no_grad()
def decode_rows(model: Seq2Seq, rows: list[Row], sampling: Sampling, style: Style | None = None,
                null_id: int | None = None, gen: torch.Generator | None = None,
                chord_size: int = 3, max_tokens: int | None = None,
                any_controls: tuple[int, int] | None = None, chord_hold: int = 0) -> list[np.ndarray]:
    """Decode every row to the note tokens of a segment (BOS and EOS stripped).

    With guidance, each row is decoded twice in the same batch, the second time with its genre and
    artist set to NULL_STYLE (and, given `any_controls`, its density and polyphony set to those ANY
    ids), and the two logits are mixed; both copies receive the sampled token.
    """
    if not rows:
        return []
    device = next(model.parameters()).device
    style = style or Style()
    n = len(rows)
    guided = sampling.guidance != 0 and null_id is not None
    encs = [r.enc for r in rows]
    if guided:
        uncond = []
        for e in encs:
            u = e.copy()
            u[0] = u[1] = null_id
            if any_controls is not None:
                # Training drops the controls to ANY as it drops the style to NULL, so guidance can
                # push toward the asked-for density and polyphony the same way as toward the style.
                u[2], u[3] = any_controls
            uncond.append(u)
        encs = encs + uncond
    width = max(len(e) for e in encs)
    enc = torch.zeros(len(encs), width, dtype=torch.long)
    for i, e in enumerate(encs):
        enc[i, : len(e)] = torch.from_numpy(np.asarray(e, dtype=np.int64))
    enc = enc.to(device)
    mixes = _mixes(style, len(encs), n, null_id, device) if null_id is not None else None
    encoded = model.encode(enc, mixes)
    limit = min(max_tokens or model.cfg.max_dec_len, model.cfg.max_dec_len) - 1
    cache = model.start(*encoded, max_len=limit + 1)
    melody = [r.melody for r in rows]
    grammar = Grammar(n, model.cfg.vocab_size, device,
                      melody_onsets=melody if any(m for m in melody) else None, chord_size=chord_size,
                      chord_hold=chord_hold)
    gen = gen or sampling.generator()
    out = [[] for _ in range(n)]
    alive = torch.arange(n)            # original row index of each live row
    tokens = torch.full((len(encs), 1), tk.BOS, dtype=torch.long, device=device)
    for _ in range(limit):
        logits = model.decode_step(tokens, cache)
        k = len(alive)
        if guided:
            logits = (1 + sampling.guidance) * logits[:k] - sampling.guidance * logits[k:]
        nxt = pick(grammar.adjust(logits), grammar.allowed(), sampling, gen)
        grammar.advance(nxt)
        done = nxt == tk.EOS
        for j, t in zip(alive.tolist(), nxt.tolist()):
            if t != tk.EOS:
                out[j].append(t)
        if done.all():
            break
        if done.any():
            keep = torch.nonzero(~done).squeeze(1)
            alive, nxt = alive[keep], nxt[keep]
            grammar.select(keep)
            cache = cache.select(torch.cat([keep, keep + k]) if guided else keep)
        tokens = (torch.cat([nxt, nxt]) if guided else nxt)[:, None].to(device)
    return [_complete(np.array(o, dtype=np.int64)) for o in out]


def _complete(ids: np.ndarray) -> np.ndarray:
    """Drop a trailing incomplete note (a row cut by the length limit)."""
    n = len(ids) // 3 * 3
    return ids[:n]

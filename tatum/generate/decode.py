"""Batched autoregressive decoding of many segments at once, with classifier-free guidance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tatum import layout as lay
from tatum import tokenizer as tk
from tatum.generate.sampling import Grammar, Sampling, pick
from tatum.model.notelm import NoteLM
from tatum.model.transformer import Seq2Seq


@dataclass
class Row:
    """One segment to decode: the model's input (an encoder input for the encoder–decoder, a
    `tatum.layout.Layout` prefix for NoteLM), and for the chord rule the melody as {onset step: pitch}
    (or a set of onset steps)."""

    enc: np.ndarray | lay.Layout
    melody: dict[int, int] | set[int] | None = None
    played: np.ndarray | None = None   # the window's notes already played (tokens), kept as they are and
                                       # continued from (a style change inside a window, live input)
    from_step: int = 0                 # no new onset before this grid step (the present, in real time)
    until_step: int | None = None      # stop at the first onset at or after this step (decode only
                                       # what is needed soon; the rest of the window can follow later)
    ended: bool = False                # set by decoding: the model ended the window (not the horizon)


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
    if isinstance(model, NoteLM):
        return decode_events(model, rows, sampling, style, null_id, gen, chord_size,
                             None if max_tokens is None else max_tokens // 3, any_controls, chord_hold)
    played = [r.played if r.played is not None else np.zeros(0, np.int64) for r in rows]
    if len(rows) > 1 and any(len(p) or r.from_step for p, r in zip(played, rows)):  # one row at a time
        gen = gen or sampling.generator()
        return [decode_rows(model, [r], sampling, style, null_id, gen, chord_size, max_tokens, any_controls,
                            chord_hold)[0] for r in rows]
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
    out = [list(np.asarray(p).tolist()) for p in played]
    alive = torch.arange(n)            # original row index of each live row
    start = torch.from_numpy(np.concatenate([[tk.BOS], np.asarray(played[0], dtype=np.int64)]))
    tokens = start[None].repeat(len(encs), 1).to(device)
    if len(played[0]) or rows[0].from_step:
        grammar.resume(0, np.asarray(played[0], dtype=np.int64)[0::3] - tk.ONSET0, rows[0].from_step)
    horizon = _horizons(rows)
    for r in rows:
        r.ended = False
    for _ in range(limit - len(played[0])):
        logits = model.decode_step(tokens, cache)
        k = len(alive)
        if guided:
            logits = (1 + sampling.guidance) * logits[:k] - sampling.guidance * logits[k:]
        nxt = pick(grammar.adjust(logits), grammar.allowed(), sampling, gen)
        grammar.advance(nxt)
        ended = nxt == tk.EOS
        for j, e in zip(alive.tolist(), ended.tolist()):
            rows[j].ended = rows[j].ended or e
        is_onset = (nxt >= tk.ONSET0) & (nxt < tk.DUR0)
        done = ended | (is_onset & ((nxt - tk.ONSET0) >= horizon[alive]))
        for j, t, d in zip(alive.tolist(), nxt.tolist(), done.tolist()):
            if not d:
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


# ------------------------------------------------------------------ NoteLM
MAX_NOTES = 256   # notes one window may hold (about 50 notes/s)


def _full(part: torch.Tensor, lo: int, vocab: int, end: torch.Tensor | None = None) -> torch.Tensor:
    """Head logits placed in the whole vocabulary (the grammar's view): `part` at ids lo…, and the
    window's end (`end`, the onset head's class 0) at EOS."""
    full = torch.full((len(part), vocab), float("-inf"), dtype=part.dtype, device=part.device)
    full[:, lo:lo + part.shape[1]] = part
    if end is not None:
        full[:, tk.EOS] = end
    return full


@torch.no_grad()
def decode_events(model: NoteLM, rows: list[Row], sampling: Sampling, style: Style | None = None,
                  null_id: int | None = None, gen: torch.Generator | None = None, chord_size: int = 3,
                  max_notes: int | None = None, any_controls: tuple[int, int] | None = None,
                  chord_hold: int = 0) -> list[np.ndarray]:
    """`decode_rows` for NoteLM: one model step per note; onset, duration and pitch-velocity drawn in
    turn from the factorised heads, each through the same grammar, guidance and sampling."""
    device = next(model.parameters()).device
    style = style or Style()
    n, V = len(rows), model.cfg.vocab_size
    guided = sampling.guidance != 0 and null_id is not None
    prefixes = [_with_played(r) for r in rows]
    events = [p.events for p in prefixes]
    if guided:
        uncond = []
        for e in events:
            u = e.copy()
            u[0, 0] = u[1, 0] = null_id
            if any_controls is not None:
                u[2, 0], u[3, 0] = any_controls
            uncond.append(u)
        events = events + uncond
        prefixes = prefixes + prefixes
    width = max(len(e) for e in events)
    B = len(events)
    ev = torch.zeros(B, width, 3, dtype=torch.long)
    aligned = torch.zeros(B, width, 3, dtype=torch.long)
    place = torch.zeros(B, width, dtype=torch.long)
    time = torch.zeros(B, width, dtype=torch.long)
    pad = torch.ones(B, width, dtype=torch.bool)
    for i, (e, p) in enumerate(zip(events, prefixes)):
        k = width - len(e)
        ev[i, k:], place[i, k:], time[i, k:] = (torch.from_numpy(np.asarray(a)) for a in (e, p.place, p.time))
        if p.aligned is not None:
            aligned[i, k:] = torch.from_numpy(p.aligned)
        pad[i, k:] = False
    # The corrupted notes lined up with the notes to come: the k-th note of a row's window is fed
    # together with its corrupted note k + 1 (tatum.layout.aligned_notes).
    count = torch.tensor([0 if r.played is None else len(r.played) // 3 for r in rows])
    corr = torch.from_numpy(np.stack([lay.aligned_notes(_corrupted(r.enc), 0, MAX_NOTES + 2 + int(c))[:MAX_NOTES + 2]
                                      for r, c in zip(rows, count.tolist())]))
    starts = pad.sum(1).to(device)   # each row's first real position (its genre event)
    mixes = _mixes(style, B, n, null_id, device) if null_id is not None else None
    if mixes:
        mixes = [(starts + pos, ids, w) for pos, ids, w in mixes]
    limit = min(max_notes or MAX_NOTES, MAX_NOTES)
    h, cache = model.prefill(ev.to(device), place.to(device), time.to(device), pad.to(device), mixes,
                             max_new=limit + 1, aligned=aligned.to(device))
    melody = [r.melody for r in rows]
    grammar = Grammar(n, V, device, melody_onsets=melody if any(m for m in melody) else None,
                      chord_size=chord_size, chord_hold=chord_hold)
    out = [[] for _ in range(n)]
    for r, row in enumerate(rows):
        done = np.zeros(0, np.int64) if row.played is None else np.asarray(row.played, dtype=np.int64)
        if len(done) or row.from_step:
            grammar.resume(r, done[0::3] - tk.ONSET0, row.from_step)
            out[r].extend(done.tolist())
    gen = gen or sampling.generator()
    alive = torch.arange(n)

    def mixed(logits: torch.Tensor) -> torch.Tensor:
        k = len(alive)
        return (1 + sampling.guidance) * logits[:k] - sampling.guidance * logits[k:] if guided else logits

    def both(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t]) if guided else t

    target_place = torch.full((B,), lay.TARGET_PLACE, dtype=torch.long, device=device)
    horizon = _horizons(rows)
    for r in rows:
        r.ended = False
    for _ in range(limit):
        on = mixed(model.onset_logits(h))
        onset = pick(grammar.adjust(_full(on[:, 1:], tk.ONSET0, V, on[:, 0])), grammar.allowed(), sampling, gen)
        grammar.advance(onset)
        ended = onset == tk.EOS
        for j, e in zip(alive.tolist(), ended.tolist()):
            rows[j].ended = rows[j].ended or e
        done = ended | ((onset - tk.ONSET0) >= horizon[alive])
        if done.all():
            break
        if done.any():
            keep = torch.nonzero(~done).squeeze(1)
            alive, onset, h = alive[keep], onset[keep], h[torch.cat([keep, keep + len(done)]) if guided else keep]
            grammar.select(keep)
            cache = cache.select(torch.cat([keep, keep + len(done)]) if guided else keep)
            target_place = target_place[: len(h)]
            count, corr = count[keep], corr[keep]
        dur_logits, g = model.dur_logits(h, both(onset))
        dur = pick(_full(mixed(dur_logits), tk.DUR0, V), grammar.allowed(), sampling, gen)
        grammar.advance(dur)
        pv = pick(_full(mixed(model.pv_logits(g, both(dur))), tk.PV0, V), grammar.allowed(), sampling, gen)
        grammar.advance(pv)
        note = torch.stack([onset, dur, pv], dim=1)
        for j, triple in zip(alive.tolist(), note.tolist()):
            out[j].extend(triple)
        count = count + 1
        nxt = corr[torch.arange(len(count)), count.clamp(max=corr.shape[1] - 1)]
        h = model.step(both(note).to(device), target_place, both(onset - tk.ONSET0).to(device), cache,
                       both(nxt).to(device))
    return [np.array(o, dtype=np.int64) for o in out]


def _horizons(rows: list[Row]) -> torch.Tensor:
    """Each row's `until_step` (beyond the window when it has none)."""
    return torch.tensor([tk.N_ONSET + 1 if r.until_step is None else r.until_step for r in rows])


def _with_played(row: Row) -> lay.Layout:
    """A row's prefix, followed by the notes of the window already played (the corrupted notes lined
    up with them as the layout does)."""
    p = row.enc
    if row.played is None or not len(row.played):
        return p
    ev = lay.events_of(row.played)
    n = len(p) + len(ev)
    return lay.Layout(np.concatenate([p.events, ev]),
                      np.concatenate([p.place, np.full(len(ev), lay.TARGET_PLACE, dtype=np.int64)]),
                      np.concatenate([p.time, lay.event_time(ev)]), np.zeros(n, bool), np.zeros(n, bool), n,
                      lay.aligned_notes(_corrupted(p), p.prefix - 1, n))


def _corrupted(p: lay.Layout) -> np.ndarray:
    return p.events[p.place == lay.CORRUPT]

"""Batched autoregressive decoding of many segments at once, with classifier-free guidance."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tatum import layout as lay
from tatum import tokenizer as tk
from tatum.errors import Interrupted
from tatum.evaluate.metrics import bass_presence, pulse_clarity
from tatum.generate.sampling import Grammar, LeftHand, Pace, Sampling, pick, pick_part, pitch_anchor, steadiness, steady
from tatum.model.notelm import Cache, NoteLM
from tatum.model.transformer import Seq2Seq
from tatum.notes import Notes


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
    pace: Pace | None = None           # the density and polyphony the window must keep (None: free)
    answer_by: int | None = None       # NoteLM: the first new onset at or before this step, the window
                                       # not ended before it (a change of style is heard at once)
    previous: np.ndarray | None = None  # the tokens of the window just before (its last keys are not
                                        # struck again at once across the boundary)
    bias: torch.Tensor | None = None    # added at the pitch head: [N_PV], or [S, N_PV] for a note whose
                                        # onset lies in the s-th of S equal slices of the window
                                        # (tatum.generate.guide)


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
                any_controls: tuple[int, int] | None = None, chord_hold: int = 0,
                reuse: "Reuse | None" = None, stop: Callable[[], bool] | None = None) -> list[np.ndarray]:
    """Decode every row to the note tokens of a segment (BOS and EOS stripped).

    With guidance, each row is decoded twice in the same batch, the second time with its genre and
    artist set to NULL_STYLE (and, given `any_controls`, its density and polyphony set to those ANY
    ids), and the two logits are mixed; both copies receive the sampled token. `reuse` (NoteLM, one
    row): what the previous call on the same window kept (see `Reuse`); `stop`: asked before each note
    (NoteLM) or token (the encoder–decoder), True raises `Interrupted`.
    """
    if not rows:
        return []
    if isinstance(model, NoteLM):
        return decode_events(model, rows, sampling, style, null_id, gen, chord_size,
                             None if max_tokens is None else max_tokens // 3, any_controls, chord_hold, reuse, stop)
    played = [r.played if r.played is not None else np.zeros(0, np.int64) for r in rows]
    if len(rows) > 1 and any(len(p) or r.from_step for p, r in zip(played, rows)):  # one row at a time
        gen = gen or sampling.generator()
        return [decode_rows(model, [r], sampling, style, null_id, gen, chord_size, max_tokens, any_controls,
                            chord_hold, stop=stop)[0] for r in rows]
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
                      chord_hold=chord_hold, pace=[r.pace for r in rows])
    gen = gen or sampling.generator()
    out = [list(np.asarray(p).tolist()) for p in played]
    alive = torch.arange(n)            # original row index of each live row
    start = torch.from_numpy(np.concatenate([[tk.BOS], np.asarray(played[0], dtype=np.int64)]))
    tokens = start[None].repeat(len(encs), 1).to(device)
    if len(played[0]) or rows[0].from_step:
        grammar.resume_played(0, played[0], rows[0].from_step)
    for r, row in enumerate(rows):
        grammar.struck_before(r, row.previous)
    horizon = _horizons(rows)
    bias = _pitch_bias(rows, 0.0)      # the rows' own (the anchor reads a NoteLM's layout)
    for r in rows:
        r.ended = False
    for _ in range(limit - len(played[0])):
        if stop is not None and stop():
            raise Interrupted
        logits = model.decode_step(tokens, cache)
        k = len(alive)
        if guided:
            logits = (1 + sampling.guidance) * logits[:k] - sampling.guidance * logits[k:]
        at_pv = grammar.state == 2
        if bias is not None and at_pv.any():   # the bias of the slice the note's onset lies in
            logits = logits.clone()
            logits[:, tk.PV0:tk.PV0 + tk.N_PV] += (_slice_bias(bias[alive], grammar.last_onset + tk.ONSET0)
                                                   * at_pv[:, None]).to(logits.device)
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
REUSE_BLOCK = 16  # window notes fed per forward with `Reuse` (each block padded to this many rows)
FAST_PICK = True  # draw on each head's own classes when no melody constrains them (the same draws)


def _full(part: torch.Tensor, lo: int, vocab: int, end: torch.Tensor | None = None) -> torch.Tensor:
    """Head logits placed in the whole vocabulary (the grammar's view): `part` at ids lo…, and the
    window's end (`end`, the onset head's class 0) at EOS."""
    full = torch.full((len(part), vocab), float("-inf"), dtype=part.dtype, device=part.device)
    full[:, lo:lo + part.shape[1]] = part
    if end is not None:
        full[:, tk.EOS] = end
    return full


class _Kept:
    """One context in the cache, and the window notes fed after it."""

    def __init__(self, key: bytes, cache: Cache, ctx: int, hidden: torch.Tensor):
        self.key, self.cache, self.ctx, self.hidden = key, cache, ctx, hidden   # hidden [B, n + 1, d]:
        self.fed = np.zeros((0, 3), np.int64)                  # after the context, after each note fed


class Reuse:
    """What one real-time row keeps between the `decode_events` calls that go on with the same window
    under the same conditioning (tatum.generate.stream): the model's keys and values of the row's
    context and of the window's notes, so that a call feeds only the notes that changed since the last
    one instead of prefilling ≈400 events again. It holds the `slots` contexts used last (the one
    being played and, across a change of style, the one about to be).

    It speeds decoding up and changes nothing else. The context and the window's notes always reach
    the cache the same way — the context as one run, the notes in blocks of REUSE_BLOCK at fixed places
    (block j: notes jB … jB + B − 1, its unused rows padding), each run attending as a forward of its own
    would — whether a call finds some of them cached or feeds them all, so a row decodes to the same
    notes with or without what was kept (a jam restored from JSON, with nothing kept, goes on exactly as
    the uninterrupted one). Not thread-safe: one per decoding thread."""

    def __init__(self, slots: int = 2):
        self.slots = slots
        self.kept: list[_Kept] = []          # most recently used first
        self.prefills = self.fed_notes = self.forwards = 0   # work done, for tests and benchmarks

    @property
    def fed(self) -> np.ndarray:
        """The window notes fed after the context used last."""
        return self.kept[0].fed if self.kept else np.zeros((0, 3), np.int64)


def _context_key(model, ev, place, time, aligned, mixes) -> bytes:
    parts = [repr((id(model), tuple(ev.shape))).encode()]
    parts += [t.cpu().numpy().tobytes() for t in (ev, place, time, aligned)]
    for pos, ids, w in mixes or []:
        parts += [repr(pos.tolist() if torch.is_tensor(pos) else pos).encode(), ids.cpu().numpy().tobytes(),
                  w.float().cpu().numpy().tobytes()]
    return b"|".join(parts)


_FUSES: "weakref.WeakKeyDictionary[NoteLM, dict[int, bool]]" = weakref.WeakKeyDictionary()


def fuses(model: NoteLM, rows: int) -> bool:
    """Whether one forward over several runs of events (NoteLM.feed's segments) gives bit for bit what
    a forward per run gives, with this model, on this machine (its BLAS computing each row of a matrix
    product alike however many rows there are). Checked once: when it does not, `Reuse` feeds run by run."""
    known = _FUSES.setdefault(model, {})
    if rows not in known:
        dev = next(model.parameters()).device
        g = torch.Generator().manual_seed(0)
        C, S = 3 * REUSE_BLOCK + 5, REUSE_BLOCK
        k = C + 3 * S
        ev = torch.randint(tk.ONSET0, tk.NOTE_END, (rows, k, 3), generator=g).to(dev)
        place = torch.full((rows, k), lay.TARGET_PLACE, dtype=torch.long, device=dev)
        time = torch.arange(k, device=dev)[None].expand(rows, -1).contiguous()
        segs = [C, S, S, S]
        one = model.new_cache(rows, k + S)
        whole = model.feed(ev, place, time, one, segments=segs)
        apart = model.new_cache(rows, k + S)
        parts, o = [], 0
        for n in segs:
            parts.append(model.feed(ev[:, o:o + n], place[:, o:o + n], time[:, o:o + n], apart))
            o += n
        known[rows] = bool(torch.equal(whole, torch.cat(parts, 1))) and all(
            torch.equal(a, b) for a, b in zip(one.k + one.v, apart.k + apart.v))
    return known[rows]


def _resume(model: NoteLM, reuse: Reuse, row: Row, ev, place, time, aligned, mixes, limit: int):
    """The hidden state [B, d] after the row's context and the window's notes already played, and the
    cache holding them, from `reuse` where it holds them; None when the row does not fit the cache."""
    B, C = place.shape
    S, dev = REUSE_BLOCK, ev.device
    played = lay.events_of(row.played) if row.played is not None and len(row.played) else np.zeros((0, 3), np.int64)
    n = len(played)
    cap = model.cfg.max_len + 2 * MAX_NOTES + 2 * S     # one size always: the same buffers, the same strides
    if C + max(-(-n // S) * S, n + limit + 1) > cap:
        return None
    key = _context_key(model, ev, place, time, aligned, mixes)
    kept = next((k for k in reuse.kept if k.key == key), None)
    fresh = kept is None
    if fresh:
        old = reuse.kept[reuse.slots - 1] if len(reuse.kept) >= reuse.slots else None
        if old is not None and old.cache.k[0].shape[0] == B:       # recycle the least recent one's buffers
            cache, hidden = old.cache, old.hidden
            cache.pad.zero_()
        else:
            cache = model.new_cache(B, cap, dev)
            hidden = torch.zeros(B, cap + 1, model.cfg.d_model, dtype=cache.k[0].dtype, device=dev)
        reuse.kept = [k for k in reuse.kept if k is not old]
        kept = _Kept(key, cache, C, hidden)
        reuse.prefills += 1
    reuse.kept = [kept] + [k for k in reuse.kept if k is not kept][:reuse.slots - 1]
    cache = kept.cache
    m = min(len(kept.fed), n)
    agree = np.all(kept.fed[:m] == played[:m], axis=1)
    common = m if agree.all() else int(np.argmin(agree))
    first = n if common == n else common // S * S       # the block holding the first note not yet fed
    runs = []                                           # (events, place, time, aligned, window note or -1)
    if fresh:
        runs.append((ev, place, time, aligned, -1))
    if first < n:
        corr = lay.aligned_notes(_corrupted(row.enc), 0, n + 1)[1:]     # note j is fed with corrupted j + 1
        when = lay.event_time(played)
        for b in range(first, n, S):
            r = min(S, n - b)
            blk = np.full((S, 3), tk.PAD, dtype=np.int64)
            blk_al, blk_t = blk.copy(), np.zeros(S, np.int64)
            blk[:r], blk_al[:r], blk_t[:r] = played[b:b + r], corr[b:b + r], when[b:b + r]
            runs.append((torch.from_numpy(blk).to(dev)[None].expand(B, -1, -1),
                         torch.full((B, S), lay.TARGET_PLACE, dtype=torch.long, device=dev),
                         torch.from_numpy(blk_t).to(dev)[None].expand(B, -1),
                         torch.from_numpy(blk_al).to(dev)[None].expand(B, -1, -1), b))
    if runs:
        cache.pos = 0 if fresh else C + first
        groups = [runs] if len(runs) == 1 or fuses(model, B) else [[r] for r in runs]
        for group in groups:
            cat = [torch.cat([r[i] for r in group], 1).contiguous() for i in range(4)]
            out = model.feed(*cat[:3], cache, cat[3], mixes if group[0][4] < 0 else None,
                             segments=[r[1].shape[1] for r in group])
            reuse.forwards += 1
            o = 0
            for r in group:
                width, b = r[1].shape[1], r[4]
                if b < 0:
                    kept.hidden[:, 0] = out[:, o + width - 1]
                else:
                    got = min(S, n - b)
                    kept.hidden[:, b + 1:b + got + 1] = out[:, o:o + got]
                    reuse.fed_notes += got
                o += width
    kept.fed = played.copy()
    cache.pos = C + n
    return kept.hidden[:, n].clone(), cache


def _inputs(model: NoteLM, rows: list[Row], sampling: Sampling, style: Style, null_id: int | None,
            any_controls: tuple[int, int] | None, with_played: bool):
    """The rows' model inputs, left-padded to one length: with guidance each row twice, the second
    with its style (and, given `any_controls`, its controls) dropped. (ev, place, time, aligned, pad,
    mixes) on the model's device."""
    device = next(model.parameters()).device
    n = len(rows)
    guided = sampling.guidance != 0 and null_id is not None
    prefixes = [_with_played(r) if with_played else r.enc for r in rows]
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
    starts = pad.sum(1).to(device)   # each row's first real position (its genre event)
    mixes = _mixes(style, B, n, null_id, device) if null_id is not None else None
    if mixes:
        mixes = [(starts + pos, ids, w) for pos, ids, w in mixes]
    return ev.to(device), place.to(device), time.to(device), aligned.to(device), pad.to(device), mixes


@torch.no_grad()
def prime(model: NoteLM, row: Row, sampling: Sampling, reuse: Reuse, style: Style | None = None,
          null_id: int | None = None, any_controls: tuple[int, int] | None = None) -> bool:
    """Put the row's context and its played notes into `reuse`, drawing nothing: what a later
    `decode_events(model, [row'], …, reuse=reuse)` with the same context and guidance then need not
    compute (real time: the new style's context, ready before the moment it takes over is chosen).
    False when the row does not fit the cache."""
    ev, place, time, aligned, _, mixes = _inputs(model, [row], sampling, style or Style(), null_id, any_controls,
                                                 with_played=False)
    return _resume(model, reuse, row, ev, place, time, aligned, mixes, MAX_NOTES) is not None


@torch.no_grad()
def decode_events(model: NoteLM, rows: list[Row], sampling: Sampling, style: Style | None = None,
                  null_id: int | None = None, gen: torch.Generator | None = None, chord_size: int = 3,
                  max_notes: int | None = None, any_controls: tuple[int, int] | None = None,
                  chord_hold: int = 0, reuse: Reuse | None = None,
                  stop: Callable[[], bool] | None = None) -> list[np.ndarray]:
    """`decode_rows` for NoteLM: one model step per note; onset, duration and pitch-velocity drawn in
    turn from the factorised heads, each through the same grammar, guidance and sampling. With
    `reuse` (one row), the row's context and played notes come from what the last call kept. `stop`,
    asked before each note: True raises `Interrupted`."""
    device = next(model.parameters()).device
    style = style or Style()
    n, V = len(rows), model.cfg.vocab_size
    if reuse is not None and n != 1:
        raise ValueError("reuse decodes one row at a time")
    guided = sampling.guidance != 0 and null_id is not None
    # With `reuse` the model's input is the context alone, the played notes following in blocks.
    ev, place, time, aligned, pad, mixes = _inputs(model, rows, sampling, style, null_id, any_controls,
                                                   with_played=reuse is None)
    B = len(ev)
    # The corrupted notes lined up with the notes to come: the k-th note of a row's window is fed
    # together with its corrupted note k + 1 (tatum.layout.aligned_notes).
    count = torch.tensor([0 if r.played is None else len(r.played) // 3 for r in rows])
    corr = torch.from_numpy(np.stack([lay.aligned_notes(_corrupted(r.enc), 0, MAX_NOTES + 2 + int(c))[:MAX_NOTES + 2]
                                      for r, c in zip(rows, count.tolist())]))
    limit = min(max_notes or MAX_NOTES, MAX_NOTES)
    resumed = None
    if reuse is not None:
        resumed = _resume(model, reuse, rows[0], ev, place, time, aligned, mixes, limit)
    if resumed is not None:
        h, cache = resumed
    else:
        if reuse is not None:       # too long to keep: decode as without it
            return decode_events(model, rows, sampling, style, null_id, gen, chord_size, max_notes,
                                 any_controls, chord_hold, stop=stop)
        h, cache = model.prefill(ev, place, time, pad, mixes, max_new=limit + 1, aligned=aligned)
    melody = [r.melody for r in rows]
    grammar = Grammar(n, V, device, melody_onsets=melody if any(m for m in melody) else None,
                      chord_size=chord_size, chord_hold=chord_hold, pace=[r.pace for r in rows])
    out = [[] for _ in range(n)]
    for r, row in enumerate(rows):
        done = np.zeros(0, np.int64) if row.played is None else np.asarray(row.played, dtype=np.int64)
        if len(done) or row.from_step:
            grammar.resume_played(r, done, row.from_step)
            out[r].extend(done.tolist())
        grammar.struck_before(r, row.previous)
    gen = gen or sampling.generator()
    alive = torch.arange(n)
    anchors = _pitch_bias(rows, sampling.anchor)
    before = [_before(r) for r in rows] if sampling.anchor > 0 else None
    hand = _left_hand(rows, before, sampling.anchor)
    power = _steadiness(before, sampling.anchor)

    def mixed(logits: torch.Tensor) -> torch.Tensor:
        k = len(alive)
        return (1 + sampling.guidance) * logits[:k] - sampling.guidance * logits[k:] if guided else logits

    def both(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t]) if guided else t

    target_place = torch.full((B,), lay.TARGET_PLACE, dtype=torch.long, device=device)
    # Without a melody the grammar asks only that onsets do not go back (and a full group moves on):
    # each head's draw is then made on its own classes (sampling.pick_part), not the whole vocabulary.
    fast = FAST_PICK and grammar.melody is None
    horizon = _horizons(rows)
    for r in rows:
        r.ended = False
    answer = _answer_mask(rows)
    for i in range(limit):
        if stop is not None and stop():
            raise Interrupted
        on = mixed(model.onset_logits(h))
        if power is not None:
            on = steady(on, power[alive], sampling.temperature)
        if fast:    # (the same draws as below, on the heads' own classes)
            allowed = grammar.onset_allowed()
            if i == 0 and answer is not None:
                allowed = _answering(allowed, answer)
            cls = pick_part(on, allowed, sampling, gen, V)
            onset = torch.where(cls == 0, tk.EOS, cls - 1 + tk.ONSET0)
        else:
            allowed = grammar.allowed()
            if i == 0 and answer is not None:
                cols = torch.cat([torch.tensor([tk.EOS]), torch.arange(tk.ONSET0, tk.DUR0)])
                allowed[:, cols] = _answering(allowed[:, cols], answer)
            onset = pick(grammar.adjust(_full(on[:, 1:], tk.ONSET0, V, on[:, 0])), allowed, sampling, gen)
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
        if fast:
            dur = pick_part(mixed(dur_logits), grammar.dur_allowed(), sampling, gen, V) + tk.DUR0
        else:
            dur = pick(_full(mixed(dur_logits), tk.DUR0, V), grammar.allowed(), sampling, gen)
        grammar.advance(dur)
        pv_logits = mixed(model.pv_logits(g, both(dur)))
        if anchors is not None:
            pv_logits = pv_logits + _slice_bias(anchors[alive], onset).to(pv_logits.device)
        bass = None if hand is None else hand.bias(alive.numpy(), (onset - tk.ONSET0).numpy())
        if bass is not None:
            pv_logits = pv_logits + bass.to(pv_logits.device)
        if fast:
            pv = pick_part(pv_logits, grammar.pv_allowed(), sampling, gen, V) + tk.PV0
        else:
            pv = pick(_full(pv_logits, tk.PV0, V), grammar.allowed(), sampling, gen)
        grammar.advance(pv)
        note = torch.stack([onset, dur, pv], dim=1)
        if hand is not None:
            hand.add(alive.numpy(), (onset - tk.ONSET0).numpy(), (dur - tk.DUR0 + 1).numpy(),
                     ((pv - tk.PV0) // tk.VEL_BINS + tk.PIANO_LOW).numpy())
        for j, triple in zip(alive.tolist(), note.tolist()):
            out[j].extend(triple)
        count = count + 1
        nxt = corr[torch.arange(len(count)), count.clamp(max=corr.shape[1] - 1)]
        h = model.step(both(note).to(device), target_place, both(onset - tk.ONSET0).to(device), cache,
                       both(nxt).to(device))
    return [np.array(o, dtype=np.int64) for o in out]


def _pitch_bias(rows: list[Row], anchor: float) -> torch.Tensor | None:
    """Each row's bias [n, S, N_PV] at the pitch head, S slices of the window in time (1 unless a row's
    own bias has more): its `pitch_anchor`, from the clean notes around its window and those already
    played in it, and its own `bias` (None: neither asked or to be had)."""
    out = []
    for r in rows:
        a = None
        if anchor > 0:
            p = r.enc
            around = p.events[(p.place >= 2) & (p.place != lay.TARGET_PLACE) & lay.is_note(p.events)]
            pv = around[:, 2]
            if r.played is not None and len(r.played):
                pv = np.concatenate([pv, lay.events_of(r.played)[:, 2]])
            a = pitch_anchor((pv - tk.PV0) // tk.VEL_BINS + tk.PIANO_LOW, anchor)
        if r.bias is not None:
            a = r.bias if a is None else a + r.bias
        out.append(None if a is None else a.reshape(-1, tk.N_PV))
    if all(a is None for a in out):
        return None
    slices = max(len(a) for a in out if a is not None)
    return torch.stack([torch.zeros(slices, tk.N_PV) if a is None else a.expand(slices, -1) for a in out])


def _slice_bias(bias: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
    """[k, N_PV]: each row's bias for the slice of the window its note's onset (a token) lies in."""
    slices = bias.shape[1]
    at = (onset - tk.ONSET0).clamp(0, tk.N_ONSET - 1) * slices // tk.N_ONSET
    return bias[torch.arange(len(bias)), at.cpu()]


def _before(row: Row) -> Notes:
    """The notes of the two windows before a row's (times from the row's window start, negative)."""
    p = row.enc
    left = (p.place >= 2) & (p.place < lay.TARGET_PLACE) & lay.is_note(p.events) & (p.time >= -2 * tk.N_ONSET)
    ev = p.events[left]
    return Notes(p.time[left] * tk.GRID_MS, (ev[:, 1] - tk.DUR0 + 1) * tk.GRID_MS,
                 (ev[:, 2] - tk.PV0) // tk.VEL_BINS + tk.PIANO_LOW, np.full(len(ev), 64))


def _left_hand(rows: list[Row], before: list[Notes] | None, weight: float) -> LeftHand | None:
    """A `LeftHand` aiming at the bass share of the two windows before each row's (their notes,
    `_before`; None: not asked). Notes already played in a window count as drawn."""
    if weight <= 0:
        return None
    hand = LeftHand(np.array([bass_presence(b) for b in before]), weight)
    for j, r in enumerate(rows):
        if r.played is not None and len(r.played):
            for o, d, pv in lay.events_of(r.played).tolist():
                hand.add(np.array([j]), np.array([o - tk.ONSET0]), np.array([d - tk.DUR0 + 1]),
                         np.array([(pv - tk.PV0) // tk.VEL_BINS + tk.PIANO_LOW]))
    return hand


def _steadiness(before: list[Notes] | None, anchor: float) -> torch.Tensor | None:
    """Each row's `steadiness`, from the beat clarity of the two windows before it (their notes,
    `_before`; None: not asked)."""
    if anchor <= 0:
        return None
    return torch.tensor([steadiness(pulse_clarity(b), anchor) for b in before])


def _answer_mask(rows: list[Row]) -> torch.Tensor | None:
    """[B, 1 + N_ONSET] for the first onset drawn: rows with `answer_by` may neither end the window nor
    wait past it (None: no row has one)."""
    if all(r.answer_by is None for r in rows):
        return None
    m = torch.ones(len(rows), 1 + tk.N_ONSET, dtype=torch.bool)
    for j, r in enumerate(rows):
        if r.answer_by is not None:
            m[j, 0] = False
            m[j, 2 + r.answer_by:] = False
    return m


def _answering(allowed: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """The onset head's allowed classes [B, 1 + N_ONSET] narrowed to `answer`'s, in each row where that
    leaves some class (the grammar's rules come first)."""
    both = allowed & answer
    return torch.where(both.any(dim=1, keepdim=True), both, allowed)


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

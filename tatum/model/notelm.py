"""NoteLM: a decoder-only transformer over note events (one position per note), DESIGN §4 revised.

Each position embeds its three tokens (onset + dur + pv, or one special) and its place (tatum.layout).
The next event is predicted in three factorised steps, as the Compound Word Transformer does: which
onset (or a window's end, `T`) from the hidden state; then the duration given that onset; then the
pitch-velocity given both. The output embeddings are tied to the input ones.

Pre-LN blocks, rotary positions (some heads turn with the event's time instead, see tatum.layout),
PyTorch SDPA. Incremental decoding goes through `prefill` → `step`
with an explicit `Cache` (keys/values grown in place), shared by generation and real time; rows may be
left-padded to a common prefix length (the pads are masked, and rotary positions are relative, so a
row's padding changes nothing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from tatum import layout
from tatum import tokenizer as tk


@dataclass
class NoteLMConfig:
    vocab_size: int = 1763
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 8
    d_ff: int = 1024
    max_len: int = 512          # input events
    n_places: int = layout.N_PLACES
    rope_base: float = 10000.0
    time_heads: int = 2         # heads that rotate by event time (tatum.layout) instead of position
    align_input: bool = False   # add the aligned corrupted note (tatum.layout `aligned`) to each input

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NoteLMConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# The onset head's classes: a window's end (T), then the 500 onset steps (NoteLM.onset_logits).


def onset_class(first: torch.Tensor) -> torch.Tensor:
    """Class index of the onset head for an event's first token (T → 0, onset step s → 1 + s)."""
    return torch.where(first == tk.T, 0, first - tk.ONSET0 + 1)


# ------------------------------------------------------------------ rotary
def rotary(cfg: NoteLMConfig, pos: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """Unit complex numbers [B, H, T, hd/2] to turn queries and keys by: the first heads turn with the
    position `pos` [T], the last `time_heads` with the event time `time` [B, T]."""
    hd = cfg.d_model // cfg.n_heads
    inv = 1.0 / cfg.rope_base ** (torch.arange(0, hd, 2, device=time.device).float() / hd)
    B, T = time.shape
    by_pos = (pos.float()[:, None] * inv)[None, None].expand(B, cfg.n_heads - cfg.time_heads, T, -1)
    by_time = (time.float()[..., None] * inv)[:, None].expand(B, cfg.time_heads, T, -1)
    ang = torch.cat([by_pos, by_time], dim=1)
    return torch.polar(torch.ones_like(ang), ang)


def rotate(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
    """x [..., hd] turned by `cis` [..., hd/2], each pair of features a complex number: a few ops where
    the cos/sin form takes a dozen, which a one-note decoding step pays in every layer."""
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(z * cis).flatten(-2).type_as(x)


# ------------------------------------------------------------------ blocks
class Attention(nn.Module):
    def __init__(self, cfg: NoteLMConfig):
        super().__init__()
        self.h = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, cis, mask=None, cache=None, layer=0, segments=None):
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        (q, k), v = rotate(qkv[:2], cis), qkv[2]
        if cache is not None:
            start = cache.pos
            k, v = cache.append(layer, k, v)
        if segments is not None:
            # Runs of rows that attend as separate forwards would (NoteLM.feed): each its own call,
            # to the keys up to its own end, under its own mask.
            ys, o = [], 0
            for n, m in zip(segments, mask):
                end = start + o + n
                ys.append(F.scaled_dot_product_attention(q[:, :, o:o + n].contiguous(), k[:, :, :end], v[:, :, :end],
                                                         attn_mask=m))
                o += n
            y = torch.cat(ys, dim=2) if len(ys) > 1 else ys[0]
        else:
            # No dropout on attention weights: it forces SDPA's slow explicit-matrix path on CPU.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and cache is None)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.fc, self.proj = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: NoteLMConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn, self.mlp = Attention(cfg), MLP(cfg.d_model, cfg.d_ff)

    def forward(self, x, cis, mask=None, cache=None, layer=0, segments=None):
        x = x + self.attn(self.ln1(x), cis, mask, cache, layer, segments)
        return x + self.mlp(self.ln2(x))


class Refine(nn.Module):
    """One factorised step: the hidden state plus the embedding of the attribute just chosen."""

    def __init__(self, d: int):
        super().__init__()
        self.ln, self.mlp, self.out = nn.LayerNorm(d), MLP(d, 2 * d), nn.LayerNorm(d)

    def forward(self, h, chosen):
        g = h + chosen
        g = g + self.mlp(self.ln(g))
        return g, self.out(g)


# ------------------------------------------------------------------ cache
@dataclass
class Cache:
    """Per-layer keys/values [B, H, L, hd] filled up to `pos`, and which key slots are padding."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    pad: torch.Tensor          # [B, L] True where a slot is padding (left-padded prefixes)
    pos: int = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        end = self.pos + k.shape[2]
        if end > self.k[layer].shape[2]:
            raise ValueError("cache is full (max_len reached)")
        self.k[layer][:, :, self.pos:end] = k
        self.v[layer][:, :, self.pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def select(self, rows: torch.Tensor) -> "Cache":
        return Cache([t[rows] for t in self.k], [t[rows] for t in self.v], self.pad[rows], self.pos)


# ------------------------------------------------------------------ model
class NoteLM(nn.Module):
    """`hidden(events, place)` for training; `prefill` → `step` for generation; the three heads
    `onset_logits`, `dur_logits`, `pv_logits` on top of either."""

    def __init__(self, cfg: NoteLMConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=tk.PAD)
        self.place_emb = nn.Embedding(cfg.n_places, cfg.d_model)
        self.align_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False) if cfg.align_input else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.after_onset, self.after_dur = Refine(cfg.d_model), Refine(cfg.d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual outputs, scaled by depth as in GPT-2
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))
        with torch.no_grad():
            self.tok_emb.weight[tk.PAD].zero_()

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, events: torch.Tensor, place: torch.Tensor, mixes=None,
              aligned: torch.Tensor | None = None) -> torch.Tensor:
        """events [B, T, 3], place [B, T] → [B, T, d]. `mixes` replaces a leading position's first token
        by a weighted sum of token embeddings: (position, token ids [K], weights [B, K]). `aligned`
        [B, T, 3]: the corrupted note lined up with each position (PAD: none)."""
        x = self.tok_emb(events).sum(2) + self.place_emb(place)
        if self.align_proj is not None and aligned is not None:
            x = x + self.align_proj(self.tok_emb(aligned).sum(2))
        if mixes:
            x = x.clone()
            rows = torch.arange(len(x), device=x.device)
            for pos, ids, w in mixes:  # pos: an int, or one position per row (left-padded rows)
                pos = torch.as_tensor(pos, device=x.device).expand(len(x))
                x[rows, pos] = w.to(x.dtype) @ self.tok_emb(ids) + self.place_emb(place[rows, pos])
        return x

    # ------------------------------------------------------------- training
    def forward(self, events: torch.Tensor, place: torch.Tensor, time: torch.Tensor,
                mask: torch.Tensor, aligned: torch.Tensor | None = None) -> torch.Tensor:
        """NLL [N] of every event marked in `mask` [B, T], each predicted from the events before it."""
        h = self.hidden(events[:, :-1], place[:, :-1], time[:, :-1],
                        aligned=None if aligned is None else aligned[:, :-1])
        m = mask[:, 1:]
        return self.event_nll(h[m], events[:, 1:][m])

    def hidden(self, events: torch.Tensor, place: torch.Tensor, time: torch.Tensor, mixes=None,
               aligned: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states [B, T, d] (causal; right padding needs no mask)."""
        T = events.shape[1]
        if T > self.cfg.max_len:
            raise ValueError(f"input of {T} events exceeds max_len {self.cfg.max_len}")
        x = self.embed(events, place, mixes, aligned)
        cis = rotary(self.cfg, torch.arange(T, device=events.device), time)
        for block in self.blocks:
            x = block(x, cis)
        return self.ln_f(x)

    def event_nll(self, h: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood [N] of the next events `nxt` [N, 3] from hidden states `h` [N, d]:
        onset class, plus duration and pitch-velocity for notes (teacher-forced)."""
        first = nxt[:, 0]
        nll = F.cross_entropy(self.onset_logits(h).float(), onset_class(first), reduction="none")
        note = (first >= tk.ONSET0) & (first < tk.DUR0)
        if note.any():
            hn, nn_ = h[note], nxt[note]
            g, out = self.after_onset(hn, self.tok_emb(nn_[:, 0]))
            dur = F.cross_entropy(F.linear(out, self.tok_emb.weight[tk.DUR0:tk.PV0]).float(),
                                  nn_[:, 1] - tk.DUR0, reduction="none")
            _, out = self.after_dur(g, self.tok_emb(nn_[:, 1]))
            pv = F.cross_entropy(F.linear(out, self.tok_emb.weight[tk.PV0:tk.NOTE_END]).float(),
                                 nn_[:, 2] - tk.PV0, reduction="none")
            nll = nll.index_add(0, torch.nonzero(note).squeeze(1), dur + pv)
        return nll

    # ------------------------------------------------------------- heads
    def onset_logits(self, h: torch.Tensor) -> torch.Tensor:
        """[B, 501]: class 0 is the window's end (T), class 1 + s onset step s."""
        # T's row and the onset rows as views: no 500-row copy per decoded note
        w = self.tok_emb.weight
        return torch.cat([F.linear(h, w[tk.T:tk.T + 1]), F.linear(h, w[tk.ONSET0:tk.DUR0])], -1)

    def dur_logits(self, h: torch.Tensor, onset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Duration logits [B, 500] given the chosen onset token ids [B]; also the state for pv."""
        g, out = self.after_onset(h, self.tok_emb(onset))
        return F.linear(out, self.tok_emb.weight[tk.DUR0:tk.PV0]), g

    def pv_logits(self, g: torch.Tensor, dur: torch.Tensor) -> torch.Tensor:
        """Pitch-velocity logits [B, 704] given `dur_logits`' state and the chosen duration ids [B]."""
        _, out = self.after_dur(g, self.tok_emb(dur))
        return F.linear(out, self.tok_emb.weight[tk.PV0:tk.NOTE_END])

    # ------------------------------------------------------------- decoding
    def prefill(self, events: torch.Tensor, place: torch.Tensor, time: torch.Tensor, pad: torch.Tensor,
                mixes=None, max_new: int = 256, aligned: torch.Tensor | None = None) -> tuple[torch.Tensor, Cache]:
        """Run left-padded prefixes (`pad` [B, T] True on padding) into a fresh cache with room for
        `max_new` more events; returns the last position's hidden state [B, d] and the cache."""
        B, T = pad.shape
        L = T + max_new
        H, hd = self.cfg.n_heads, self.cfg.d_model // self.cfg.n_heads
        dev, dt = events.device, self.tok_emb.weight.dtype
        cache = Cache([torch.empty(B, H, L, hd, device=dev, dtype=dt) for _ in self.blocks],
                      [torch.empty(B, H, L, hd, device=dev, dtype=dt) for _ in self.blocks],
                      torch.zeros(B, L, dtype=torch.bool, device=dev))
        cache.pad[:, :T] = pad
        causal = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
        mask = None if not bool(pad.any()) else (causal[None] & ~pad[:, None, :])[:, None]
        if mask is not None:
            mask = mask | torch.eye(T, dtype=torch.bool, device=dev)  # a pad row attends to itself
        x = self.embed(events, place, mixes, aligned)
        cis = rotary(self.cfg, torch.arange(T, device=dev), time)
        for i, block in enumerate(self.blocks):
            x = block(x, cis, mask=mask if mask is not None else causal, cache=cache, layer=i)
        cache.pos = T
        return self.ln_f(x[:, -1]), cache

    def step(self, events: torch.Tensor, place: torch.Tensor, time: torch.Tensor, cache: Cache,
             aligned: torch.Tensor | None = None) -> torch.Tensor:
        """Feed one event per row (events [B, 3], place and time [B], its aligned corrupted note [B, 3]);
        returns the new hidden state [B, d]."""
        p = cache.pos
        x = self.embed(events[:, None], place[:, None], aligned=None if aligned is None else aligned[:, None])
        cis = rotary(self.cfg, torch.tensor([p], device=events.device), time[:, None])
        mask = None if not bool(cache.pad.any()) else ~cache.pad[:, None, None, :p + 1]
        for i, block in enumerate(self.blocks):
            x = block(x, cis, mask=mask, cache=cache, layer=i)
        cache.pos = p + 1
        return self.ln_f(x[:, -1])

    def new_cache(self, rows: int, length: int, device=None) -> Cache:
        """An empty cache for `rows` rows of up to `length` events."""
        H, hd = self.cfg.n_heads, self.cfg.d_model // self.cfg.n_heads
        dt = self.tok_emb.weight.dtype
        device = device or self.tok_emb.weight.device
        return Cache([torch.zeros(rows, H, length, hd, device=device, dtype=dt) for _ in self.blocks],
                     [torch.zeros(rows, H, length, hd, device=device, dtype=dt) for _ in self.blocks],
                     torch.zeros(rows, length, dtype=torch.bool, device=device))

    def feed(self, events: torch.Tensor, place: torch.Tensor, time: torch.Tensor, cache: Cache,
             aligned: torch.Tensor | None = None, mixes=None, segments: list[int] | None = None) -> torch.Tensor:
        """`step` for several events per row at once (events [B, k, 3], place and time [B, k], aligned
        [B, k, 3]; `mixes` as in `embed`): the events go into the cache from its position on, each
        attending to what the cache holds and to the events before it; returns their hidden states
        [B, k, d]. One forward streams the weights once, so k events cost little more than one.
        `segments` (lengths summing to k): the events attend in runs, each as if fed by a call of its
        own (to the cache up to the run's end, no row padded); the rest of the forward is row by row.
        No left padding in the cache."""
        B, k = place.shape
        p = cache.pos
        dev = events.device
        segments = list(segments) if segments else [k]
        if sum(segments) != k:
            raise ValueError(f"segments {segments} do not add up to {k} events")
        x = self.embed(events, place, mixes, aligned)
        cis = rotary(self.cfg, torch.arange(p, p + k, device=dev), time)
        masks, o = [], 0
        for n in segments:
            masks.append(torch.ones(n, p + o + n, dtype=torch.bool, device=dev).tril(p + o)[None, None])
            o += n
        for i, block in enumerate(self.blocks):
            x = block(x, cis, mask=masks, cache=cache, layer=i, segments=segments)
        cache.pos = p + k
        return self.ln_f(x)

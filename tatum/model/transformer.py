"""The encoder–decoder transformer of DESIGN §4.

Pre-LN blocks, PyTorch SDPA attention, one token embedding shared by encoder, decoder and output
(tied), learned positions. The leading `n_style` encoder positions can take a weighted mixture of
token embeddings instead of one token, which is how styles blend. Incremental decoding goes through
`encode` → `start` → `decode_step` with an explicit `DecodeCache` (self-attention K/V grown in
place, cross-attention K/V computed once), shared by generation and real time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from tatum.model.config import ModelConfig
from tatum.tokenizer import SEP


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, mask=None, causal=False, cache=None, layer=0):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.append(layer, k, v)
            # New queries see the whole cache and, among themselves, only the past.
            if T > 1:
                P = k.shape[2]
                mask = torch.ones(T, P, dtype=torch.bool, device=x.device).tril(P - T)
            causal = False
        # No dropout on attention weights: it forces SDPA's slow explicit-matrix path on CPU.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class CrossAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h = cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def memory_kv(self, memory):
        B, S, C = memory.shape
        k, v = self.kv(memory).view(B, S, 2, self.h, C // self.h).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x, k, v, mask):
        """`mask`: None, a boolean key mask [B, 1, 1, S], or an additive float bias [B, H, T, S]."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.h, C // self.h).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn, self.mlp = SelfAttention(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln1(x), mask=mask))
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.attn, self.cross, self.mlp = SelfAttention(cfg), CrossAttention(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, k, v, mem_mask, cache=None, layer=0):
        x = x + self.drop(self.attn(self.ln1(x), causal=True, cache=cache, layer=layer))
        x = x + self.drop(self.cross(self.ln2(x), k, v, mem_mask))
        return x + self.mlp(self.ln3(x))


class Encoded(NamedTuple):
    """What `encode` gives `start`: memory [B, S, d], key mask [B, 1, 1, S], anchors [B] (the index
    of each row's first SEP, used by aligned cross-attention)."""

    memory: torch.Tensor
    mask: torch.Tensor
    anchor: torch.Tensor


@dataclass
class DecodeCache:
    """Per-layer self-attention keys/values (preallocated, filled up to `pos`) and the encoder's
    cross-attention keys/values. Rows of a batch decode in lockstep."""

    self_k: list[torch.Tensor]
    self_v: list[torch.Tensor]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    mem_mask: torch.Tensor | None
    pos: int = 0
    anchor: torch.Tensor | None = None   # [B] first-SEP index per row, for the aligned cross bias

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        T = k.shape[2]
        end = self.pos + T
        if end > self.self_k[layer].shape[2]:
            raise ValueError("decoder cache is full (max_dec_len reached)")
        self.self_k[layer][:, :, self.pos:end] = k
        self.self_v[layer][:, :, self.pos:end] = v
        return self.self_k[layer][:, :, :end], self.self_v[layer][:, :, :end]

    def select(self, rows: torch.Tensor) -> "DecodeCache":
        """Keep only some batch rows (finished rows drop out of a batched decode)."""
        pick = lambda ts: [t[rows] for t in ts]  # noqa: E731
        return DecodeCache(pick(self.self_k), pick(self.self_v), pick(self.cross_k), pick(self.cross_v),
                           None if self.mem_mask is None else self.mem_mask[rows], self.pos,
                           None if self.anchor is None else self.anchor[rows])


class Seq2Seq(nn.Module):
    """tatum's encoder–decoder. `forward(enc, dec_in) -> logits` for training."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.enc_positions not in ("absolute", "anchored"):
            raise ValueError(f"enc_positions must be absolute or anchored, not {cfg.enc_positions!r}")
        n_enc_pos = cfg.max_enc_len * (2 if cfg.enc_positions == "anchored" else 1)
        self.enc_pos = nn.Embedding(n_enc_pos, cfg.d_model)
        self.dec_pos = nn.Embedding(cfg.max_dec_len, cfg.d_model)
        if cfg.cross_bias not in ("none", "aligned"):
            raise ValueError(f"cross_bias must be none or aligned, not {cfg.cross_bias!r}")
        slopes = [2.0 ** -(2 * h + 1) for h in range(cfg.n_heads - 1)] + [0.0]
        self.register_buffer("cross_slopes", torch.tensor(slopes), persistent=False)
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual outputs, scaled by depth as in GPT-2
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * (cfg.enc_layers + cfg.dec_layers)))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------- encoder
    def encode(self, enc: torch.Tensor, mixes: list[tuple[int, torch.Tensor, torch.Tensor]] | None = None):
        """Encode token ids [B, S]; returns `Encoded(memory [B, S, d], key mask [B, 1, 1, S], anchor [B])`,
        which `start(*encoded)` takes.

        `mixes` replaces a leading position's embedding by a weighted sum of token embeddings:
        (position, token ids [K], weights [B, K]) — e.g. position 0 with genre:jazz and
        genre:classical weighted .7/.3 for every row.
        """
        B, S = enc.shape
        if S > self.cfg.max_enc_len:
            raise ValueError(f"encoder input of {S} tokens exceeds max_enc_len {self.cfg.max_enc_len}")
        x = self.tok_emb(enc)
        if mixes:
            x = x.clone()
            for pos, ids, w in mixes:
                x[:, pos] = w.to(x.dtype) @ self.tok_emb(ids)
        anchor = self.anchors(enc)
        x = self.drop(x + self.enc_pos(self.enc_positions(anchor, S)))
        mask = (enc != 0)[:, None, None, :]
        for block in self.encoder:
            x = block(x, mask)
        return Encoded(self.enc_ln(x), mask, anchor)

    def enc_positions(self, anchor: torch.Tensor, S: int) -> torch.Tensor:
        """Position ids [S] (absolute) or [B, S] (anchored at each row's first SEP, `anchor` [B]; the
        style positions keep ids 0..n_style-1)."""
        ar = torch.arange(S, device=anchor.device)
        if self.cfg.enc_positions == "absolute":
            return ar
        pos = ar[None, :] - anchor[:, None] + self.cfg.max_enc_len
        n = self.cfg.n_style
        pos[:, :n] = ar[:n]
        return pos.clamp(0, 2 * self.cfg.max_enc_len - 1)

    @staticmethod
    def anchors(enc: torch.Tensor) -> torch.Tensor:
        """Index of each row's first SEP (where the target opens), 0 for a row without one."""
        is_sep = enc == SEP
        return torch.where(is_sep.any(1), is_sep.int().argmax(1), 0)

    def cross_mask(self, mask: torch.Tensor | None, anchor: torch.Tensor | None, pos: torch.Tensor,
                   S: int) -> torch.Tensor | None:
        """The cross-attention mask for decoder positions `pos` [T]: the key mask as it is, or with
        `cross_bias="aligned"` a float bias [B, H, T, S] that also carries the key mask."""
        if self.cfg.cross_bias == "none":
            return mask
        if anchor is None:
            raise ValueError("this model's aligned cross-attention needs the encoder anchors: "
                             "model.start(*model.encode(enc))")
        centre = anchor[:, None] + 2 + pos[None, :]                                    # [B, T]
        dist = (torch.arange(S, device=pos.device)[None, None, :] - centre[:, :, None]).abs()  # [B, T, S]
        bias = -self.cross_slopes[None, :, None, None] * dist[:, None].to(self.cross_slopes.dtype)
        if mask is not None:
            bias = bias.masked_fill(~mask, float("-inf"))
        return bias

    # ------------------------------------------------------------- decoder
    def forward(self, enc: torch.Tensor, dec_in: torch.Tensor, mixes=None) -> torch.Tensor:
        memory, mask, anchor = self.encode(enc, mixes)
        T = dec_in.shape[1]
        pos = torch.arange(T, device=dec_in.device)
        x = self.drop(self.tok_emb(dec_in) + self.dec_pos(pos))
        cmask = self.cross_mask(mask, anchor, pos, enc.shape[1])
        for block in self.decoder:
            k, v = block.cross.memory_kv(memory)
            x = block(x, k, v, cmask)
        return F.linear(self.dec_ln(x), self.tok_emb.weight)

    def start(self, memory: torch.Tensor, mask: torch.Tensor, anchor: torch.Tensor | None = None,
              max_len: int | None = None) -> DecodeCache:
        """A fresh decode cache for encoded rows, `model.start(*model.encode(enc))`: cross-attention
        K/V computed here, once. Aligned cross-attention needs the anchors."""
        B = memory.shape[0]
        H, hd = self.cfg.n_heads, self.cfg.d_model // self.cfg.n_heads
        L = min(max_len or self.cfg.max_dec_len, self.cfg.max_dec_len)
        kv = [blk.cross.memory_kv(memory) for blk in self.decoder]
        new = lambda: torch.empty(B, H, L, hd, dtype=memory.dtype, device=memory.device)  # noqa: E731
        # Without padding in the batch, cross-attention needs no mask (SDPA's faster path).
        return DecodeCache([new() for _ in self.decoder], [new() for _ in self.decoder],
                           [k for k, _ in kv], [v for _, v in kv], None if bool(mask.all()) else mask, 0, anchor)

    def decode_step(self, tokens: torch.Tensor, cache: DecodeCache) -> torch.Tensor:
        """Feed new decoder tokens [B, T] (T ≥ 1) after those already in `cache`; returns the logits
        of the last position [B, vocab] and advances the cache."""
        T = tokens.shape[1]
        pos = torch.arange(cache.pos, cache.pos + T, device=tokens.device)
        x = self.tok_emb(tokens) + self.dec_pos(pos)
        cmask = self.cross_mask(cache.mem_mask, cache.anchor, pos, cache.cross_k[0].shape[2])
        for i, block in enumerate(self.decoder):
            x = block(x, cache.cross_k[i], cache.cross_v[i], cmask, cache=cache, layer=i)
        cache.pos += T
        return F.linear(self.dec_ln(x[:, -1]), self.tok_emb.weight)

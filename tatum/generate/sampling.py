"""Sampling one token per row: guidance, grammar, constraints, temperature, top-k, top-p."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tatum import tokenizer as tk


@dataclass
class Sampling:
    """How tokens are drawn. `guidance` w mixes logits as (1+w)·cond − w·uncond (0 = off)."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    guidance: float = 0.0
    seed: int | None = None

    def generator(self, salt: int = 0) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.seed if self.seed is not None else torch.seed() % 2**31) * 1_000_003 + salt)
        return g


class Grammar:
    """Only onset → dur → pv triples (or EOS after a complete note) may be emitted, with onsets
    never going back in time inside a window. Optional chord constraint for harmonization: where a
    note starts within `chord_ms` of a melody onset, the next onsets stay within `chord_ms` of it
    until the group has `chord_size` notes."""

    def __init__(self, rows: int, vocab: int, device="cpu", melody_onsets: list[set[int]] | None = None,
                 chord_size: int = 3, chord_ms: int = 50):
        self.state = torch.zeros(rows, dtype=torch.long)          # 0 expect onset/EOS, 1 dur, 2 pv
        self.last_onset = torch.zeros(rows, dtype=torch.long)     # onset step of the last note
        self.group_start = torch.full((rows,), -10**6, dtype=torch.long)
        self.group_count = torch.zeros(rows, dtype=torch.long)
        self.melody = melody_onsets
        self.chord_size, self.chord_steps = chord_size, chord_ms // tk.GRID_MS
        masks = torch.zeros(3, vocab, dtype=torch.bool)
        masks[0, tk.ONSET0:tk.DUR0] = True
        masks[0, tk.EOS] = True
        masks[1, tk.DUR0:tk.PV0] = True
        masks[2, tk.PV0:tk.NOTE_END] = True
        self.masks = masks.to(device)
        self.onset_steps = torch.arange(tk.N_ONSET, device=device)

    def select(self, rows: torch.Tensor) -> None:
        for name in ("state", "last_onset", "group_start", "group_count"):
            setattr(self, name, getattr(self, name)[rows])
        if self.melody is not None:
            self.melody = [self.melody[i] for i in rows.tolist()]

    def allowed(self) -> torch.Tensor:
        allow = self.masks[self.state].clone()
        on = allow[:, tk.ONSET0:tk.DUR0]
        on &= self.onset_steps[None, :] >= self.last_onset[:, None]
        if self.melody is not None:
            forcing = (self.state == 0) & (self.group_count > 0) & (self.group_count < self.chord_size)
            if forcing.any():
                hi = self.group_start + self.chord_steps
                window = self.onset_steps[None, :] <= hi[:, None]
                on &= torch.where(forcing[:, None], window, torch.ones_like(window))
                allow[:, tk.EOS] &= ~forcing
        # A row whose window is exhausted may always end.
        dead = ~allow.any(dim=1)
        allow[dead, tk.EOS] = True
        return allow

    def advance(self, tokens: torch.Tensor) -> None:
        is_onset = (tokens >= tk.ONSET0) & (tokens < tk.DUR0)
        step = (tokens - tk.ONSET0).clamp(min=0)
        if is_onset.any():
            new_group = is_onset & (step > self.group_start + self.chord_steps)
            if self.melody is not None:
                near = torch.tensor([any(abs(int(s) - m) <= self.chord_steps for m in mel)
                                     for s, mel in zip(step.tolist(), self.melody)], dtype=torch.bool)
            else:
                near = torch.zeros_like(new_group)
            self.group_start = torch.where(new_group, step, self.group_start)
            self.group_count = torch.where(new_group, torch.where(near, 1, self.chord_size),
                                           self.group_count + is_onset.long())
            self.last_onset = torch.where(is_onset, step, self.last_onset)
        self.state = torch.where(is_onset, 1, torch.where(self.state == 1, 2, torch.where(self.state == 2, 0, self.state)))


def pick(logits: torch.Tensor, allowed: torch.Tensor, s: Sampling, gen: torch.Generator) -> torch.Tensor:
    """Draw one token per row from `logits` [B, V] restricted to `allowed` [B, V]."""
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if s.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / s.temperature
    if s.top_k and s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) > s.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)

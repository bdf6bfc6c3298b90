"""Low-rank adapters (LoRA) for fine-tuning: the base weights stay frozen and each adapted Linear
learns W + (alpha / r)·B·A. Merged back into plain Linears for export, so a fine-tuned checkpoint
loads like any other."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

# Every Linear of attention and feed-forward blocks, in encoder and decoder.
TARGETS = ("qkv", "q", "kv", "proj", "fc")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.A = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))  # starts as the base model exactly
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.t() @ self.B.t()) * self.scale

    def merged(self) -> nn.Linear:
        lin = copy.deepcopy(self.base)
        with torch.no_grad():
            lin.weight += (self.B @ self.A) * self.scale
        lin.weight.requires_grad_(True)
        lin.bias.requires_grad_(True)
        return lin


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> nn.Module:
    """Freeze `model` and put adapters of rank `rank` on its attention and feed-forward Linears (in place)."""
    for p in model.parameters():
        p.requires_grad_(False)
    alpha = float(alpha if alpha is not None else rank)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if name in TARGETS and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """A copy of `model` with every adapter folded into its Linear: a plain model again."""
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
    for p in out.parameters():
        p.requires_grad_(True)
    return out


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())

"""Int8 weights for decoding one note at a time on a CPU (the real-time stream).

A one-note step reads every weight of the trunk, so on a CPU it is bound by memory, not arithmetic:
int8 linear layers (PyTorch's dynamic quantization: weights stored in int8, activations quantized on
the fly) read a quarter of the bytes. Validation nats per note move by under 0.01 on every task
(the model card's table, fp32 against int8). Embeddings and the output heads, which share the token
embedding, stay in float.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.ao.nn.quantized import dynamic

from tatum.model.notelm import NoteLM


def int8(model: nn.Module) -> nn.Module:
    """A copy of a NoteLM on the CPU with int8 linear layers, for decoding; the model itself when it is
    another kind, on another device, or this PyTorch has no quantized engine for this CPU."""
    if not isinstance(model, NoteLM) or next(model.parameters()).device.type != "cpu":
        return model
    if torch.backends.quantized.engine == "none" and not _pick_engine():
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # eager-mode quantization's notice that torchao is its successor
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)
    for layer in q.modules():
        if isinstance(layer, dynamic.Linear):
            layer.forward = _direct.__get__(layer)
    q.quantized = True
    return q


_OP = torch.ops.quantized.linear_dynamic.default


def _direct(self, x: torch.Tensor) -> torch.Tensor:
    """The quantized layer's forward calling its operator directly: the generic call checks its
    arguments in Python first, which costs a tenth of a note's step (36 of these per step)."""
    return _OP(x, self._packed_params._packed_params, True)


def _pick_engine() -> bool:
    for engine in ("x86", "fbgemm", "qnnpack"):
        if engine in torch.backends.quantized.supported_engines:
            torch.backends.quantized.engine = engine
            return True
    return False

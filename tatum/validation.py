"""Validation in units that compare across designs: nats per note of the target window, per task.

A task is a corruption with a fixed context: the nine refinements with five windows on each side
(`whole_mask` there is infill), `continuation` (whole_mask, left context only) and `no_context`
(whole_mask alone). Windows are fixed (evenly spaced over the val pieces, no augmentation, the pieces'
own style and controls), so two models are measured on the same music whatever their layout.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from tatum import tokenizer as tk
from tatum.data.examples import IGNORE, ExampleConfig, ExampleDataset, collate

CONTEXT = 5


def tasks(corruptions: list[str]) -> dict[str, tuple[str, tuple[int, int]]]:
    out = {c: (c, (CONTEXT, CONTEXT)) for c in corruptions}
    return out | {"continuation": ("whole_mask", (CONTEXT, 0)), "no_context": ("whole_mask", (0, 0))}


def validation_set(shards, ex_cfg: ExampleConfig, tok, per_task: int, pieces=None) -> dict[str, list]:
    """Fixed examples per task: `per_task` windows evenly spaced over the val pieces."""
    cfg = ExampleConfig(**(asdict(ex_cfg) | dict(augment=False, style_dropout=0.0, control_dropout=0.0)))
    ds = ExampleDataset(shards, "val", cfg, tok, seed=1234, pieces=pieces)
    if not len(ds):
        return {}
    idx = np.linspace(0, len(ds) - 1, per_task).astype(int)
    return {name: [ds.example(int(i), corruption=c, rng=np.random.default_rng([77, int(i)]), context=ctx)
                   for i in idx]
            for name, (c, ctx) in tasks(ds.corruption_names).items()}


def _target_nll(model, b: dict, device) -> tuple[float, int]:
    """Summed NLL of the target windows of a batch (their end included) and their count of notes."""
    if "events" in b:
        events, mask = b["events"].to(device), b["target"].to(device)
        nll = model(events, b["place"].to(device), b["time"].to(device), mask, b["aligned"].to(device))
        notes = int((mask[:, 1:] & (events[:, 1:, 0] >= tk.ONSET0) & (events[:, 1:, 0] < tk.DUR0)).sum())
        return float(nll.sum()), notes
    logits = model(b["enc"].to(device), b["dec_in"].to(device))
    labels = b["labels"].to(device)
    nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return float(nll), int((labels >= tk.PV0).sum())


@torch.no_grad()
def nats_per_note(model, val: dict[str, list], device="cpu", batch_size: int = 16, autocast=nullcontext) -> dict:
    """Nats per target note for each task; "all" over the nine refinements (as training selects by)."""
    was = model.training
    model.eval()
    out, tot, n_tot = {}, 0.0, 0
    for name, examples in val.items():
        s, n = 0.0, 0
        for i in range(0, len(examples), batch_size):
            with autocast():
                ds, dn = _target_nll(model, collate(examples[i:i + batch_size]), device)
            s, n = s + ds, n + dn
        out[name] = s / max(n, 1)
        if name not in ("continuation", "no_context"):
            tot, n_tot = tot + s, n_tot + n
    out["all"] = tot / max(n_tot, 1)
    model.train(was)
    return out


def example_config(model) -> ExampleConfig:
    """The example layout a model reads (its own input limits)."""
    from tatum.model.notelm import NoteLM

    m = model.cfg
    if isinstance(model, NoteLM):
        return ExampleConfig(layout="notelm", max_len=m.max_len)
    return ExampleConfig(max_enc_len=m.max_enc_len, max_dec_len=m.max_dec_len)


def table(models: dict[str, object], shards, per_task: int = 64, artist: str | None = None) -> dict[str, dict]:
    """Nats per note per task for each model on the same val windows (of `artist`'s pieces when given).
    `models`: name → (model, tokenizer)."""
    pieces = [p for p in shards.split("val") if artist is None or (p.artist or "").casefold() == artist.casefold()]
    out = {}
    for name, (model, tok) in models.items():
        val = validation_set(shards, example_config(model), tok, per_task, pieces=pieces)
        out[name] = nats_per_note(model, val)
    return out


def markdown(scores: dict[str, dict], digits: int = 2) -> str:
    """Rows per model, columns per task."""
    cols = list(next(iter(scores.values())))
    head = "| model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    return head + "".join(f"| {name} | " + " | ".join(f"{s[c]:.{digits}f}" for c in cols) + " |\n"
                          for name, s in scores.items())

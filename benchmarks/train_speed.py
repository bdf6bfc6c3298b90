"""Training throughput: tatum's Seq2Seq against a plain `torch.nn.Transformer` of the same shape.

For each preset both models are built side by side in one process:

    ours:     tatum.model.transformer.Seq2Seq(preset(name, vocab, dropout=0.0))
    baseline: nn.Embedding (tokens) + learned encoder/decoder positions of the same sizes
              + nn.Transformer(d_model, nhead, enc/dec layers, dim_feedforward, dropout=0,
                               activation="gelu", batch_first=True, norm_first=True)
              + an output Linear to the vocabulary whose weight is tied to the token embedding
              (as ours is), so the two have the same parameters. Masks are the usual ones:
              `generate_square_subsequent_mask` as the causal tgt_mask, and
              src_key_padding_mask / memory_key_padding_mask from the PAD positions.

Both train on identical random batches shaped like real training data: encoder length trimmed to
a realistic length (default: small 512, paper 1024), decoder length 134 (the mean target length of
our data), vocabulary 1763, PAD (id 0) on the last 10 % of positions of a quarter of the rows.
One step = forward + cross-entropy (PAD targets ignored) + backward + AdamW step. After 2 warm-up
steps each, the timed blocks are interleaved: each of `--repeats` rounds times `--steps` steps of
one system then `--steps` of the other, alternating which goes first, so the noise of a shared
machine falls on both alike. Throughput is counted in target (decoder) tokens that are not PAD per
second; the report gives the median block of each system and the ratio ours/baseline.

    python benchmarks/train_speed.py [--presets small,paper] [--batch-size 8] [--enc-len N]
                                     [--dec-len 134] [--repeats 5] [--steps 3] [--threads N]
                                     [--device cpu|cuda]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import sys

import argparse
import gc
import json
import platform
import statistics
import time
import warnings
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

from tatum.model.config import PRESETS, ModelConfig, preset
from tatum.model.transformer import Seq2Seq

VOCAB = 1763
PAD = 0
IGNORE = -100
DEFAULT_ENC_LEN = {"tiny": 256, "small": 512, "paper": 1024}
WARMUP_STEPS = 2


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="small,paper",
                    help=f"comma-separated presets among {', '.join(PRESETS)} (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per batch (default: %(default)s)")
    ap.add_argument("--enc-len", type=int, default=None,
                    help="encoder length for every preset (default: small 512, paper 1024, tiny 256; "
                         "never above the preset's max_enc_len)")
    ap.add_argument("--dec-len", type=int, default=134,
                    help="decoder length, the mean target length of our data (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="interleaved rounds; the median block is reported (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=3, help="training steps per timed block (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None,
                    help=f"torch.set_num_threads (default: torch's default, here {torch.get_num_threads()})")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights and batches (default: %(default)s)")
    args = ap.parse_args(argv)
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown or not args.presets:
        ap.error(f"unknown preset(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(PRESETS)}")
    for name in ("batch_size", "dec_len", "repeats", "steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.enc_len is not None and args.enc_len < 2:
        ap.error("--enc-len must be at least 2")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available to this torch")
    return args


# ------------------------------------------------------------------------------------------ baseline
class PlainTransformer(nn.Module):
    """The same model written the plain PyTorch way, around `nn.Transformer`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.enc_pos = nn.Embedding(cfg.max_enc_len, cfg.d_model)
        self.dec_pos = nn.Embedding(cfg.max_dec_len, cfg.d_model)
        with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first was True"
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                d_model=cfg.d_model, nhead=cfg.n_heads, num_encoder_layers=cfg.enc_layers,
                num_decoder_layers=cfg.dec_layers, dim_feedforward=cfg.d_ff, dropout=0.0,
                activation="gelu", batch_first=True, norm_first=True)
        self.out = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.out.weight = self.tok_emb.weight  # tied, as in ours

    def forward(self, enc: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
        S, T = enc.shape[1], dec_in.shape[1]
        src = self.tok_emb(enc) + self.enc_pos(torch.arange(S, device=enc.device))
        tgt = self.tok_emb(dec_in) + self.dec_pos(torch.arange(T, device=dec_in.device))
        pad = enc == PAD
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=dec_in.device, dtype=src.dtype)
        y = self.transformer(src, tgt, tgt_mask=causal, src_key_padding_mask=pad,
                             memory_key_padding_mask=pad, tgt_is_causal=True)
        return self.out(y)


# ------------------------------------------------------------------------------------------ batches
def make_batch(batch: int, enc_len: int, dec_len: int, gen: torch.Generator):
    """Random ids (never PAD) with PAD on the last 10 % of positions of a quarter of the rows."""
    enc = torch.randint(1, VOCAB, (batch, enc_len), generator=gen)
    dec = torch.randint(1, VOCAB, (batch, dec_len + 1), generator=gen)
    n_rows = max(1, batch // 4)
    rows = slice(batch - n_rows, batch)
    enc[rows, enc_len - max(1, enc_len // 10):] = PAD
    dec[rows, dec_len + 1 - max(1, (dec_len + 1) // 10):] = PAD
    dec_in = dec[:, :-1].contiguous()
    labels = dec[:, 1:].clone()
    labels[labels == PAD] = IGNORE
    return enc, dec_in, labels


# ------------------------------------------------------------------------------------------ training
class Trainer:
    def __init__(self, model: nn.Module, device: torch.device, autocast):
        self.model = model.to(device).train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01,
                                     fused=device.type == "cuda")
        self.device, self.autocast = device, autocast

    def step(self, enc, dec_in, labels) -> None:
        with self.autocast():
            logits = self.model(enc, dec_in)
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def timed(self, batch, steps: int) -> float:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        gc.collect()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(*batch)
        sync()
        return time.perf_counter() - t0


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors are counted once


def run_preset(name: str, args, device: torch.device, autocast, log) -> dict:
    cfg = preset(name, VOCAB, dropout=0.0)
    enc_len = min(args.enc_len or DEFAULT_ENC_LEN.get(name, cfg.max_enc_len), cfg.max_enc_len)
    dec_len = min(args.dec_len, cfg.max_dec_len)

    torch.manual_seed(args.seed)
    ours = Trainer(Seq2Seq(cfg), device, autocast)
    torch.manual_seed(args.seed)
    base = Trainer(PlainTransformer(cfg), device, autocast)

    gen = torch.Generator().manual_seed(args.seed)
    batch = tuple(t.to(device) for t in make_batch(args.batch_size, enc_len, dec_len, gen))
    n_tok = int((batch[2] != IGNORE).sum())

    log(f"[bold]{name}[/bold]: d {cfg.d_model}, heads {cfg.n_heads}, layers {cfg.enc_layers}+{cfg.dec_layers}, "
        f"ff {cfg.d_ff}; batch {args.batch_size} × enc {enc_len} / dec {dec_len} "
        f"({n_tok:,} target tokens per step); {args.repeats} rounds × {args.steps} steps each")
    for tr in (ours, base):
        for _ in range(WARMUP_STEPS):
            tr.step(*batch)

    times = {"ours": [], "baseline": []}
    for r in range(args.repeats):
        order = [("ours", ours), ("baseline", base)]
        if r % 2:
            order.reverse()
        for label, tr in order:
            times[label].append(tr.timed(batch, args.steps))
        log(f"  round {r + 1}/{args.repeats}: ours {times['ours'][-1]:.2f} s, "
            f"baseline {times['baseline'][-1]:.2f} s")

    work = n_tok * args.steps
    ours_tok_s = work / statistics.median(times["ours"])
    base_tok_s = work / statistics.median(times["baseline"])
    paired = statistics.median(b / o for o, b in zip(times["ours"], times["baseline"]))
    result = {
        "preset": name,
        "ours_tok_s": round(ours_tok_s, 1),
        "baseline_tok_s": round(base_tok_s, 1),
        "ratio": round(ours_tok_s / base_tok_s, 3),
        "ratio_paired_median": round(paired, 3),
        "ours_params": n_params(ours.model),
        "baseline_params": n_params(base.model),
        "enc_len": enc_len,
        "dec_len": dec_len,
        "target_tokens_per_step": n_tok,
        "ours_block_s": [round(t, 3) for t in times["ours"]],
        "baseline_block_s": [round(t, 3) for t in times["baseline"]],
    }
    del ours, base, batch
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or logged: do not wrap the table at 80 columns
        console = Console(width=120)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} thread(s)"
    console.print(f"[bold]train_speed[/bold]: torch {torch.__version__}, {where}"
                  f"{', bf16 autocast' if bf16 else ', fp32'}")

    results = [run_preset(name, args, device, autocast, console.print) for name in args.presets]

    table = Table(title=f"Training throughput, median of {args.repeats} blocks of {args.steps} steps "
                        f"(batch {args.batch_size}, {'bf16' if bf16 else 'fp32'}, {where})",
                  caption="tokens/s: non-PAD target (decoder) tokens per second of "
                          "forward + cross-entropy + backward + AdamW")
    for col in ("preset", "system", "params", "tokens/s", "ratio"):
        table.add_column(col, justify="left" if col in ("preset", "system") else "right")
    for r in results:
        table.add_row(r["preset"], "tatum Seq2Seq", f"{r['ours_params']:,}", f"{r['ours_tok_s']:,.0f}",
                      f"{r['ratio']:.2f}×")
        table.add_row("", "nn.Transformer", f"{r['baseline_params']:,}", f"{r['baseline_tok_s']:,.0f}",
                      "1.00×", end_section=True)
    console.print(table)

    print(json.dumps({
        "benchmark": "train_speed",
        "device": "cuda" if device.type == "cuda" else "cpu",
        "device_name": where,
        "threads": threads,
        "precision": "bf16" if bf16 else "fp32",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "steps": args.steps,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

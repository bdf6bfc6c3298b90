"""Decode throughput: tatum's Seq2Seq sampler against ImprovNet's stack (Hugging Face transformers'
`EncoderDecoderModel` of two BERTs, sampled with `generate`), side by side in one process.

For each preset both models are built with random weights, in eval mode, vocabulary 1763:

    ours:     tatum.model.transformer.Seq2Seq(preset(name, 1763)), driven through its incremental
              API exactly as `tatum.generate.decode.decode_rows` drives it:
                  cache = model.start(*model.encode(enc), max_len=N + 1)
                  N × (model.decode_step(tokens, cache) → Grammar.allowed() → pick(top-k 50, T 1)
                       → Grammar.advance → collect the tokens on the host)
              EOS is masked out of every row that has another option, so every row emits exactly N
              tokens (the real sampler stops rows at EOS; here the work is fixed).
    baseline: transformers.EncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(
                  BertConfig(hidden_size=d_model, num_hidden_layers=enc_layers, num_attention_heads=
                             n_heads, intermediate_size=d_ff, max_position_embeddings=max_enc_len),
                  BertConfig(... dec_layers ..., max_position_embeddings=max_dec_len,
                             is_decoder=True, add_cross_attention=True)))
              with PAD 0, BOS = decoder start 1, EOS 2, SDPA attention where the installed version
              offers it, sampled by
                  model.generate(input_ids, attention_mask, do_sample=True, top_k=50,
                                 max_new_tokens=N, min_new_tokens=N)
              (min_new_tokens masks EOS until N tokens exist, so it also emits exactly N).

Both get the same random encoder input of `--enc-len` tokens (no PAD), capped at the preset's
max_enc_len (small: 512), at every batch size of `--batches`. One timed run = encoder + N decode
steps + sampling, under torch.no_grad. After one short warm-up run each, the timed runs are
interleaved: each of `--repeats` rounds runs one system then the other, alternating which goes first,
so the noise of a shared machine falls on both alike. Throughput = batch × N / wall seconds; the
report gives the median run of each system and the ratio ours/baseline.

With `--improvise MIDI` and a shipped model present, the first 60 s of that file are also re-played
once with `tatum.generate.tasks.improvise(..., plan="improvnet", seed=0)` (the work of
`tatum improvise`), and its wall time is reported (model loading timed apart).

    python benchmarks/generate.py [--presets small,paper] [--batches 1,8] [--enc-len 1100]
                                  [--new-tokens 300] [--repeats 3] [--threads N] [--seed 0]
                                  [--improvise PIECE.mid]

Without transformers installed only ours is run. The last line printed is a JSON object with the
results.
"""

from __future__ import annotations

import sys

import argparse
import gc
import json
import platform
import statistics
import time

import torch

from tatum import tokenizer as tk
from tatum.generate.sampling import Grammar, Sampling, pick
from tatum.model.config import PRESETS, preset
from tatum.model.transformer import Seq2Seq

VOCAB = 1763
PAD, BOS, EOS = tk.PAD, tk.BOS, tk.EOS
TOP_K = 50
WARMUP_TOKENS = 16        # the warm-up run of each system: a short decode of the same shapes
IMPROVISE_MS = 60_000


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="small,paper",
                    help=f"comma-separated presets among {', '.join(PRESETS)} (default: %(default)s)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default: %(default)s)")
    ap.add_argument("--enc-len", type=int, default=1100,
                    help="encoder input length, capped at each preset's max_enc_len (default: %(default)s)")
    ap.add_argument("--new-tokens", type=int, default=300,
                    help="tokens generated per row, exactly (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved rounds; the median run is reported (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None,
                    help=f"torch.set_num_threads (default: torch's default, here {torch.get_num_threads()})")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights, inputs and sampling (default: %(default)s)")
    ap.add_argument("--improvise", metavar="MIDI", default=None,
                    help="also time `improvise` on the first 60 s of this file with the shipped model")
    args = ap.parse_args(argv)
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown or not args.presets:
        ap.error(f"unknown preset(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(PRESETS)}")
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batches must be comma-separated integers, not {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        ap.error("--batches needs batch sizes of at least 1")
    for name in ("enc_len", "new_tokens", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    longest = min(PRESETS[p].get("max_dec_len", 512) for p in args.presets)
    if args.new_tokens > longest:
        ap.error(f"--new-tokens {args.new_tokens} exceeds the decoder length of a chosen preset ({longest})")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    return args


# ------------------------------------------------------------------------------------------ ours
class Ours:
    """tatum's model and per-step sampling work (decode_rows' loop at a fixed length)."""

    label = "tatum Seq2Seq"

    def __init__(self, name: str, seed: int):
        self.cfg = preset(name, VOCAB)
        torch.manual_seed(seed)
        self.model = Seq2Seq(self.cfg).eval()
        self.sampling = Sampling(temperature=1.0, top_k=TOP_K)
        self.gen = torch.Generator().manual_seed(seed)

    def n_params(self) -> int:
        return self.model.n_params()

    @torch.no_grad()
    def run(self, enc: torch.Tensor, n: int) -> int:
        model, rows = self.model, enc.shape[0]
        cache = model.start(*model.encode(enc), max_len=n + 1)
        grammar = Grammar(rows, model.cfg.vocab_size, enc.device)
        out = [[] for _ in range(rows)]
        tokens = torch.full((rows, 1), BOS, dtype=torch.long, device=enc.device)
        for _ in range(n):
            logits = model.decode_step(tokens, cache)
            allowed = grammar.allowed()
            allowed[:, EOS] &= allowed.sum(dim=1) == 1    # EOS only where it is the sole option
            nxt = pick(logits, allowed, self.sampling, self.gen)
            grammar.advance(nxt)
            for j, t in enumerate(nxt.tolist()):
                out[j].append(t)
            tokens = nxt[:, None]
        made = sum(len(o) for o in out)
        if made != rows * n:
            raise RuntimeError(f"ours made {made} tokens, expected {rows * n}")
        return made


# ------------------------------------------------------------------------------------------ baseline
def load_transformers():
    """(module, None) or (None, a one-line reason)."""
    try:
        import transformers
    except Exception as e:  # ImportError, or a broken install
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    transformers.logging.set_verbosity_error()
    return transformers, None


class Baseline:
    """ImprovNet's stack: a BERT-to-BERT EncoderDecoderModel sampled with `generate`."""

    label = "HF EncoderDecoder (BERT)"

    def __init__(self, name: str, seed: int, transformers):
        cfg = preset(name, VOCAB)
        ids = dict(vocab_size=VOCAB, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
        shape = dict(hidden_size=cfg.d_model, num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff)
        enc_cfg = transformers.BertConfig(num_hidden_layers=cfg.enc_layers,
                                          max_position_embeddings=cfg.max_enc_len, **shape, **ids)
        dec_cfg = transformers.BertConfig(num_hidden_layers=cfg.dec_layers,
                                          max_position_embeddings=cfg.max_dec_len, is_decoder=True,
                                          add_cross_attention=True, **shape, **ids)
        config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(
            enc_cfg, dec_cfg, decoder_start_token_id=BOS, **ids)
        torch.manual_seed(seed)
        self.model = transformers.EncoderDecoderModel(config=config).eval()
        try:
            self.model.set_attn_implementation("sdpa")
        except Exception:  # an older transformers without it, or a model that cannot: keep the default
            pass
        self.attn = str(getattr(self.model.decoder.config, "_attn_implementation", None) or "default")
        self.seed = seed

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.no_grad()
    def run(self, enc: torch.Tensor, n: int) -> int:
        out = self.model.generate(input_ids=enc, attention_mask=torch.ones_like(enc), do_sample=True,
                                  top_k=TOP_K, temperature=1.0, max_new_tokens=n, min_new_tokens=n)
        made = (out.shape[1] - 1) * out.shape[0]      # minus the decoder start token
        if made != enc.shape[0] * n:
            raise RuntimeError(f"baseline made {made} tokens, expected {enc.shape[0] * n}")
        return made


def timed(system, enc: torch.Tensor, n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    system.run(enc, n)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ runs
def run_preset(name: str, args, transformers, log) -> list[dict]:
    cfg = preset(name, VOCAB)
    enc_len = min(args.enc_len, cfg.max_enc_len)
    n = args.new_tokens
    systems = {"ours": Ours(name, args.seed)}
    if transformers is not None:
        systems["baseline"] = Baseline(name, args.seed, transformers)
    cap = f" (capped from {args.enc_len} at max_enc_len)" if enc_len < args.enc_len else ""
    log(f"[bold]{name}[/bold]: d {cfg.d_model}, heads {cfg.n_heads}, layers {cfg.enc_layers}+{cfg.dec_layers}, "
        f"ff {cfg.d_ff}; encoder {enc_len} tokens{cap}, {n} new tokens per row; "
        + ", ".join(f"{s.label} {s.n_params():,} params" for s in systems.values()))

    results = []
    gen = torch.Generator().manual_seed(args.seed)
    for batch in args.batches:
        enc = torch.randint(EOS + 1, VOCAB, (batch, enc_len), generator=gen)
        for s in systems.values():
            s.run(enc, min(n, WARMUP_TOKENS))
        times = {k: [] for k in systems}
        for r in range(args.repeats):
            order = list(systems)
            if r % 2:
                order.reverse()
            for k in order:
                if k == "baseline":
                    torch.manual_seed(args.seed + r)  # generate() samples from the global generator
                times[k].append(timed(systems[k], enc, n))
            log(f"  batch {batch}, round {r + 1}/{args.repeats}: "
                + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in systems))
        work = batch * n
        res = {"preset": name, "batch": batch, "enc_len": enc_len, "enc_len_requested": args.enc_len,
               "enc_len_capped": enc_len < args.enc_len, "new_tokens": n,
               "ours_tok_s": round(work / statistics.median(times["ours"]), 1)}
        if "baseline" in systems:
            res["baseline_tok_s"] = round(work / statistics.median(times["baseline"]), 1)
            res["ratio"] = round(res["ours_tok_s"] / res["baseline_tok_s"], 3)
            res["ratio_paired_median"] = round(
                statistics.median(b / o for o, b in zip(times["ours"], times["baseline"])), 3)
        res["ours_run_s"] = [round(t, 3) for t in times["ours"]]
        if "baseline" in systems:
            res["baseline_run_s"] = [round(t, 3) for t in times["baseline"]]
        res["ours_params"] = systems["ours"].n_params()
        if "baseline" in systems:
            res["baseline_params"] = systems["baseline"].n_params()
            res["baseline_attn"] = systems["baseline"].attn
        results.append(res)
    del systems
    gc.collect()
    return results


def run_improvise(path: str, log) -> dict:
    """Time `improvise` on the first 60 s of a MIDI file with the shipped model, or say why not."""
    from tatum.errors import TatumError
    from tatum.model.checkpoint import resolve

    try:
        folder = resolve(None)
    except TatumError as e:
        return {"skipped": f"no shipped model ({e})"}
    from tatum.generate import tasks
    from tatum.notes import Notes

    try:
        notes = Notes.from_midi(path).slice(0, IMPROVISE_MS, clip=True)
        t0 = time.perf_counter()
        model, _ = tasks.get_model()
        load_s = time.perf_counter() - t0
        positions = [0]
        step = model.decode_step

        def counting(tokens, cache):  # decoder positions fed, to give a tokens/s figure too
            positions[0] += tokens.shape[0] * tokens.shape[1]
            return step(tokens, cache)

        model.decode_step = counting
        try:
            log(f"[bold]improvise[/bold]: {path}, first {notes.duration_s:.1f} s ({len(notes):,} notes), "
                f"model {folder.name}, plan improvnet, seed 0")
            t0 = time.perf_counter()
            result = tasks.improvise(notes, plan="improvnet", seed=0)
            wall = time.perf_counter() - t0
        finally:
            del model.decode_step
    except TatumError as e:
        return {"skipped": f"improvise failed: {e}"}
    return {"midi": str(path), "model": folder.name, "piece_s": round(notes.duration_s, 2),
            "notes_in": len(notes), "notes_out": len(result), "load_s": round(load_s, 3),
            "wall_s": round(wall, 3), "decoder_positions": positions[0],
            "tok_s": round(positions[0] / wall, 1) if wall > 0 else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or logged: do not wrap the table at 80 columns
        console = Console(width=120)
    transformers, missing = load_transformers()
    where = f"CPU, {threads} thread(s)"
    hf = f"transformers {transformers.__version__}" if transformers else "transformers not installed"

    def log(line: str) -> None:  # one line each, however long
        console.print(line, soft_wrap=True)

    log(f"[bold]generate[/bold]: torch {torch.__version__}, {hf}, {where}, fp32")
    if transformers is None:
        log(f"transformers is not installed ({missing}): timing ours only.")

    results = []
    for name in args.presets:
        results += run_preset(name, args, transformers, log)
    improvise = run_improvise(args.improvise, log) if args.improvise else None
    if improvise and "skipped" in improvise:
        log(f"improvise: skipped: {improvise['skipped']}")

    attn = next((r["baseline_attn"] for r in results if "baseline_attn" in r), None)
    table = Table(title=f"Decode throughput, median of {args.repeats} run(s) of {args.new_tokens} new tokens "
                        f"per row ({where}, fp32)",
                  caption="tokens/s: batch × new tokens / wall s of encoder + decode + top-k 50 sampling; "
                          "ratio: ours / baseline"
                          + (f"; baseline attention: {attn}" if attn else "")
                          + ("; enc len *: capped at the preset's max_enc_len" if any(r["enc_len_capped"]
                                                                                       for r in results) else "")
                          + ("; improvise: decoder positions fed / wall s" if improvise and "wall_s" in improvise
                             else ""))
    for col in ("preset", "batch", "enc len", "system", "tokens/s", "ratio"):
        table.add_column(col, justify="left" if col in ("preset", "system") else "right")
    for r in results:
        enc = f"{r['enc_len']}{'*' if r['enc_len_capped'] else ''}"
        ratio = f"{r['ratio']:.2f}×" if "ratio" in r else "—"
        table.add_row(r["preset"], str(r["batch"]), enc, Ours.label, f"{r['ours_tok_s']:,.1f}", ratio,
                      end_section="baseline_tok_s" not in r)
        if "baseline_tok_s" in r:
            table.add_row("", "", "", Baseline.label, f"{r['baseline_tok_s']:,.1f}", "1.00×", end_section=True)
    if improvise and "wall_s" in improvise:
        table.add_row(improvise["model"], "—", "—",
                      f"tatum improvise, {improvise['piece_s']:.0f} s piece (wall {improvise['wall_s']:.1f} s)",
                      f"{improvise['tok_s']:,.1f}", "—")
    console.print(table)

    print(json.dumps({
        "benchmark": "generate",
        "device": "cpu",
        "threads": threads,
        "precision": "fp32",
        "new_tokens": args.new_tokens,
        "enc_len_requested": args.enc_len,
        "repeats": args.repeats,
        "top_k": TOP_K,
        "torch": torch.__version__,
        "transformers": transformers.__version__ if transformers else None,
        "baseline_attn": attn,
        "python": platform.python_version(),
        "results": results,
        "improvise": improvise,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

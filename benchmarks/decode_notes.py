"""Notes per second through `tatum.generate.decode.decode_rows`: NoteLM (one step per note) against the
encoder–decoder (three steps per note), side by side in one process.

Both models are built from their presets with random weights (`small` and `note-small`, about the same
number of parameters). Each decodes the same windows: whole_mask targets with `--context` windows of a
PiJAMA val performance on the left (the continuation the real-time jam runs), at every batch size of
`--batches`, exactly at most `--notes` notes per row (a window's end is masked out while anything else is allowed, so
rows run on until the grammar has no onset left), top-k 50. Throughput counts the notes made.
Timed runs alternate between the two systems, `--repeats` rounds, so the shared machine's noise falls
on both; the report gives the median notes/s and the ratio NoteLM / encoder–decoder.

    python benchmarks/decode_notes.py [--batches 1,8] [--notes 60] [--context 2] [--repeats 5]
                                      [--threads 1] [--guidance 0]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from tatum import layout
from tatum import tokenizer as tk
from tatum.data.examples import build_encoder_input
from tatum.generate import decode
from tatum.generate.decode import Row, decode_rows
from tatum.generate.sampling import Grammar, Sampling
from tatum.model.config import build_model, preset
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer
from valset import DEFAULT_DATA, pijama_val


class NoEnd(Grammar):
    """The grammar, with a window's end allowed only where nothing else is (fixed work per row)."""

    def allowed(self):
        allow = super().allowed()
        allow[:, tk.EOS] &= allow.sum(dim=1) == 1
        return allow


def rows_for(model, tok: Tokenizer, windows: list[np.ndarray], n: int, context: int) -> list[Row]:
    style = (tok.genre_id("jazz"), tok.null_style, tok.density_id(None), tok.polyphony_id(None))
    mask = np.array([tk.MASK])
    out = []
    for i in range(n):
        left = windows[i:i + context]
        if hasattr(model.cfg, "max_len"):
            enc = layout.build(style, tok.corruption_id("whole_mask"), mask, left, [], None, model.cfg.max_len,
                               reserve=128)
        else:
            enc = build_encoder_input(tok, style, left, "whole_mask", mask, [], model.cfg.max_enc_len)
        out.append(Row(enc))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--notes", type=int, default=60)
    ap.add_argument("--context", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--guidance", type=float, default=0.0)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    decode.Grammar = NoEnd      # decode_rows builds its grammar by this name
    tok = Tokenizer.default()
    (_, path), = pijama_val(__import__("pathlib").Path(args.data), 1)
    notes = Notes.from_midi(path)
    windows = [tk.encode_segment(s) for s in tk.split_segments(notes)]
    torch.manual_seed(0)
    systems = {name: build_model(preset(name, tok.vocab_size)).eval() for name in ("small", "note-small")}
    sampling = Sampling(top_k=50, seed=0, guidance=args.guidance)
    results = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows = {name: rows_for(m, tok, windows, batch, args.context) for name, m in systems.items()}
        times = {name: [] for name in systems}
        made = {name: [] for name in systems}
        for r in range(args.repeats + 1):
            for name in (list(systems) if r % 2 else list(systems)[::-1]):
                t = time.perf_counter()
                out = decode_rows(systems[name], rows[name], sampling, null_id=tok.null_style,
                                  max_tokens=3 * args.notes)
                if r:   # the first round warms up
                    times[name].append(time.perf_counter() - t)
                    made[name].append(sum(len(o) // 3 for o in out))
        rate = {name: statistics.median(m / t for m, t in zip(made[name], times[name])) for name in systems}
        results.append({"batch": batch, "notes_per_s": rate, "ratio": rate["note-small"] / rate["small"]})
    params = {name: m.n_params() for name, m in systems.items()}
    print(f"decode, {args.notes} notes per row after {args.context} windows of PiJAMA context, top-k 50, "
          f"guidance {args.guidance}, {args.threads} thread(s), median of {args.repeats}\n")
    print("| batch | encoder–decoder (small, %.1f M) notes/s | NoteLM (note-small, %.1f M) notes/s | ratio |"
          % (params["small"] / 1e6, params["note-small"] / 1e6))
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['batch']} | {r['notes_per_s']['small']:.1f} | {r['notes_per_s']['note-small']:.1f} | "
              f"{r['ratio']:.2f}× |")
    print(json.dumps({"notes": args.notes, "context": args.context, "params": params, "results": results}))


if __name__ == "__main__":
    main()

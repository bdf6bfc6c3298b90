"""Validation nats per note, per task, for one or more models on the same held-out windows.

Tasks: the nine refinements with five windows of context on each side (whole_mask there is infill),
continuation (whole_mask, left context only) and no_context (whole_mask alone); "all" pools the nine.
Windows are evenly spaced over the val pieces of a shard folder (PiJAMA, pianolatron and POP909 val),
and, with --artist, over that pianist's val recordings only. Lower is better; the unit (nats per note of
the target window, its end included) compares models whatever their token layout.

    python benchmarks/model_table.py MODEL [MODEL ...] [--shards out/shards] [--windows 64]
                                     [--artist "Art Tatum"] [--threads 2]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tatum.data.shards import ShardSet
from tatum.model.checkpoint import load_model
from tatum.validation import markdown, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoint folders or shipped model names")
    ap.add_argument("--shards", default="out/shards", help="prepared shard folder (make shards)")
    ap.add_argument("--windows", type=int, default=64, help="val windows per task")
    ap.add_argument("--artist", default=None, help="only this pianist's val recordings")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shards = ShardSet(args.shards, verify=False)
    t0 = time.time()
    scores = table({m: load_model(m) for m in args.models}, shards, args.windows, args.artist)
    where = f"{args.artist}'s val recordings" if args.artist else "val pieces"
    print(f"nats per note, {args.windows} windows per task of {where} ({time.time() - t0:.0f} s)\n")
    print(markdown(scores))
    print(json.dumps({"windows": args.windows, "artist": args.artist, "scores": scores}))


if __name__ == "__main__":
    main()

"""Classifier reranking (`--candidates K`): what keeping the best of K candidates per window does to the
classifier scores, to the measures the reranker does not look at, and to wall time.

For each task (`tatum evaluate`'s protocols: continuation and infill on PiJAMA val, style-transfer on
pianolatron val) and each K, the same `--n` pieces are generated with the same seeds and measured:

- what the reranker optimises: P(jazz), P(artist) when `--artist` is given, random-like, and for
  style-transfer the SSM correlation with the input;
- what it does not: the independent judge's P(artist) and random-like (`tatum/models/tatum-judge`, trained
  apart), PCTM cosine and pitch-class KL against the real music, notes per 5 s, beat clarity;
- wall time per piece (decode + scoring).

The reranker's own scores are an upper bound on what a listener would hear; the judge and the measures
it does not see say whether the music moved with them.

    python benchmarks/rerank.py [--tasks continuation,infill,style-transfer] [--n 4] [--k 1,2,4,8]
                                [--model PATH] [--artist NAME] [--seconds 30] [--out out/rerank]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from valset import DEFAULT_DATA

COLUMNS = [("P(jazz)", "p_jazz", ".2f"), ("P(artist)", "p_artist", ".2f"), ("random-like", "random_like", ".2f"),
           ("judge P(artist)", "judge_p_artist", ".2f"), ("judge random-like", "judge_random_like", ".2f"),
           ("SSM r", "ssm_correlation", ".2f"), ("PCTM cos", "pctm_cosine", ".3f"), ("PC KL", "pitch_class_kl", ".2f"),
           ("notes/5 s", "notes_per_5s", ".1f"), ("beat", "pulse_clarity", ".2f"), ("s/piece", "wall_s", ".1f")]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding pijama/ and pianolatron/")
    ap.add_argument("--tasks", default="continuation,infill,style-transfer")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--k", default="1,2,4,8")
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped one)")
    ap.add_argument("--artist", default=None, help='the pianist asked for, e.g. "Art Tatum"')
    ap.add_argument("--seconds", type=float, default=30.0, help="style-transfer excerpt (ImprovNet's is whole pieces)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan", default=None, help="style-transfer: improvise's plan (default: improvise's)")
    ap.add_argument("--out", type=Path, default=None, help="also write each run's `tatum evaluate` folder here")
    args = ap.parse_args(argv)

    from tatum.evaluate.protocols import Setup, evaluate
    from tatum.evaluate.report import write

    ks = [int(k) for k in args.k.split(",")]
    results = {}
    for task in args.tasks.split(","):
        results[task] = {}
        for k in ks:
            setup = Setup(task, n=args.n, model=args.model, artist=args.artist, seed=args.seed, candidates=k,
                          seconds=args.seconds if task == "style-transfer" else None, data_root=args.data,
                          plan=args.plan if task == "style-transfer" else None)
            t = time.perf_counter()
            ev = evaluate(setup)
            total = time.perf_counter() - t
            summ = ev.summary()
            row = {key: (summ.get(key) or {}).get("mean") for _, key, _ in COLUMNS}
            row["total_s"] = total
            results[task][k] = row
            if args.out:
                write(ev, args.out / f"{task}-k{k}", pictures=False)
            print(f"{task:15s} K={k}: " + "  ".join(f"{name} {_f(row[key], fmt)}" for name, key, fmt in COLUMNS),
                  flush=True)

    print()
    for task, rows in results.items():
        cols = [c for c in COLUMNS if any(r[c[1]] is not None for r in rows.values())]
        print(f"{task} ({args.n} pieces{', ' + args.artist if args.artist else ''})\n")
        print("| K | " + " | ".join(name for name, _, _ in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for k, r in rows.items():
            print(f"| {k} | " + " | ".join(_f(r[key], fmt) for _, key, fmt in cols) + " |")
        print()
    out = {"benchmark": "rerank", "n": args.n, "model": args.model or "shipped", "artist": args.artist,
           "seconds": args.seconds, "results": {t: {str(k): r for k, r in rows.items()} for t, rows in results.items()}}
    print(json.dumps(out))
    return out


def _f(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


if __name__ == "__main__":
    main()

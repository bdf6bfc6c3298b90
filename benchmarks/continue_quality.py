"""Continuation on PiJAMA val: does the new music keep the prompt's key, harmony and density?

For each of `--pieces` evenly spaced PiJAMA **val** performances (never trained on), the first
`--prompt-seconds` (from the first note) are continued by `--seconds` with
`tatum.continue_(style="jazz", seed=k)`, and the continuation is compared with the prompt:

- key kept: the Krumhansl–Kessler key (24 major/minor profiles correlated with the duration-weighted
  pitch-class profile) of the continuation equals the prompt's, or is its relative major/minor;
- pitch-class r: correlation of the prompt's and the continuation's pitch-class profiles;
- density ratio: notes/s of the continuation over notes/s of the prompt (1 = same density);
- polyphony ratio: mean sounding notes, continuation over prompt.

As a yardstick the same figures are given for the performance's own next `--seconds` (what the
pianist really played), so "as close as the real thing" reads directly.

    python benchmarks/continue_quality.py [--data ../shared/data] [--pieces 8] [--prompt-seconds 20]
                                          [--seconds 15] [--model PATH] [--temperature 1.0]
                                          [--controls any|source] [--guidance 0]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from tatum.evaluate.metrics import estimate_key, mean_polyphony, pitch_class_histogram, same_key
from valset import DEFAULT_DATA, pijama_val

def compare(prompt, cont, prompt_s: float, cont_s: float) -> dict:
    pa, pb = pitch_class_histogram(prompt, velocity=False), pitch_class_histogram(cont, velocity=False)
    ok = len(cont) > 0 and pb.std() > 0
    return {"key_kept": bool(ok and same_key(estimate_key(prompt), estimate_key(cont))),
            "pc_r": float(np.corrcoef(pa, pb)[0, 1]) if ok else float("nan"),
            "density_ratio": (len(cont) / cont_s) / max(len(prompt) / prompt_s, 1e-9),
            "polyphony_ratio": mean_polyphony(cont) / max(mean_polyphony(prompt), 1e-9) if ok else 0.0}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pieces", type=int, default=8)
    ap.add_argument("--prompt-seconds", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped default)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--guidance", type=float, default=0.0,
                    help="classifier-free guidance toward the style and the density/polyphony controls "
                         "(tatum continue's default: none)")
    ap.add_argument("--controls", choices=("any", "source"), default="source",
                    help="density and polyphony buckets: those of the prompt's last window (tatum's "
                         "default), or ANY")
    args = ap.parse_args(argv)

    import tatum
    from tatum.notes import Notes

    rows = pijama_val(args.data, args.pieces)
    model = tatum.load_model(args.model) if args.model else tatum.load_model()
    P, C = args.prompt_seconds * 1000, args.seconds * 1000
    results = []
    for k, (r, path) in enumerate(rows):
        notes = Notes.from_midi(path)
        notes = notes.shift(-notes.start_ms)
        prompt, real = notes.slice(0, P, clip=True), notes.slice(P, P + C, clip=True)
        t = time.perf_counter()
        ctl = None if args.controls == "any" else "source"
        out = tatum.continue_(prompt, seconds=args.seconds, prompt_seconds=args.prompt_seconds, seed=k,
                              temperature=args.temperature, guidance=args.guidance, density=ctl, polyphony=ctl, model=model)
        wall = time.perf_counter() - t
        cont = out.slice(P, P + C, clip=True)
        row = {"artist": r["artist"], "title": r["title"], "wall_s": wall,
               "tatum": compare(prompt, cont, args.prompt_seconds, args.seconds),
               "pianist": compare(prompt, real, args.prompt_seconds, args.seconds)}
        results.append(row)
        a, b = row["tatum"], row["pianist"]
        print(f"{k + 1:2d}/{len(rows)} {r['artist'][:16]:16s} key kept {a['key_kept']!s:5s} (pianist {b['key_kept']!s:5s})  "
              f"pc r {a['pc_r']:.2f} ({b['pc_r']:.2f})  density × {a['density_ratio']:.2f} ({b['density_ratio']:.2f})  "
              f"polyphony × {a['polyphony_ratio']:.2f} ({b['polyphony_ratio']:.2f})  {wall:.1f} s", flush=True)

    summary = {"benchmark": "continue_pijama_val", "pieces": len(results), "prompt_seconds": args.prompt_seconds,
               "seconds": args.seconds, "temperature": args.temperature, "guidance": args.guidance, "controls": args.controls,
               "model": args.model or "shipped default"}
    for who in ("tatum", "pianist"):
        xs = [x[who] for x in results]
        summary[who] = {"key_kept_share": sum(x["key_kept"] for x in xs) / len(xs),
                        **{f"median_{key}": statistics.median(x[key] for x in xs)
                           for key in ("pc_r", "density_ratio", "polyphony_ratio")}}
    summary["median_wall_s"] = statistics.median(x["wall_s"] for x in results)
    print()
    for who in ("tatum", "pianist"):
        s = summary[who]
        print(f"{who:8s} key kept {s['key_kept_share']:.2f}  pitch-class r {s['median_pc_r']:.2f}  density × "
              f"{s['median_density_ratio']:.2f}  polyphony × {s['median_polyphony_ratio']:.2f}")
    summary["rows"] = results
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

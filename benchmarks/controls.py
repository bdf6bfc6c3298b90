"""Do the density and polyphony controls do what they say, with and without guidance?

For each of `--pieces` evenly spaced PiJAMA **val** performances (never trained on), the first
`--prompt-seconds` are continued by `--seconds` with `tatum.continue_` while one control is forced to
a bucket (density buckets 1, 3, 5: 1–1.8, 3.2–5.6 and 10–18 notes/s; polyphony buckets 0, 2, 4:
under 1.25, 1.75–2.5 and 3.5–5 sounding notes) and the other is left to the model (ANY). Every new
5 s window is measured back into a bucket; the table gives the mean distance between the bucket
asked for and the bucket played, and the share that hit it exactly, for each guidance weight.

Guidance mixes each step's logits with those of an unconditional copy of the row whose style is NULL
and whose controls are ANY — the same drop-outs training makes — so a weight above 0 should bring
the played bucket closer to the asked one.

    python benchmarks/controls.py [--data ../shared/data] [--pieces 8] [--guidance 0,2]
                                  [--prompt-seconds 15] [--seconds 10] [--model PATH]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from valset import DEFAULT_DATA, pijama_val

BUCKETS = {"density": (1, 3, 5), "polyphony": (0, 2, 4)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pieces", type=int, default=8)
    ap.add_argument("--guidance", default="0,2", help="comma-separated guidance weights to compare")
    ap.add_argument("--prompt-seconds", type=float, default=15.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped default)")
    args = ap.parse_args(argv)
    weights = [float(w) for w in args.guidance.split(",")]

    from rich.progress import track

    import tatum
    from tatum import tokenizer as tk
    from tatum.notes import Notes

    rows = pijama_val(args.data, args.pieces)
    model = tatum.load_model(args.model) if args.model else tatum.load_model()
    P, C, W = args.prompt_seconds * 1000, args.seconds * 1000, tk.SEGMENT_MS
    prompts = []
    for _, path in rows:
        notes = Notes.from_midi(path)
        prompts.append(notes.shift(-notes.start_ms).slice(0, P, clip=True))

    results = []
    for kind, buckets in BUCKETS.items():
        other = "polyphony" if kind == "density" else "density"
        for g in weights:
            errors = []
            jobs = [(k, b) for k in range(len(prompts)) for b in buckets]
            for k, b in track(jobs, description=f"{kind} guidance {g}", transient=True):
                out = tatum.continue_(prompts[k], seconds=args.seconds, prompt_seconds=args.prompt_seconds,
                                      seed=k, guidance=g, model=model, **{kind: b, other: None})
                for start in range(int(P), int(P + C), W):
                    window = out.slice(start, start + W, clip=True)
                    played = tk.density_bucket(len(window)) if kind == "density" else tk.polyphony_bucket(window)
                    errors.append(abs(played - b))
            row = {"control": kind, "guidance": g, "windows": len(errors),
                   "mean_bucket_error": statistics.mean(errors),
                   "exact_share": sum(e == 0 for e in errors) / len(errors)}
            results.append(row)
            print(f"{kind:9s} guidance {g:3.1f}: mean |bucket asked − played| {row['mean_bucket_error']:.2f}  "
                  f"exact {row['exact_share']:.2f}  ({row['windows']} windows)", flush=True)

    summary = {"benchmark": "controls_pijama_val", "pieces": len(prompts), "prompt_seconds": args.prompt_seconds,
               "seconds": args.seconds, "model": args.model or "shipped default", "results": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

"""Harmonization on PiJAMA val: the skyline (top line) of each piece's opening is given to
`tatum.harmonize`, and the result is measured.

For each of `--pieces` evenly spaced val performances, the first `--seconds` of the performance
(after PiJAMA's start offset is ignored: the file's first note) are reduced to their skyline
(`tatum.corruption.skyline_notes`, the same top-note rule ImprovNet uses) and harmonized with the
given model (default: the shipped one) and `--passes` skyline passes, seed fixed per piece.

Measures, per piece and as medians:
- polyphony rate: the share of sounding time (time in which at least one note sounds) during which
  more than one note sounds — the issue's "≥ 0.8" target; the skyline itself scores 0;
- mean polyphony: mean count of sounding notes over sounding time;
- melody kept: share of skyline onsets that have a note of the same pitch within 50 ms in the result;
- notes/s, beside the pianist's own notes/s over the same seconds (how thick the texture is);
- wall time per piece.

    python benchmarks/harmonize.py [--data ../shared/data] [--pieces 8] [--seconds 30] [--passes 5]
                                   [--model PATH] [--style jazz] [--density any] [--guidance 0]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tatum.evaluate.metrics import mean_polyphony, melody_kept, polyphony_rate
from valset import DEFAULT_DATA, pijama_val


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pieces", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped default)")
    ap.add_argument("--style", default="jazz")
    ap.add_argument("--density", default="any", help="density bucket 0–7 or 'any' (tatum harmonize's default)")
    ap.add_argument("--guidance", type=float, default=0.0)
    ap.add_argument("--chord-gap", type=int, default=None, help="ms between forced chords (default: tatum's)")
    args = ap.parse_args(argv)

    import tatum
    from tatum.corruption import skyline_notes
    from tatum.notes import Notes

    rows = pijama_val(args.data, args.pieces)
    model = tatum.load_model(args.model) if args.model else tatum.load_model()
    results = []
    for k, (r, path) in enumerate(rows):
        notes = Notes.from_midi(path)
        t0 = notes.start_ms
        played = notes.slice(t0, t0 + args.seconds * 1000, clip=True).shift(-t0)
        melody = skyline_notes(played)
        t = time.perf_counter()
        out = tatum.harmonize(melody, style=args.style, passes=args.passes, seed=k, model=model,
                              density=None if args.density == "any" else int(args.density), guidance=args.guidance,
                              **({} if args.chord_gap is None else {"chord_gap_ms": args.chord_gap}))
        wall = time.perf_counter() - t
        row = {"artist": r["artist"], "title": r["title"], "melody_notes": len(melody), "notes": len(out),
               "polyphony_rate": polyphony_rate(out), "mean_polyphony": mean_polyphony(out),
               "melody_kept": melody_kept(melody, out), "notes_per_s": len(out) / args.seconds,
               "pianist_notes_per_s": len(played) / args.seconds, "wall_s": wall}
        results.append(row)
        print(f"{k + 1:2d}/{len(rows)} {r['artist'][:16]:16s} {len(melody):4d} → {len(out):4d} notes  polyphony rate "
              f"{row['polyphony_rate']:.2f}  mean {row['mean_polyphony']:.2f}  melody kept {row['melody_kept']:.2f}  "
              f"notes/s {row['notes_per_s']:.1f} (pianist {row['pianist_notes_per_s']:.1f})  {wall:5.1f} s", flush=True)
    med = lambda key: statistics.median(x[key] for x in results)  # noqa: E731
    summary = {"benchmark": "harmonize_pijama_val_skyline", "pieces": len(results), "seconds": args.seconds,
               "passes": args.passes, "model": args.model or "shipped default", "density": args.density,
               "guidance": args.guidance, "median_notes_per_s": med("notes_per_s"),
               "median_pianist_notes_per_s": med("pianist_notes_per_s"),
               "median_polyphony_rate": med("polyphony_rate"), "min_polyphony_rate": min(x["polyphony_rate"] for x in results),
               "median_mean_polyphony": med("mean_polyphony"), "median_melody_kept": med("melody_kept"),
               "median_wall_s": med("wall_s"), "rows": results}
    print(f"\npolyphony rate: median {summary['median_polyphony_rate']:.2f}, worst {summary['min_polyphony_rate']:.2f}; "
          f"melody kept {summary['median_melody_kept']:.2f}; notes/s {summary['median_notes_per_s']:.1f} (pianist "
          f"{summary['median_pianist_notes_per_s']:.1f}); {summary['median_wall_s']:.1f} s per piece (median)")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

"""Classical → jazz on pianolatron val: is the result still the piece, and does it move towards
jazz piano? Measured with plain symbolic statistics, none of them from the model.

For each of `--pieces` evenly spaced pianolatron **val** rolls (never trained on), the first
`--seconds` are improvised with `tatum.improvise(style="jazz", plan=--plan, seed=k)` twice: with the
tune kept on top (`keep_melody=True`, the default) and with ImprovNet's free skyline passes
(`keep_melody=False`), with no windows preserved for structure. Only the rewritten windows are
measured (after the kept opening, before the kept last window).

- tune kept: share of the original's skyline notes (each 5 s window's top line) that the result
  still plays (same pitch, onset within 50 ms);
- chroma r: correlation of the original's and the result's pitch-class profiles per 1 s frame
  (duration-weighted), averaged over frames — does the harmony still follow the piece;
- notes/s and mean polyphony (sounding notes over sounding time);
- rich chords: share of onsets at which 4 or more pitch classes sound (sevenths and extensions,
  common in jazz piano, rarer in the classical repertoire);
- the same texture statistics for `--pieces` PiJAMA val performances (of `--artist` when given),
  as the jazz reference.

    python benchmarks/improvise_quality.py [--data ../shared/data] [--pieces 4] [--seconds 60]
                                           [--plan improvnet] [--model PATH] [--artist NAME]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tatum.evaluate.metrics import chroma_r, mean_polyphony, melody_kept, rich_chord_share
from valset import DEFAULT_DATA, pijama_val


def texture(notes, seconds: float) -> dict:
    return {"notes_per_s": len(notes) / seconds, "mean_polyphony": mean_polyphony(notes),
            "rich_chords": rich_chord_share(notes)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pieces", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--plan", default="improvnet")
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped default)")
    ap.add_argument("--artist", default=None,
                    help='improvise in this pianist\'s manner (e.g. "Art Tatum": the Tatum model when present); '
                         "the jazz reference is then that pianist's val performances")
    args = ap.parse_args(argv)

    import tatum
    from tatum import tokenizer as tk
    from tatum.corruption import skyline_notes
    from tatum.data.sources import pianolatron
    from tatum.generate.engine import Piece
    from tatum.notes import Notes

    model = tatum.load_model(args.model) if args.model else None   # None: the shipped one for --artist
    refs = [r for r in pianolatron(args.data / "pianolatron") if r.split == "val"]
    refs = refs[:: max(1, len(refs) // args.pieces)][: args.pieces]
    rows = []
    for k, ref in enumerate(refs):
        notes = Notes.from_midi(ref.path)
        t0 = notes.start_ms
        notes = notes.slice(t0, t0 + args.seconds * 1000, clip=True).shift(-t0)
        piece = Piece.from_notes(notes)
        first = 2                                      # keep_first_s = 10 s
        last = len(piece) - 1                          # the last window is kept
        if last <= first:
            print(f"{k + 1}/{len(refs)} {ref.title[:40]}: shorter than 4 windows, skipped")
            continue
        a, b = piece.origin_ms + first * tk.SEGMENT_MS, piece.origin_ms + last * tk.SEGMENT_MS
        tune = Notes.merge([skyline_notes(piece.window_notes(i)).shift(piece.origin_ms + i * tk.SEGMENT_MS)
                            for i in range(first, last)])
        span = (b - a) / 1000
        orig = notes.slice(a, b, clip=True)
        row = {"title": ref.title[:60], "original": texture(orig, span)}
        for label, keep in (("kept", True), ("free", False)):
            t = time.perf_counter()
            out = tatum.improvise(notes, style="jazz", artist=args.artist, plan=args.plan, seed=k,
                                  keep_melody=keep, preserve_structure=0, model=model)
            wall = time.perf_counter() - t
            mid = out.slice(a, b, clip=True)
            row[label] = {"tune_kept": melody_kept(tune, mid), "chroma_r": chroma_r(orig, mid, a, b),
                          **texture(mid, span), "wall_s": wall}
        rows.append(row)
        o, kk, ff = row["original"], row["kept"], row["free"]
        print(f"{k + 1}/{len(refs)} {row['title'][:40]:40s} tune kept {kk['tune_kept']:.2f} / {ff['tune_kept']:.2f}  "
              f"chroma r {kk['chroma_r']:.2f} / {ff['chroma_r']:.2f}  notes/s {o['notes_per_s']:.1f} → "
              f"{kk['notes_per_s']:.1f} / {ff['notes_per_s']:.1f}  rich {o['rich_chords']:.2f} → "
              f"{kk['rich_chords']:.2f} / {ff['rich_chords']:.2f}  (kept / free)", flush=True)

    ref_rows = []
    for _, path in pijama_val(args.data, args.pieces, args.artist):
        n = Notes.from_midi(path)
        ref_rows.append(texture(n.slice(n.start_ms + 10_000, n.start_ms + args.seconds * 1000, clip=True),
                                args.seconds - 10))

    if not rows or not ref_rows:
        raise SystemExit("no pianolatron val piece long enough" if not rows
                         else f"no PiJAMA val performance by {args.artist!r}")
    med = lambda xs, key: statistics.median(x[key] for x in xs)  # noqa: E731
    summary = {"benchmark": "improvise_quality_pianolatron_val", "pieces": len(rows), "seconds": args.seconds,
               "plan": args.plan, "artist": args.artist, "model": args.model or "shipped"}
    for label in ("original", "kept", "free"):
        xs = [r[label] for r in rows]
        summary[label] = {key: med(xs, key) for key in xs[0]}
    summary["pijama_val"] = {key: med(ref_rows, key) for key in ref_rows[0]}
    print()
    for label in ("original", "kept", "free", "pijama_val"):
        s = summary[label]
        extra = (f"tune kept {s['tune_kept']:.2f}  chroma r {s['chroma_r']:.2f}  " if "tune_kept" in s else "")
        print(f"{label:10s} {extra}notes/s {s['notes_per_s']:.1f}  mean polyphony {s['mean_polyphony']:.2f}  "
              f"rich chords {s['rich_chords']:.2f}")
    summary["rows"] = rows
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

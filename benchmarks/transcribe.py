"""Audio round trip on PiJAMA val: render with `tatum render`'s FluidSynth path, transcribe with
`tatum transcribe`'s basic-pitch ONNX path, and score the transcription against the MIDI it was
rendered from.

For each of `--pieces` evenly spaced val performances, a `--seconds` excerpt starting 20 s into the
performance is rendered (sustain pedal sent to FluidSynth as CC64) and written to a 48 kHz WAV, then
transcribed from that file. Speeds are seconds of audio per second of wall time (× real time) per
piece, after one untimed warm-up transcription; the report gives medians. Accuracy is mir_eval's
note onset precision / recall / F1 with a 50 ms tolerance and pitch exact, offsets ignored, over
every note of the excerpt; the summary gives the median and the pooled (all notes) F1.

    python benchmarks/transcribe.py [--data ../shared/data] [--pieces 12] [--seconds 60]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding pijama/ (default: %(default)s)")
    ap.add_argument("--pieces", type=int, default=12, help="val performances in the sample (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=60.0, help="excerpt length (default: %(default)s)")
    return ap.parse_args(argv)


def val_files(data: Path, n: int) -> list[tuple[str, Path]]:
    root = data / "pijama"
    with open(root / "pijama.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    rows.sort(key=lambda r: r["midi_filepath"])
    step = max(1, len(rows) // n)
    picked = rows[::step][:n]
    return [(r["artist"], root / "midi_kong" / r["midi_filepath"].removeprefix("data/midi/")) for r in picked]


def onset_prf(ref, est) -> tuple[float, float, float, int]:
    import mir_eval

    iv = lambda n: np.stack([n.onset_ms, n.onset_ms + n.dur_ms], 1) / 1000.0  # noqa: E731
    hz = lambda n: mir_eval.util.midi_to_hz(n.pitch.astype(float))  # noqa: E731
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        iv(ref), hz(ref), iv(est), hz(est), onset_tolerance=0.05, offset_ratio=None)
    matched = len(mir_eval.transcription.match_notes(iv(ref), hz(ref), iv(est), hz(est), onset_tolerance=0.05,
                                                     offset_ratio=None))
    return p, r, f, matched


def main(argv=None) -> dict:
    args = parse_args(argv)
    from tatum.audio.render import read_midi_for_render, write_wav
    from tatum.audio.transcribe import transcribe

    files = val_files(args.data, args.pieces)
    rows, total_ref, total_est, total_hit = [], 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for k, (artist, path) in enumerate(files):
            notes, pedal = read_midi_for_render(path)
            t0 = notes.start_ms + 20_000
            t1 = t0 + args.seconds * 1000
            ref = notes.slice(t0, t1, clip=True).shift(-t0)
            ped = pedal[(pedal[:, 0] >= t0) & (pedal[:, 0] < t1)] - t0
            ped[:, 1] = np.minimum(ped[:, 1], args.seconds * 1000)
            wav = Path(tmp) / f"{k}.wav"
            t = time.perf_counter()
            audio_s = write_wav(wav, ref, pedal_ms=ped)
            render_s = time.perf_counter() - t
            if k == 0:
                transcribe(wav)  # warm-up: ONNX session, librosa's first resample
            t = time.perf_counter()
            est = transcribe(wav)
            trans_s = time.perf_counter() - t
            p, r, f, hit = onset_prf(ref, est)
            total_ref, total_est, total_hit = total_ref + len(ref), total_est + len(est), total_hit + hit
            rows.append({"artist": artist, "file": path.name, "notes": len(ref), "notes_per_s": len(ref) / args.seconds,
                         "found": len(est), "precision": p, "recall": r, "f1": f,
                         "render_x_realtime": audio_s / render_s, "transcribe_x_realtime": audio_s / trans_s})
            print(f"{k + 1:2d}/{len(files)} {artist[:18]:18s} {len(ref):5d} notes ({len(ref) / args.seconds:4.1f}/s)  "
                  f"P {p:.3f} R {r:.3f} F1 {f:.3f}  render {audio_s / render_s:5.1f}× "
                  f"transcribe {audio_s / trans_s:5.1f}× real time", flush=True)
    pooled_p, pooled_r = total_hit / max(total_est, 1), total_hit / max(total_ref, 1)
    summary = {
        "benchmark": "transcribe_round_trip", "pieces": len(rows), "seconds_each": args.seconds,
        "median_f1": statistics.median(r["f1"] for r in rows),
        "pooled_precision": pooled_p, "pooled_recall": pooled_r,
        "pooled_f1": 2 * pooled_p * pooled_r / max(pooled_p + pooled_r, 1e-9),
        "min_f1": min(r["f1"] for r in rows),
        "median_render_x_realtime": statistics.median(r["render_x_realtime"] for r in rows),
        "median_transcribe_x_realtime": statistics.median(r["transcribe_x_realtime"] for r in rows),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "rows": rows,
    }
    print(f"\nonset F1 (50 ms): median {summary['median_f1']:.3f}, pooled {summary['pooled_f1']:.3f} "
          f"(P {pooled_p:.3f} R {pooled_r:.3f}), worst {summary['min_f1']:.3f}")
    print(f"speed: render {summary['median_render_x_realtime']:.1f}× real time, "
          f"transcribe {summary['median_transcribe_x_realtime']:.1f}× real time (medians)")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

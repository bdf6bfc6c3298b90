"""What the quality benchmarks share: evenly spaced PiJAMA val performances, and the share of a
melody that a result still plays."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pijama_val(data: Path, n: int, artist: str | None = None) -> list[tuple[dict, Path]]:
    """`n` evenly spaced PiJAMA val performances (of `artist` when given): (csv row, MIDI path)."""
    root = data / "pijama"
    with open(root / "pijama.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["split"] == "val"
                       and (artist is None or r["artist"].casefold() == artist.casefold())),
                      key=lambda r: r["midi_filepath"])
    rows = rows[:: max(1, len(rows) // max(n, 1))][:n]
    return [(r, root / "midi_kong" / r["midi_filepath"].removeprefix("data/midi/")) for r in rows]


def melody_kept(melody, result, tol_ms: int = 50) -> float:
    """Share of `melody`'s notes that `result` plays at the same pitch within `tol_ms`."""
    hits = 0
    for o, p in zip(melody.onset_ms.tolist(), melody.pitch.tolist()):
        same = result.onset_ms[result.pitch == p].astype(np.int64)
        hits += bool(len(same) and np.min(np.abs(same - o)) <= tol_ms)
    return hits / max(len(melody), 1)

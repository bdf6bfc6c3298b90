"""What the quality benchmarks share: evenly spaced PiJAMA val performances. (Their measures live in
`tatum.evaluate.metrics`.)"""

from __future__ import annotations

import csv
from pathlib import Path

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

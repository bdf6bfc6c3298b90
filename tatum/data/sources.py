"""Dataset sources: where the MIDI files of a collection are and what each one is (genre, artist, split).

A source is a list of `PieceRef`. PiJAMA, POP909 and pianolatron are recognised from their own layout;
any other folder of MIDI files is a source too, described by an optional metadata CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tatum.errors import TatumError
from tatum.notes import is_midi_path

VAL_FRACTION = 0.05  # for collections without an official split


@dataclass(frozen=True)
class PieceRef:
    """One performance to prepare: a MIDI file and its labels."""

    piece_id: str            # stable across runs: "<source>/<relative path or official id>"
    path: str
    source: str
    genre: str | None
    artist: str | None
    split: str               # train | val | test
    title: str = ""
    start_s: float = 0.0     # performance boundaries inside the file (PiJAMA trims applause and talk)
    end_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def hashed_split(key: str, val_fraction: float = VAL_FRACTION) -> str:
    """A deterministic split from a piece's id, so a collection without one keeps it across runs."""
    h = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big") / 2**32
    return "val" if h < val_fraction else "train"


def pijama(root: Path, transcription: str = "midi_kong") -> list[PieceRef]:
    """PiJAMA from its official csv: artist labels, official split, performance boundaries."""
    if transcription not in ("midi", "midi_kong"):
        raise TatumError(f"PiJAMA transcription must be 'midi' or 'midi_kong', not {transcription!r}")
    refs = []
    with open(root / "pijama.csv", newline="") as f:
        for row in csv.DictReader(f):
            rel = row["midi_filepath"].removeprefix("data/").removeprefix("midi/")
            path = root / transcription / rel
            start = float(row.get("performance_start_sec") or 0)
            end = float(row["performance_end_sec"]) if row.get("performance_end_sec") else None
            refs.append(PieceRef(f"pijama/{row['id']}", str(path), "pijama", "jazz", row["artist"],
                                 row["split"], row["title"], start, end))
    return refs


def pop909(root: Path) -> list[PieceRef]:
    """POP909: every song's MELODY, BRIDGE and PIANO tracks merged into one piano part."""
    refs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        path = d / f"{d.name}.mid"
        pid = f"pop909/{d.name}"
        refs.append(PieceRef(pid, str(path), "pop909", "pop", None, hashed_split(pid), d.name))
    return refs


def pianolatron(root: Path) -> list[PieceRef]:
    """Pianolatron's expressive reproducing-piano rolls, labelled classical, performer from the catalog."""
    catalog = {}
    if (root / "catalog.json").exists():
        for entry in json.loads((root / "catalog.json").read_text()):
            catalog[entry["druid"]] = entry
    refs = []
    for path in sorted((root / "midi").rglob("*")):
        if not is_midi_path(path):
            continue
        druid = path.stem.removesuffix("_exp")
        entry = catalog.get(druid, {})
        pid = f"pianolatron/{druid}"
        refs.append(PieceRef(pid, str(path), "pianolatron", "classical", entry.get("performer") or None,
                             hashed_split(pid), entry.get("title", "")))
    return refs


def folder(root: Path, metadata: Path | None = None, genre: str | None = None) -> list[PieceRef]:
    """Any folder of MIDI files. An optional CSV (columns: path, and any of genre, artist, split, title)
    labels them; `path` is relative to the folder. Files without a row get `genre` and a hashed split."""
    rows: dict[str, dict] = {}
    if metadata is None and (root / "metadata.csv").exists():
        metadata = root / "metadata.csv"
    if metadata is not None:
        try:
            with open(metadata, newline="") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "path" not in reader.fieldnames:
                    raise TatumError("metadata CSV needs a 'path' column", metadata)
                for row in reader:
                    rows[os.path.normpath(row["path"])] = row
        except OSError as e:
            raise TatumError(f"cannot read metadata ({e.strerror})", metadata) from None
    name = root.name or "folder"
    refs = []
    for path in sorted(root.rglob("*")):
        if not is_midi_path(path) or not path.is_file():
            continue
        rel = os.path.normpath(path.relative_to(root))
        row = rows.get(rel, {})
        pid = f"{name}/{rel}"
        split = (row.get("split") or "").strip() or hashed_split(pid)
        if split not in ("train", "val", "test"):
            raise TatumError(f"split must be train, val or test, not {split!r} (row {rel})", metadata)
        refs.append(PieceRef(pid, str(path), name, (row.get("genre") or "").strip() or genre,
                             (row.get("artist") or "").strip() or None, split,
                             (row.get("title") or "").strip() or path.stem))
    return refs


def detect(spec: str, transcription: str = "midi_kong", genre: str | None = None) -> list[PieceRef]:
    """The pieces of a source given on the command line: a path, recognised by its layout.

    `pijama`, `pop909`, `pianolatron` name the folders of that name under ../shared/data.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise TatumError("no such folder", spec)
    if path.is_file():
        if is_midi_path(path):
            pid = f"file/{path.name}"
            return [PieceRef(pid, str(path), "file", genre, None, hashed_split(pid), path.stem)]
        raise TatumError("not a MIDI file or a folder of them", spec)
    if (path / "pijama.csv").exists():
        return pijama(path, transcription)
    if (path / "catalog.json").exists() and (path / "midi").is_dir():
        return pianolatron(path)
    if (path / "001" / "001.mid").exists():
        return pop909(path)
    refs = folder(path, genre=genre)
    if not refs:
        raise TatumError("no MIDI files (.mid, .midi) in this folder", spec)
    return refs

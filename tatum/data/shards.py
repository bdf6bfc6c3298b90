"""Token shards on disk: what `tatum data prepare` writes and training reads.

A shard folder holds
  vocab.json                 the tokenizer the tokens were made with
  index.json                 every piece: id, source, genre, artist, split, title, hours, notes,
                             and where its segments lie (shard, first segment, segment count)
  shard-NNNNN.tokens.npy     uint16 note tokens of many pieces, segments back to back (no T tokens)
  shard-NNNNN.bounds.npy     int64 segment boundaries into the tokens array (segments + 1 entries)
Shards are memory-mapped, so a training process touches only the pages it reads.
This module needs numpy only (no symusic), so training runs where MIDI libraries are absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tatum.errors import TatumError
from tatum.io import atomic_output, write_atomic
from tatum.tokenizer import Tokenizer

INDEX_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class Entry:
    """One performance in a shard folder's index (its metadata) and where its windows lie. (The
    generation engine's `Piece` is a performance being rewritten; this is a row of the index.)"""

    meta: dict
    shard: str
    seg_start: int
    n_segments: int

    @property
    def piece_id(self) -> str:
        return self.meta["piece_id"]

    def __getattr__(self, name):  # meta fields read as attributes: piece.genre, piece.artist …
        try:
            return self.__dict__["meta"][name]
        except KeyError:
            raise AttributeError(name) from None


class ShardSet:
    """A prepared shard folder, opened read-only.

    >>> shards = ShardSet("shards/")
    >>> piece = shards.pieces[0]
    >>> segs = shards.segments(piece)     # list of uint16 token arrays, one per 5 s window
    """

    def __init__(self, root: str | os.PathLike, verify: bool = True):
        self.root = Path(root)
        self.index = index = load_index(self.root, missing_ok=False)
        self.tokenizer = Tokenizer.load(self.root / "vocab.json")
        self.shard_info: dict[str, dict] = index["shards"]
        self.pieces = [Entry(p, p["shard"], p["seg_start"], p["n_segments"]) for p in index["pieces"]]
        self._tokens: dict[str, np.ndarray] = {}
        self._bounds: dict[str, np.ndarray] = {}
        if verify:
            for name in self.shard_info:
                self._open(name, check_hash=True)

    def _open(self, name: str, check_hash: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._tokens:
            info = self.shard_info[name]
            tpath, bpath = self.root / f"{name}.tokens.npy", self.root / f"{name}.bounds.npy"
            for path, key in ((tpath, "tokens_sha256"), (bpath, "bounds_sha256")):
                if not path.exists():
                    raise TatumError("shard file missing", path)
                if check_hash and file_sha256(path) != info[key]:
                    raise TatumError("shard is corrupt or truncated (checksum mismatch); "
                                     "re-run `tatum data prepare`", path)
            try:
                tokens = np.load(tpath, mmap_mode="r")
                bounds = np.load(bpath, mmap_mode="r")
            except (ValueError, OSError) as e:
                raise TatumError(f"shard is unreadable ({e})", tpath) from None
            if tokens.dtype != np.uint16 or len(tokens) != info["tokens"] or len(bounds) != info["segments"] + 1:
                raise TatumError("shard does not match the index (truncated?)", tpath)
            self._tokens[name], self._bounds[name] = tokens, bounds
        return self._tokens[name], self._bounds[name]

    def segments(self, piece: Entry) -> list[np.ndarray]:
        """The piece's windows as token arrays (views into the memory map)."""
        tokens, bounds = self._open(piece.shard)
        b = bounds[piece.seg_start: piece.seg_start + piece.n_segments + 1]
        return [tokens[b[i]: b[i + 1]] for i in range(piece.n_segments)]

    def segment_lengths(self, piece: Entry) -> np.ndarray:
        _, bounds = self._open(piece.shard)
        return np.diff(bounds[piece.seg_start: piece.seg_start + piece.n_segments + 1])

    def split(self, name: str) -> list[Entry]:
        return [p for p in self.pieces if p.split == name]


def load_index(root: Path, missing_ok: bool = True) -> dict:
    """A shard folder's index; an empty one for a folder not prepared yet when `missing_ok`."""
    path = root / "index.json"
    if not path.exists():
        if missing_ok:
            return {"index_version": INDEX_VERSION, "shards": {}, "pieces": []}
        raise TatumError("not a shard folder (no index.json; make one with `tatum data prepare`)", root)
    try:
        index = json.loads(path.read_text())
    except ValueError as e:
        raise TatumError(f"index.json is corrupt ({e}); rebuild it with `tatum data prepare --force`", path) from None
    if index.get("index_version") != INDEX_VERSION:
        raise TatumError(f"index version {index.get('index_version')} is not supported; rebuild it with "
                         "`tatum data prepare --force`", path)
    return index


def save_index(root: Path, index: dict) -> None:
    write_atomic(root / "index.json", json.dumps(index, indent=0, ensure_ascii=False))

"""`tatum data prepare`: MIDI collections → memory-mapped token shards, in parallel and incrementally."""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tatum.data.shards import file_sha256, load_index, save_index, save_npy_atomic
from tatum.data.sources import PieceRef
from tatum.errors import TatumError
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer, encode_segment, split_segments

SHARD_TOKENS = 8_000_000  # ≈16 MB of uint16 per shard


def file_key(path: str) -> str:
    """Size and modification time: a changed file is prepared again."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def tokenize_piece(ref: PieceRef) -> tuple[PieceRef, dict | None, np.ndarray | None, np.ndarray | None, str | None]:
    """Load, trim and tokenize one file. Returns (ref, meta, tokens, segment lengths, error)."""
    try:
        notes = Notes.from_midi(ref.path)
        if ref.start_s or ref.end_s is not None:
            end = ref.end_s * 1000 if ref.end_s is not None else np.inf
            notes = notes.slice(ref.start_s * 1000, end, clip=True)
        if not len(notes):
            return ref, None, None, None, "no notes inside the performance boundaries"
        segs = split_segments(notes)
        toks = [encode_segment(s) for s in segs]
        lengths = np.array([len(t) for t in toks], dtype=np.int64)
        tokens = np.concatenate(toks).astype(np.uint16)
        meta = ref.to_dict() | {
            "file_key": file_key(ref.path), "n_notes": int(len(notes)),
            "seconds": round(notes.duration_s, 3),
        }
        return ref, meta, tokens, lengths, None
    except TatumError as e:
        return ref, None, None, None, e.reason
    except Exception as e:  # one bad file never stops a whole collection
        return ref, None, None, None, f"{type(e).__name__}: {e}"


@dataclass
class PrepareReport:
    added: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    tokens: int = 0


class _ShardWriter:
    def __init__(self, root: Path, index: dict):
        self.root, self.index = root, index
        self.tokens: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.pending: list[dict] = []
        self.n_tokens = 0
        self.n_segments = 0
        used = [int(n.split("-")[1]) for n in index["shards"]]
        self.next_id = max(used, default=-1) + 1

    @property
    def name(self) -> str:
        return f"shard-{self.next_id:05d}"

    def add(self, meta: dict, tokens: np.ndarray, lengths: np.ndarray) -> None:
        meta = meta | {"shard": self.name, "seg_start": self.n_segments, "n_segments": int(len(lengths)),
                       "n_tokens": int(len(tokens))}
        self.tokens.append(tokens)
        self.lengths.append(lengths)
        self.pending.append(meta)
        self.n_tokens += len(tokens)
        self.n_segments += len(lengths)
        if self.n_tokens >= SHARD_TOKENS:
            self.flush()

    def flush(self) -> None:
        """Write the open shard and then the index that points into it (so a kill loses at most
        the open shard, and a re-run picks up where it stopped)."""
        if not self.pending:
            return
        tokens = np.concatenate(self.tokens)
        bounds = np.concatenate([[0], np.cumsum(np.concatenate(self.lengths))]).astype(np.int64)
        tpath, bpath = self.root / f"{self.name}.tokens.npy", self.root / f"{self.name}.bounds.npy"
        save_npy_atomic(tpath, tokens)
        save_npy_atomic(bpath, bounds)
        self.index["shards"][self.name] = {
            "tokens": int(len(tokens)), "segments": int(len(bounds) - 1),
            "tokens_sha256": file_sha256(tpath), "bounds_sha256": file_sha256(bpath)}
        self.index["pieces"].extend(self.pending)
        save_index(self.root, self.index)
        self.tokens, self.lengths, self.pending = [], [], []
        self.n_tokens = self.n_segments = 0
        self.next_id += 1


def prepare(refs: list[PieceRef], out: Path, workers: int | None = None, progress=None) -> PrepareReport:
    """Tokenize `refs` into shards under `out`. Pieces already there with an unchanged file are skipped;
    a file that changed is prepared again and its old entry dropped."""
    out.mkdir(parents=True, exist_ok=True)
    tok_path = out / "vocab.json"
    if tok_path.exists():
        Tokenizer.load(tok_path)  # refuses a folder of another format version
    else:
        Tokenizer.default().save(tok_path)
    index = load_index(out)
    known = {p["piece_id"]: p for p in index["pieces"]}
    report = PrepareReport()
    todo = []
    for ref in refs:
        old = known.get(ref.piece_id)
        try:
            key = file_key(ref.path)
        except OSError:
            report.failed.append((ref.path, "missing file"))
            continue
        if old is not None and old.get("file_key") == key and old.get("split") == ref.split:
            report.unchanged += 1
            continue
        todo.append(ref)
    redo = {r.piece_id for r in todo if r.piece_id in known}
    if redo:
        index["pieces"] = [p for p in index["pieces"] if p["piece_id"] not in redo]
    writer = _ShardWriter(out, index)
    workers = workers or min(os.cpu_count() or 1, 8)
    task = progress.add_task("tokenizing", total=len(todo)) if progress is not None else None
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    try:
        if workers > 1 and len(todo) > 8:
            with ctx.Pool(workers) as pool:
                results = pool.imap(tokenize_piece, todo, chunksize=4)
                _collect(results, writer, report, progress, task)
        else:
            _collect(map(tokenize_piece, todo), writer, report, progress, task)
    finally:
        writer.flush()
    return report


def _collect(results, writer: _ShardWriter, report: PrepareReport, progress, task) -> None:
    for ref, meta, tokens, lengths, error in results:
        if error is not None:
            report.failed.append((ref.path, error))
        else:
            writer.add(meta, tokens, lengths)
            report.added += 1
            report.tokens += len(tokens)
        if progress is not None:
            progress.advance(task)

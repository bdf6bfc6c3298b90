"""MIDI → tokens throughput: tatum's tokenizer against miditok's REMI on the same PiJAMA files.

Both systems do the whole job from a path on disk: read the file, parse the MIDI, tokenize.

    ours:    tatum.tokenizer.encode(Notes.from_midi(path))
    miditok: miditok.REMI(TokenizerConfig(use_velocities=True)).encode(path)

The sample is deterministic: the sorted list of PiJAMA MIDI paths, `--files` of them evenly spaced.
Every file is read once before timing so that the OS cache serves all timed reads, and every file is
tokenized once by both systems (untimed) to count notes and tokens and to find files that either
system cannot tokenize; those are left out of both systems' timings. The timed passes alternate
between the systems (ABBA order) so that the noise of a shared machine falls on both alike; the
report gives the median pass. Notes/s uses tatum's note count for both systems. One process, one
core: the figures are per-core throughput.

    python benchmarks/tokenize_speed.py [--data ../shared/data] [--files 200] [--repeats 3]
                                  [--transcription midi|midi_kong]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import csv
import gc
import json
import platform
import statistics
import time
from importlib import metadata

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRANSCRIPTIONS = {"midi": "midi", "midi_kong": "midi_kong"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding pijama/pijama.csv and the MIDI folders (default: %(default)s)")
    ap.add_argument("--files", type=int, default=200, help="files in the sample (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed passes per system; the median is reported (default: %(default)s)")
    ap.add_argument("--transcription", choices=sorted(TRANSCRIPTIONS), default="midi_kong",
                    help="which PiJAMA transcription to read (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.files < 1:
        ap.error("--files must be at least 1")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    return args


def sample_paths(data: Path, transcription: str, n: int) -> tuple[list[Path], int]:
    """`n` evenly spaced paths from the sorted list of the csv's MIDI files (and how many it lists)."""
    root = data / "pijama"
    folder = TRANSCRIPTIONS[transcription]
    rel = set()
    with open(root / "pijama.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            p = (row.get("midi_filepath") or "").strip()
            if not p:
                continue
            p = p.removeprefix("data/")                      # → midi/<condition>/<artist>/…
            head, _, rest = p.partition("/")
            rel.add(f"{folder}/{rest}" if head == "midi" else p)
    paths = sorted(rel)
    n = min(n, len(paths))
    picked = [paths[(i * len(paths)) // n] for i in range(n)]
    return [root / p for p in picked], len(paths)


def warm_cache(paths: list[Path]) -> tuple[list[Path], int]:
    """Read every file once so that timed reads come from the OS cache; drop the missing ones."""
    present, total = [], 0
    for p in paths:
        try:
            total += len(p.read_bytes())
        except OSError:
            continue
        present.append(p)
    return present, total


def count_tokens(result) -> int:
    seqs = result if isinstance(result, list) else [result]
    return sum(len(s.ids) for s in seqs)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = args.data.expanduser().resolve()
    if not (data / "pijama" / "pijama.csv").is_file():
        print(f"tokenize benchmark: no PiJAMA data at {data} (pijama/pijama.csv missing); nothing to do.")
        return 0
    try:
        import miditok
    except ImportError:
        print("tokenize benchmark: miditok is not installed (pip install 'tatum[bench]'); nothing to do.")
        return 0

    from rich.console import Console
    from rich.table import Table

    from tatum.notes import Notes
    from tatum.tokenizer import encode

    console = Console()
    if not console.is_terminal:                  # piped or logged: do not wrap the table at 80 columns
        console = Console(width=120)

    config_kwargs = {"use_velocities": True}
    midi_tokenizer = miditok.REMI(miditok.TokenizerConfig(**config_kwargs))
    config_desc = "miditok.REMI(miditok.TokenizerConfig(" + ", ".join(
        f"{k}={v!r}" for k, v in config_kwargs.items()) + "))"

    def ours(path: Path):
        notes = Notes.from_midi(path)
        return notes, encode(notes)

    def theirs(path: Path):
        return midi_tokenizer.encode(path)

    sampled, listed = sample_paths(data, args.transcription, args.files)
    paths, n_bytes = warm_cache(sampled)
    missing = len(sampled) - len(paths)
    if not paths:
        print(f"tokenize benchmark: none of the {len(sampled)} sampled files could be read under {data}.")
        return 0

    # Untimed pass: counts, and the files either system fails on (kept out of both timings).
    files, n_notes, ours_tokens, their_tokens = [], 0, 0, 0
    fail_ours, fail_theirs = [], []
    for p in paths:
        try:
            notes, ids = ours(p)
        except Exception as e:  # noqa: BLE001 - any failure excludes the file
            fail_ours.append((p, f"{type(e).__name__}: {e}"))
            continue
        try:
            theirs_ids = count_tokens(theirs(p))
        except Exception as e:  # noqa: BLE001
            fail_theirs.append((p, f"{type(e).__name__}: {e}"))
            continue
        files.append(p)
        n_notes += len(notes)
        ours_tokens += len(ids)
        their_tokens += theirs_ids
    if not files:
        print("tokenize benchmark: no file could be tokenized by both systems; nothing to time.")
        return 1

    def timed_pass(fn) -> float:
        gc.collect()
        t0 = time.perf_counter()
        for p in files:
            fn(p)
        return time.perf_counter() - t0

    console.print(f"[bold]tokenize[/bold]: {len(files)} PiJAMA files ({args.transcription}, "
                  f"{n_bytes / 1e6:.1f} MB, {n_notes:,} notes), {args.repeats} interleaved passes each")
    ours_s, their_s = [], []
    for r in range(args.repeats):
        order = [("ours", ours, ours_s), ("miditok", theirs, their_s)]
        if r % 2:
            order.reverse()
        for _, fn, sink in order:
            sink.append(timed_pass(fn))

    n = len(files)
    ours_med, their_med = statistics.median(ours_s), statistics.median(their_s)
    ours_fps, their_fps = n / ours_med, n / their_med
    ratio = ours_fps / their_fps
    paired = statistics.median(t / o for o, t in zip(ours_s, their_s))

    table = Table(title=f"MIDI → tokens, median of {args.repeats} passes, 1 process",
                  caption=f"miditok {metadata.version('miditok')}: {config_desc}")
    for col in ("system", "files/s", "notes/s", "tokens/file", "ratio vs miditok", "passes (s)"):
        table.add_column(col, justify="left" if col == "system" else "right")
    table.add_row("tatum", f"{ours_fps:,.1f}", f"{n_notes / ours_med:,.0f}", f"{ours_tokens / n:,.0f}",
                  f"{ratio:.2f}×", " ".join(f"{s:.2f}" for s in ours_s))
    table.add_row("miditok REMI", f"{their_fps:,.1f}", f"{n_notes / their_med:,.0f}",
                  f"{their_tokens / n:,.0f}", "1.00×", " ".join(f"{s:.2f}" for s in their_s))
    console.print(table)
    if missing:
        console.print(f"[yellow]{missing} sampled file(s) missing on disk, left out[/yellow]")
    for label, fails in (("tatum", fail_ours), ("miditok", fail_theirs)):
        if fails:
            console.print(f"[yellow]{label} failed on {len(fails)} file(s), left out of both timings:[/yellow]")
            for p, why in fails[:5]:
                console.print(f"  {p.relative_to(data)}: {why[:160]}", markup=False, highlight=False)

    result = {
        "benchmark": "tokenize",
        "files": n,
        "files_sampled": len(sampled),
        "files_listed": listed,
        "files_missing": missing,
        "failures_ours": len(fail_ours),
        "failures_miditok": len(fail_theirs),
        "transcription": args.transcription,
        "repeats": args.repeats,
        "notes": n_notes,
        "ours_files_per_s": round(ours_fps, 2),
        "miditok_files_per_s": round(their_fps, 2),
        "ours_notes_per_s": round(n_notes / ours_med, 1),
        "miditok_notes_per_s": round(n_notes / their_med, 1),
        "ours_tokens_per_file": round(ours_tokens / n, 1),
        "miditok_tokens_per_file": round(their_tokens / n, 1),
        "ratio": round(ratio, 3),
        "ratio_paired_median": round(paired, 3),
        "ours_pass_s": [round(s, 4) for s in ours_s],
        "miditok_pass_s": [round(s, 4) for s in their_s],
        "miditok_config": config_desc,
        "miditok_version": metadata.version("miditok"),
        "symusic_version": metadata.version("symusic"),
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

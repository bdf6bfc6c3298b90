"""The `tatum` command: one verb per task.

Every problem with the user's input ends as one line, `tatum: error: <file>: <reason>`, and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tatum.errors import TatumError

app = typer.Typer(
    name="tatum",
    help="Controllable piano improvisation on MIDI: re-play a piece as jazz, harmonize, continue, infill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare MIDI collections as training shards and inspect them.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console(stderr=True)
out = Console()


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


@data_app.command("prepare")
def data_prepare(
    sources: list[str] = typer.Argument(..., help="Collections to prepare: a PiJAMA, POP909 or pianolatron "
                                        "folder (recognised by its layout), any folder of MIDI files, or one file."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Shard folder to create or extend."),
    artist: Optional[str] = typer.Option(None, help='Keep only this pianist, e.g. "Art Tatum".'),
    genre: Optional[str] = typer.Option(None, help="Keep only this genre (classical, jazz, pop, …)."),
    transcription: str = typer.Option("midi_kong", help="PiJAMA transcription: midi_kong (with sustain "
                                      "pedal) or midi (Onsets and Frames, no pedal)."),
    folder_genre: Optional[str] = typer.Option(None, "--folder-genre", help="Genre for files of a plain "
                                               "folder that its metadata.csv does not label."),
    workers: int = typer.Option(0, help="Worker processes (0 = one per core)."),
    force: bool = typer.Option(False, help="Start the shard folder afresh instead of extending it."),
):
    """Tokenize MIDI collections into memory-mapped shards plus an index.

    Re-running is incremental: files already prepared and unchanged are skipped. A file that cannot be
    read is reported and skipped. A plain folder may hold a metadata.csv with columns path, genre,
    artist, split, title.

    Example: tatum data prepare ../shared/data/pijama ../shared/data/pop909 ../shared/data/pianolatron -o shards
    """
    from tatum.data.prepare import prepare
    from tatum.data.sources import detect

    refs = []
    for spec in sources:
        refs += detect(spec, transcription=transcription, genre=folder_genre)
    if artist is not None:
        refs = [r for r in refs if (r.artist or "").casefold() == artist.casefold()]
        if not refs:
            raise TatumError(f"no pieces by {artist!r} in these sources")
    if genre is not None:
        refs = [r for r in refs if (r.genre or "").casefold() == genre.casefold()]
        if not refs:
            raise TatumError(f"no pieces of genre {genre!r} in these sources")
    if force and out_dir.exists():
        _clear_shards(out_dir)
    elif out_dir.exists() and not out_dir.is_dir():
        raise TatumError("exists and is not a folder", out_dir)
    elif out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "index.json").exists():
        raise TatumError("folder exists and is not a shard folder; choose another --out", out_dir)
    with _progress() as progress:
        report = prepare(refs, out_dir, workers=workers or None, progress=progress)
    for path, reason in report.failed:
        console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
    console.print(f"{report.added} added, {report.unchanged} unchanged, {len(report.failed)} skipped; "
                  f"{report.tokens:,} new tokens → {out_dir}")


def _clear_shards(root: Path) -> None:
    if not (root / "index.json").exists():
        raise TatumError("--force only clears a shard folder, and this is not one", root)
    for p in root.iterdir():
        if p.name in ("index.json", "vocab.json") or p.name.startswith("shard-"):
            p.unlink()


@data_app.command("stats")
def data_stats(
    shard_dir: Path = typer.Argument(..., help="A shard folder made by `tatum data prepare`."),
    by: list[str] = typer.Option(["genre", "artist"], help="Group by genre, artist, source or split."),
    top: int = typer.Option(25, help="Rows to show per table (the rest are summed as 'others')."),
):
    """Pieces, hours, notes and tokens per genre and per artist of a shard folder."""
    from tatum.data.shards import ShardSet
    from tatum.data.stats import summarize

    shards = ShardSet(shard_dir, verify=False)
    for key in by:
        if key not in ("genre", "artist", "source", "split"):
            raise TatumError(f"cannot group by {key!r}; use genre, artist, source or split")
        rows = summarize(shards, key)
        if len(rows) > top:
            rest = rows[top:]
            other = {key: f"({len(rest)} others)"} | {k: sum(r[k] for r in rest) for k in rows[0] if k != key}
            rows = rows[:top] + [other]
        total = {key: "total"} | {k: sum(r[k] for r in rows) for k in rows[0] if k != key}
        table = Table(title=f"{shard_dir} by {key}")
        for col in (key, "pieces", "hours", "train h", "val h", "notes", "tokens"):
            table.add_column(col, justify="left" if col == key else "right")
        for r in rows + [total]:
            table.add_row(str(r[key]), f"{r['pieces']:,}", f"{r['hours']:.1f}", f"{r['train_h']:.1f}",
                          f"{r['val_h']:.1f}", f"{r['notes']:,}", f"{r['tokens']:,}",
                          style="bold" if r is total else None)
        out.print(table)


@app.command("train")
def train_cmd(
    shards: Path = typer.Argument(..., help="Shard folder from `tatum data prepare`."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder: training state, log, loss.png, "
                                 "checkpoint/ (latest) and best/ (lowest validation loss)."),
    preset_name: str = typer.Option("small", "--preset", help="Model size: tiny, small (CPU default) or "
                                    "paper (ImprovNet size)."),
    steps: int = typer.Option(20000, help="Total optimizer steps."),
    batch_size: int = typer.Option(16, help="Examples per process per micro-batch."),
    grad_accum: int = typer.Option(1, help="Micro-batches per optimizer step."),
    lr: float = typer.Option(5e-4, help="Peak learning rate (cosine schedule after warm-up)."),
    warmup: int = typer.Option(300, help="Warm-up steps."),
    val_every: int = typer.Option(250, help="Steps between validations (and checkpoint/ exports)."),
    save_every: int = typer.Option(100, help="Steps between saves of the full training state."),
    threads: int = typer.Option(0, help="CPU threads (0 = PyTorch's default)."),
    workers: int = typer.Option(0, help="Data-loading worker processes."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last saved state."),
    init: Optional[str] = typer.Option(None, help="Start from this checkpoint instead of random weights."),
    artist: Optional[str] = typer.Option(None, help="Train only on this pianist's pieces."),
    genre: Optional[str] = typer.Option(None, help="Train only on this genre."),
):
    """Train the model on prepared shards (one process, or under `torchrun --nproc_per_node N`).

    Runs resume exactly, same data order and random state, after any interruption: pass --resume.

    Example: tatum train shards -o runs/small --preset small
             torchrun --nproc_per_node 2 $(which tatum) train shards -o runs/ddp
    """
    from tatum.train import TrainConfig, train

    if (out_dir / "state" / "latest.json").exists() and not resume:
        raise TatumError("holds a training run already; pass --resume to continue it, or pick another --out",
                         out_dir)
    cfg = TrainConfig(shards=str(shards), out=str(out_dir), preset=preset_name, init=init, artist=artist,
                      genre=genre, batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr=lr / 10,
                      warmup=warmup, max_steps=steps, val_every=val_every, save_every=save_every,
                      threads=threads, workers=workers, seed=seed)
    last = train(cfg)
    if last:
        console.print(f"step {last['step']}: loss {last['loss']:.3f}; checkpoint → {out_dir / 'checkpoint'}")


@app.command("finetune")
def finetune_cmd(
    shards: Path = typer.Argument(..., help="Shard folder that holds the pianist's pieces."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder (as for `tatum train`)."),
    artist: str = typer.Option(..., help='The pianist, e.g. "Art Tatum".'),
    base: str = typer.Option("tatum-small", help="Checkpoint to start from (folder or shipped name)."),
    steps: int = typer.Option(2000, help="Total optimizer steps."),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-4, help="Peak learning rate, lower than for training from scratch."),
    val_every: int = typer.Option(200),
    threads: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last saved state."),
):
    """Fine-tune a model on one pianist's recordings (all weights), e.g. Art Tatum's PiJAMA tracks."""
    from tatum.model.checkpoint import resolve
    from tatum.train import TrainConfig, train

    if (out_dir / "state" / "latest.json").exists() and not resume:
        raise TatumError("holds a training run already; pass --resume to continue it", out_dir)
    cfg = TrainConfig(shards=str(shards), out=str(out_dir), init=str(resolve(base)), artist=artist,
                      batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup=100, max_steps=steps,
                      val_every=val_every, save_every=100, threads=threads)
    last = train(cfg)
    if last:
        console.print(f"step {last['step']}: loss {last['loss']:.3f}; checkpoint → {out_dir / 'checkpoint'}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except TatumError as e:
        console.print(f"tatum: error: {e}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("tatum: interrupted")
        sys.exit(130)
    except (typer.Exit, SystemExit) as e:
        sys.exit(getattr(e, "exit_code", getattr(e, "code", 0)))
    except Exception as e:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()

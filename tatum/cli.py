"""The `tatum` command: one verb per task.

Every problem with the user's input ends as one line, `tatum: error: <file>: <reason>`, and exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tatum import options
from tatum.cli_errors import Group, no_verb_help, one_line
from tatum.cli_options import ADVANCED, MIDI, check_number, check_suffix, generation_options, opt, vocabulary_help
from tatum.errors import TatumError

app = typer.Typer(
    name="tatum",
    cls=Group,
    help="Controllable piano improvisation on MIDI: re-play a piece as jazz, harmonize, continue, infill; "
         "render and transcribe audio; jam live.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(cls=Group, help="Prepare MIDI collections as training shards and inspect them.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(show: bool) -> None:
    if show:
        from tatum import __version__

        typer.echo(f"tatum {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                                                callback=_version)] = False) -> None:
    pass

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
        console.print(f"skipped {path}: {reason}", highlight=False, markup=False, soft_wrap=True)
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


# ------------------------------------------------------------------ generation
class _Run:
    """Input checks, a progress bar over passes, and the outputs every generation verb writes."""

    def __init__(self, inp: Path, out_path: Path, force: bool, png: Optional[Path], total: int, label: str,
                 wav: Optional[Path] = None):
        from tatum.io import check_writable
        from tatum.notes import read_midi

        check_outputs(out_path, png, wav)
        self.out = check_writable(out_path, force)
        self.png = check_writable(png, force) if png else None
        self.wav = check_writable(wav, force) if wav else None
        if self.wav:
            from tatum.audio.render import find_soundfont

            find_soundfont()  # say so before the generation, not after it
        if self.out.resolve() == Path(inp).resolve():
            raise TatumError("output would replace the input; choose another -o", out_path)
        self.source = read_midi(inp)
        self.notes = self.source.notes
        self.total, self.label = total, label

    def __enter__(self):
        self.progress = None
        return self

    def on_pass(self, k: int, n: int) -> None:
        # The bar appears with the first finished pass, so an input error prints one line only.
        if self.progress is None:
            self.progress = _progress()
            self.progress.__enter__()
            self.task = self.progress.add_task(self.label, total=self.total)
        self.progress.advance(self.task)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def write(self, result, before=None, end_ms: int | None = None) -> None:
        """The result over its source file (tatum.edit): untouched notes keep their ticks and tracks,
        drums and other tracks come back on their own tracks, new notes go on track "tatum"."""
        from tatum.edit import TRACK, write_edit

        report = write_edit(self.source, result, self.out, end_ms=end_ms)
        msg = f"{len(result)} notes, {result.duration_s:.1f} s → {self.out}"
        if self.png:
            from tatum.plot import piano_roll

            piano_roll(self.png, result, before if before is not None else self.notes)
            msg += f", {self.png}"
        if self.wav:
            from tatum.audio.render import write_wav

            write_wav(self.wav, result)
            msg += f", {self.wav}"
        console.print(msg, highlight=False, markup=False, soft_wrap=True)
        if len(report.tracks) > 1 or report.drums:
            names = ", ".join(f"{t} (drums)" if t in report.drums else t for t in report.tracks)
            console.print(f"tracks kept as they were where untouched: {names}; new notes on track {TRACK!r}",
                          highlight=False, markup=False, soft_wrap=True)


def check_outputs(out_path: Optional[Path], png: Optional[Path] = None, wav: Optional[Path] = None) -> None:
    check_suffix(out_path, "-o", MIDI, "MIDI", "; --wav OUT.wav renders the sound")
    check_suffix(png, "--png", (".png",), "a PNG picture")
    check_suffix(wav, "--wav", (".wav",), "WAV audio")


# Options several verbs share, declared once (the sampling and conditioning ones: tatum/options.py).
In = Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file to start from.", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", metavar="OUT.mid", help="MIDI file to write.")]
Model = Annotated[Optional[str], typer.Option(metavar="DIR", help="Model folder or shipped name.",
                                              rich_help_panel=ADVANCED)]
Png = Annotated[Optional[Path], typer.Option(metavar="OUT.png", help="Also a piano roll: before over after.")]
Wav = Annotated[Optional[Path], typer.Option(metavar="OUT.wav", help="Also the sound (FluidSynth, 48 kHz).")]
Force = Annotated[bool, typer.Option("--force", help="Replace existing output files.", metavar="")]
Seconds = Annotated[Optional[float], typer.Option(metavar="S", help="Use only the first S seconds.")]


def candidates_option(verb: str, default: str | None = None):
    """--candidates for a verb, its default (options.CANDIDATES; one draft where not named) in the help."""
    return Annotated[Optional[int], typer.Option(metavar="K", rich_help_panel=ADVANCED, show_default=False,
                                                 help=f"Best of K drafts per window (K× work; 1 for one). "
                                                      f"({default or options.CANDIDATES.get(verb, 1)})")]


Artist = Annotated[Optional[str], typer.Option(metavar="NAME", help=options.SPECS["artist"].help)]
Plugin = Annotated[list[Path], typer.Option("--plugin", metavar="FILE.py", rich_help_panel=ADVANCED,
                                            help="Python file registering corruptions.", show_default=False)]


def _help(text: str) -> str:
    """A verb's help: what it does, the styles and pianists it knows, an example."""
    what, _, example = text.partition("\n\nExample: ")
    return f"{what}\n\n\b{vocabulary_help()}\nExample: {example}"    # (\b: one paragraph, two lines)


@app.command("improvise", help=_help(
    "Re-play a piece in a style, or in the manner of a pianist.\n\n"
    "Example: tatum improvise song.mid -o jazz.mid --artist \"Art Tatum\""))
@generation_options("improvise")
def improvise_cmd(
    inp: In,
    out_path: Out,
    conditioning: options.Conditioning,
    plan: Optional[str] = opt(None, "improvnet, light, free or replay (--artist).",
                              metavar="PLAN", show=False),
    first: Seconds = None,
    sampling: options.Sampling = None,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
    keep_first: Optional[float] = opt(None, "Seconds left as is (10; replay 0).", metavar="S", advanced=True),
    free_melody: bool = opt(False, "Rewrite the tune too (ImprovNet).", "--free-melody", advanced=True),
    preserve_structure: float = opt(0.05, "Share of windows kept at edges.", metavar="F", advanced=True),
    context: int = opt(5, "Windows of context each side.", metavar="N", advanced=True),
    corruption: Optional[str] = opt(None, "One corruption for every pass.", metavar="NAME", advanced=True),
    passes: Optional[int] = opt(None, "Number of passes.", metavar="N", advanced=True),
    rate: Optional[float] = opt(None, "Share of windows per pass.", metavar="F", advanced=True),
    plugin: Plugin = [],
    candidates: candidates_option("improvise", "1; replay 8") = None,
    guide: float = opt(1.0, "replay: 0–3, how close to the piece.", metavar="G", advanced=True),
    model: Model = None,
):
    from tatum.generate.guide import Guide
    from tatum.generate.tasks import REPLAY, _plan, improvise, improvise_steps, plan_for

    check_number("--first", first, above=0)
    check_number("--keep-first", keep_first, 0)
    check_number("--preserve-structure", preserve_structure, 0, 1)
    check_number("--context", context, 0, 64)
    check_number("--rate", rate, 0, 1)
    check_number("--passes", passes, 1, 1000)
    check_number("--candidates", candidates, 1, 64)
    check_number("--guide", guide, 0, 3)
    load_plugins(plugin)
    plan = plan if plan is not None else plan_for(conditioning.artist, corruption, rate, passes, not free_melody)
    if plan != REPLAY:
        _plan(plan, rate, passes, corruption)      # a bad plan is refused before the input is read
    with _Run(inp, out_path, force, png, 0, "improvising", wav) as run:
        if first is not None:
            run.notes = run.notes.slice(0, first * 1000)
        run.total = improvise_steps(run.notes, plan, rate, passes, corruption, keep_first)
        result = improvise(run.notes, plan, conditioning=conditioning, sampling=sampling, rate=rate,
                           passes=passes, corruption=corruption, context=(context, context),
                           keep_first_s=keep_first, preserve_structure=preserve_structure,
                           keep_melody=not free_melody, model=model, candidates=candidates,
                           guide=Guide().scaled(guide), on_pass=run.on_pass)
    run.write(result, end_ms=None if first is None else int(first * 1000))


@app.command("harmonize", help=_help(
    "Put chords and accompaniment under a melody (one line; chords are reduced to their top).\n\n"
    "Example: tatum harmonize melody.mid -o harmonized.mid --style jazz"))
@generation_options("harmonize")
def harmonize_cmd(
    inp: In,
    out_path: Out,
    conditioning: options.Conditioning,
    passes: int = opt(5, "Skyline passes.", metavar="N"),
    sampling: options.Sampling = None,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
    chord_size: int = opt(3, "Notes forced under a melody note.", metavar="N", advanced=True),
    chord_gap: int = opt(600, "Chords under notes this far apart.", metavar="MS", advanced=True),
    model: Model = None,
):
    import warnings

    from tatum.generate.tasks import harmonize

    check_number("--passes", passes, 1, 1000)
    check_number("--chord-size", chord_size, 1, 10)
    check_number("--chord-gap", chord_gap, 0, 5000)
    with _Run(inp, out_path, force, png, passes, "harmonizing", wav) as run:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = harmonize(run.notes, passes=passes, chord_size=chord_size, chord_gap_ms=chord_gap,
                               conditioning=conditioning, sampling=sampling, model=model, on_pass=run.on_pass)
    for w in caught:
        console.print(f"tatum: warning: {inp}: {w.message}", highlight=False, markup=False, soft_wrap=True)
    run.write(result)


@app.command("continue", help=_help(
    "Continue a piece: the prompt, then new music in its key, harmony and texture.\n\n"
    "Example: tatum continue song.mid -o longer.mid --prompt-seconds 20 --seconds 15"))
@generation_options("continue")
def continue_cmd(
    inp: In,
    out_path: Out,
    prompt_seconds: Optional[float] = opt(None, "The first S seconds are the prompt (all).", metavar="S"),
    seconds: float = opt(15.0, "Seconds of new music.", metavar="S"),
    conditioning: options.Conditioning = None,
    sampling: options.Sampling = None,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
    candidates: candidates_option("continue") = options.CANDIDATES["continue"],
    model: Model = None,
):
    import math

    from tatum.generate.tasks import continue_

    check_number("--prompt-seconds", prompt_seconds, above=0)
    check_number("--seconds", seconds, hi=3600, above=0)
    check_number("--candidates", candidates, 1, 64)
    with _Run(inp, out_path, force, png, math.ceil(seconds / 5), "continuing", wav) as run:
        end = run.notes.end_ms
        if prompt_seconds is not None and prompt_seconds > math.ceil(end / 100) / 10:
            raise TatumError(f"--prompt-seconds {prompt_seconds:g} is past the end of the piece "
                             f"({math.ceil(end / 100) / 10:g} s)", inp)
        result = continue_(run.notes, seconds, prompt_seconds=prompt_seconds, conditioning=conditioning,
                           sampling=sampling, model=model, candidates=candidates, on_pass=run.on_pass)
    # the picture compares the continuation with its prompt, not with the whole input file
    prompt = None if prompt_seconds is None else run.notes.slice(0, prompt_seconds * 1000, clip=True)
    run.write(result, before=prompt, end_ms=result.end_ms)


@app.command("infill", help=_help(
    "Fill in a passage with new music that joins what comes before and after.\n\n"
    "Example: tatum infill song.mid -o filled.mid --start 20 --end 40"))
@generation_options("infill")
def infill_cmd(
    inp: In,
    out_path: Out,
    start: float = opt(..., "Start of the passage, seconds.", metavar="S"),
    end: float = opt(..., "End of the passage, seconds.", metavar="S"),
    conditioning: options.Conditioning = None,
    sampling: options.Sampling = None,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
    context: int = opt(5, "Windows of context each side.", metavar="N", advanced=True),
    candidates: candidates_option("infill") = options.CANDIDATES["infill"],
    model: Model = None,
):
    import math

    from tatum.generate.tasks import infill

    check_number("--start", start, 0)
    check_number("--end", end, above=start)
    check_number("--context", context, 0, 64)
    check_number("--candidates", candidates, 1, 64)
    with _Run(inp, out_path, force, png, max(1, math.ceil((end - start) / 5)), "infilling", wav) as run:
        result = infill(run.notes, start, end, context=context, conditioning=conditioning, sampling=sampling,
                        model=model, candidates=candidates, on_pass=run.on_pass)
    run.write(result)


def load_plugins(files: list[Path]) -> None:
    """Run the Python files that register corruptions of the user's own (tatum.corruption.register)."""
    from tatum.corruption import load_plugin

    for f in files:
        load_plugin(f)


# ----------------------------------------------------------------------- audio
Soundfont = Annotated[Optional[Path], typer.Option(metavar="SF2", help="Soundfont (or $TATUM_SOUNDFONT).",
                                                   rich_help_panel=ADVANCED)]
Engine = Annotated[str, typer.Option(metavar="NAME", help="fluidsynth, magenta or magenta-base (MRT 2).",
                                     rich_help_panel=ADVANCED, show_default=False)]
StyleText = Annotated[str, typer.Option(metavar="TEXT", help="magenta: the sound, in words.",
                                        rich_help_panel=ADVANCED, show_default=False)]
ENGINES = {"fluidsynth": ("fluidsynth", "mrt2_small"), "magenta": ("magenta", "mrt2_small"),
           "magenta-base": ("magenta", "mrt2_base")}     # --engine: (engine, Magenta RT 2 size)


def engine_of(name: str) -> tuple[str, str]:
    if name not in ENGINES:
        raise TatumError(f"unknown --engine {name!r}; use {', '.join(ENGINES)}")
    return ENGINES[name]


@app.command("render")
def render_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file to play.", show_default=False)],
    out_path: Annotated[Path, typer.Option("--out", "-o", metavar="OUT.wav", help="WAV file to write (16-bit "
                                           "stereo).")],
    force: Force = False,
    soundfont: Soundfont = None,
    sample_rate: int = opt(48_000, "Sample rate, 8000–192000 Hz.", metavar="HZ", advanced=True),
    engine: Engine = "fluidsynth",
    style_text: StyleText = "1950s solo piano recording",
):
    """Play a MIDI file on a piano through FluidSynth into a WAV, sustain pedal included.

    Example: tatum render song-jazz.mid -o song-jazz.wav
    """
    from tatum.audio.render import find_soundfont, read_midi_for_render, write_wav
    from tatum.io import check_writable

    check_suffix(out_path, "-o", (".wav",), "WAV audio")
    check_writable(out_path, force)
    if sample_rate < 8000 or sample_rate > 192_000:
        raise TatumError(f"--sample-rate must be 8000–192000 Hz, not {sample_rate}")
    engine, mrt_size = engine_of(engine)
    if engine == "magenta":
        from tatum.audio import magenta
        from tatum.notes import Notes

        if sample_rate != magenta.SAMPLE_RATE:
            raise TatumError("Magenta RealTime 2 plays at 48000 Hz only; leave out --sample-rate")
        notes = Notes.from_midi(inp)
        sound = magenta.MagentaSound(style_text, size=mrt_size)
        seconds = magenta.write_wav(out_path, notes, sound)
        console.print(f"{seconds:.1f} s of audio (Magenta RT 2, \"{style_text}\") → {out_path}", highlight=False,
                      markup=False, soft_wrap=True)
        return
    sf = find_soundfont(soundfont)
    notes, pedal = read_midi_for_render(inp)
    total = notes.end_ms / 1000.0
    with _progress() as progress:
        task = progress.add_task("rendering", total=round(total))
        seconds = write_wav(out_path, notes, sf, sample_rate, pedal,
                            on_progress=lambda s: progress.update(task, completed=min(round(s), round(total))))
    console.print(f"{seconds:.1f} s of audio → {out_path}", highlight=False, markup=False, soft_wrap=True)


@app.command("transcribe")
def transcribe_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.wav", help="Piano recording: wav, flac, mp3, ogg or aiff.",
                                        show_default=False)],
    out_path: Out,
    png: Annotated[Optional[Path], typer.Option(metavar="OUT.png", help="Also a piano roll of the "
                                                "transcription.")] = None,
    force: Force = False,
    onset_threshold: float = opt(0.6, "0–1: higher gives fewer, surer notes.", metavar="P", advanced=True),
    frame_threshold: float = opt(0.3, "0–1: lower holds notes longer.", metavar="P", advanced=True),
    min_note_ms: float = opt(50.0, "Drop notes shorter than this.", metavar="MS", advanced=True),
):
    """Turn a piano recording into MIDI (basic-pitch, ONNX), with velocities, in the piano range.

    Long files are read in one-minute chunks, so memory stays bounded.

    Example: tatum transcribe idea.wav -o idea.mid
    """
    from tatum.audio.transcribe import open_audio, transcribe
    from tatum.io import check_writable

    check_outputs(out_path, png)
    check_number("--onset-threshold", onset_threshold, 0, 1)
    check_number("--frame-threshold", frame_threshold, 0, 1)
    check_number("--min-note-ms", min_note_ms, 0, 10_000)
    check_writable(out_path, force)
    if png:
        check_writable(png, force)
    open_audio(inp).close()   # a missing or unreadable file is one error line, before any progress bar
    with _progress() as progress:
        task = progress.add_task("transcribing", total=None)

        def on_progress(done: float, total: float) -> None:
            progress.update(task, completed=round(done), total=round(total))

        notes = transcribe(inp, onset_threshold, frame_threshold, min_note_ms, on_progress=on_progress)
    notes.to_midi(out_path)
    msg = f"{len(notes)} notes, {notes.duration_s:.1f} s → {out_path}"
    if png:
        from tatum.plot import piano_roll

        piano_roll(png, notes, titles=("", "transcription"))
        msg += f", {png}"
    console.print(msg, highlight=False, markup=False, soft_wrap=True)


@app.command("pipeline", help=_help(
    "Audio idea → transcription → improvisation → WAV, MIDI and a before/after piano roll.\n\n"
    "Example: tatum pipeline memo.wav --artist \"Art Tatum\" -o memo-tatum/"))
@generation_options("improvise")
def pipeline_cmd(
    inp: Annotated[Optional[Path], typer.Argument(metavar="IN", help="Audio (wav, flac, mp3, ogg) or MIDI.",
                                                  show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the .mid, .wav and "
                                          "before-after.png.")] = ...,
    conditioning: options.Conditioning = None,
    plan: Optional[str] = opt(None, "As for tatum improvise.", metavar="PLAN"),
    first: Seconds = None,
    sampling: options.Sampling = None,
    force: Force = False,
    from_prompt: Annotated[Optional[str], typer.Option("--from-prompt", metavar="TEXT", help="Start from audio "
                                                       "Magenta RT makes of TEXT.", rich_help_panel=ADVANCED)] = None,
    prompt_seconds: float = opt(20.0, "--from-prompt: seconds of audio.", metavar="S", advanced=True),
    plugin: Plugin = [],
    soundfont: Soundfont = None,
    model: Model = None,
):
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from tatum.audio.pipeline import pipeline

    check_number("--first", first, above=0)
    check_number("--prompt-seconds", prompt_seconds, hi=600, above=0)
    load_plugins(plugin)
    labels = {"prompt": "making audio (Magenta RT)", "transcribe": "transcribing (s)",
              "improvise": "improvising", "render": "rendering (s)", "plot": "piano roll"}
    progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=console)
    tasks: dict[str, int] = {}

    def on_stage(name: str, done: float, total: float) -> None:
        if not tasks:
            progress.start()
        if name not in tasks:
            tasks[name] = progress.add_task(labels[name], total=max(total, 1e-9))
        progress.update(tasks[name], completed=done, total=max(total, 1e-9))

    try:
        res = pipeline(inp, out_dir, from_prompt=from_prompt, prompt_seconds=prompt_seconds, first_s=first,
                       plan=plan, seed=sampling.seed, force=force, soundfont=soundfont, on_stage=on_stage,
                       conditioning=conditioning, sampling=sampling, model=model)
    finally:
        if tasks:   # started by the first stage; a mistake found before it leaves stderr one line
            progress.stop()
    for key, path in res.files.items():
        console.print(f"{key:>14}: {path}", highlight=False, markup=False, soft_wrap=True)


# ------------------------------------------------------------------ evaluation
@app.command("classify")
def classify_cmd(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="MIDI files to score.")],
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list (every probability) instead of text."),
    top: int = typer.Option(3, help="Pianists to show per file."),
    model: Optional[str] = typer.Option(None, help="Classifier folder or shipped name (default: tatum-classifier)."),
):
    """Genre and pianist probabilities, and how random-like the notes are (real music ≈ 0), per file.

    Each score is the mean over the file's 15 s windows. Example: tatum classify song.mid improvised.mid
    """
    import json

    from tatum.evaluate.classify import Classifier
    from tatum.notes import Notes

    pieces = [(path, Notes.from_midi(path)) for path in files]   # every file is read before any output
    clf = Classifier.load(model)
    results = [(path, clf.score(notes)) for path, notes in pieces]
    if as_json:
        rows = [{"file": str(path), **s.to_dict()} for path, s in results]
        typer.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    for path, s in results:
        out.print(f"{path}", highlight=False, markup=False, soft_wrap=True)
        if not s.windows:
            out.print("  too few notes to score", highlight=False, markup=False)
            continue
        genres = "  ".join(f"{g} {p:.2f}" for g, p in sorted(s.genre.items(), key=lambda kv: -kv[1]))
        artists = "  ".join(f"{a} {p:.2f}" for a, p in s.top_artists(top))
        for label, text in (("genre", genres), ("pianist", artists),
                            ("random-like", f"{s.random_like:.2f}  (real music ≈ 0, random notes ≈ 1; "
                                            f"{s.windows} window{'s' * (s.windows != 1)} of 15 s)")):
            out.print(f"  {label:12s}{text}", highlight=False, markup=False, soft_wrap=True)


@app.command("evaluate")
def evaluate_cmd(
    task: str = opt(..., "continuation, infill, style-transfer, harmonize or nll.", metavar="TASK"),
    data: Optional[str] = opt(None, "SOURCE:SPLIT or FOLDER:SPLIT (nll: SHARDS).", metavar="WHERE"),
    n: int = opt(8, "Pieces, evenly spread through the split.", "--n", metavar="N"),
    artist: Artist = None,
    out_dir: Optional[Path] = opt(None, "Folder for the results (eval-TASK).", "--out", "-o", metavar="DIR"),
    force: Force = False,
    seed: int = opt(0, "Piece k is generated with seed + k.", metavar="N", advanced=True),
    seconds: Optional[float] = opt(None, "Excerpt: style-transfer 60 s, harmonize 30.", metavar="S", advanced=True),
    data_root: Optional[Path] = opt(None, "Where the collections are ($TATUM_DATA).", metavar="DIR", advanced=True),
    no_pictures: bool = opt(False, "No piano rolls and curves.", "--no-pictures", advanced=True),
    candidates: Annotated[Optional[int], typer.Option(metavar="K", rich_help_panel=ADVANCED, show_default=False,
                                                      help="Best of K drafts per window (default: the verb's).")] = None,
    plan: Optional[str] = opt(None, "style-transfer: improvise's plan.", metavar="PLAN", advanced=True),
    keep_first: Optional[float] = opt(None, "style-transfer: improvise's --keep-first.", metavar="S",
                                      advanced=True),
    model: Model = None,
):
    """Run a task on N real pieces with fixed seeds and measure it as ImprovNet did: results.json,
    results.md beside ImprovNet's published figures, curves.png, rolls/ and midi/. Default data:
    pianolatron:val for style-transfer, else pijama:val (under --data-root).

    Example: tatum evaluate --task continuation --data pijama:val --n 8 --out eval/continuation
    """
    from tatum.evaluate.protocols import Setup, evaluate
    from tatum.evaluate.report import write

    out_dir = out_dir or Path(f"eval-{task}")
    if out_dir.exists() and not out_dir.is_dir():
        raise TatumError("exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise TatumError("folder is not empty (use --force to write into it)", out_dir)
    if task == "nll":
        return _evaluate_nll(data, n, model, artist, out_dir)
    setup = Setup(task, data, n, model, artist, seed, candidates, seconds, data_root, plan, keep_first)
    progress = None

    def on_piece(done: int, total: int, title: str) -> None:
        nonlocal progress, bar
        if progress is None:   # the bar appears with the first piece, so an input error is one line
            progress = _progress()
            progress.__enter__()
            bar = progress.add_task(f"{task}", total=total)
        progress.update(bar, completed=done, description=f"{task}: {title[:30]}")

    bar = None
    try:
        ev = evaluate(setup, progress=on_piece)
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
    pictures = not no_pictures
    files = write(ev, out_dir, pictures=pictures)
    typer.echo(open(files["markdown"], encoding="utf-8").read())
    console.print(f"{len(ev.pieces)} pieces → {out_dir}/ (results.json, results.md"
                  + (", curves.png, rolls/" if pictures else "") + ", midi/)", highlight=False, markup=False,
                  soft_wrap=True)


def _evaluate_nll(data: str | None, n: int, model: str | None, artist: str | None, out_dir: Path) -> None:
    """`evaluate --task nll --data SHARDS[:val]`: the validation table every model card carries."""
    import json

    from tatum.data.shards import ShardSet
    from tatum.io import write_atomic
    from tatum.model.checkpoint import DEFAULT_MODEL, load_model
    from tatum.validation import markdown, table

    if not data:
        raise TatumError("--task nll needs --data SHARD_FOLDER (from `tatum data prepare`)")
    folder, _, split = data.partition(":")
    if split not in ("", "val"):
        raise TatumError(f"--task nll measures the val split, not {split!r}")
    name = model or DEFAULT_MODEL
    scores = table({name: load_model(model)}, ShardSet(folder, verify=False), n, artist)
    text = markdown(scores)
    write_atomic(out_dir / "results.md", text)
    write_atomic(out_dir / "results.json", json.dumps({"windows": n, "artist": artist, "scores": scores}, indent=1))
    typer.echo(text)


def _bool(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(value)
    return value.lower() in ("true", "1")


def _model_settings(items: list[str]) -> dict:
    """["d_model=384", "cross_bias=none"] → {"d_model": 384, "cross_bias": "none"}, checked against
    the fields of the model configs (encoder–decoder and NoteLM) and their types."""
    from dataclasses import fields

    from tatum.model.config import ModelConfig
    from tatum.model.notelm import NoteLMConfig

    known = {f.name: f.type for f in fields(ModelConfig)} | {f.name: f.type for f in fields(NoteLMConfig)}
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in known or key == "vocab_size":
            raise TatumError(f"--set {item!r}: write name=value with name one of "
                             f"{', '.join(k for k in known if k != 'vocab_size')}")
        kind = {"int": int, "float": float, "str": str, "bool": _bool}[str(known[key])]
        try:
            out[key] = kind(value)
        except ValueError:
            raise TatumError(f"--set {item!r}: {key} takes a {kind.__name__.strip('_')}") from None
    return out


@app.command("train")
def train_cmd(
    shards: Path = typer.Argument(..., metavar="SHARDS", help="Shard folder from tatum data prepare.", show_default=False),
    out_dir: Path = opt(..., "Run folder: state, log, checkpoint/, best/.", "--out", "-o", metavar="DIR"),
    preset_name: str = opt("small", "tiny, small, paper, note-tiny, note-small.", "--preset", metavar="NAME"),
    steps: int = opt(20000, "Total optimizer steps.", metavar="N"),
    minutes: float = opt(0.0, "Train this long instead (step time; the schedule spans it, --steps caps it).",
                         metavar="M"),
    resume: bool = opt(False, "Continue the run in --out where it stopped.", "--resume"),
    init: Optional[str] = opt(None, "Start from this checkpoint.", metavar="DIR"),
    artist: Optional[str] = opt(None, "Train only on this pianist's pieces.", metavar="NAME"),
    genre: Optional[str] = opt(None, "Train only on this genre.", metavar="NAME"),
    set_: list[str] = opt([], "Change a model setting, e.g. d_model=384.", "--set", metavar="K=V"),
    batch_size: int = opt(16, "Examples per process per micro-batch.", metavar="N", advanced=True),
    grad_accum: int = opt(1, "Micro-batches per optimizer step.", metavar="N", advanced=True),
    lr: float = opt(5e-4, "Peak learning rate (then cosine).", metavar="LR", advanced=True),
    warmup: int = opt(300, "Warm-up steps.", metavar="N", advanced=True),
    val_every: int = opt(250, "Steps between validations.", metavar="N", advanced=True),
    save_every: int = opt(100, "Steps between saves of the state.", metavar="N", advanced=True),
    threads: int = opt(0, "CPU threads (0: PyTorch's choice).", metavar="N", advanced=True, show=False),
    workers: int = opt(0, "Data-loading worker processes.", metavar="N", advanced=True),
    seed: int = opt(0, "Random seed.", metavar="N", advanced=True),
):
    """Train the model on prepared shards (one process, or under torchrun --nproc_per_node N).
    --resume continues exactly (same data order and random state) after any interruption.

    Example: tatum train shards -o runs/small --preset small
    """
    from tatum.train import TrainConfig, train

    if minutes < 0:
        raise TatumError(f"--minutes {minutes:g}: give a positive time, or 0 to count --steps")
    if (out_dir / "state" / "latest.json").exists() and not resume:
        raise TatumError("holds a training run already; pass --resume to continue it, or pick another --out",
                         out_dir)
    cfg = TrainConfig(shards=str(shards), out=str(out_dir), preset=preset_name, init=init, artist=artist,
                      genre=genre, batch_size=batch_size, grad_accum=grad_accum, lr=lr, min_lr=lr / 10,
                      warmup=warmup, max_steps=steps, val_every=val_every, save_every=save_every,
                      threads=threads, workers=workers, seed=seed, model=_model_settings(set_),
                      budget_wall_s=60 * minutes)
    last = train(cfg)
    if last and os.environ.get("RANK", "0") == "0":
        console.print(f"step {last['step']}: loss {last['loss']:.3f}; checkpoint → {out_dir / 'checkpoint'}")


@app.command("finetune")
def finetune_cmd(
    shards: Path = typer.Argument(..., help="Shard folder that holds the pianist's pieces."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder (as for `tatum train`)."),
    artist: str = typer.Option(..., help='The pianist, e.g. "Art Tatum".'),
    base: str = typer.Option("tatum-note", help="Checkpoint to start from (folder or shipped name)."),
    steps: int = typer.Option(2000, help="Total optimizer steps."),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-4, help="Peak learning rate, lower than for training from scratch."),
    val_every: int = typer.Option(200),
    threads: int = typer.Option(0),
    lora_rank: int = typer.Option(0, help="Train rank-r adapters on a frozen model instead of all weights "
                                  "(0 = all weights). The exported checkpoint has them merged in."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last saved state."),
):
    """Fine-tune a model on one pianist's recordings, e.g. Art Tatum's PiJAMA tracks.

    Example: tatum finetune shards --artist "Art Tatum" -o runs/tatum
    """
    from tatum.model.checkpoint import resolve
    from tatum.train import TrainConfig, train

    if (out_dir / "state" / "latest.json").exists() and not resume:
        raise TatumError("holds a training run already; pass --resume to continue it", out_dir)
    cfg = TrainConfig(shards=str(shards), out=str(out_dir), init=str(resolve(base)), artist=artist,
                      batch_size=batch_size, lr=lr, min_lr=lr / 10, warmup=100, max_steps=steps,
                      val_every=val_every, save_every=100, threads=threads, lora_rank=lora_rank)
    if lora_rank < 0:
        raise TatumError("--lora-rank must be 0 (all weights) or a positive rank")
    last = train(cfg)
    if last and os.environ.get("RANK", "0") == "0":
        console.print(f"step {last['step']}: loss {last['loss']:.3f}; checkpoint → {out_dir / 'checkpoint'}")


# --------------------------------------------------------------------- real time
@app.command("jam", help=_help(
    "Jam live: improvise in real time to MIDI ports, audio or files; ? lists keys.\n\n"
    "Example: tatum jam --seconds 30 -o jam.mid --artist \"Art Tatum\""))
@generation_options("jam")
def jam_cmd(
    out_path: Optional[Path] = opt(None, "Record what is played to this file.", "--out", "-o", metavar="OUT.mid"),
    seconds: Optional[float] = opt(None, "Stop after S seconds (else Ctrl-C).", metavar="S"),
    wav: Optional[Path] = opt(None, "Also record the sound (FluidSynth).", metavar="OUT.wav"),
    png: Optional[Path] = opt(None, "Also a piano roll of what is played.", metavar="OUT.png"),
    audio: bool = opt(False, "Play the sound through JACK.", "--audio"),
    conditioning: options.Conditioning = None,
    mode: str = opt("solo", "solo, respond (when you pause), accompany.", metavar="MODE", show=False),
    sync: str = opt("free", "free (--bpm), link or midi-clock.", metavar="HOW"),
    bpm: float = opt(120.0, "Tempo when free (or offered to Link).", metavar="BPM"),
    sampling: options.Sampling = None,
    force: Force = False,
    gap_ms: int = opt(600, "respond: answer after this pause.", metavar="MS", advanced=True),
    chunk: float = opt(1.0, "Seconds per call to the model.", metavar="S", advanced=True),
    buffer: float = opt(2.0, "Seconds drawn ahead of the clock.", metavar="S", advanced=True),
    quantize: str = opt("auto", "off, 1/4, 1/8, 1/16, 1/32 or auto.", metavar="Q", advanced=True, show=False),
    no_ports: bool = opt(False, "Open no MIDI ports.", "--no-ports", advanced=True),
    midi_api: str = opt("auto", "alsa, jack or auto (ALSA first).", metavar="API", advanced=True, show=False),
    out_port: Optional[str] = opt(None, "Play into this existing port.", metavar="NAME", advanced=True),
    in_port: Optional[str] = opt(None, "Listen to this existing port.", metavar="NAME", advanced=True),
    clock_port: Optional[str] = opt(None, "midi-clock: read it from this port.", metavar="NAME", advanced=True),
    soundfont: Soundfont = None,
    engine: Engine = "fluidsynth",
    style_text: StyleText = "1950s solo piano recording",
    model: Model = None,
):
    from tatum.realtime.commands import run_jam

    check_outputs(out_path, png, wav)
    engine, mrt_size = engine_of(engine)
    run_jam(console, out=out_path, seconds=seconds, wav=wav, audio=audio, conditioning=conditioning,
            sampling=sampling, mode=mode, gap_ms=gap_ms, chunk=chunk, buffer=buffer, sync=sync, bpm=bpm,
            quantize=quantize, ports=not no_ports, midi_api=midi_api, out_port=out_port, in_port=in_port,
            clock_port=clock_port, model=model, soundfont=soundfont, force=force, engine=engine,
            style_text=style_text, mrt_size=mrt_size, png=png)


@app.command("serve")
def serve_cmd(
    host: str = opt("127.0.0.1", "Listen here (0.0.0.0: the network).", metavar="ADDR"),
    port: int = opt(8000, "Port to listen on.", metavar="N"),
    max_sessions: int = opt(4, "Jams at once; one more is refused.", metavar="N"),
    chunk: float = opt(1.0, "Seconds per call to the model.", metavar="S", advanced=True),
    buffer: float = opt(2.0, "Seconds drawn ahead of the clock.", metavar="S", advanced=True),
    soundfont: Soundfont = None,
    model: Model = None,
):
    """Jam in the browser: play / stop, style-mix sliders, pianist, temperature, top-k, guidance,
    density, a live piano roll and the sound (FastAPI + WebSocket).

    Example: tatum serve, then open http://127.0.0.1:8000/
    """
    from tatum.realtime.commands import run_serve

    run_serve(console, host=host, port=port, model=model, max_sessions=max_sessions, chunk=chunk, buffer=buffer,
              soundfont=soundfont)


def main(argv: list[str] | None = None) -> None:
    from tatum.cli_errors import click

    def fail(line: str) -> None:
        console.print(f"tatum: error: {line}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)

    try:
        app(args=argv, prog_name="tatum", standalone_mode=False)
    except TatumError as e:
        fail(str(e))
    except KeyboardInterrupt:
        console.print("tatum: interrupted")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:   # bare `tatum`: the help, then what is missing
        typer.echo(e.ctx.get_help())
        fail(no_verb_help(e))
    except click.exceptions.ClickException as e:
        fail(one_line(e))
    except typer.Abort:
        sys.exit(1)
    except (typer.Exit, SystemExit) as e:
        sys.exit(getattr(e, "exit_code", getattr(e, "code", 0)))


if __name__ == "__main__":
    main()

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

from tatum.errors import TatumError

app = typer.Typer(
    name="tatum",
    help="Controllable piano improvisation on MIDI: re-play a piece as jazz, harmonize, continue, infill; "
         "render and transcribe audio.",
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
def _style_arg(text: str | None) -> str | dict[str, float] | None:
    """"jazz" or "jazz:0.7,classical:0.3" → a name or a weighted mixture."""
    if text is None or ":" not in text:
        return text
    mix = {}
    for part in text.split(","):
        name, _, w = part.rpartition(":")
        try:
            mix[name.strip()] = float(w)
        except ValueError:
            raise TatumError(f"bad mixture {text!r}: write name:weight,name:weight") from None
    return mix


def _controls(value: str | None) -> int | str | None:
    if value is None or value in ("any", "source"):
        return None if value in (None, "any") else value
    try:
        return int(value)
    except ValueError:
        raise TatumError(f"a control is a bucket number, 'any' or 'source', not {value!r}") from None


class _Run:
    """Input checks, a progress bar over passes, and the outputs every generation verb writes."""

    def __init__(self, inp: Path, out_path: Path, force: bool, png: Optional[Path], total: int, label: str,
                 wav: Optional[Path] = None):
        from tatum.io import check_writable
        from tatum.notes import Notes

        self.out = check_writable(out_path, force)
        self.png = check_writable(png, force) if png else None
        self.wav = check_writable(wav, force) if wav else None
        if self.wav:
            from tatum.audio.render import find_soundfont

            find_soundfont()  # say so before the generation, not after it
        if self.out.resolve() == Path(inp).resolve():
            raise TatumError("output would replace the input; choose another -o", out_path)
        self.notes = Notes.from_midi(inp)
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

    def write(self, result, before=None) -> None:
        result.to_midi(self.out)
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


_SAMPLING_HELP = "Sampling temperature (lower = safer, higher = wilder)."

# Options every generation verb shares, defined once.
Out = Annotated[Path, typer.Option("--out", "-o", help="MIDI file to write.")]
Style = Annotated[str, typer.Option(help='Target style, or a mixture such as "jazz:0.7,classical:0.3".')]
Artist = Annotated[Optional[str], typer.Option(help='Play in the manner of this pianist, e.g. "Art Tatum" (or a '
                                               "mixture). Uses the Art Tatum model when present.")]
Temperature = Annotated[float, typer.Option(help=_SAMPLING_HELP)]
TopK = Annotated[int, typer.Option(help="Sample among the k likeliest tokens (0 = all).")]
Guidance = Annotated[float, typer.Option(
    help="Classifier-free guidance weight toward the style and the density/polyphony asked for "
         "(0 = off; 2 makes --density clearly stronger, at about twice the decode work).")]
Seed = Annotated[Optional[int], typer.Option(help="Make the run reproducible.")]
Model = Annotated[Optional[str], typer.Option(help="Checkpoint folder or shipped name (default: tatum-small).")]
Png = Annotated[Optional[Path], typer.Option(help="Also write a piano roll: original above, result below.")]
Wav = Annotated[Optional[Path], typer.Option(help="Also render the result to a WAV (48 kHz stereo, FluidSynth).")]
Force = Annotated[bool, typer.Option(help="Replace existing output files.")]
Candidates = Annotated[int, typer.Option(help="Decode K candidates per window in one batch and keep the one the "
                                         "classifiers score best for the style and pianist asked for (1 = off; "
                                         "about K times the decode work).")]


@app.command("improvise")
def improvise_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file to re-play.")],
    out_path: Out,
    style: Style = "jazz",
    artist: Artist = None,
    plan: str = typer.Option("improvnet", help="Passes: improvnet (ImprovNet's ten), light, free, or "
                             '"corruption:rate,..." e.g. "skyline:1,whole_mask:0.5".'),
    corruption: Optional[str] = typer.Option(None, help="Use only this corruption for every pass."),
    passes: Optional[int] = typer.Option(None, help="Number of passes (with --corruption, or cut the plan)."),
    rate: Optional[float] = typer.Option(None, help="Share of windows rewritten per pass (overrides the plan)."),
    context: int = typer.Option(5, help="Windows of context on each side."),
    keep_first: float = typer.Option(10.0, "--keep-first", help="Seconds at the start left untouched."),
    first: Optional[float] = typer.Option(None, help="Use only the first N seconds of the input."),
    preserve_structure: float = typer.Option(0.05, help="Share of windows at section boundaries kept as is."),
    keep_melody: bool = typer.Option(True, "--keep-melody/--free-melody",
                                     help="Skyline passes reharmonize the piece's own tune (recognisable), "
                                          "or reinvent it as ImprovNet does (freer)."),
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    top_p: float = typer.Option(1.0, help="Sample among the likeliest tokens that make up this probability."),
    guidance: Guidance = 0.0,
    density: Optional[str] = typer.Option(None, help="Note-density bucket 0–7, 'source' or 'any' (default)."),
    polyphony: Optional[str] = typer.Option(None, help="Polyphony bucket 0–5, 'source' or 'any' (default)."),
    seed: Seed = None,
    model: Model = None,
    candidates: Candidates = 1,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
):
    """Re-play a piece as jazz (or another style), in the manner of a pianist.

    Example: tatum improvise song.mid -o song-jazz.mid --artist "Art Tatum" --png song-jazz.png
    """
    from tatum.generate.tasks import _plan, improvise

    steps = _plan(plan, rate, passes, corruption)
    with _Run(inp, out_path, force, png, len(steps), "improvising", wav) as run:
        if first is not None:
            run.notes = run.notes.slice(0, first * 1000, clip=True)
        result = improvise(run.notes, plan, style=_style_arg(style), artist=_style_arg(artist), rate=rate, passes=passes,
                           corruption=corruption, context=(context, context), keep_first_s=keep_first,
                           preserve_structure=preserve_structure, temperature=temperature, top_k=top_k,
                           top_p=top_p, guidance=guidance, density=_controls(density),
                           polyphony=_controls(polyphony), seed=seed, keep_melody=keep_melody, model=model,
                           candidates=candidates, on_pass=run.on_pass)
    run.write(result)


@app.command("harmonize")
def harmonize_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file with a melody (one line; chords are reduced to the top).")],
    out_path: Out,
    style: Style = "jazz",
    artist: Artist = None,
    passes: int = typer.Option(5, help="Skyline passes."),
    chord_size: int = typer.Option(3, help="Notes forced under each melody note (the chord rule)."),
    chord_gap: int = typer.Option(600, help="Force chords only under melody notes at least this many ms apart, "
                                            "held at least as long (0: a chord under every note)."),
    polyphony: Optional[str] = typer.Option(None, help="Polyphony bucket 0–5 to keep chords from getting too thick."),
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    guidance: Guidance = 0.0,
    seed: Seed = None,
    model: Model = None,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
):
    """Put chords and accompaniment under a melody."""
    import warnings

    from tatum.generate.tasks import harmonize

    with _Run(inp, out_path, force, png, passes, "harmonizing", wav) as run:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = harmonize(run.notes, style=_style_arg(style), artist=_style_arg(artist), passes=passes,
                               chord_size=chord_size, chord_gap_ms=chord_gap, polyphony=_controls(polyphony),
                               temperature=temperature, top_k=top_k, guidance=guidance, seed=seed, model=model,
                               on_pass=run.on_pass)
    for w in caught:
        console.print(f"tatum: warning: {inp}: {w.message}", highlight=False, markup=False, soft_wrap=True)
    run.write(result)


@app.command("continue")
def continue_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file whose opening is the prompt.")],
    out_path: Out,
    prompt_seconds: Optional[float] = typer.Option(None, help="Use the first N seconds as the prompt (default: all)."),
    seconds: float = typer.Option(15.0, help="Seconds of new music."),
    style: Style = "jazz",
    artist: Artist = None,
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    guidance: Guidance = 2.0,
    density: str = typer.Option("source", help="Note-density bucket 0–7, 'any', or 'source': the prompt's."),
    polyphony: str = typer.Option("source", help="Polyphony bucket 0–5, 'any', or 'source': the prompt's."),
    seed: Seed = None,
    model: Model = None,
    candidates: Candidates = 1,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
):
    """Continue a piece: the prompt, then new music in its key, harmony and density."""
    import math

    from tatum.generate.tasks import continue_

    with _Run(inp, out_path, force, png, math.ceil(seconds / 5), "continuing", wav) as run:
        result = continue_(run.notes, seconds, style=_style_arg(style), artist=_style_arg(artist), prompt_seconds=prompt_seconds,
                           temperature=temperature, top_k=top_k, guidance=guidance, density=_controls(density),
                           polyphony=_controls(polyphony), seed=seed, model=model, candidates=candidates,
                           on_pass=run.on_pass)
    # the picture compares the continuation with its prompt, not with the whole input file
    run.write(result, before=None if prompt_seconds is None else run.notes.slice(0, prompt_seconds * 1000, clip=True))


@app.command("infill")
def infill_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file with a passage to replace.")],
    out_path: Out,
    start: float = typer.Option(..., help="Start of the passage, seconds."),
    end: float = typer.Option(..., help="End of the passage, seconds."),
    style: Style = "jazz",
    artist: Artist = None,
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    guidance: Guidance = 0.0,
    seed: Seed = None,
    model: Model = None,
    candidates: Candidates = 1,
    png: Png = None,
    wav: Wav = None,
    force: Force = False,
):
    """Fill in a passage with new music that joins what comes before and after."""
    import math

    from tatum.generate.tasks import infill

    with _Run(inp, out_path, force, png, max(1, math.ceil((end - start) / 5)), "infilling", wav) as run:
        result = infill(run.notes, start, end, style=_style_arg(style), artist=_style_arg(artist), temperature=temperature,
                        top_k=top_k, guidance=guidance, seed=seed, model=model, candidates=candidates,
                        on_pass=run.on_pass)
    run.write(result)


# ----------------------------------------------------------------------- audio
@app.command("render")
def render_cmd(
    inp: Annotated[Path, typer.Argument(metavar="IN.mid", help="MIDI file to play.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="WAV file to write (48 kHz, 16-bit stereo).")],
    soundfont: Optional[Path] = typer.Option(None, help="SF2/SF3 soundfont (default: $TATUM_SOUNDFONT or the "
                                             "system's General MIDI one, e.g. fluid-soundfont-gm)."),
    sample_rate: int = typer.Option(48_000, help="Sample rate in Hz."),
    engine: str = typer.Option("fluidsynth", help="fluidsynth (a General MIDI piano), or magenta: Magenta "
                               "RealTime 2 plays the notes as audio in --style-text (needs magenta-rt and its weights)."),
    style_text: str = typer.Option("1950s solo piano recording", help="magenta: the sound, in words."),
    mrt_size: str = typer.Option("mrt2_small", help="magenta: model size, mrt2_small or mrt2_base."),
    force: Force = False,
):
    """Play a MIDI file on a piano through FluidSynth into a WAV, sustain pedal included.

    Example: tatum render song-jazz.mid -o song-jazz.wav
             tatum render song-jazz.mid -o song-jazz.wav --engine magenta --style-text "1950s solo piano recording"
    """
    from tatum.audio.render import find_soundfont, read_midi_for_render, write_wav
    from tatum.io import check_writable

    check_writable(out_path, force)
    if sample_rate < 8000 or sample_rate > 192_000:
        raise TatumError(f"sample rate {sample_rate} Hz is outside 8000–192000")
    if engine not in ("fluidsynth", "magenta"):
        raise TatumError(f"unknown --engine {engine!r}; use fluidsynth or magenta")
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
    inp: Annotated[Path, typer.Argument(metavar="IN.wav", help="Piano recording: wav, flac, mp3, ogg or aiff.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="MIDI file to write.")],
    onset_threshold: float = typer.Option(0.6, help="How sure the model must be of an onset (0–1): higher "
                                          "gives fewer, surer notes."),
    frame_threshold: float = typer.Option(0.3, help="How long a note is held (0–1): lower holds notes longer."),
    min_note_ms: float = typer.Option(50.0, help="Drop notes shorter than this."),
    png: Png = None,
    force: Force = False,
):
    """Turn a piano recording into MIDI (basic-pitch, ONNX), with velocities, in the piano range.

    Long files are read in one-minute chunks, so memory stays bounded. Example:
    tatum transcribe idea.wav -o idea.mid
    """
    from tatum.audio.transcribe import transcribe
    from tatum.io import check_writable

    check_writable(out_path, force)
    if png:
        check_writable(png, force)
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


@app.command("pipeline")
def pipeline_cmd(
    inp: Annotated[Optional[Path], typer.Argument(metavar="IN", help="Audio (wav, flac, mp3, ogg) or MIDI with the idea.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for transcription.mid, "
                                          "improvisation.mid, improvisation.wav and before-after.png.")] = ...,
    style: Style = "jazz",
    artist: Artist = None,
    plan: str = typer.Option("improvnet", help="Passes, as for `tatum improvise`."),
    first: Optional[float] = typer.Option(None, help="Use only the first N seconds of the idea."),
    from_prompt: Optional[str] = typer.Option(None, "--from-prompt", help="Make the starting audio from this "
                                              "text with Magenta RealTime (needs magenta_rt and its weights)."),
    prompt_seconds: float = typer.Option(20.0, help="Seconds of audio to make with --from-prompt."),
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    guidance: Guidance = 0.0,
    seed: Seed = None,
    model: Model = None,
    soundfont: Optional[Path] = typer.Option(None, help="Soundfont for the WAV (default: the system's GM one)."),
    force: Force = False,
):
    """Audio idea → transcription → improvisation in a style → WAV and MIDI for the DAW.

    Example: tatum pipeline memo.wav --artist "Art Tatum" -o memo-tatum/
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from tatum.audio.pipeline import pipeline

    labels = {"prompt": "making audio (Magenta RT)", "transcribe": "transcribing (s)",
              "improvise": "improvising (passes)", "render": "rendering (s)", "plot": "piano roll"}
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
        res = pipeline(inp, out_dir, _style_arg(style), _style_arg(artist), from_prompt=from_prompt,
                       prompt_seconds=prompt_seconds, first_s=first, plan=plan, seed=seed, force=force,
                       soundfont=soundfont, on_stage=on_stage, temperature=temperature, top_k=top_k,
                       guidance=guidance, model=model)
    finally:
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
    task: str = typer.Option(..., help="continuation, infill, style-transfer or harmonize (ImprovNet's protocols)."),
    data: Optional[str] = typer.Option(None, help="SOURCE:SPLIT (pijama, pianolatron or pop909 under --data-root) "
                                       "or FOLDER:SPLIT. Default: pianolatron:val for style-transfer, else pijama:val."),
    n: int = typer.Option(8, "--n", help="Pieces, evenly spread through the split."),
    model: Model = None,
    artist: Artist = None,
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for results.json, results.md, "
                                           "curves.png, rolls/ and midi/ (default: eval-TASK)."),
    seed: int = typer.Option(0, help="Piece k is generated with seed + k."),
    candidates: Candidates = 1,
    seconds: Optional[float] = typer.Option(None, help="Excerpt length: style-transfer 60 s, harmonize 30 s."),
    data_root: Optional[Path] = typer.Option(None, help="Where pijama/, pianolatron/, pop909/ are "
                                             "(default: $TATUM_DATA or ../shared/data)."),
    pictures: bool = typer.Option(True, "--pictures/--no-pictures", help="Piano rolls and curves."),
    force: Force = False,
):
    """Run a task on N real pieces with fixed seeds and measure it as ImprovNet did; writes JSON, a
    markdown table beside ImprovNet's published figures, and pictures.

    Example: tatum evaluate --task continuation --data pijama:val --n 8 --out eval/continuation
    """
    from tatum.evaluate.protocols import Setup, evaluate
    from tatum.evaluate.report import write

    setup = Setup(task, data, n, model, artist, seed, candidates, seconds, data_root)
    out_dir = out_dir or Path(f"eval-{task}")
    if out_dir.exists() and not out_dir.is_dir():
        raise TatumError("exists and is not a folder", out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise TatumError("folder is not empty (use --force to write into it)", out_dir)
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
    files = write(ev, out_dir, pictures=pictures)
    typer.echo(open(files["markdown"], encoding="utf-8").read())
    console.print(f"{len(ev.pieces)} pieces → {out_dir}/ (results.json, results.md"
                  + (", curves.png, rolls/" if pictures else "") + ", midi/)", highlight=False, markup=False,
                  soft_wrap=True)


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
    shards: Path = typer.Argument(..., help="Shard folder from `tatum data prepare`."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Run folder: training state, log, loss.png, "
                                 "checkpoint/ (latest) and best/ (lowest validation loss)."),
    preset_name: str = typer.Option("small", "--preset", help="Model: tiny, small (CPU default) or paper "
                                    "(ImprovNet size) encoder–decoders, or note-tiny / note-small (NoteLM)."),
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
    set_: list[str] = typer.Option([], "--set", help="Change one model setting of the preset (or of --init), "
                                   "e.g. --set d_model=384 --set cross_bias=none. Repeatable."),
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
                      threads=threads, workers=workers, seed=seed, model=_model_settings(set_))
    last = train(cfg)
    if last and os.environ.get("RANK", "0") == "0":
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
@app.command("jam")
def jam_cmd(
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Record what is played to this MIDI "
                                                     "file (on the DAW's tempo map when synced).")] = None,
    seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)."),
    wav: Annotated[Optional[Path], typer.Option(help="Also record the sound (FluidSynth, 48 kHz stereo) to a WAV.")] = None,
    audio: bool = typer.Option(False, "--audio", help="Play the sound through JACK's outputs."),
    style: Style = "jazz",
    artist: Artist = None,
    mode: str = typer.Option("solo", help="solo; respond (answers when you pause); accompany (comps under you)."),
    gap_ms: int = typer.Option(600, help="respond: the pause after which tatum answers."),
    temperature: Temperature = 1.0,
    top_k: TopK = 50,
    top_p: float = typer.Option(1.0, help="Sample among the likeliest tokens that make up this probability."),
    guidance: Guidance = 0.0,
    density: Optional[str] = typer.Option(None, help="Note-density bucket 0–7, 'source' or 'any' (default)."),
    polyphony: Optional[str] = typer.Option(None, help="Polyphony bucket 0–5, 'source' or 'any' (default)."),
    seed: Seed = None,
    chunk: float = typer.Option(1.0, help="Seconds of music per call to the model (0.05–5)."),
    buffer: float = typer.Option(2.0, help="Seconds drawn ahead of the clock (at least one chunk)."),
    sync: str = typer.Option("free", help="free (tatum keeps --bpm), link (Ableton Link session) or "
                             "midi-clock (follow the DAW's MIDI clock on tatum-clock:clock)."),
    bpm: float = typer.Option(120.0, help="Tempo when free, and the tempo tatum proposes to a Link session."),
    quantize: str = typer.Option("auto", help="Snap onsets to the DAW's grid: auto (1/16 when synced), off, "
                                 "1/4, 1/8, 1/16 or 1/32."),
    ports: bool = typer.Option(True, "--ports/--no-ports", help="Open MIDI ports: tatum:out for the DAW, "
                               "tatum-in:in for your keyboard."),
    midi_api: str = typer.Option("auto", help="MIDI system: auto (ALSA if present, else JACK), alsa or jack."),
    out_port: Optional[str] = typer.Option(None, help="Play into this existing MIDI port (part of its name) "
                                           "instead of the virtual tatum:out."),
    in_port: Optional[str] = typer.Option(None, help="Listen to this existing MIDI port instead of tatum-in:in."),
    clock_port: Optional[str] = typer.Option(None, help="midi-clock: read the clock from this existing port."),
    model: Model = None,
    soundfont: Optional[Path] = typer.Option(None, help="Soundfont for --audio / --wav (default: the system's GM one)."),
    engine: str = typer.Option("fluidsynth", help="Sound for --audio / --wav: fluidsynth, or magenta (Magenta "
                               "RealTime 2 plays the notes in --style-text; needs magenta-rt, its weights and "
                               "an accelerator to keep up)."),
    style_text: str = typer.Option("1950s solo piano recording", help="magenta: the sound, in words."),
    mrt_size: str = typer.Option("mrt2_small", help="magenta: model size, mrt2_small or mrt2_base."),
    force: Force = False,
):
    """Jam live: tatum improvises in real time to MIDI ports (for a DAW), audio and files.

    Change nothing and it plays solo; play into tatum-in:in and it hears you (--mode respond /
    accompany). --sync link or midi-clock follows the DAW's tempo and starts on its next bar.

    Example: tatum jam --seconds 30 -o jam.mid --artist "Art Tatum"
    """
    from tatum.realtime.commands import run_jam

    run_jam(console, out=out_path, seconds=seconds, wav=wav, audio=audio, style=_style_arg(style),
            artist=_style_arg(artist), mode=mode, gap_ms=gap_ms, temperature=temperature, top_k=top_k, top_p=top_p,
            guidance=guidance, density=density, polyphony=polyphony, seed=seed, chunk=chunk, buffer=buffer,
            sync=sync, bpm=bpm, quantize=quantize, ports=ports, midi_api=midi_api, out_port=out_port,
            in_port=in_port, clock_port=clock_port, model=model, soundfont=soundfont, force=force, engine=engine,
            style_text=style_text, mrt_size=mrt_size)


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. The default is this machine only; "
                             "0.0.0.0 opens the page to the network."),
    port: int = typer.Option(8000, help="Port to listen on."),
    model: Model = None,
    max_sessions: int = typer.Option(4, help="Jams at once; one more is told the server is busy."),
    chunk: float = typer.Option(1.0, help="Seconds of music per call to the model."),
    buffer: float = typer.Option(2.0, help="Seconds drawn ahead of the clock (at least one chunk)."),
    soundfont: Optional[Path] = typer.Option(None, help="Soundfont for the sound (default: the system's GM one)."),
):
    """Jam in the browser: a page with play / stop, style-mix sliders, pianist, temperature, top-k,
    guidance, density, a live piano roll and the sound (FastAPI + WebSocket).

    Example: tatum serve, then open http://127.0.0.1:8000/
    """
    from tatum.realtime.commands import run_serve

    run_serve(console, host=host, port=port, model=model, max_sessions=max_sessions, chunk=chunk, buffer=buffer,
              soundfont=soundfont)


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

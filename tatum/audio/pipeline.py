"""The audio-idea workflow: recording (or MIDI, or a text prompt) → transcription → improvisation →
rendered audio, with the MIDI and a before/after piano roll for the DAW."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tatum.errors import TatumError
from tatum.notes import Notes, is_midi_path

OUTPUTS = {"transcription": "transcription.mid", "improvisation": "improvisation.mid",
           "wav": "improvisation.wav", "png": "before-after.png", "prompt": "prompt.wav"}

# (stage, done, total): stages are "prompt", "transcribe", "improvise", "render", "plot"
OnStage = Callable[[str, float, float], None]


@dataclass
class PipelineResult:
    source: Notes
    result: Notes
    files: dict[str, Path]


def planned_outputs(inp: str | os.PathLike | None, out_dir: str | os.PathLike,
                    from_prompt: bool = False) -> dict[str, Path]:
    """The files a run will write into `out_dir` (the transcription only for audio input)."""
    names = ["improvisation", "wav", "png"]
    if from_prompt:
        names = ["prompt", "transcription"] + names
    elif inp is not None and not is_midi_path(inp):
        names = ["transcription"] + names
    return {k: Path(out_dir) / OUTPUTS[k] for k in names}


def pipeline(inp: str | os.PathLike | None, out_dir: str | os.PathLike, style=None, artist=None, *,
             from_prompt: str | None = None, prompt_seconds: float = 20.0, first_s: float | None = None,
             plan: str | None = None, seed: int | None = None, force: bool = False,
             soundfont: str | os.PathLike | None = None, on_stage: OnStage | None = None,
             **improvise_kw) -> PipelineResult:
    """Run the whole workflow and write its files into `out_dir`; nothing there is replaced unless
    `force`. `inp` is an audio file or a MIDI file; with `from_prompt`, Magenta RealTime makes the
    audio and `inp` is None. `style`, `artist`, `seed` and `improvise_kw` go to `improvise` (None: its
    defaults)."""
    from tatum.audio.render import find_soundfont, write_wav
    from tatum.audio.transcribe import transcribe
    from tatum.generate.tasks import improvise, improvise_steps, plan_for
    from tatum.options import resolve
    from tatum.io import atomic_output, check_writable
    from tatum.plot import piano_roll

    if (inp is None) == (from_prompt is None):
        raise TatumError("give either an input file or --from-prompt")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise TatumError("is a file; give a folder for the outputs", out_dir)
    files = planned_outputs(inp, out_dir, from_prompt is not None)
    for p in files.values():
        check_writable(p, force)
    find_soundfont(soundfont)  # fail before minutes of work, not after
    stage = on_stage or (lambda *a: None)

    audio_in = None
    if from_prompt is not None:
        import soundfile as sf

        from tatum.audio.magenta import prompt_audio

        stage("prompt", 0, prompt_seconds)
        audio, rate = prompt_audio(from_prompt, prompt_seconds, seed=seed)
        with atomic_output(files["prompt"]) as tmp:
            sf.write(tmp, audio, rate, subtype="PCM_16")
        stage("prompt", prompt_seconds, prompt_seconds)
        audio_in = files["prompt"]
    elif not is_midi_path(inp):
        audio_in = Path(inp)

    if audio_in is not None:
        source = transcribe(audio_in, end_s=first_s,
                            on_progress=lambda done, total: stage("transcribe", done, total))
        source.to_midi(files["transcription"])
    else:
        source = Notes.from_midi(inp)
    if first_s is not None:
        source = source.slice(0, first_s * 1000, clip=True)

    if plan is None:        # as improvise names it, from the conditioning it will run with
        asked = resolve("improvise", improvise_kw.get("conditioning"), None,
                        **({} if artist is None else {"artist": artist}))[0].artist
        plan = plan_for(asked, improvise_kw.get("corruption"), improvise_kw.get("rate"), improvise_kw.get("passes"),
                        improvise_kw.get("keep_melody", True))
    steps = improvise_steps(source, plan, improvise_kw.get("rate"), improvise_kw.get("passes"),
                            improvise_kw.get("corruption"), improvise_kw.get("keep_first_s"))
    stage("improvise", 0, steps)
    given = {k: v for k, v in (("style", style), ("artist", artist), ("seed", seed)) if v is not None}
    result = improvise(source, plan, **given,
                       on_pass=lambda k, n: stage("improvise", k + 1, steps), **improvise_kw)
    result.to_midi(files["improvisation"])

    total = result.duration_s
    write_wav(files["wav"], result, soundfont, on_progress=lambda s: stage("render", min(s, total), total))
    stage("plot", 0, 1)
    piano_roll(files["png"], result, source, titles=("before", "after"))
    stage("plot", 1, 1)
    return PipelineResult(source, result, files)

"""Audio out and in: FluidSynth rendering, basic-pitch transcription, and the audio → MIDI →
improvisation pipeline, on MIDI made here, a Bach chorale and PiJAMA val files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tatum.audio import render as render_mod
from tatum.audio import transcribe as tr
from tatum.audio.render import find_soundfont, read_midi_for_render, render, write_wav
from tatum.errors import TatumError
from tatum.notes import Notes

from test_generate import error_line

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tatum(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=600)


def onset_f1(ref: Notes, est: Notes) -> float:
    import mir_eval

    iv = lambda n: np.stack([n.onset_ms, n.onset_ms + n.dur_ms], 1) / 1000.0  # noqa: E731
    hz = lambda n: mir_eval.util.midi_to_hz(n.pitch.astype(float))  # noqa: E731
    return mir_eval.transcription.precision_recall_f1_overlap(iv(ref), hz(ref), iv(est), hz(est),
                                                              onset_tolerance=0.05, offset_ratio=None)[2]


def rms(a: np.ndarray, t0: float, t1: float, sr: int = 48_000) -> float:
    seg = a[int(t0 * sr):int(t1 * sr)]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def chorale_wav(chorale, tmp_path_factory) -> tuple[Path, Notes]:
    """The first 20 s of BWV 66.6 rendered to WAV, with the notes it was rendered from."""
    notes = Notes.from_midi(chorale[0]).slice(0, 20_000, clip=True)
    path = tmp_path_factory.mktemp("audio") / "chorale.wav"
    write_wav(path, notes)
    return path, notes


# ------------------------------------------------------------------ render
def test_render_is_48k_stereo_sounding_while_the_notes_do(make_midi):
    notes = Notes.from_midi(make_midi([{"notes": [(0, 960, 60, 90), (960, 960, 64, 90), (1920, 960, 67, 90)]}]))
    a = render(notes)  # one second each at 120 bpm
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 2
    assert 3.0 <= len(a) / 48_000 <= 3.0 + render_mod.TAIL_S
    assert rms(a, 0.1, 2.9) > 0.01, "the notes are audible"
    assert np.abs(a).max() < 1.0, "no clipping"
    assert rms(a, 0.0, 0.0005) < rms(a, 0.1, 0.3), "silence before the first onset"
    assert not np.allclose(a[:, 0], a[:, 1]), "stereo, not two copies of mono"


def test_the_sustain_pedal_holds_notes_after_their_release(make_midi, tmp_path):
    short = [(0, 120, 60, 100), (0, 120, 64, 100)]
    dry, wet = tmp_path / "dry.mid", tmp_path / "wet.mid"
    dry.write_bytes(make_midi([{"notes": short}]))
    wet.write_bytes(make_midi([{"notes": short, "controls": [(0, 64, 127), (960, 64, 0)]}]))
    (nd, pd), (nw, pw) = read_midi_for_render(dry), read_midi_for_render(wet)
    assert len(pd) == 0 and pw.tolist() == [[0.0, 1000.0]]
    assert nw.dur_ms.tolist() == nd.dur_ms.tolist() == [125, 125], "notes keep their written length"
    a_dry, a_wet = render(nd, pedal_ms=pd), render(nw, pedal_ms=pw)
    # 0.3–0.9 s: the keys are up; only the pedal keeps the strings sounding
    assert rms(a_wet, 0.3, 0.9) > 5 * rms(a_dry, 0.3, 0.9)
    assert rms(a_wet, 1.6, 2.0) < 0.2 * rms(a_wet, 0.3, 0.9), "released with the pedal"


def test_render_is_deterministic_and_blocks_join_exactly(chorale):
    notes = Notes.from_midi(chorale[0]).slice(0, 4_000, clip=True)
    a, b = render(notes), render(notes)
    assert np.array_equal(a, b)
    blocks = list(render_mod.render_blocks(notes))
    assert all(len(x) == render_mod.BLOCK for x in blocks[:-1])


def test_render_cli_writes_a_wav_and_keeps_existing_files(chorale, tmp_path):
    out = tmp_path / "c.wav"
    r = tatum("render", chorale[0], "-o", out)
    assert r.returncode == 0, r.stderr[-2000:]
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (48_000, 2, "PCM_16", "WAV")
    midi_s = Notes.from_midi(chorale[0]).end_ms / 1000
    assert midi_s <= info.duration <= midi_s + render_mod.TAIL_S + 1
    before = out.read_bytes()
    line = error_line(tatum("render", chorale[0], "-o", out))
    assert "--force" in line and out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.wav"], "no temporary files left behind"


def test_missing_soundfont_says_how_to_install_one(chorale, tmp_path, monkeypatch):
    monkeypatch.setattr(render_mod, "SOUNDFONT_PATHS", (str(tmp_path / "none.sf2"),))
    monkeypatch.delenv("TATUM_SOUNDFONT", raising=False)
    with pytest.raises(TatumError, match="apt-get install fluid-soundfont-gm"):
        find_soundfont()
    line = error_line(tatum("render", chorale[0], "-o", tmp_path / "x.wav", "--soundfont", tmp_path / "no.sf2"))
    assert "soundfont not found" in line
    line = error_line(tatum("render", chorale[0], "-o", tmp_path / "x.wav",
                            env=ENV | {"TATUM_SOUNDFONT": str(tmp_path / "gone.sf2")}))
    assert "TATUM_SOUNDFONT" in line
    (tmp_path / "bad.sf2").write_bytes(b"not a soundfont at all")
    line = error_line(tatum("render", chorale[0], "-o", tmp_path / "x.wav", "--soundfont", tmp_path / "bad.sf2"))
    assert "not a readable soundfont" in line
    assert not (tmp_path / "x.wav").exists()


def test_render_of_a_bad_midi_file_is_one_error_line(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    assert "bad.mid" in error_line(tatum("render", tmp_path / "bad.mid", "-o", tmp_path / "x.wav"))


# -------------------------------------------------------------- transcribe
def test_transcription_of_a_rendered_chorale_finds_its_notes(chorale_wav):
    path, ref = chorale_wav
    est = tr.transcribe(path)
    assert onset_f1(ref, est) >= 0.8
    assert est.pitch.min() >= 21 and est.pitch.max() <= 108
    assert 1 <= est.velocity.min() and est.velocity.max() <= 127 and len(np.unique(est.velocity)) > 5


def test_chunked_reading_loses_and_doubles_nothing_at_chunk_borders(chorale_wav, monkeypatch):
    path, ref = chorale_wav
    whole = tr.transcribe(path)
    monkeypatch.setattr(tr, "CHUNK_S", 3.0)  # seven chunk borders in 22 s
    monkeypatch.setattr(tr, "MARGIN_S", 2.0)
    calls = []
    chunked = tr.transcribe(path, on_progress=lambda done, total: calls.append((done, total)))
    total = sf.info(str(path)).duration
    assert len(calls) == int(np.ceil(total / 3.0)) and calls[-1] == (pytest.approx(total), pytest.approx(total))
    assert onset_f1(whole, chunked) >= 0.95
    assert abs(len(chunked) - len(whole)) <= 0.03 * len(whole)


def _tones_wav(path: Path, minutes: float, sr: int = 48_000) -> None:
    """One decaying tone a second, climbing through two octaves, written a second at a time."""
    t = np.arange(sr) / sr
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for s in range(int(60 * minutes)):
            tone = 0.3 * np.exp(-4 * t) * np.sin(2 * np.pi * 440 * 2 ** ((s % 24 - 12) / 12) * t)
            f.write(np.stack([tone, tone], 1).astype(np.float32))


def test_a_long_recording_is_transcribed_in_bounded_memory(chorale_wav, tmp_path):
    """Peak memory does not grow with the recording's length: 6 minutes of 48 kHz stereo (138 MB as
    float32) take no more than 2 minutes do."""
    import tracemalloc

    tr.transcribe(chorale_wav[0])  # imports and the ONNX session are not part of the measure
    peaks, found = [], []
    for minutes in (2, 6):
        _tones_wav(tmp_path / f"{minutes}.wav", minutes)
        tracemalloc.start()
        try:
            notes = tr.transcribe(tmp_path / f"{minutes}.wav")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        found.append(notes)
    assert peaks[1] < 1.15 * peaks[0] and peaks[1] < 60e6, [f"{p / 1e6:.0f} MB" for p in peaks]
    a4 = found[1].onset_ms[found[1].pitch == 69]  # A4 sounds every 24 s from second 12, in every chunk
    assert len(a4) == 15 and np.all(np.abs(a4 - (12_000 + 24_000 * np.arange(15))) < 60)


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_compressed_formats_transcribe_like_the_wav(chorale_wav, tmp_path, fmt):
    path, ref = chorale_wav
    a, sr = sf.read(str(path), dtype="float32")
    other = tmp_path / f"chorale.{fmt}"
    sf.write(str(other), a[: 10 * sr], sr, format=fmt.upper() if fmt != "ogg" else "OGG")
    est = tr.transcribe(other)
    assert onset_f1(ref.slice(0, 9_500), est.slice(0, 9_500)) >= 0.75


def test_transcribe_cli_and_its_errors(chorale_wav, tmp_path):
    path, ref = chorale_wav
    out = tmp_path / "t.mid"
    r = tatum("transcribe", path, "-o", out, "--png", tmp_path / "t.png")
    assert r.returncode == 0, r.stderr[-2000:]
    assert onset_f1(ref, Notes.from_midi(out)) >= 0.8
    assert (tmp_path / "t.png").read_bytes().startswith(PNG_MAGIC)

    silence = tmp_path / "silence.wav"
    sf.write(str(silence), np.zeros((48_000 * 3, 2), np.float32), 48_000)
    assert "no notes found" in error_line(tatum("transcribe", silence, "-o", tmp_path / "s.mid"))
    assert not (tmp_path / "s.mid").exists(), "nothing written for silence"

    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    assert "not a readable audio file" in error_line(tatum("transcribe", fake, "-o", tmp_path / "f.mid"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "unsupported audio format" in error_line(tatum("transcribe", text, "-o", tmp_path / "f.mid"))
    assert "no such file" in error_line(tatum("transcribe", tmp_path / "gone.wav", "-o", tmp_path / "f.mid"))
    assert not (tmp_path / "f.mid").exists()


def test_a_truncated_mp3_is_an_error_or_its_readable_part(chorale_wav, tmp_path):
    path, _ = chorale_wav
    a, sr = sf.read(str(path), dtype="float32")
    mp3 = tmp_path / "c.mp3"
    sf.write(str(mp3), a, sr, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    r = tatum("transcribe", cut, "-o", tmp_path / "cut.mid")
    if r.returncode == 0:
        assert Notes.from_midi(tmp_path / "cut.mid").duration_s < 12
    else:
        error_line(r)


def test_round_trip_of_a_pijama_val_piece(pijama_val_files, tmp_path):
    """The issue's measure on one real jazz performance: render 40 s, transcribe, onset F1 ≥ 0.7."""
    notes, pedal = read_midi_for_render(pijama_val_files[5])
    t0 = notes.start_ms + 20_000
    notes = notes.slice(t0, t0 + 40_000, clip=True).shift(-t0)
    pedal = pedal[(pedal[:, 0] >= t0) & (pedal[:, 0] < t0 + 40_000)] - t0
    write_wav(tmp_path / "p.wav", notes, pedal_ms=pedal)
    assert onset_f1(notes, tr.transcribe(tmp_path / "p.wav")) >= 0.7


# ---------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from tatum.model.checkpoint import save_checkpoint
    from tatum.model.config import preset
    from tatum.model.transformer import Seq2Seq
    from tatum.tokenizer import Tokenizer

    tok = Tokenizer.default()
    torch.manual_seed(0)
    return save_checkpoint(Seq2Seq(preset("tiny", tok.vocab_size)), tok, tmp_path_factory.mktemp("m") / "tiny")


def test_pipeline_from_a_wav_writes_its_four_outputs(chorale_wav, tiny_model, tmp_path):
    path, ref = chorale_wav
    out = tmp_path / "run"
    r = tatum("pipeline", path, "-o", out, "--model", tiny_model, "--plan", "light", "--seed", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["before-after.png", "improvisation.mid", "improvisation.wav", "transcription.mid"]
    assert onset_f1(ref, Notes.from_midi(out / "transcription.mid")) >= 0.8
    result = Notes.from_midi(out / "improvisation.mid")
    assert len(result) and result.duration_s > 15
    assert sf.info(str(out / "improvisation.wav")).duration >= result.end_ms / 1000
    assert (out / "before-after.png").read_bytes().startswith(PNG_MAGIC)
    for stage in ("transcribing", "improvising", "rendering"):
        assert stage in r.stderr
    # a second run refuses to replace the first one's files, before doing any work
    stamp = {p.name: p.read_bytes() for p in out.iterdir()}
    line = error_line(tatum("pipeline", path, "-o", out, "--model", tiny_model, "--plan", "light"))
    assert "--force" in line
    assert stamp == {p.name: p.read_bytes() for p in out.iterdir()}


def test_pipeline_from_midi_skips_transcription(chorale, tiny_model, tmp_path):
    r = tatum("pipeline", chorale[0], "-o", tmp_path / "run", "--model", tiny_model, "--plan", "light")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "before-after.png", "improvisation.mid", "improvisation.wav"]


def test_pipeline_of_silence_says_so_and_writes_nothing(tiny_model, tmp_path):
    silence = tmp_path / "quiet.flac"
    sf.write(str(silence), np.zeros((44_100 * 2, 1), np.float32), 44_100)
    assert "no notes found" in error_line(tatum("pipeline", silence, "-o", tmp_path / "run", "--model", tiny_model))
    assert not (tmp_path / "run").exists()


MOCK_MAGENTA = '''
import numpy as np

class Waveform:
    def __init__(self, samples, sample_rate):
        self.samples, self.sample_rate = samples, sample_rate

class MagentaRT:
    """Stands in for magenta_rt.system.MagentaRT: 2 s stereo chunks of piano-like tones."""
    def __init__(self, tag="large", lazy=True, **kw):
        pass
    def embed_style(self, text):
        return np.ones(768, np.float32)
    def generate_chunk(self, state=None, style=None, seed=None, **kw):
        i = 0 if state is None else state
        t = np.arange(96000) / 48000.0
        out = np.zeros(96000, np.float32)
        for k, pitch in enumerate((60, 64, 67, 72)):
            t0 = 0.2 + 0.45 * k
            on = (t >= t0) & (t < t0 + 0.4)
            f = 440.0 * 2 ** ((pitch + 2 * i - 69) / 12)
            out += on * 0.3 * np.exp(-3 * (t - t0)) * np.sin(2 * np.pi * f * t)
        return Waveform(np.stack([out, out], 1), 48000), i + 1
'''


def test_from_prompt_without_magenta_rt_says_what_to_install(tiny_model, tmp_path):
    line = error_line(tatum("pipeline", "--from-prompt", "stride piano", "-o", tmp_path / "run",
                            "--model", tiny_model))
    assert "magenta-rt" in line and "weights" in line
    assert not (tmp_path / "run").exists()


def test_from_prompt_drives_the_magenta_rt_api(tiny_model, tmp_path):
    pkg = tmp_path / "fake" / "magenta_rt"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "system.py").write_text(MOCK_MAGENTA)
    env = ENV | {"PYTHONPATH": str(tmp_path / "fake")}
    r = tatum("pipeline", "--from-prompt", "stride piano", "--prompt-seconds", 12, "-o", tmp_path / "run",
              "--model", tiny_model, "--plan", "light", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sf.info(str(tmp_path / "run" / "prompt.wav")).duration == pytest.approx(12.0)
    heard = Notes.from_midi(tmp_path / "run" / "transcription.mid")
    assert {60, 64, 67, 72, 62, 66, 69, 74} <= set(heard.pitch.tolist()), "chunks 0 and 1 are heard"


def test_generation_verbs_write_a_wav(chorale, tiny_model, tmp_path):
    r = tatum("improvise", chorale[0], "-o", tmp_path / "i.mid", "--wav", tmp_path / "i.wav", "--model",
              tiny_model, "--plan", "light", "--seed", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    n = Notes.from_midi(tmp_path / "i.mid")
    assert sf.info(str(tmp_path / "i.wav")).duration >= n.end_ms / 1000

"""`tatum jam` from the command line: a headless jam with the shipped model writes what it played;
every mistake is one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tatum.notes import Notes

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONUNBUFFERED": "1", "COLUMNS": "100"}


def tatum(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_a_headless_jam_with_the_shipped_model_writes_midi_and_wav(tmp_path):
    pytest.importorskip("fluidsynth")
    r = tatum("jam", "--seconds", 4, "-o", tmp_path / "jam.mid", "--wav", tmp_path / "jam.wav", "--no-ports",
              "--seed", 1, "--artist", "Art Tatum")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "s jammed:" in r.stderr and str(tmp_path / "jam.mid") in r.stderr
    notes = Notes.from_midi(tmp_path / "jam.mid")
    assert len(notes) > 0 and notes.start_ms >= 0 and notes.onset_ms.max() < 4000
    assert all(21 <= p <= 108 for p in notes.pitch)
    import soundfile as sf

    info = sf.info(str(tmp_path / "jam.wav"))
    assert info.samplerate == 48_000 and info.channels == 2 and info.duration >= 3.5


@pytest.mark.parametrize("args, words", [
    (["--sync", "nope"], "unknown --sync 'nope'"),
    (["--quantize", "1/3"], "--quantize takes auto, off or 1/4"),
    (["--seconds", "-1"], "--seconds must be more than 0"),
    (["--chunk", "9"], "--chunk must be 0.05–5 seconds"),
    (["--chunk", "2", "--buffer", "1"], "--buffer must hold at least one chunk"),
    (["--bpm", "1000"], "tempo must be 20–400 bpm, not 1000"),
    (["--mode", "duet"], "unknown jam mode 'duet'"),
    (["--engine", "organ"], "unknown --engine 'organ'"),
    (["--temperature", "nan"], "temperature must be a number"),
    (["--no-ports"], "nothing to play to"),
])
def test_jam_mistakes_are_one_line_and_exit_code_2(tmp_path, args, words):
    r = tatum("jam", *args, *([] if args == ["--no-ports"] else ["-o", tmp_path / "x.mid", "--no-ports"]))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("tatum: error:") and words in lines[0], lines[0]
    assert not (tmp_path / "x.mid").exists()


def test_jam_does_not_overwrite_without_force(tmp_path):
    (tmp_path / "x.mid").write_bytes(b"mine")
    r = tatum("jam", "-o", tmp_path / "x.mid", "--seconds", 1, "--no-ports")
    assert r.returncode == 2 and "exists already" in r.stderr and (tmp_path / "x.mid").read_bytes() == b"mine"


def test_serve_mistakes_are_one_line_and_exit_code_2():
    for args, words in ((["--port", "0"], "--port must be 1–65535"), (["--host", "no.such.host.invalid"], "unknown host"),
                        (["--max-sessions", "0"], "--max-sessions must be 1–64")):
        r = tatum("serve", *args, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr

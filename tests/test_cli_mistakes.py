"""Issue 17, items 2 and 5, through the real command: every mistake is one line on stderr and exit code
2 (the option parser's own too), numbers are range-checked, an output named for something else than
what is written is refused, `tatum --version`; and each verb's --help fits a screen at 80 columns,
lists the styles and pianists, and offers the same sampling and conditioning options as every other."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import daw_song
from tatum import __version__
from tatum.options import SPECS, vocabulary

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "80", "PYTHONUNBUFFERED": "1"}
VERBS = ["improvise", "harmonize", "continue", "infill", "render", "transcribe", "pipeline", "classify",
         "evaluate", "train", "finetune", "jam", "serve", "data prepare", "data stats"]
GENERATION = ["improvise", "harmonize", "continue", "infill", "pipeline", "jam"]


def tatum(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """Exit 2, and stderr is exactly one `tatum: error:` line: no traceback, no warning, no help."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("tatum: error: "), r.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mistakes")
    (d / "song.mid").write_bytes(daw_song(64, 96))     # 40 s, two piano tracks and drums
    corrupt = bytearray((d / "song.mid").read_bytes())
    corrupt[12:14] = struct.pack(">H", 0)            # 0 ticks per quarter note: no time at all
    (d / "corrupt.mid").write_bytes(bytes(corrupt))
    (d / "junk.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVEjunk")   # a header and no audio
    return {"dir": d, "song": d / "song.mid", "corrupt": d / "corrupt.mid", "out": d / "out.mid"}


# (arguments, words the one error line must hold); {song}, {out}, {dir} are filled in.
MISTAKES = [
    (["improvise", "{song}", "-o", "{out}", "--bogus"], "tatum improvise has no option --bogus"),
    (["improvise", "{song}", "-o", "{out}", "--temprature", "2"], "did you mean --temperature?"),
    (["improvise", "{song}"], "tatum improvise needs -o/--out"),
    (["improvise"], "tatum improvise needs IN.mid"),
    (["improvize", "{song}", "-o", "{out}"], "no verb 'improvize'; did you mean 'improvise'?"),
    (["data", "prepar", "x"], "no verb 'prepar'; did you mean 'prepare'?"),
    (["improvise", "{song}", "-o", "{out}", "--seed", "x"], "--seed takes a whole number"),
    (["improvise", "{song}", "-o", "{out}", "--temperature", "hot"], "--temperature takes a number"),
    (["improvise", "{song}", "-o", "{out}", "--seed"], "--seed needs a value"),
    (["improvise", "{song}", "-o", "{out}", "--top-p", "0"], "--top-p must be 0.01–1, not 0"),
    (["improvise", "{song}", "-o", "{out}", "--guidance", "-1"], "--guidance must be 0–10, not -1"),
    (["improvise", "{song}", "-o", "{out}", "--plan", "replay", "--guide", "4"], "--guide must be 0–3, not 4"),
    (["improvise", "{song}", "-o", "{out}", "--plan", "replai"], "unknown plan or corruption 'replai'; plans: improvnet, light, free, replay"),
    (["evaluate", "--task", "continuation", "--plan", "replay"], "--plan is style-transfer's"),
    (["improvise", "{song}", "-o", "{out}", "--top-k", "-1"], "--top-k must be 0–2000, not -1"),
    (["improvise", "{song}", "-o", "{out}", "--temperature", "nan"], "--temperature must be a number"),
    (["infill", "{song}", "-o", "{out}", "--start", "5", "--end", "10", "--density", "9"],
     "--density bucket must be 0–7"),
    (["continue", "{song}", "-o", "{out}", "--prompt-seconds", "100"],
     "--prompt-seconds 100 is past the end of the piece (40"),
    (["continue", "{song}", "-o", "{out}", "--seconds", "0"], "--seconds must be more than 0"),
    (["improvise", "{song}", "-o", "{out}", "--first", "-5"], "--first must be more than 0, not -5"),
    (["improvise", "{song}", "-o", "{dir}/out.wav"], "-o writes MIDI, so its name must end in .mid"),
    (["improvise", "{song}", "-o", "{out}", "--png", "{dir}/roll.jpg"], "--png writes a PNG picture"),
    (["improvise", "{song}", "-o", "{out}", "--wav", "{dir}/out.mp3"], "--wav writes WAV audio"),
    (["render", "{song}", "-o", "{dir}/out.mid"], "-o writes WAV audio"),
    (["transcribe", "{dir}/memo.wav", "-o", "{dir}/memo.wav.txt"], "-o writes MIDI"),
    (["improvise", "{song}", "-o", "{out}", "--style", "jaz"], "unknown style 'jaz'; did you mean 'jazz'?"),
    (["improvise", "{song}", "-o", "{out}", "--artist", "Art Tatem"],
     "unknown pianist 'Art Tatem'; did you mean 'Art Tatum'?"),
    (["improvise", "{song}", "-o", "{out}", "--style", "jazz:x"], "bad mixture"),
    (["improvise", "{song}", "-o", "{out}", "--plan", "skyline:1,drop_bass:.5"], "unknown plan or corruption 'drop_bass'"),
    (["harmonize", "{song}", "-o", "{out}", "--chord-size", "0"], "--chord-size must be 1–10"),
    (["improvise", "{corrupt}", "-o", "{out}"], "0 ticks per quarter note"),
    (["improvise", "{dir}/none.mid", "-o", "{out}"], "no such file"),
    # an audio input is checked before the progress bar starts (once: a bar line, or a blank line, first)
    (["transcribe", "{dir}/none.wav", "-o", "{out}"], "none.wav: no such file"),
    (["transcribe", "{dir}/junk.wav", "-o", "{out}"], "junk.wav: not a readable audio file"),
    (["pipeline", "{dir}/none.wav", "-o", "{dir}/piped"], "none.wav: no such file"),
]


@pytest.mark.parametrize("args, words", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_each_mistake_is_one_line_and_exit_code_2(files, args, words):
    r = tatum(*[a.format(**files) for a in args])
    line = one_error_line(r)
    assert words in line, line
    assert not files["out"].exists() and not list(files["dir"].glob("out.*"))


def test_bare_tatum_shows_the_verbs_and_says_one_line():
    r = tatum()
    assert "improvise" in r.stdout and "harmonize" in r.stdout
    assert "a verb" in one_error_line(r)


def test_version():
    r = tatum("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tatum {__version__}"


def test_infill_takes_density_as_the_readme_says(files, tmp_path):
    """The README's `tatum infill … --density 5` (once: infill had no --density)."""
    r = tatum("infill", files["song"], "-o", tmp_path / "filled.mid", "--start", 10, "--end", 15, "--density", 5,
              "--top-p", 0.9, "--seed", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr
    assert (tmp_path / "filled.mid").exists()


# ------------------------------------------------------------------ help
@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {v: tatum(*v.split(), "--help").stdout for v in VERBS + [""]}


@pytest.mark.parametrize("verb", VERBS + [""])
def test_help_fits_a_screen_at_80_columns(helps, verb):
    lines = helps[verb].rstrip().splitlines()
    assert 5 < len(lines) <= 50, f"{verb} --help: {len(lines)} lines"
    assert max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("verb", GENERATION)
def test_generation_verbs_list_styles_and_pianists_and_share_every_option(helps, verb):
    text = " ".join(helps[verb].split())
    genres, artists = vocabulary()
    assert f"Styles: {', '.join(genres)}." in text
    assert all(a in text for a in artists)
    assert all(s.flag in text for s in SPECS.values()), [s.flag for s in SPECS.values() if s.flag not in text]
    assert "Advanced" in text and "Example: tatum" in text


def test_help_says_only_what_applies(helps):
    assert "before" not in helps["transcribe"].split("--png", 1)[1].splitlines()[0]   # no "original above"
    assert "before-after.png" in " ".join(helps["pipeline"].split())
    for verb in GENERATION:   # guidance speaks of controls only where the verb has them
        assert "--density" in helps[verb] and "--polyphony" in helps[verb]

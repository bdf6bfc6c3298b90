"""Shared fixtures: small MIDI files built with symusic (and one hand-assembled type-0 file), a Bach
chorale from the music21 corpus, and the PiJAMA files of the shared data folder when it is there."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# ------------------------------------------------------------------ builders
def build_midi(tracks, tempos=((0, 120.0),), timesigs=((0, 4, 4),), tpq=480) -> bytes:
    """A type-1 MIDI file written by symusic, times in ticks.

    `tracks`: list of dicts with `notes` [(tick, dur_ticks, pitch, velocity)], optional `drum` (bool),
    `controls` [(tick, number, value)], `program`, `name`.
    """
    from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

    score = Score(tpq)
    for t, q in tempos:
        score.tempos.append(Tempo(t, float(q)))
    for t, num, den in timesigs:
        score.time_signatures.append(TimeSignature(t, num, den))
    for i, spec in enumerate(tracks):
        track = Track(name=spec.get("name", f"track{i}"), program=spec.get("program", 0),
                      is_drum=spec.get("drum", False))
        for n in spec.get("notes", ()):
            track.notes.append(Note(*n))
        for c in spec.get("controls", ()):
            track.controls.append(ControlChange(*c))
        score.tracks.append(track)
    return score.dumps_midi()


def daw_song(quarters: int, bpm: float) -> bytes:
    """A piece as a DAW exports it: two piano tracks (RH in eighths, LH in quarters, onsets off the beat
    by a few ticks) and a drum track, `quarters` beats long at `bpm`."""
    q = 480
    rh = [(i * q // 2 + 7, q // 2 - 20, 60 + (i * 5) % 19, 40 + (i * 13) % 80) for i in range(2 * quarters)]
    lh = [(i * q + 3, q - 30, 36 + (i * 7) % 12, 70) for i in range(quarters)]
    drums = [(i * q // 2, 60, 42, 90) for i in range(2 * quarters)]
    return build_midi([{"notes": rh, "name": "RH"}, {"notes": lh, "name": "LH"},
                       {"notes": drums, "name": "Drums", "drum": True}], tempos=((0, float(bpm)),))


def tiny_checkpoint(folder: Path) -> Path:
    """A `tiny` encoder–decoder with seeded random weights and the shipped vocabulary, saved to `folder`."""
    import torch

    from tatum.model.checkpoint import save_checkpoint
    from tatum.model.config import preset
    from tatum.model.transformer import Seq2Seq
    from tatum.tokenizer import Tokenizer

    tok = Tokenizer.default()
    torch.manual_seed(0)
    return save_checkpoint(Seq2Seq(preset("tiny", tok.vocab_size, dropout=0.0)), tok, folder)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def build_type0(events, tpq=480) -> bytes:
    """A format-0 Standard MIDI File: one track holding `events` [(tick, raw message bytes)].

    symusic only writes format 1, so the one-track layout is assembled here, for tests only.
    """
    body, last = b"", 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        body += _vlq(tick - last) + msg
        last = tick
    body += _vlq(0) + b"\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq)
            + b"MTrk" + struct.pack(">I", len(body)) + body)


def type0_note(channel: int, tick: int, dur: int, pitch: int, velocity: int):
    return [(tick, bytes([0x90 | channel, pitch, velocity])), (tick + dur, bytes([0x80 | channel, pitch, 0]))]


def type0_tempo(tick: int, qpm: float):
    return (tick, b"\xff\x51\x03" + round(60_000_000 / qpm).to_bytes(3, "big"))


@pytest.fixture(scope="session")
def make_midi():
    return build_midi


@pytest.fixture(scope="session")
def make_type0():
    """(build, note, tempo): assemble a format-0 file from note and tempo events."""
    return build_type0, type0_note, type0_tempo


@pytest.fixture(scope="session")
def small_midi() -> bytes:
    """A real two-hand piano file with sustain pedal, a tempo change and a time signature change."""
    right = [(i * 240, 200, 60 + (i * 5) % 24, 40 + (i * 13) % 80) for i in range(48)]
    left = [(i * 960, 900, 36 + (i * 7) % 12, 70) for i in range(12)]
    pedal = [(0, 64, 127), (900, 64, 0), (1000, 64, 100), (3800, 64, 0)]
    return build_midi([{"notes": right, "controls": pedal, "name": "RH"},
                       {"notes": left, "name": "LH", "program": 1}],
                      tempos=((0, 100.0), (3840, 72.0)), timesigs=((0, 4, 4), (7680, 3, 4)))


# ------------------------------------------------------------------- corpora
@pytest.fixture(scope="session")
def chorale(tmp_path_factory):
    """(path of the written .mid, music21 score) for Bach's chorale BWV 66.6 (four parts, type 1)."""
    music21 = pytest.importorskip("music21")
    score = music21.corpus.parse("bach/bwv66.6")
    path = tmp_path_factory.mktemp("music21") / "bwv66.6.mid"
    score.write("midi", fp=str(path))
    return path, score


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found at {DATA}")
    return DATA


def _pijama_files(data_dir: Path, split: str) -> list[Path]:
    root = data_dir / "pijama"
    if not (root / "pijama.csv").is_file():
        pytest.skip("PiJAMA metadata (pijama.csv) not found")
    with open(root / "pijama.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    files = [root / "midi_kong" / r["midi_filepath"].removeprefix("data/midi/") for r in rows]
    files = [p for p in files if p.is_file()]
    if not files:
        pytest.skip(f"no PiJAMA midi_kong files of split {split!r}")
    return files


@pytest.fixture(scope="session")
def pijama_val_files(data_dir) -> list[Path]:
    """Every midi_kong file of PiJAMA's official val split."""
    return _pijama_files(data_dir, "val")


@pytest.fixture(scope="session")
def pijama_file(pijama_val_files) -> Path:
    """One real PiJAMA transcription (with sustain pedal)."""
    return pijama_val_files[0]

"""Bad input never escapes as anything but a one-line `MidiError`, in the library and in the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tatum.errors import MidiError, TatumError
from tatum.notes import Notes

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def load_or_midi_error(data: bytes) -> Notes | None:
    """from_midi on `data`: either valid notes or a MidiError with a one-line message; nothing else."""
    try:
        n = Notes.from_midi(data)
    except MidiError as e:
        assert isinstance(e, TatumError)
        msg = str(e)
        assert msg.startswith("<bytes>: ") and "\n" not in msg and "\r" not in msg and len(msg) < 300
        assert e.reason and "\n" not in e.reason
        return None
    assert len(n) > 0
    assert n.onset_ms.dtype == np.int32 and n.pitch.dtype == np.int16
    assert np.all(n.onset_ms >= 0)
    assert np.all((n.pitch >= 21) & (n.pitch <= 108))
    assert np.all((n.velocity >= 1) & (n.velocity <= 127))
    keys = list(zip(n.onset_ms.tolist(), n.pitch.tolist()))
    assert keys == sorted(keys)
    return n


# ------------------------------------------------------------- seeds to mutate
def _seed_file() -> bytes:
    from symusic import ControlChange, Note, Score, Tempo, TimeSignature, Track

    s = Score(96)
    s.tempos.append(Tempo(0, 90.0))
    s.tempos.append(Tempo(384, 140.0))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    rh = Track(name="RH", program=0)
    for i in range(24):
        rh.notes.append(Note(i * 48, 40 + (i % 4) * 20, 60 + (i * 7) % 19, 30 + i * 4))
    rh.controls.append(ControlChange(0, 64, 127))
    rh.controls.append(ControlChange(400, 64, 0))
    lh = Track(name="LH", program=0)
    for i in range(6):
        lh.notes.append(Note(i * 192, 180, 36 + i, 70))
    drums = Track(name="Drums", program=0, is_drum=True)
    drums.notes.append(Note(0, 10, 36, 100))
    s.tracks.extend([rh, lh, drums])
    return s.dumps_midi()


SEED = _seed_file()
@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "flip", "set", "set", "truncate", "insert", "delete",
                                   "header", "dup"]))
        n = len(data)
        if n == 0:
            break
        # anywhere in the file, but mostly inside the track chunks (past MThd and the first MTrk header)
        lo = 0 if n <= 22 or draw(st.integers(0, 9)) == 0 else 22
        pos = min(n - 1, lo + int(draw(st.floats(0, 1)) * (n - lo)))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x90, 0xFF, 0x2F, 0x51]))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "header":  # format, track count, division
            data[draw(st.integers(8, 13)) % max(n, 1)] = draw(st.integers(0, 255))
        elif op == "dup":
            end = min(n, pos + draw(st.integers(1, 32)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


# ------------------------------------------------------------------ the fuzzers
@given(st.binary(max_size=512))
@FUZZ
def test_random_bytes(data):
    load_or_midi_error(data)


@given(st.binary(max_size=256).map(lambda b: b"MThd\x00\x00\x00\x06" + b))
@FUZZ
def test_random_bytes_after_header(data):
    load_or_midi_error(data)


@given(mutated(SEED))
@FUZZ
def test_mutated_symusic_file(data):
    load_or_midi_error(data)


def test_seed_file_loads():
    n = load_or_midi_error(SEED)
    assert n is not None and len(n) == 30  # the drum note is dropped


@pytest.fixture(scope="module")
def pijama_bytes(pijama_file) -> bytes:
    return pijama_file.read_bytes()


@given(data=st.data())
@FUZZ
def test_mutated_pijama_file(pijama_bytes, data):
    load_or_midi_error(data.draw(mutated(pijama_bytes)))


def test_every_truncation_of_a_small_file():
    full = load_or_midi_error(SEED)
    full_rows = set(zip(full.onset_ms.tolist(), full.pitch.tolist()))
    for cut in range(len(SEED)):
        n = load_or_midi_error(SEED[:cut])
        if n is not None:
            # symusic checks chunk lengths, so only a cut right after a complete track chunk reads
            # (the tracks present); a cut inside a chunk is always an error.
            assert SEED[cut - 3:cut] == b"\xff\x2f\x00", cut
            assert set(zip(n.onset_ms.tolist(), n.pitch.tolist())) <= full_rows


# ----------------------------------------------------------------------- CLI
def run_cli(*args: str, cwd: Path, columns: int | None = 1000) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "tatum.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def bad_folder(tmp_path, make_midi) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    good = make_midi([{"notes": [(i * 240, 200, 48 + (i * 5) % 36, 40 + i) for i in range(60)]}])
    (src / "good.mid").write_bytes(good)
    (src / "empty.mid").write_bytes(b"")
    (src / "truncated.mid").write_bytes(good[: len(good) // 2])
    (src / "not_midi.mid").write_bytes(b"%PDF-1.4 this is not a MIDI file\n" * 20)
    (src / "drums.mid").write_bytes(make_midi([{"notes": [(0, 60, 36, 100), (240, 60, 38, 100)], "drum": True}]))
    (src / "no_notes.mid").write_bytes(make_midi([{"notes": [], "controls": [(0, 64, 127)]}]))
    (src / "readme.txt").write_text("not a MIDI suffix: ignored")
    return src


def test_cli_prepare_skips_bad_files(bad_folder, tmp_path):
    out = tmp_path / "shards"
    r = run_cli("data", "prepare", str(bad_folder), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    skipped = {line.split(": ", 1)[0].removeprefix("skipped "): line.split(": ", 1)[1]
               for line in r.stderr.splitlines() if line.startswith("skipped ")}
    expected = {"empty.mid": "empty file", "truncated.mid": "not a readable MIDI file",
                "not_midi.mid": "not a MIDI file", "drums.mid": "only drum tracks",
                "no_notes.mid": "no notes"}
    assert {Path(p).name for p in skipped} == set(expected)
    for path, reason in skipped.items():
        assert reason.startswith(expected[Path(path).name]), (path, reason)
    assert "1 added, 0 unchanged, 5 skipped" in r.stderr
    index = json.loads((out / "index.json").read_text())
    assert [Path(p["path"]).name for p in index["pieces"]] == ["good.mid"]
    assert index["pieces"][0]["n_notes"] == 60
    assert (out / "vocab.json").is_file() and list(out.glob("shard-*.tokens.npy"))
    # re-running is incremental: the good file is unchanged, the bad ones are reported again
    again = run_cli("data", "prepare", str(bad_folder), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and "0 added, 1 unchanged, 5 skipped" in again.stderr


def test_cli_missing_source_is_one_line_error(tmp_path):
    missing = tmp_path / "no" / "such" / "folder-with-a-rather-long-name-to-test-that-the-line-never-wraps"
    r = run_cli("data", "prepare", str(missing), "--out", str(tmp_path / "out"), cwd=tmp_path, columns=None)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tatum: error: "), r.stderr
    assert str(missing) in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_never_overwrites_a_foreign_folder(bad_folder, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    (out / "song.mid").write_bytes(b"MThd precious")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    r = run_cli("data", "prepare", str(bad_folder), "--out", str(out), cwd=tmp_path, columns=None)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tatum: error: ") and "not a shard folder" in lines[0]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    # --force does not clear it either
    r = run_cli("data", "prepare", str(bad_folder), "--out", str(out), "--force", cwd=tmp_path, columns=None)
    assert r.returncode == 2 and r.stderr.startswith("tatum: error: ")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before

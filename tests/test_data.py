"""Sources, shard preparation (parallel, incremental), stats and training examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Track

from tatum import tokenizer as tk
from tatum.data.examples import IGNORE, ExampleConfig, ExampleDataset, build_encoder_input, collate
from tatum.data.prepare import prepare
from tatum.data.shards import ShardSet
from tatum.data.sources import detect, folder, hashed_split, pijama
from tatum.errors import TatumError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_piece(path: Path, seconds: float, seed: int, notes_per_s: float = 6.0) -> None:
    """A plausible piano piece: a melody over chords, random but reproducible."""
    rng = np.random.default_rng(seed)
    score = Score(480, ttype="second")
    track = Track(name="piano", program=0, ttype="second")
    t = 0.0
    while t < seconds:
        pitch = int(rng.integers(55, 84))
        dur = float(rng.uniform(0.1, 0.8))
        track.notes.append(Note(t, dur, pitch, int(rng.integers(30, 110)), ttype="second"))
        if rng.random() < 0.3:
            for p in (pitch - 12, pitch - 8, pitch - 5):
                track.notes.append(Note(t, dur, p, 60, ttype="second"))
        t += float(rng.exponential(1 / notes_per_s))
    score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


@pytest.fixture
def midi_folder(tmp_path: Path) -> Path:
    root = tmp_path / "mycollection"
    for i in range(12):
        write_piece(root / f"sub{i % 2}" / f"piece{i}.mid", 30 + 5 * i, seed=i)
    (root / "metadata.csv").write_text(
        "path,genre,artist,split\n"
        "sub0/piece0.mid,jazz,Art Tatum,val\n"
        "sub1/piece1.mid,classical,Glenn Gould,train\n")
    return root


def test_folder_source_reads_metadata(midi_folder: Path):
    refs = {Path(r.path).name: r for r in folder(midi_folder, genre="pop")}
    assert len(refs) == 12
    assert (refs["piece0.mid"].genre, refs["piece0.mid"].artist, refs["piece0.mid"].split) == ("jazz", "Art Tatum", "val")
    assert refs["piece1.mid"].genre == "classical"
    assert refs["piece2.mid"].genre == "pop" and refs["piece2.mid"].artist is None
    assert all(r.split in ("train", "val") for r in refs.values())


def test_hashed_split_is_stable_and_about_five_percent():
    splits = [hashed_split(f"x/{i}") for i in range(4000)]
    assert splits == [hashed_split(f"x/{i}") for i in range(4000)]
    assert 0.03 < splits.count("val") / 4000 < 0.07


def test_prepare_is_incremental_and_indexes_segments(midi_folder: Path, tmp_path: Path):
    out = tmp_path / "shards"
    refs = detect(str(midi_folder))
    report = prepare(refs[:8], out, workers=2)
    assert report.added == 8 and not report.failed
    report = prepare(refs, out, workers=2)
    assert (report.added, report.unchanged) == (4, 8)
    shards = ShardSet(out)
    assert len(shards.pieces) == 12 and len(shards.shard_info) == 2
    # Every piece's segments decode back to the notes of its file, window by window.
    from tatum.notes import Notes
    for piece in shards.pieces[:3]:
        notes = Notes.from_midi(piece.path)
        segs = shards.segments(piece)
        assert len(segs) == piece.n_segments == len(tk.split_segments(notes))
        whole = np.concatenate([segs[0]] + [np.concatenate([[tk.T], s]) for s in segs[1:]])
        assert np.array_equal(whole, tk.encode(notes))
    # A changed file is prepared again, replacing its old entry.
    write_piece(Path(refs[0].path), 12, seed=99)
    report = prepare(refs, out, workers=1)
    assert (report.added, report.unchanged) == (1, 11)
    assert len(ShardSet(out).pieces) == 12


def test_corrupt_shard_is_refused(midi_folder: Path, tmp_path: Path):
    out = tmp_path / "shards"
    prepare(detect(str(midi_folder)), out, workers=1)
    shard = next(out.glob("shard-*.tokens.npy"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(TatumError, match="corrupt or truncated"):
        ShardSet(out)


def test_examples_follow_the_layout(midi_folder: Path, tmp_path: Path):
    out = tmp_path / "shards"
    prepare(detect(str(midi_folder)), out, workers=1)
    shards = ShardSet(out)
    cfg = ExampleConfig(max_enc_len=256, max_dec_len=64)
    ds = ExampleDataset(shards, "train", cfg, seed=3)
    tok = shards.tokenizer
    genres = {tok.id(f"genre:{g}") for g in tok.genres} | {tok.null_style}
    seen = set()
    for i in range(0, len(ds), 3):
        ex = ds[i]
        enc, dec_in, labels = ex["enc"], ex["dec_in"], ex["labels"]
        assert len(enc) <= 256 and len(dec_in) <= 64 and len(dec_in) == len(labels)
        assert enc[0] in genres
        assert tok.tokens[enc[2]].startswith("density:") and tok.tokens[enc[3]].startswith("poly:")
        sep = np.flatnonzero(enc == tk.SEP)
        assert len(sep) == 2
        seen.add(tok.tokens[enc[sep[0] + 1]])
        assert dec_in[0] == tk.BOS and np.array_equal(dec_in[1:], labels[:-1])
        if len(labels) < 64:
            assert labels[-1] == tk.EOS
        # The ids after the target's SEP are a T then right context; before it, left context ends in T.
        if sep[1] + 1 < len(enc):
            assert enc[sep[1] + 1] == tk.T
        if sep[0] > 4:
            assert enc[sep[0] - 1] == tk.T
    assert len(seen) >= 7  # corruptions are drawn from all nine
    a, b = ds[5], ds[5]
    assert all(np.array_equal(a[k], b[k]) for k in ("enc", "dec_in", "labels"))
    ds.set_epoch(1)
    assert not np.array_equal(ds[5]["enc"], a["enc"]) or not np.array_equal(ds[5]["labels"], a["labels"])
    batch = collate([ds[i] for i in range(4)])
    assert batch["enc"].shape[0] == 4
    pad_rows = batch["dec_in"] == tk.PAD
    assert ((batch["labels"] == IGNORE) == pad_rows).all()


def test_augmentation_transposes_within_five_semitones(midi_folder: Path, tmp_path: Path):
    out = tmp_path / "shards"
    prepare(detect(str(midi_folder)), out, workers=1)
    shards = ShardSet(out)
    plain = ExampleDataset(shards, "train", ExampleConfig(augment=False, max_dec_len=4096))
    aug = ExampleDataset(shards, "train", ExampleConfig(stretch=(1.0, 1.0), velocity_shift=0,
                                                         max_dec_len=4096))
    shifts = set()
    for i in range(0, len(plain), 5):
        p = tk.decode_segment(plain[i]["labels"][:-1])
        a = tk.decode_segment(aug[i]["labels"][:-1])
        assert len(p) == len(a)
        d = set((a.pitch.astype(int) - p.pitch.astype(int)).tolist())
        d = {x for x in d if abs(x) <= 5}  # folded notes jump by octaves
        assert len(d) == 1
        shifts |= d
    assert shifts <= set(range(-5, 6)) and len(shifts) >= 3


def test_dropout_rates_are_near_config(midi_folder: Path, tmp_path: Path):
    out = tmp_path / "shards"
    prepare(detect(str(midi_folder)), out, workers=1)
    shards = ShardSet(out)
    ds = ExampleDataset(shards, "train", ExampleConfig(style_dropout=0.15, control_dropout=0.15, augment=False))
    any_density = shards.tokenizer.density_id(None)
    n = 0
    hits = 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            hits += ds[i]["enc"][2] == any_density
            n += 1
    assert 0.08 < hits / n < 0.24


def test_encoder_truncation_is_symmetric_and_on_note_boundaries():
    tok = tk.Tokenizer()
    seg = tk.note_triples(np.arange(50), np.full(50, 10), np.full(50, tk.PV0 + 8))
    left = [seg] * 5
    right = [seg] * 5
    corrupted = seg[:30]
    enc = build_encoder_input(tok, (tok.null_style,) * 2 + (tok.density_id(None), tok.polyphony_id(None)),
                              left, "skyline", corrupted, right, 400)
    assert len(enc) <= 400
    sep = np.flatnonzero(enc == tk.SEP)
    n_left, n_right = sep[0] - 4, len(enc) - sep[1] - 1
    assert abs(n_left - n_right) <= 3
    assert tk.token_kind(enc[4:5])[0] == 0            # left context starts on an onset
    assert tk.token_kind(enc[-1:])[0] == 2            # right context ends on a pv token


@pytest.mark.skipif(not (DATA / "pijama" / "pijama.csv").exists(), reason="shared data absent")
def test_pijama_source_and_artist_filter(tmp_path: Path):
    refs = pijama(DATA / "pijama")
    assert len(refs) == 2499 and {r.split for r in refs} == {"train", "val"}
    tatum = [r for r in refs if r.artist == "Art Tatum"]
    assert len(tatum) == 107 and all(Path(r.path).exists() for r in tatum[:5])
    out = tmp_path / "tatum"
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "data", "prepare", str(DATA / "pijama"),
                        "--artist", "Art Tatum", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    index = json.loads((out / "index.json").read_text())
    assert len(index["pieces"]) == 107 and {p["artist"] for p in index["pieces"]} == {"Art Tatum"}
    hours = sum(p["seconds"] for p in index["pieces"]) / 3600
    assert 6.0 < hours < 7.1  # 7.0 h, less the trimmed applause and talk
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "data", "stats", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Art Tatum" in r.stdout and "107" in r.stdout

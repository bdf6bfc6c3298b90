"""The genre / pianist / real-music classifier: its input rows, the synthetic non-music, checkpoint
folders, a few training steps, the shipped model on real files, and `tatum classify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tatum.errors import TatumError
from tatum.evaluate import features as ft
from tatum.evaluate.classify import MODELS_DIR, Classifier, save_classifier
from tatum.evaluate.net import ClassifierNet, NetConfig
from tatum.evaluate.noise import MAKERS, make_noise
from tatum.notes import Notes

from test_data import write_piece
from test_generate import error_line

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "100"}
SHIPPED = MODELS_DIR / "tatum-classifier"


def random_notes(seconds: float, per_s: float = 8.0, seed: int = 0) -> Notes:
    """Uniformly random keys at uniformly random times: the plainest non-music."""
    rng = np.random.default_rng(seed)
    n = int(seconds * per_s)
    return Notes(np.sort(rng.integers(0, int(seconds * 1000), n)), rng.integers(50, 800, n),
                 rng.integers(21, 109, n), rng.integers(30, 110, n))


# ---------------------------------------------------------------- input rows
def test_encode_window_buckets_each_note():
    rows = ft.encode_window(np.array([0, 0, 1000]), np.array([500, 500, 20]), np.array([60, 64, 67]),
                            np.array([100, 100, 20]))
    pitch, vel, dur, gap, interval, pos = rows.T
    assert pitch.tolist() == [39, 43, 46]                               # keys above A0
    assert vel.tolist() == [6, 6, 1]                                    # bins of 16
    assert gap[0] == gap[1] == 0 and gap[2] > 0                         # a chord has no gap inside it
    assert dur[0] == dur[1] > dur[2]
    assert interval.tolist() == [ft.N_INTERVAL - 1, ft.MAX_INTERVAL + 4, ft.MAX_INTERVAL + 3]
    assert pos.tolist() == [0, 0, 1]
    assert (rows.max(0) < np.array(ft.SIZES)).all() and rows.min() >= 0


def test_windows_are_15_s_every_5_s_from_the_first_onset_and_skip_sparse_ones():
    dense = [(1000 + 100 * i, 90, 60 + i % 12, 80) for i in range(140)]   # 1.0–15.0 s
    sparse = [(20_000, 100, 60, 80), (21_000, 100, 62, 80)]                # 2 notes in the 2nd window
    late = [(31_000 + 200 * i, 100, 48, 80) for i in range(10)]            # 3rd window
    o, d, p, v = zip(*(dense + sparse + late))
    piece = Notes(np.array(o), np.array(d), np.array(p), np.array(v))
    assert [len(r) for r in ft.windows(piece, hop_ms=15_000)] == [140, 10]   # 0–15, (15–30), 30–45 s
    # Every 5 s until a window reaches the last onset (30.8 s after the first): 0–15 s holds the dense
    # 140, 5–20 s 90 of them and one sparse note, 10–25 s 40 and two, (15–30 s), 20–35 s one and 10.
    assert [len(r) for r in ft.windows(piece)] == [140, 91, 42, 11]
    assert ft.windows(Notes.empty()) == []
    long = ft.encode_window(np.arange(600) * 20, np.full(600, 50), np.full(600, 60), np.full(600, 64))
    assert len(long) == ft.MAX_NOTES


# -------------------------------------------------------------------- noise
@pytest.mark.parametrize("kind", list(MAKERS))
def test_noise_keeps_the_window_plausible_in_every_way_but_order(kind):
    rng = np.random.default_rng(3)
    n = 120
    real = (np.sort(rng.integers(0, 15_000, n)), rng.integers(30, 900, n), rng.integers(40, 90, n),
            rng.integers(20, 120, n))
    fake = make_noise(kind, real, np.random.default_rng(1), 15_000)
    again = make_noise(kind, real, np.random.default_rng(1), 15_000)
    assert all(np.array_equal(a, b) for a, b in zip(fake, again))       # reproducible from its seed
    onset, dur, pitch, vel = fake
    assert np.all(np.diff(onset) >= 0) and onset.min() >= 0 and onset.max() < 15_000
    assert pitch.min() >= 21 and pitch.max() <= 108
    assert dur.min() > 0 and dur.max() <= real[1].max()
    # one key per pitch, as a MIDI file holds them: no key struck twice at once or while it still sounds
    for p in np.unique(pitch):
        o, d = onset[pitch == p], dur[pitch == p]
        assert np.all(o[:-1] + d[:-1] <= o[1:])
    if kind != "mix":         # mix replaces one part: counts vary; a key drawn twice at one onset is one note
        assert n - 3 <= len(onset) <= n and not Counter(vel.tolist()) - Counter(real[3].tolist())
    assert not all(np.array_equal(a, b) for a, b in zip(fake, real))


# ------------------------------------------------------------ checkpoints
def tiny_net(seed: int = 0) -> ClassifierNet:
    torch.manual_seed(seed)
    return ClassifierNet(NetConfig(d_model=16, layers=2, n_artists=3))


def test_checkpoint_folder_round_trip_without_pickle(tmp_path):
    net = tiny_net()
    folder = save_classifier(net, tmp_path / "clf", genres=["classical", "jazz", "pop"],
                             artists=["Art Tatum", "Bill Evans", "other"], training={"data": {"genres": ["jazz"]}})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\n") and "- PiJAMA" in card
    clf = Classifier.load(folder)
    assert Classifier.load(str(folder)) is clf                          # cached
    rows = ft.windows(random_notes(40))
    with torch.no_grad():
        x, mask = ft.pad_batch(rows)
        want = torch.sigmoid(net.eval()(torch.from_numpy(x), torch.from_numpy(mask))["random"]).numpy()
    assert np.allclose(clf.predict(rows)["random"], want, atol=2e-3)    # float16 weights
    s = clf.score(random_notes(40))
    assert s.windows == 6 and sum(s.genre.values())   # starting at 0, 5, … 25 s == pytest.approx(1, abs=1e-5)
    assert sum(s.artist.values()) == pytest.approx(1, abs=1e-5) and 0 <= s.random_like <= 1
    empty = clf.score(random_notes(0.2))
    assert empty.windows == 0 and np.isnan(empty.random_like) and empty.to_dict()["random_like"] is None


def test_bad_classifier_folders_are_one_line_errors(tmp_path):
    with pytest.raises(TatumError, match="no such classifier"):
        Classifier.load(tmp_path / "nothing")
    folder = save_classifier(tiny_net(), tmp_path / "clf", genres=["classical", "jazz", "pop"],
                             artists=["a", "b", "other"])
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"architecture": "tatum-seq2seq"}))
    with pytest.raises(TatumError, match="not a tatum classifier"):
        Classifier.load(tmp_path / "clf")
    (folder / "config.json").write_text(json.dumps(config | {"model": config["model"] | {"d_model": 32}}))
    with pytest.raises(TatumError, match="do not fit"):
        Classifier.load(tmp_path / "clf")


def test_a_few_training_steps_write_a_loadable_checkpoint(tmp_path):
    from tatum.data.prepare import prepare
    from tatum.data.sources import detect
    from tatum.evaluate.train_classifier import ClassifierTrainConfig, train_classifier

    midi = tmp_path / "midi"
    rows = ["path,genre,artist,split"]
    for i, (genre, artist) in enumerate([("jazz", "Art Tatum"), ("jazz", "Someone"), ("pop", ""),
                                         ("classical", "")] * 2):
        write_piece(midi / f"p{i}.mid", 35, seed=i)
        rows.append(f"p{i}.mid,{genre},{artist},{'val' if i >= 4 else 'train'}")
    (midi / "metadata.csv").write_text("\n".join(rows) + "\n")
    prepare(detect(str(midi)), tmp_path / "shards", workers=1)
    cfg = ClassifierTrainConfig(str(tmp_path / "shards"), str(tmp_path / "clf"), net={"d_model": 16, "layers": 1},
                                max_steps=3, batch_size=4, val_every=3, warmup=1)
    last = train_classifier(cfg, log=lambda *a: None)
    assert last["step"] == 3 and 0 <= last["random_real"] <= 1
    clf = Classifier.load(tmp_path / "clf")
    assert clf.artists[-1] == "other" and "Art Tatum" in clf.artists and clf.genres == ["classical", "jazz", "pop"]
    assert clf.config["training"]["steps"] == 3
    assert clf.score(Notes.from_midi(midi / "p0.mid")).windows == 5   # 35 s: starting at 0, 5, … 20 s


# ------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped() -> Classifier:
    if not (SHIPPED / "config.json").exists():
        pytest.fail(f"the shipped classifier is missing: {SHIPPED}")
    return Classifier.load()


def test_shipped_model_is_small(shipped):
    assert (SHIPPED / "model.safetensors").stat().st_size < 4_000_000
    assert "license: cc-by-nc-4.0" in (SHIPPED / "README.md").read_text()


def test_shipped_model_tells_jazz_from_random_notes(shipped, pijama_file):
    real = Notes.from_midi(pijama_file)
    real = real.slice(real.start_ms, real.start_ms + 60_000)
    s = shipped.score(real)
    assert max(s.genre, key=s.genre.get) == "jazz" and s.random_like < 0.3
    noise = shipped.score(random_notes(60))
    assert noise.random_like > 0.7
    t = time.perf_counter()
    shipped.score(real)
    assert time.perf_counter() - t < 1.0                                 # a 60 s file in well under a second


def test_shipped_model_scores_the_notes_a_midi_file_holds(shipped, pijama_file):
    """A key struck twice at one onset (a generator's slip; a MIDI file keeps one) read as random
    notes: 2 such doublings in 147 notes took a continuation from 0.42 to 1.00."""
    real = Notes.from_midi(pijama_file)
    real = real.slice(real.start_ms, real.start_ms + 15_000)
    twice = Notes.merge([real, real.select(np.arange(0, len(real), 40))])
    assert len(twice) > len(real)
    assert shipped.score(twice).random_like == pytest.approx(shipped.score(real).random_like, abs=1e-6)
    assert shipped.score(Notes.from_midi(twice.to_midi())).random_like == pytest.approx(
        shipped.score(real).random_like, abs=0.05)


def test_shipped_model_hears_a_classical_roll(shipped, data_dir):
    roll = data_dir / "pianolatron" / "midi" / "exp" / "xy699sy1462_exp.mid"   # a val roll (make demo's)
    if not roll.exists():
        pytest.skip("pianolatron demo roll not found")
    s = shipped.score(Notes.from_midi(roll))
    assert max(s.genre, key=s.genre.get) == "classical" and s.random_like < 0.3


# --------------------------------------------------------------------- CLI
def tatum(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("classify")
    write_piece(d / "piece.mid", 40, seed=5)
    random_notes(30).to_midi(d / "random.mid")
    Notes(np.array([0, 500]), np.array([100, 100]), np.array([60, 64]), np.array([80, 80])).to_midi(d / "two.mid")
    (d / "text.mid").write_text("not midi")
    return {k: d / f"{k}.mid" for k in ("piece", "random", "two", "text")}


def test_cli_classify_json(cli_files, shipped):
    r = tatum("classify", cli_files["piece"], cli_files["random"], cli_files["two"], "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [Path(x["file"]).name for x in rows] == ["piece.mid", "random.mid", "two.mid"]
    for x in rows[:2]:
        assert sum(x["genre"].values()) == pytest.approx(1, abs=1e-4)
        assert set(x["artist"]) == set(shipped.artists) and x["windows"] >= 2
    assert rows[1]["random_like"] > 0.7 and rows[1]["random_like"] > rows[0]["random_like"]
    assert rows[2]["windows"] == 0 and rows[2]["random_like"] is None


def test_cli_classify_text(cli_files):
    r = tatum("classify", cli_files["piece"], cli_files["two"], "--top", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("piece.mid") and lines[1].split()[0] == "genre"
    assert lines[2].split()[0] == "pianist" and lines[3].startswith("  random-like")
    assert lines[4].endswith("two.mid") and "too few notes" in lines[5]


def test_cli_classify_bad_file_is_one_error_line(cli_files):
    r = tatum("classify", cli_files["piece"], cli_files["text"])
    assert "text.mid" in error_line(r) and r.stdout == ""
    r = tatum("classify", cli_files["piece"], "--model", cli_files["piece"].parent / "none")
    assert "no such classifier" in error_line(r)

"""`tatum evaluate`: ImprovNet's four protocols on a folder of pieces, the files it writes, and the CLI.

Generation runs a `tiny` random model (one thread) on a small folder of synthetic performances with a
metadata.csv (the same reader as `tatum data prepare`); the classifier is the shipped one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tatum.errors import TatumError
from tatum.evaluate import metrics as mt
from tatum.evaluate import protocols as pr
from tatum.evaluate import report
from tatum.evaluate.classify import JUDGE, Classifier
from tatum.notes import Notes

from test_generate import PNG_MAGIC, ckpt, error_line, grid_piece  # noqa: F401  (ckpt is a fixture)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "100"}

PIECES = [  # file, seconds, artist, split
    ("a.mid", 62, "Art Tatum", "val"), ("b.mid", 62, "Bill Evans", "val"), ("c.mid", 12, "Art Tatum", "val"),
    ("d.mid", 62, "Art Tatum", "val"), ("e.mid", 62, "Bill Evans", "train"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("eval-data") / "mine"
    d.mkdir()
    with open(d / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", "artist", "split", "title"])
        for i, (name, seconds, artist, split) in enumerate(PIECES):
            # starts late, as a transcription with silence before the music does
            grid_piece(seconds, seed=i, start_ms=1500).to_midi(d / name)
            w.writerow([name, "jazz", artist, split, name.removesuffix(".mid").upper()])
    return d


def setup(folder, task="continuation", **kw) -> pr.Setup:
    return pr.Setup(task, data=f"{folder}:val", **kw)


# ------------------------------------------------------------------ the pieces
def test_pieces_come_from_the_split_evenly_spread_then_the_rest(folder):
    got = [s.title for s in pr.select_pieces(setup(folder, n=2))]
    assert got == ["A", "C", "B", "D"]                  # val only, every 2nd first, the rest after
    assert [s.title for s in pr.select_pieces(setup(folder, n=8, artist="art tatum"))] == ["A", "C", "D"]


def test_a_piece_is_read_from_its_first_note_and_cut_to_the_excerpt(folder):
    src = pr.select_pieces(setup(folder))[0]
    notes = pr.load(src, 35)
    assert notes.start_ms == 0 and notes.onset_ms.max() < 35_000


@pytest.mark.parametrize("kw,match", [
    ({"task": "translation"}, "unknown task 'translation'; tasks: continuation, infill, style-transfer, harmonize"),
    ({"n": 0}, "--n must be 1 or more"),
    ({"task": "harmonize", "candidates": 2}, "harmonize decodes one candidate"),
    ({"candidates": 0}, "--candidates must be"),
    ({"seconds": 30}, "--seconds sets the excerpt"),
    ({"task": "style-transfer", "seconds": 5}, "at least 15"),
])
def test_bad_setups_are_refused(folder, kw, match):
    with pytest.raises(TatumError, match=match):
        setup(folder, **kw)


def test_bad_data_is_refused(folder, tmp_path):
    with pytest.raises(TatumError, match="no pieces of split 'test'"):
        pr.select_pieces(pr.Setup("continuation", data=f"{folder}:test"))
    with pytest.raises(TatumError, match="no data folder"):
        pr.select_pieces(pr.Setup("continuation", data="pijama:val", data_root=tmp_path))
    with pytest.raises(TatumError, match="no pieces by 'Nobody'"):
        pr.select_pieces(setup(folder, artist="Nobody"))


def test_keys_a_fifth_apart_are_one_step_and_relative_keys_none():
    assert pr.fifths_apart((0, "major"), (7, "major")) == 1
    assert pr.fifths_apart((0, "major"), (9, "minor")) == 0
    assert pr.fifths_apart((0, "major"), (6, "major")) == 6
    assert pr.fifths_apart((2, "minor"), (10, "major")) == 1      # D minor (F major) vs B♭ major


def test_an_empty_generation_is_counted_and_left_out_of_the_kl():
    real = grid_piece(15, seed=1)
    m = pr.compare_section(real, Notes.empty(), real, 15)
    assert m["empty"] and m["pitch_class_kl"] is None and m["pctm_cosine"] == 0.0
    assert m["notes_per_5s"] == 0.0 and not m["key_kept"] and m["key_fifths"] is None
    assert not pr.compare_section(real, real, real, 15)["empty"]


# ------------------------------------------------------------------ the protocols
@pytest.fixture(scope="module")
def continuation(folder, ckpt):
    return pr.evaluate(setup(folder, n=2, model=str(ckpt), seed=3))


def test_a_prompt_that_ends_in_a_rest_is_continued_from_20_s(folder, ckpt):
    """A piece silent from 18 s to 21 s: its 20 s prompt's last note ends before 20 s (a PiJAMA val
    piece did this and stopped the whole run)."""
    notes = grid_piece(40, seed=7)
    notes = notes.select((notes.onset_ms < 18_000) | (notes.onset_ms >= 21_000))
    notes = notes.slice(0, 35_000, clip=True)
    notes.dur_ms = np.minimum(notes.dur_ms, 500).astype(np.int32)
    assert notes.slice(0, 20_000).end_ms < 19_000
    r = pr._continuation(setup(folder, model=str(ckpt)), notes, 0, pr.Judges.load(), None)
    prompt = r.result.slice(0, 20_000)
    assert np.array_equal(prompt.onset_ms, notes.slice(0, 20_000).onset_ms)
    assert r.result.slice(18_000, 20_000).end_ms == 0 and r.measures["real_notes_per_5s"] > 0


def test_continuation_measures_the_generated_15_s_against_the_real_next_15_s(continuation, folder):
    ev = continuation
    assert [p.title for p in ev.pieces] == ["A", "B"]                # C is too short: skipped
    assert ev.skipped == [("C", "shorter than 35 s")]
    m = ev.pieces[0].measures
    real = pr.load(pr.select_pieces(setup(folder))[0], 35).slice(20_000, 35_000, clip=True)
    assert m["real_notes_per_5s"] == pytest.approx(len(real) / 3)
    assert m["real_pulse_clarity"] == pytest.approx(mt.pulse_clarity(real))
    prompt_end = pr.load(pr.select_pieces(setup(folder))[0], 35).slice(5_000, 20_000, clip=True)
    assert m["real_pctm_cosine"] == pytest.approx(mt.pctm_cosine(real, prompt_end))
    assert m["real_pctm_cosine_improvnet"] == pytest.approx(mt.pctm_cosine(mt.pctm_legato(real),
                                                                           mt.pctm_legato(prompt_end)))
    assert m["real_pitch_class_kl_improvnet"] == pytest.approx(mt.pitch_class_kl(real, prompt_end, eps=1e-5))
    assert 0 <= m["pctm_cosine"] <= 1 and m["pitch_class_kl"] >= 0
    assert 0 <= m["random_like"] <= 1 and 0 <= m["p_jazz"] <= 1
    # the independent judge scores the same notes, the real ones too
    assert 0 <= m["judge_random_like"] <= 1 and 0 <= m["real_judge_random_like"] <= 1
    gen = ev.pieces[0].result.slice(20_000, 35_000, clip=True)
    assert m["judge_random_like"] == pytest.approx(Classifier.load(JUDGE).score(gen).random_like)
    assert m["p_artist"] is not None                  # P(Art Tatum): the piece's own pianist
    assert ev.pieces[1].measures["p_artist"] is None  # Bill Evans is not one of the classifier's pianists
    gen = ev.pieces[0].result.slice(20_000, 35_000)
    assert m["notes_per_5s"] == pytest.approx(len(gen) / 3)
    assert ev.pieces[0].curves["notes per 5 s"] == [float(len(gen.slice(a, a + 5000))) for a in (20_000, 25_000, 30_000)]
    assert ev.model["architecture"] == "tatum-seq2seq"


def test_the_same_seed_gives_the_same_evaluation(continuation, folder, ckpt):
    again = pr.evaluate(setup(folder, n=1, model=str(ckpt), seed=3))
    assert again.pieces[0].measures == continuation.pieces[0].measures


def test_a_decoder_only_model_is_evaluated_the_same_way(folder, tmp_path):
    from tatum.model.checkpoint import save_checkpoint
    from tatum.model.config import build_model, preset
    from tatum.tokenizer import Tokenizer

    tok = Tokenizer.default()
    torch.manual_seed(0)
    note = save_checkpoint(build_model(preset("note-tiny", tok.vocab_size)), tok, tmp_path / "note-tiny")
    ev = pr.evaluate(setup(folder, n=1, model=str(note), candidates=2))
    assert ev.model["architecture"] == "tatum-notelm"
    assert 0 <= ev.pieces[0].measures["pctm_cosine"] <= 1


def test_infill_measures_20_to_40_s_and_keeps_the_rest(folder, ckpt):
    ev = pr.evaluate(setup(folder, "infill", n=1, model=str(ckpt)))
    p = ev.pieces[0]
    notes = pr.load(pr.select_pieces(setup(folder, "infill"))[0], 60)
    assert len(p.result.slice(0, 20_000)) == len(notes.slice(0, 20_000))
    assert p.measures["real_notes_per_5s"] == pytest.approx(len(notes.slice(20_000, 40_000)) / 4)
    assert len(p.curves["notes per 5 s"]) == 4


def test_style_transfer_measures_the_input_and_every_pass(folder, ckpt):
    ev = pr.evaluate(setup(folder, "style-transfer", n=1, model=str(ckpt), seconds=20, artist="Art Tatum",
                           plan="improvnet"))
    c = ev.pieces[0].curves
    assert set(c) == {"P(jazz)", "random-like", "SSM correlation with the input", "P(Art Tatum)",
                      "random-like (judge)"}
    assert all(len(v) == 11 for v in c.values())       # the input, then ten passes of the improvnet plan
    assert c["SSM correlation with the input"][0] == pytest.approx(1.0)
    m = ev.pieces[0].measures
    assert m["ssm_correlation"] == pytest.approx(mt.ssm_correlation(pr.load(pr.select_pieces(
        setup(folder, "style-transfer", seconds=20))[0], 20), ev.pieces[0].result))
    assert m["p_artist"] == c["P(Art Tatum)"][-1] and m["real_p_artist"] == c["P(Art Tatum)"][0]
    assert m["judge_random_like"] == c["random-like (judge)"][-1]


def test_style_transfer_runs_improvises_default_plan(folder):
    # replay when a pianist is asked (their manner comes only from re-playing), ImprovNet's passes otherwise
    assert setup(folder, "style-transfer", artist="Art Tatum").plan == "replay"
    assert setup(folder, "style-transfer").plan == "improvnet"
    assert setup(folder, "style-transfer", artist="Art Tatum", plan="light").plan == "light"
    assert setup(folder).plan is None
    with pytest.raises(TatumError, match="--plan is style-transfer's"):
        setup(folder, plan="replay")
    with pytest.raises(TatumError, match="--keep-first is style-transfer's"):
        setup(folder, keep_first=10)
    with pytest.raises(TatumError, match="--keep-first must be 0–600"):
        setup(folder, "style-transfer", keep_first=-1)


def test_harmonize_uses_improvnets_polyphony_rate(folder, ckpt):
    ev = pr.evaluate(setup(folder, "harmonize", n=1, model=str(ckpt), seconds=10))
    p = ev.pieces[0]
    assert p.measures["polyphony_rate"] == pytest.approx(mt.polyphony_rate(p.result, include_silence=True))
    assert len(p.curves["polyphony rate"]) == 5
    assert p.measures["melody_kept"] > 0.9


# ------------------------------------------------------------------ the report
def test_the_report_writes_json_markdown_and_pictures(continuation, tmp_path):
    files = report.write(continuation, tmp_path / "out")
    data = json.loads(Path(files["json"]).read_text())
    assert data["task"] == "continuation" and len(data["pieces"]) == 2
    assert data["summary"]["pctm_cosine"]["n"] == 2
    assert data["published"]["pctm_cosine_improvnet"] == "0.347"
    md = Path(files["markdown"]).read_text()
    for text in ("| measure | tatum | the pianist (real next 15 s) | ImprovNet | AMT |", "0.347", "1.25",
                 "37 (originals 31)", "P(the piece's pianist)", "Skipped: C (shorter than 35 s)",
                 "| random-like, independent judge | ", "P(the piece's pianist), independent judge"):
        assert text in md
    for key in ("curves", "roll/01-A", "roll/02-B"):
        assert Path(files[key]).read_bytes().startswith(PNG_MAGIC)
    assert len(Notes.from_midi(files["midi/01-A"])) == len(continuation.pieces[0].result)
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]


def test_a_mean_ignores_pieces_without_a_value(continuation):
    summ = continuation.summary()
    assert summ["p_artist"]["n"] == 1
    assert summ["key_kept"]["mean"] in (0.0, 0.5, 1.0)
    assert not math.isnan(summ["wall_s"]["mean"])


# ------------------------------------------------------------------ the CLI
def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_cli_evaluate_writes_the_folder_and_prints_the_table(folder, ckpt, tmp_path):
    out = tmp_path / "ev"
    r = _cli("evaluate", "--task", "continuation", "--data", f"{folder}:val", "--n", 1, "--model", ckpt,
             "--out", out, "--no-pictures")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| PCTM cosine vs the real next 15 s, ImprovNet's rule (pianist column: the prompt's last 15 s) | " in r.stdout
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "midi"}
    again = _cli("evaluate", "--task", "continuation", "--data", f"{folder}:val", "--n", 1, "--model", ckpt,
                 "--out", out)
    assert "--force" in error_line(again)


@pytest.mark.parametrize("args,match", [
    (("--task", "nope"), "unknown task 'nope'"),
    (("--task", "continuation", "--n", "0"), "--n must be 1 or more"),
    (("--task", "harmonize", "--candidates", "4"), "harmonize decodes one candidate"),
    (("--task", "continuation", "--data", "pijama:val", "--data-root", "/nonexistent"), "no data folder"),
    (("--task", "continuation", "--model", "/nonexistent/model"), "/nonexistent/model"),
    (("--task", "continuation", "--artist", "Nobody At All"), "unknown pianist 'Nobody At All'"),
])
def test_cli_evaluate_mistakes_are_one_line(folder, args, match, tmp_path):
    r = _cli("evaluate", "--data", f"{folder}:val", "--out", tmp_path / "x", *args)
    assert match in error_line(r)
    assert not (tmp_path / "x").exists()


def test_cli_generation_verbs_take_candidates(folder, ckpt, tmp_path):
    r = _cli("continue", folder / "a.mid", "-o", tmp_path / "c.mid", "--model", ckpt, "--seed", 1,
             "--prompt-seconds", 10, "--seconds", 5, "--candidates", 2)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(Notes.from_midi(tmp_path / "c.mid"))
    bad = _cli("infill", folder / "a.mid", "-o", tmp_path / "f.mid", "--model", ckpt, "--start", 10, "--end", 15,
               "--candidates", 0)
    assert "--candidates must be" in error_line(bad)

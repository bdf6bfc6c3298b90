"""Every generation verb with the shipped default model on a PiJAMA val performance (never trained
on): a valid MIDI that lines up with the input, and a piano roll. Skips without the shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tatum import tokenizer as tk
from tatum.generate.tasks import continue_
from tatum.notes import Notes

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "80"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(pijama_val_files, tmp_path_factory) -> dict:
    """The four verbs side by side on the first 25 s of one val performance, with the shipped model."""
    d = tmp_path_factory.mktemp("shipped")
    full = Notes.from_midi(pijama_val_files[len(pijama_val_files) // 2])
    piece = full.slice(full.start_ms, full.start_ms + 25_000, clip=True).shift(-full.start_ms)
    piece.to_midi(d / "in.mid")
    common = ("--seed", "1", "--png")
    args = {
        "improvise": ("improvise", d / "in.mid", "-o", d / "improvise.mid", *common, d / "improvise.png",
                      "--artist", "Art Tatum"),
        "harmonize": ("harmonize", d / "in.mid", "-o", d / "harmonize.mid", *common, d / "harmonize.png",
                      "--passes", "1"),
        "continue": ("continue", d / "in.mid", "-o", d / "continue.mid", *common, d / "continue.png",
                     "--prompt-seconds", "15", "--seconds", "5"),
        "infill": ("infill", d / "in.mid", "-o", d / "infill.mid", *common, d / "infill.png",
                   "--start", "10", "--end", "15"),
    }
    procs = {k: subprocess.Popen([sys.executable, "-m", "tatum.cli", *map(str, a)], cwd=ROOT, env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, a in args.items()}
    out = {k: p.communicate(timeout=600) + (p.returncode,) for k, p in procs.items()}
    return {"dir": d, "piece": piece, "out": out}


@pytest.mark.parametrize("verb", ["improvise", "harmonize", "continue", "infill"])
def test_each_verb_writes_midi_and_png_with_the_shipped_model(runs, verb):
    _, err, code = runs["out"][verb]
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    d, piece = runs["dir"], runs["piece"]
    result = Notes.from_midi(d / f"{verb}.mid")
    assert len(result) > 20
    assert 21 <= result.pitch.min() and result.pitch.max() <= 108
    if verb == "continue":
        assert 15 <= result.duration_s <= 21
    else:
        assert abs(result.duration_s - piece.duration_s) < 5.5      # lines up with the input
    png = (d / f"{verb}.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_improvise_as_a_pianist_replays_from_the_first_window_in_the_pieces_harmony(runs):
    # --artist re-plays (plan replay, nothing kept: a kept opening is continued in its own manner);
    # the guide keeps the new music in the harmony of the piece it replaces
    d, piece = runs["dir"], runs["piece"]
    result = Notes.from_midi(d / "improvise.mid")
    assert runs["out"]["improvise"][2] == 0
    for lo in (0, 10_000):
        a, b = piece.slice(lo, lo + 10_000), result.slice(lo, lo + 10_000)
        assert len(b) >= 10
        assert set(zip(a.onset_ms.tolist(), a.pitch.tolist())) != set(zip(b.onset_ms.tolist(), b.pitch.tolist()))
    assert _chroma_r(piece, result) > 0.5


def test_no_new_note_strikes_a_key_again_within_100_ms(pijama_val_files):
    # The shipped model on its own re-struck a key 10-20 ms after itself (a stutter the judge heard as
    # random notes); the sampler never lets it, inside a window or across a boundary (the prompt's too).
    full = Notes.from_midi(pijama_val_files[len(pijama_val_files) // 2])     # the old rule: 10 ms stutters
    prompt = full.slice(full.start_ms, full.start_ms + 20_000, clip=True).shift(-full.start_ms)
    gaps = []
    for seed in (2, 3, 4):
        out = continue_(prompt, seconds=15, candidates=1, seed=seed)
        for key in np.unique(out.pitch):
            at = np.sort(out.onset_ms[out.pitch == key])
            gaps += (at[1:] - at[:-1])[at[1:] >= prompt.end_ms].tolist()
    assert len(gaps) > 100 and min(gaps) >= 100 - tk.GRID_MS, sorted(gaps)[:5]


def test_the_anchor_keeps_a_continuation_in_the_register_of_its_prompt():
    # A right-hand line between C5 and C6: left to itself the model goes down to the middle and the bass
    # (18 % of its notes more than 6 semitones outside the line's range with the model shipped before
    # 2026-12-04, 29 % with today's); `anchor` makes such keys cost (0 % then, 7 % now: a few D4s).
    rng = np.random.default_rng(0)
    on = np.arange(80) * 250
    prompt = Notes(on, np.full(80, 200), 72 + rng.choice([0, 2, 4, 5, 7, 9, 11, 12], size=80), np.full(80, 80))
    lo, hi = np.percentile(prompt.pitch, [2, 98]) + [-2, 2]

    def outside(anchor: float) -> float:
        new = [continue_(prompt, seconds=15, candidates=1, seed=seed, anchor=anchor).slice(prompt.end_ms, 10**9)
               for seed in (5, 6)]
        pitch = np.concatenate([n.pitch for n in new])
        return float(np.mean((pitch < lo - 6) | (pitch > hi + 6)))

    free, anchored = outside(0.0), outside(3.0)
    assert anchored <= 0.1 and anchored <= free / 3, (anchored, free)


def test_the_anchor_keeps_the_left_hand_of_the_prompt(monkeypatch):
    # A stride left hand (a bass note below C3 on beats 1 and 3) under a tune: the model shipped before
    # 2026-12-04 dropped the bass within a few seconds in two of three seeds, and `anchor`'s left hand
    # (sampling.LeftHand: keys below C3 favoured while the continuation has less bass than the prompt's
    # last two windows) took it from 0.23 to 0.33. The model trained on nine times the music keeps it by
    # itself (0.47 of the time against the prompt's 0.46); the left hand must keep it there.
    from tatum.evaluate.metrics import bass_presence
    from tatum.generate import sampling

    rng = np.random.default_rng(0)
    on, du, pi = [], [], []
    for b in range(40):                 # 20 s at 120 bpm
        t = b * 500
        hand = [36 + [0, 5, 7, 0][(b // 2) % 4]] if b % 2 == 0 else [52, 55, 60]
        on += [t] * len(hand) + [t, t + 250]
        du += [450 if b % 2 == 0 else 400] * len(hand) + [240, 240]
        pi += hand + [72 + int(rng.choice([0, 2, 4, 7, 9])) for _ in range(2)]
    prompt = Notes(np.array(on), np.array(du), np.array(pi), np.full(len(on), 80))

    def bass(gain: float) -> float:
        monkeypatch.setattr(sampling, "BASS_GAIN", gain)
        new = [continue_(prompt, seconds=15, candidates=1, seed=seed, anchor=1.0).slice(prompt.end_ms, 10**9)
               for seed in (5, 6, 7)]
        return float(np.mean([bass_presence(n) for n in new]))

    gain = sampling.BASS_GAIN
    free, anchored = bass(0.0), bass(gain)
    assert anchored >= 0.9 * bass_presence(prompt) and anchored >= free - 0.02, (anchored, free)


def test_the_anchor_keeps_the_beat_of_the_prompt(pijama_val_files, monkeypatch):
    # The model hears a prompt's beat but spreads each onset over the neighbouring 10 ms steps, and its
    # continuations lost the beat as they went; the anchor makes each onset surer within its
    # neighbourhood (sampling.steady). 20 s of 8 PiJAMA val pieces, continued by 15 s: beat clarity
    # 0.23 without, 0.29 with (96 prompts: README, "steady onsets").
    from tatum.evaluate.metrics import pulse_clarity
    from tatum.generate import sampling

    files = pijama_val_files[:: max(1, len(pijama_val_files) // 8)][:8]
    prompts = [Notes.from_midi(f).slice(30000, 50000).shift(-30000) for f in files]

    def beat(gain: float) -> float:
        monkeypatch.setattr(sampling, "TIMING_GAIN", gain)
        new = [continue_(p, seconds=15, candidates=1, seed=5 + i, anchor=1.0).slice(p.end_ms, 10**9)
               for i, p in enumerate(prompts)]
        return float(np.nanmean([pulse_clarity(n) for n in new]))

    gain = sampling.TIMING_GAIN
    loose, steady = beat(0.0), beat(gain)
    assert steady >= loose + 0.03, (steady, loose)


def _chroma_r(a: Notes, b: Notes) -> float:
    """Correlation of two windows' pitch-class profiles (sounding time, as guide_bias counts it)."""
    pa, pb = (np.bincount(n.pitch % 12, weights=np.minimum(n.dur_ms, 2000), minlength=12) for n in (a, b))
    return float(np.corrcoef(pa, pb)[0, 1])


def test_replay_draws_each_window_anew_in_the_harmony_of_the_piece():
    # improvise(plan="replay"): the first keep_first_s seconds come back exactly; each later window is
    # new music, and the guide pulls it toward the pitch classes of the window it replaces: on a piece
    # that moves through keys, new windows follow their own source windows more than with no guide.
    from tatum.generate.guide import Guide
    from tatum.generate.tasks import improvise

    rng = np.random.default_rng(3)
    keys = [0, 7, 2, 9, 4, 11]            # a 5 s window in each key, triads on the beat and a scale line
    on, du, pi = [], [], []
    for w, k in enumerate(keys):
        for beat in range(10):
            t = w * 5000 + beat * 500
            triad = [48 + k, 52 + k, 55 + k] if beat % 2 == 0 else [60 + k, 64 + k, 67 + k]
            for p in triad:
                on.append(t), du.append(450), pi.append(p)
            on.append(t + 250), du.append(200), pi.append(72 + k + [0, 2, 4, 5, 7, 9, 11][rng.integers(7)])
    piece = Notes(np.array(on), np.array(du), np.array(pi), np.full(len(on), 80))

    def replay(guide: Guide) -> Notes:
        return improvise(piece, plan="replay", guide=guide, keep_first_s=5, candidates=1, seed=4)

    guided, free = replay(Guide()), replay(Guide(0, 0, 0))
    first = piece.slice(0, 5000)
    assert np.array_equal(guided.slice(0, 5000).pitch, first.pitch)            # kept exactly
    assert np.array_equal(guided.slice(0, 5000).onset_ms, first.onset_ms)
    later = guided.slice(5000, 10**9)
    assert len(later) >= 20 and np.mean(np.isin(later.onset_ms % 250, [0])) < 0.9   # new notes, not the grid's

    def follows(out: Notes) -> float:
        return float(np.mean([_chroma_r(piece.slice(w * 5000, w * 5000 + 5000), out.slice(w * 5000, w * 5000 + 5000))
                              for w in range(1, len(keys))]))

    g, f = follows(guided), follows(free)
    assert g > 0.5 and g > f + 0.2, (g, f)

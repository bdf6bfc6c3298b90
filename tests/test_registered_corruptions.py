"""Issue 17 item 4: a corruption registered with `tatum.corruption.register` works in a plan and on
`--corruption` (from a `--plugin` file); the model is shown the token of the built-in it is registered
`like`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_checkpoint
from tatum import corruption
from tatum import tokenizer as tk
from tatum.errors import TatumError
from tatum.generate import engine as engine_mod
from tatum.generate import tasks
from tatum.model.checkpoint import load_model
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PLUGIN = '''
from tatum.corruption import register
from tatum.tokenizer import encode_segment

@register("drop_bass", like="fragmentation")
def drop_bass(seg, rng):
    return encode_segment(seg.select(seg.pitch >= 48))
'''


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("plugin-model") / "tiny")


@pytest.fixture
def drop_bass():
    @corruption.register("drop_bass", like="fragmentation")
    def fn(seg, rng):
        return corruption.encode_segment(seg.select(seg.pitch >= 48))
    yield fn
    corruption.CORRUPTIONS.pop("drop_bass", None)
    corruption.LIKE.pop("drop_bass", None)


def piece(seconds: int = 20) -> Notes:
    on = np.arange(0, seconds * 1000, 250)
    return Notes(on, np.full(len(on), 200), 36 + (np.arange(len(on)) * 7) % 48, np.full(len(on), 80))


def test_a_registered_corruption_runs_in_a_plan_under_its_stand_in_token(drop_bass, ckpt, monkeypatch):
    pair = load_model(ckpt)
    tok = pair[1]
    assert tok.corruption_id("drop_bass") == tok.corruption_id("fragmentation")
    seen = []
    real = engine_mod.build_encoder_input

    def spy(tok_, style, left, name, corrupted, right, max_len):
        seen.append((name, corrupted))
        return real(tok_, style, left, name, corrupted, right, max_len)

    monkeypatch.setattr(engine_mod, "build_encoder_input", spy)
    out = tasks.improvise(piece(), plan="drop_bass:1", keep_first_s=0, preserve_structure=0, seed=1, model=pair)
    assert isinstance(out, Notes) and seen and all(name == "drop_bass" for name, _ in seen)
    kept = [tk.decode_segment(c).pitch for _, c in seen]     # the corrupted windows were made by drop_bass
    assert all(len(p) and (p >= 48).all() for p in kept)
    out2 = tasks.improvise(piece(), corruption="drop_bass", passes=2, keep_first_s=0, seed=1, model=pair)
    assert len(out2)


def test_like_must_name_a_built_in_corruption():
    with pytest.raises(TatumError, match="built-in"):
        corruption.register("mine", lambda seg, rng: np.zeros(0, np.int64), like="mine2")
    with pytest.raises(TatumError, match="unknown corruption 'never_registered'"):
        Tokenizer.default().corruption_id("never_registered")


def test_the_command_takes_a_plugin_file_for_plans_and_corruption(ckpt, tmp_path):
    (tmp_path / "mine.py").write_text(PLUGIN)
    piece(20).to_midi(tmp_path / "in.mid")
    for how in (["--plan", "skyline:1,drop_bass:.5"], ["--corruption", "drop_bass", "--passes", "1"]):
        r = subprocess.run([sys.executable, "-m", "tatum.cli", "improvise", str(tmp_path / "in.mid"), "-o",
                            str(tmp_path / "out.mid"), "--model", str(ckpt), "--plugin", str(tmp_path / "mine.py"),
                            "--keep-first", "0", "--seed", "1", "--force", *how],
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(Notes.from_midi(tmp_path / "out.mid"))
    (tmp_path / "bad.py").write_text("raise ValueError('oops')\n")
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "improvise", str(tmp_path / "in.mid"), "-o",
                        str(tmp_path / "x.mid"), "--plugin", str(tmp_path / "bad.py")],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"tatum: error: {tmp_path / 'bad.py'}: plugin failed: ValueError: oops"]

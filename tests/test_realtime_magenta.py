"""Magenta RealTime 2 as tatum's sound: the note → 25 Hz piano-roll conversion, exactly; the wiring to
MRT2's `generate` (against the real classes when magenta-rt is installed, weights stubbed; against a
stand-in with its published 2.0.3 signatures otherwise); `tatum render --engine magenta`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tatum.audio.magenta import (FREE, HELD, MASKED, NOTES_KEY, OFF, ONSET, STYLE_KEY, MagentaAudioStream,
                                 MagentaSound, piano_roll)
from tatum.notes import Notes


# ------------------------------------------------------------------ the piano roll
def test_piano_roll_frames_exactly():
    notes = Notes([100, 0, 40, 0, 120], [100, 10, 40, 200, 80], [60, 64, 67, 72, 72], [90] * 5)
    roll = piano_roll(notes, n_frames=7)
    want = np.zeros((7, 128), np.int8)
    want[2, 60], want[3, 60], want[4, 60] = ONSET, HELD, HELD      # 100–200 ms: frames 80, 120, 160
    want[0, 64] = ONSET                                               # 0–10 ms: latched in its frame
    want[1, 67] = ONSET                                               # 40–80 ms: frame 80 starts at its end
    want[0, 72], want[1, 72], want[2, 72] = ONSET, HELD, HELD         # 0–200 ms …
    want[3, 72], want[4, 72] = ONSET, HELD                            # … struck again at 120 ms: the onset wins
    assert roll.dtype == np.int8 and np.array_equal(roll, want)
    assert piano_roll(notes).shape == (5, 128)                        # to the end of the last note


def test_piano_roll_from_a_later_start_holds_notes_already_sounding():
    notes = Notes([0, 150], [300, 20], [48, 50], [80, 80])
    roll = piano_roll(notes, n_frames=6, start_ms=100)
    want = np.zeros((6, 128), np.int8)
    want[0:5, 48] = HELD          # struck before the start, sounding until 300 ms: frames 100 … 260
    want[1, 50] = ONSET           # 150 ms falls in frame 1 (140–180)
    assert np.array_equal(roll, want)


def test_piano_roll_onset_mode_and_unmask_width():
    notes = Notes([0], [100], [60], [90])
    free = piano_roll(notes, n_frames=4, onsets=False)
    assert list(free[:, 60]) == [FREE, FREE, FREE, OFF]
    w2 = piano_roll(notes, n_frames=4, unmask_width=2)
    assert list(w2[0, 57:64]) == [MASKED, OFF, OFF, ONSET, OFF, OFF, MASKED]
    assert np.all(w2[3] == MASKED)                      # nothing sounds: everything left to the model
    w0 = piano_roll(notes, n_frames=2, unmask_width=0)
    assert w0[0, 60] == ONSET and np.all(np.delete(w0[0], 60) == MASKED)
    edge = piano_roll(Notes([0], [40], [0], [90]), n_frames=1, unmask_width=3)
    assert list(edge[0, :5]) == [ONSET, OFF, OFF, OFF, MASKED] and edge[0, 127] == MASKED   # no wrap-around


# ------------------------------------------------------------------ a stand-in with MRT2's signatures
FAKE_MRT2 = '''
"""magenta-rt 2.0.3's public surface (magenta_rt/__init__.py, jax/system.py), without a model."""
import json, os
import numpy as np

__version__ = "2.0.3"
__all__ = ["MagentaRT2Jax", "MagentaRT2Mlx", "MagentaRT2StdMlxfn"]
LOG = os.environ.get("FAKE_MRT2_LOG")


class Waveform:
    def __init__(self, samples, sample_rate):
        self.samples, self.sample_rate = samples, sample_rate


class MagentaRT2Jax:
    def __init__(self, size="mrt2_base", style_model=None, checkpoint=None, temperature=1.3, top_k=40,
                 cfg_scales=None):
        self.size, self.temperature, self.top_k, self.cfg_scales = size, temperature, top_k, cfg_scales

    def embed_style(self, text_or_audio, pool_across_time=True, use_mapper=False, seed=0):
        return np.full(768, 0.5, np.float32)

    def tokenize_style(self, embedding):
        assert embedding.shape == (768,)
        return np.arange(12, dtype=np.int32)

    def generate(self, conditioning=None, cfg_scales=None, temperature=None, top_k=None, frames=25, state=None):
        # the checks of _build_conditioning: one value per slot of each key
        assert len(conditioning["mulan_tokens_25hz"]) == 12
        if "pianoroll_with_onsets_tokens" not in conditioning:      # a key left out is masked
            t = np.arange(frames * 1920) / 48000.0
            return Waveform(np.zeros((len(t), 2), np.float32), 48000), (state or 0) + frames
        notes = conditioning["pianoroll_with_onsets_tokens"]
        assert len(notes) == 128 and all(-1 <= v <= 3 for v in notes)
        if LOG:
            with open(LOG, "a") as f:
                f.write(json.dumps({"frames": frames, "notes": list(notes), "cfg": cfg_scales, "state": state}) + "\\n")
        t = np.arange(frames * 1920) / 48000.0
        pitches = [p for p, v in enumerate(notes) if v > 0]
        mono = sum(0.1 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in pitches) if pitches else 0 * t
        return Waveform(np.stack([mono, mono], 1).astype(np.float32), 48000), (state or 0) + frames


def __getattr__(name):
    if name == "MagentaRT2Mlx":
        raise ImportError("MagentaRT2Mlx requires MLX dependencies.")
    raise AttributeError(name)
'''


@pytest.fixture
def fake_mrt2(tmp_path, monkeypatch):
    pkg = tmp_path / "fake" / "magenta_rt"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_MRT2)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_MRT2_LOG", str(log))
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    for name in [m for m in sys.modules if m.startswith("magenta_rt")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path / "fake", log
    for name in [m for m in sys.modules if m.startswith("magenta_rt")]:
        del sys.modules[name]        # the stand-in goes; monkeypatch then brings back a real one


def calls(log: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in log.read_text().splitlines()]


def test_magenta_sound_sends_each_frame_of_the_roll_with_the_style(fake_mrt2):
    _, log = fake_mrt2
    notes = Notes([0, 200], [120, 40], [60, 64], [90, 90])
    sound = MagentaSound("1950s solo piano recording", backend="jax", cfg_notes=2.0)
    audio = sound.render(notes, tail_s=0.2)
    roll = piano_roll(notes, n_frames=int(np.ceil((0.24 + 0.2) * 25)))
    assert audio.shape == (len(roll) * 1920, 2) and audio.dtype == np.float32
    got = calls(log)
    # runs of equal frames go in one call; frame by frame, the model saw exactly the roll
    sent = np.concatenate([np.repeat([c["notes"]], c["frames"], axis=0) for c in got])
    assert np.array_equal(sent, roll)
    assert len(got) < len(roll) and got[0]["cfg"] == {"musiccoca": 3.0, "notes": 2.0}
    assert [c["state"] for c in got][:2] == [None, got[0]["frames"]]          # the state is carried on


def test_a_jam_streams_mrt2_frames_just_in_time(fake_mrt2):
    _, log = fake_mrt2
    stream = MagentaAudioStream(MagentaSound(backend="jax"))
    stream.add(Notes([0, 100], [60, 60], [60, 62], [90, 90]))
    stream.cut(80)                                  # a redraw drops the second note before it is audio
    out = np.concatenate([stream.take(1920) for _ in range(5)])
    assert out.shape == (5 * 1920, 2)
    frames = [c["notes"] for c in calls(log)]
    assert frames[0][60] == ONSET and frames[1][60] == HELD and all(f[62] == OFF for f in frames)


def test_render_engine_magenta_writes_the_wav(fake_mrt2, tmp_path):
    import soundfile as sf

    fake, log = fake_mrt2
    Notes([0, 500], [400, 400], [60, 64], [90, 90]).to_midi(tmp_path / "two.mid")
    env = os.environ | {"PYTHONPATH": str(fake), "FAKE_MRT2_LOG": str(log)}
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "render", str(tmp_path / "two.mid"), "-o",
                        str(tmp_path / "two.wav"), "--engine", "magenta", "--style-text", "stride piano"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    info = sf.info(str(tmp_path / "two.wav"))
    assert info.samplerate == 48_000 and info.channels == 2 and info.duration == pytest.approx(1.92)
    sent = np.concatenate([np.repeat([c["notes"]], c["frames"], axis=0) for c in calls(log)])
    assert np.array_equal(sent, piano_roll(Notes.from_midi(tmp_path / "two.mid"), n_frames=48))


def test_without_magenta_rt_render_says_what_to_install(tmp_path):
    Notes([0], [400], [60], [90]).to_midi(tmp_path / "one.mid")
    r = subprocess.run([sys.executable, "-m", "tatum.cli", "render", str(tmp_path / "one.mid"), "-o",
                        str(tmp_path / "one.wav"), "--engine", "magenta"], capture_output=True, text=True, timeout=120,
                       env=os.environ | {"PYTHONPATH": str(tmp_path)})
    if r.returncode == 0:
        pytest.skip("magenta-rt is installed with its weights here")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("tatum: error:")
    assert "magenta-rt" in lines[0] and "mrt models init" in lines[0]
    assert not (tmp_path / "one.wav").exists()


# ------------------------------------------------------------------ the real classes, weights stubbed
def test_the_wiring_runs_through_the_real_mrt2_system(monkeypatch):
    system = pytest.importorskip("magenta_rt.jax.system", reason="magenta-rt[jax] is not installed here")
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    blocks = []

    def compile_stub(self):           # no weights, no XLA: a step that echoes one 40 ms frame
        self._jit_init_state = lambda params, constants: 0

        def step(params, block, constants, state):
            blocks.append(np.asarray(block.values)[0, 0])
            return sl.Sequence.from_values(jnp.full((1, 1920, 2), 1000, jnp.int16)), state + 1, None

        self._jit_streaming_step = step

    class Style:                      # MusicCoCa without its TFLite models
        def embed(self, text, *args):
            return np.full(768, 0.1, np.float32)

        def tokenize(self, embedding):
            return np.arange(12, dtype=np.int32) + 5

    monkeypatch.setattr(system, "_load_jax_weights", lambda path: {})
    monkeypatch.setattr(system.MagentaRT2System, "_compile", compile_stub)
    real = system.MagentaRT2System(size="mrt2_small", style_model=Style(), temperature=1.1, top_k=30)
    sound = MagentaSound("stride piano", system=real, temperature=1.1, top_k=30)
    notes = Notes([0, 80, 200], [100, 40, 120], [60, 64, 67], [90, 90, 90])
    audio = sound.render(notes, tail_s=0.0)
    roll = piano_roll(notes, n_frames=8)                # to 320 ms: eight 40 ms frames
    assert audio.shape == (8 * 1920, 2) and np.allclose(audio, 1000 / 32768)
    offset = system.NUM_RESERVED_TOKENS + 1
    # the conditioning block MRT2 built from what tatum sent, frame by frame: style tokens, then the
    # 128 note states, each shifted past MRT2's reserved tokens
    built = np.stack(blocks)
    assert len(blocks) == 8 and np.array_equal(built[:, 12:12 + 128] - offset, roll)
    assert np.array_equal(built[:, :12] - offset, np.tile(np.arange(12) + 5, (8, 1)))


def test_prompt_audio_uses_mrt2_when_it_is_installed(fake_mrt2):
    from tatum.audio.magenta import prompt_audio

    _, log = fake_mrt2
    audio, rate = prompt_audio("solo stride piano", seconds=1.5, tag="small")
    assert rate == 48_000 and audio.shape == (72_000, 2)
    assert not log.exists()          # a style alone: no note conditioning was sent

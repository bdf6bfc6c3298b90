"""Steering `tatum jam` from the keyboard (issue 16): the key → controls mapping (a pure function), a
key's change reaching the scheduler and the music (mock engine), pause and resume, the terminal put
back as it was however the jam ends; and `tatum jam --png`."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tatum.realtime.controls import Controls
from tatum.realtime.mock import velocity
from tatum.realtime.jam import Jam, JamOptions
from tatum.realtime.keys import (ACTIONS, JamKeys, TerminalKeys, changes_for_key, controls_after_key, help_text,
                                 split_keys)
from tatum.realtime.mock import MockStream

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONUNBUFFERED": "1", "COLUMNS": "100", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
GENRES = ["classical", "jazz", "pop"]
ARTISTS = ["Dick Hyman", "Art Tatum", "Keith Jarrett"]


def after(keys: str, controls: Controls | None = None) -> Controls:
    c = controls or Controls()
    for k in keys:
        c = controls_after_key(k, c, GENRES, ARTISTS) or c
    return c


# ------------------------------------------------------------------ the mapping
def test_digits_pick_a_style_and_s_goes_round_them():
    assert after("1").genre == {"classical": 1.0}
    assert after("3").genre == {"pop": 1.0}
    assert changes_for_key("2", Controls(), GENRES, ARTISTS) is None          # jazz already: no redraw
    assert changes_for_key("4", Controls(), GENRES, ARTISTS) is None          # no fourth style
    assert after("s").genre == {"pop": 1.0} and after("ss").genre == {"classical": 1.0}
    mixed = Controls(genre={"jazz": 0.7, "classical": 0.3})
    assert after("1", mixed).genre == {"classical": 1.0}


def test_p_goes_through_the_pianists_and_back_to_none():
    assert after("p").artist == {"Dick Hyman": 1.0}
    assert after("pp").artist == {"Art Tatum": 1.0}
    assert after("P").artist == {"Keith Jarrett": 1.0}
    assert after("pppp").artist is None
    assert after("pp0").artist is None and changes_for_key("0", Controls(), GENRES, ARTISTS) is None


def test_temperature_guidance_and_density_step_within_their_declared_ranges():
    one = Controls(temperature=1.0)
    assert after("+", one).temperature == pytest.approx(1.1) and after("=", one).temperature == pytest.approx(1.1)
    assert after("--", one).temperature == pytest.approx(0.8) and after("_", one).temperature == pytest.approx(0.9)
    assert changes_for_key("+", Controls(temperature=3.0), GENRES, ARTISTS) is None
    assert after("-" * 40).temperature == 0.0
    assert after("gg").guidance == 1.0 and after("ggG").guidance == 0.5
    assert changes_for_key("G", Controls(), GENRES, ARTISTS) is None
    assert after("]").density == 4 and after("[").density == 3          # from "any", a step from the middle
    assert after("]]]]]]]]").density == 7 and after("[[[[[[[").density == 0
    assert after("]]d").density is None
    assert changes_for_key("d", Controls(), GENRES, ARTISTS) is None


def test_actions_and_other_keys_change_no_control():
    for key in [*ACTIONS, "x", "\n", "é", "²", ""]:
        assert changes_for_key(key, Controls(), GENRES, ARTISTS) is None, key
    # arrows and function keys send escape sequences: none of their bytes is taken for a key
    assert list(split_keys("1\x1b[A]\x1bOP\x1b[1;5Cq")) == ["1", "]", "q"]
    text = help_text(GENRES)
    assert "1=classical 2=jazz 3=pop" in text and all(k in text for k in ("+/-", "]/[", "space", "? keys"))


# ------------------------------------------------------------------ a jam steered by keys (mock engine)
def wait_for(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def jam():
    stream = MockStream(step_ms=50, dur_ms=40)
    jam = Jam(stream, Controls(), JamOptions(chunk_s=0.25, buffer_s=0.5, ports=False))
    jam.start()
    yield jam
    jam.stop()
    jam.close()


def test_a_key_reaches_the_scheduler_and_is_heard(jam):
    said: list[str] = []
    keys = JamKeys(jam, GENRES, ARTISTS, said.append)
    for k in "1++p":
        keys.press(k)
    # the changes add up before the scheduler takes them up (each built on the last asked for)
    hot = Controls().temperature + 0.2
    assert jam.controls.genre == {"classical": 1.0} and jam.controls.temperature == pytest.approx(hot)
    assert jam.controls.artist == {"Dick Hyman": 1.0}
    s = jam.status()
    assert s["style"] == "classical · Dick Hyman" and s["temperature"] == pytest.approx(hot)
    assert wait_for(lambda: jam.scheduler.controls == jam.controls)
    # the mock engine plays classical with a pianist from 48 + 2, velocity 40 + 40·T
    assert wait_for(lambda: any(n.pitch >= 50 and n.pitch < 62 and n.velocity == velocity(jam.controls)
                                for n in _rows(jam.recorder.notes())))
    keys.press("?")
    assert said and "1=classical" in said[-1]
    keys.press("q")
    assert keys.quit.is_set()


def _rows(notes):
    from types import SimpleNamespace

    return [SimpleNamespace(onset=o, pitch=p, velocity=v) for o, p, v in
            zip(notes.onset_ms.tolist(), notes.pitch.tolist(), notes.velocity.tolist())]


def test_space_pauses_and_resumes(jam):
    keys = JamKeys(jam, GENRES, ARTISTS, lambda text: None)
    assert wait_for(lambda: len(jam.recorder.notes()) > 3)
    keys.press(" ")
    assert jam.paused and jam.status()["paused"]
    paused_at = jam.clock.now_ms()
    time.sleep(0.6)
    resumed_at = jam.clock.now_ms()
    keys.press(" ")
    assert not jam.paused
    assert wait_for(lambda: any(r.onset > resumed_at + 100 for r in _rows(jam.recorder.notes())))
    rows = _rows(jam.recorder.notes())
    assert not [r for r in rows if paused_at + 30 < r.onset < resumed_at - 30], "notes began while paused"


# ------------------------------------------------------------------ the terminal
def test_keys_come_one_at_a_time_and_the_terminal_is_put_back(tmp_path):
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "r") as stream:
            before = termios.tcgetattr(slave)
            got: list[str] = []
            with TerminalKeys(got.append, stream) as t:
                assert t.active
                during = termios.tcgetattr(slave)
                assert not during[3] & (termios.ICANON | termios.ECHO)      # no Enter, no echo
                os.write(master, b"1+\x1b[A]q")                             # an arrow key is skipped
                assert wait_for(lambda: len(got) == 4)
            assert got == ["1", "+", "]", "q"]
            assert termios.tcgetattr(slave) == before
            with pytest.raises(RuntimeError):
                with TerminalKeys(got.append, stream):
                    raise RuntimeError("the jam failed")
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_nothing_happens_when_stdin_is_not_a_terminal():
    r, w = os.pipe()
    try:
        with os.fdopen(r, "r") as stream, TerminalKeys(lambda k: None, stream) as t:
            assert not t.active
    finally:
        os.close(w)


def _interruptible() -> None:
    """Ctrl-C as a shell gives it to the job in front: a run started in the background of a script (`make
    test &`, nohup) has SIGINT ignored, which exec keeps, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tatum_on_a_terminal(*args) -> tuple[subprocess.Popen, int, int]:
    """`tatum` with a pseudo-terminal as stdin (its controlling terminal, as in a shell), stderr to a pipe
    (stdout, which nothing reads, to /dev/null: a full pipe would block the jam)."""
    import fcntl

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV, stdin=slave,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: (fcntl.ioctl(0, termios.TIOCSCTTY, 0), _interruptible()))
    return p, master, slave


@pytest.mark.parametrize("key", [b"q", b"\x03"])
def test_q_or_ctrl_c_stop_the_jam_and_the_terminal_is_as_it_was(tmp_path, key):
    p, master, slave = tatum_on_a_terminal("jam", "--seconds", 120, "--no-ports", "-o", tmp_path / "jam.mid",
                                           "--seed", 1)
    try:
        before = termios.tcgetattr(slave)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        reader.start()
        assert wait_for(lambda: any("? lists them" in line for line in lines), 120), lines
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
        time.sleep(1.0)
        os.write(master, b"3]" + key)
        try:
            code = p.wait(60)
        except subprocess.TimeoutExpired:        # say where it hangs
            os.kill(p.pid, signal.SIGABRT)       # faulthandler prints every thread's stack
            p.wait(10)
            reader.join(10)
            pytest.fail(f"the jam did not stop within 60 s of {key!r}:\n" + "".join(lines[-80:]))
        assert code == 0
        reader.join(10)
        assert termios.tcgetattr(slave) == before
        assert "s jammed:" in lines[-1] and "Traceback" not in "".join(lines), lines
        assert float(lines[-1].split(" s jammed")[0]) < 30
        assert (tmp_path / "jam.mid").exists()
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
        os.close(slave)


# ------------------------------------------------------------------ --png
def tatum(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tatum.cli", *map(str, args)], cwd=ROOT, env=ENV,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def test_a_headless_jam_draws_its_piano_roll(tmp_path):
    r = tatum("jam", "--seconds", 3, "--no-ports", "--png", tmp_path / "jam.png", "--seed", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "keys" not in r.stderr                        # stdin is no terminal: no keys
    assert str(tmp_path / "jam.png") in r.stderr.splitlines()[-1]
    assert (tmp_path / "jam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["jam.png"]      # (written atomically: no temporary left)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("tatum: error:"), r.stderr
    return lines[0]


def test_a_png_named_for_something_else_is_one_line_and_exit_code_2(tmp_path):
    r = tatum("jam", "--seconds", 1, "--no-ports", "--png", tmp_path / "roll.jpg")
    assert "--png writes a PNG picture, so its name must end in .png" in one_error_line(r)
    assert not (tmp_path / "roll.jpg").exists()


def test_a_png_is_not_overwritten_without_force(tmp_path):
    (tmp_path / "roll.png").write_bytes(b"mine")
    r = tatum("jam", "--seconds", 1, "--no-ports", "--png", tmp_path / "roll.png")
    assert "exists already" in one_error_line(r) and (tmp_path / "roll.png").read_bytes() == b"mine"

"""Real MIDI bytes through real virtual ports (JACK's dummy driver: no sound card needed), and sync
with a DAW over MIDI clock and Ableton Link. Each test starts what it needs or is skipped."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rtmidi = pytest.importorskip("rtmidi")

from tatum.errors import TatumError  # noqa: E402
from tatum.notes import Notes  # noqa: E402
from tatum.realtime.controls import Controls  # noqa: E402
from tatum.realtime.jam import Jam, JamOptions  # noqa: E402
from tatum.realtime.mock import MockStream, velocity  # noqa: E402
from tatum.realtime.ports import open_input, quiet_stderr, start_jack  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sync import DAW_CLOCK, on_grid  # noqa: E402


@pytest.fixture(scope="module")
def jack():
    try:
        proc = start_jack()
    except TatumError as e:
        pytest.skip(f"no JACK server: {e}")
    yield
    if proc is not None:
        proc.terminate()
        proc.wait(10)


# The jam's timing is judged on each note's distance from the notes' common phase (`on_grid`), which a
# loaded machine spoils only note by note; that phase moves whole when JACK delivers a DAW's Start or
# clocks late under load, so it is held to a looser bound. The jitter itself is benchmarks/sync.py's
# and benchmarks/realtime.py's to measure.
def steady(rel_ms: np.ndarray) -> bool:
    """Most notes on the common grid: a held-back note or two do not count against the jam."""
    return bool(np.median(rel_ms) < 5 and np.mean(rel_ms < 15) >= 0.7)


class Receiver:
    """A DAW's MIDI input: connects to a port and stamps every message with `stamp(arrival)`, the
    perf_counter time rtmidi saw it come in (in its MIDI thread, as tatum's own inputs do)."""

    def __init__(self, port: str, stamp=lambda wall: wall):
        self.got: list[tuple[list[int], object]] = []
        self.inp = open_input(rtmidi.API_UNIX_JACK, lambda m, wall: self.got.append((m, stamp(wall))), port,
                              "in", "daw-in")

    def note_ons(self) -> list[tuple[list[int], float]]:
        return [(m, t) for m, t in self.got if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def close(self):
        self.inp.delete()


class Sender:
    def __init__(self, port: str):
        with quiet_stderr():
            self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "daw-out")
        ports = self.out.get_ports()
        self.out.open_port([i for i, p in enumerate(ports) if p == port][0])

    def close(self):
        self.out.delete()


def test_notes_go_out_on_time_as_midi_bytes_and_the_players_notes_come_in(jack, tmp_path):
    stream = MockStream()
    jam = Jam(stream, Controls(), JamOptions(chunk_s=0.5, buffer_s=1.0, midi_api="jack", client="tatum-t1"))
    rx, tx = Receiver("tatum-t1:out"), Sender("tatum-t1-in:in")
    try:
        time.sleep(0.3)                  # let JACK make the connections
        jam.start()
        time.sleep(0.8)
        tx.out.send_message([0x90, 67, 101])
        time.sleep(0.3)
        tx.out.send_message([0x80, 67, 0])
        time.sleep(0.9)
        stopped = jam.stop()
        jam.save(tmp_path / "jam.mid", stopped)
    finally:
        jam.close()
        rx.close()
        tx.close()
    ons = rx.note_ons()
    assert len(ons) >= 7
    # exactly the bytes the mock played: note-on, channel 1, a scale from C4, its velocity at the default T
    # (a loaded machine may make the first before JACK has connected the receiver: C#4 is then the first)
    v = velocity(Controls())
    pitches = np.array([m[1] for m, _ in ons])
    assert pitches[0] in (60, 61) and all(m == [0x90, p, v] for (m, _), p in zip(ons, pitches))
    offs = [m for m, _ in rx.got if m[0] & 0xF0 == 0x80]
    assert [0x80, 60, 0] in offs or pitches[0] == 61
    # one note every 250 ms of the jam's clock, in order, measured at the receiving port; a note the
    # scheduler found due more than late_ms ago is not played (a loaded machine) and counted as late
    arrivals = np.array([t for _, t in ons]) * 1000
    assert np.array_equal(np.round((arrivals - arrivals[0]) / 250), pitches - pitches[0]), np.diff(arrivals)
    late = jam.scheduler.stats.late_notes
    assert pitches[-1] - pitches[0] + 1 - len(pitches) <= late <= 2, (pitches, late)
    rel, _ = on_grid(arrivals, 250)
    assert steady(rel), rel
    # the player's note reached the engine with its pitch, velocity and length
    live = [c for c in stream.calls if c["live"]]
    assert live
    played = [r for r in jam.scheduler.state.live if r[2] == 67]
    assert played and played[0][3] == 101 and 200 <= played[0][1] <= 450     # sent 300 ms apart
    # the recording holds what was sent
    rec = Notes.from_midi(tmp_path / "jam.mid")
    assert rec.pitch[0] == 60 or late
    head = rec.onset_ms[:4].astype(int) - rec.onset_ms[0], rec.pitch[:4].astype(int) - rec.pitch[0]
    assert np.array_equal(head[0], head[1] * 250)
    assert len(rec) >= len(ons) and set(pitches) <= set(rec.pitch.tolist())


# A DAW at 100 bpm in a process of its own, as a real one is (a thread here would share the jam's GIL):
# Start, then 24 clocks per beat on its own schedule; it prints when it sent Start (benchmarks/sync.py).


def _jam_to_a_daws_midi_clock(client: str, out: Path) -> tuple[list, float, float, float, int]:
    """A jam synced to a DAW sending MIDI clock at 100 bpm (a process of its own), for 2 s after its
    start, saved to `out`: the note-ons the DAW heard, the DAW's clock origin, the jam's first beat,
    the tempo it read from the clock and the notes the scheduler dropped as late."""
    jam = Jam(MockStream(step_ms=250), Controls(),
              JamOptions(chunk_s=0.5, buffer_s=1.0, sync="midi-clock", quantize_beats=0.25, midi_api="jack",
                         client=client))
    rx = Receiver(f"{client}:out")
    daw = subprocess.Popen([sys.executable, "-c", DAW_CLOCK, f"{client}-clock:clock"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        t0 = float(daw.stdout.readline())           # perf_counter is the system's monotonic clock
        jam.wait_for_transport(timeout_s=5)
        bpm = jam.clock.bpm()
        wall0 = jam.start()
        assert jam.clock.beat0 % 4 == 0          # the jam begins on a bar line of the DAW
        time.sleep(max(0.0, wall0 - time.perf_counter()) + 2.0)
        stopped = jam.stop()
        jam.save(out, stopped)
    finally:
        daw.terminate()
        daw.wait(5)
        jam.close()
        rx.close()
    return rx.note_ons(), t0, jam.clock.beat0, bpm, jam.scheduler.stats.late_notes


def test_the_jam_lands_on_the_beat_of_a_daws_midi_clock(jack, tmp_path):
    # A loaded 2-core machine may hold notes back, or JACK lose the MIDI of a cycle it missed, in one
    # run (a lost Start or clocks too uneven to recount); a fault of the jam's would show in every run.
    for attempt in range(3):
        ons, t0, beat0, bpm, late = _jam_to_a_daws_midi_clock(f"tatum-t2{'abc'[attempt]}",
                                                        tmp_path / f"jam{attempt}.mid")
        assert len(ons) >= 6
        # where each note arrived on the DAW's timeline (clock k is due at t0 + k · 25 ms), in ms
        arrivals = (np.array([t for _, t in ons]) - t0) * 1000
        rel, phase = on_grid(arrivals, 150)              # a sixteenth at 100 bpm is 150 ms
        first_beat = np.round(arrivals[0] / 150) / 4
        # the first note on the jam's first beat, unless the scheduler dropped the first as due more than
        # late_ms ago (a loaded machine; CI once lost two): then as many notes later (250 ms ≤ half a
        # beat). CI also once lost the first note with none counted late: JACK's dummy driver drops the
        # MIDI of a cycle it misses, so that too is retried, not failed at once.
        on_time = first_beat == beat0 or 0 < first_beat - beat0 <= 0.5 * late
        if steady(rel) and phase < 25 and abs(bpm - 100) <= 2 and on_time:
            break
    assert abs(bpm - 100) <= 2 and steady(rel) and phase < 25, (bpm, rel, phase)
    assert on_time, (first_beat, beat0, late)
    # the recording's notes sit on sixteenths of its 100 bpm tempo map
    from symusic import Score

    score = Score(str(tmp_path / f"jam{attempt}.mid"))
    assert round(score.tempos[0].qpm) == 100
    t = score.tracks[0].notes.numpy()["time"]
    assert np.all(np.abs(t - np.round(t / 120) * 120) <= 2)          # (1 tick = 1.25 ms; times are whole ms)


def _jam_to_a_link_session(client: str, out: Path) -> tuple[np.ndarray, float, int]:
    """A jam joined to a Link session at 100 bpm that speeds up to 130 mid-jam, saved to `out`: where on
    the session's timeline (in sixteenths) each note-on arrived, the jam's first beat and the notes the
    scheduler dropped as late."""
    from tatum.realtime.transport import LinkTransport

    daw = LinkTransport(bpm=100)
    jam = Jam(MockStream(step_ms=300), Controls(),
              JamOptions(chunk_s=0.5, buffer_s=1.0, sync="link", quantize_beats=0.25, midi_api="jack",
                         client=client))
    def daw_sixteenth(arrival: float) -> float:        # where the DAW's timeline was as a message arrived
        wall, beat, bpm = daw.read()
        return (beat + (arrival - wall) * bpm / 60) * 4

    rx = Receiver(f"{client}:out", stamp=daw_sixteenth)
    try:
        deadline = time.monotonic() + 8
        while jam.transport.peers < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        if jam.transport.peers < 1:
            pytest.skip("Link peers did not find each other (no multicast here)")
        daw.set_tempo(100)
        time.sleep(0.2)
        assert jam.clock.bpm() == pytest.approx(100, abs=0.01)
        wall0 = jam.start()
        time.sleep(max(0.0, wall0 - time.perf_counter()) + 1.2)
        daw.set_tempo(130)               # the DAW speeds up mid-jam
        time.sleep(1.3)
        stopped = jam.stop()
        jam.save(out, stopped)
        sixteenths = [t for _, t in rx.note_ons()]
    finally:
        jam.close()
        rx.close()
        daw.close()
    return np.array(sixteenths), jam.clock.beat0, jam.scheduler.stats.late_notes


def test_link_tempo_and_phase_follow_the_session(jack, tmp_path):
    pytest.importorskip("aalink")
    for attempt in range(3):           # as the MIDI-clock test: a loaded machine may spoil one run
        s, beat0, late = _jam_to_a_link_session(f"tatum-t3{'abc'[attempt]}", tmp_path / f"jam{attempt}.mid")
        assert len(s) >= 6
        rel, phase = on_grid(s * 150, 150)                     # on the DAW's 16th grid (ms at 100 bpm)
        if steady(rel) and phase < 25:
            break
    assert steady(rel) and phase < 25, (rel, phase)
    assert np.all(np.diff(np.round(s)) > 0)
    first = np.round(s[0]) / 4          # (as the MIDI-clock test: later only by notes dropped as late)
    assert beat0 % 4 == 0 and (first == beat0 or 0 < first - beat0 <= 0.5 * late), (first, beat0, late)
    from symusic import Score

    score = Score(str(tmp_path / f"jam{attempt}.mid"))
    assert [round(t.qpm) for t in score.tempos] == [100, 130]
    t = score.tracks[0].notes.numpy()["time"]
    assert np.all(np.abs(t - np.round(t / 120) * 120) <= 2)         # sixteenths of a 480-tick quarter


def test_a_missing_port_is_one_clear_error(jack):
    with pytest.raises(TatumError, match="MIDI output port 'no-such-synth' not found"):
        Jam(MockStream(), Controls(), JamOptions(out_port="no-such-synth", midi_api="jack", client="tatum-t4"))


def test_a_jack_server_that_stops_ends_the_jam_instead_of_hanging_it(monkeypatch):
    import shutil
    import subprocess

    pytest.importorskip("jack")
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "tatum-doomed")       # a server of its own, to stop
    server = subprocess.Popen(["jackd", "-n", "tatum-doomed", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from tatum.realtime.ports import jack_running

        deadline = time.monotonic() + 10
        while not jack_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not jack_running():
            pytest.skip("a second JACK server did not start")
        jam = Jam(MockStream(step_ms=20), Controls(), JamOptions(chunk_s=0.5, buffer_s=1.0, midi_api="jack",
                                                                 client="tatum-t5"))
        jam.start()
        time.sleep(0.5)
        server.terminate()
        server.wait(10)
        deadline = time.monotonic() + 5
        with pytest.raises(TatumError, match="JACK server stopped"):
            while time.monotonic() < deadline:
                jam.check()
                time.sleep(0.05)
        time.sleep(1.0)                   # notes keep falling due: none may be sent into the dead server
        done = threading.Event()
        threading.Thread(target=lambda: (jam.stop(), jam.close(), done.set()), daemon=True).start()
        assert done.wait(15), "stopping the jam hung"
    finally:
        if server.poll() is None:
            server.kill()

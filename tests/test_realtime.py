"""tatum.realtime without ports: the scheduler around a mock stream (and a tiny real model), the
controls, the jam clock and recording on a tempo map, audio with crossfades."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tatum.errors import TatumError
from tatum.notes import Notes
from tatum.realtime.controls import Controls
from tatum.realtime.mock import MockStream, base_pitch, velocity
from tatum.realtime.record import MidiRecorder
from tatum.realtime.scheduler import FIRST_CHUNK_MS, Scheduler
from tatum.realtime.timeline import OFF, ON, Timeline
from tatum.realtime.transport import FreeTransport, JamClock, MidiClockTransport


def run(scheduler: Scheduler, seconds: float, during=None) -> list:
    events = []
    scheduler.on_event.append(lambda ev, due: events.append((ev, due, time.perf_counter())))
    scheduler.start()
    try:
        if during:
            during(scheduler)
        time.sleep(seconds)
    finally:
        scheduler.stop()
    assert scheduler.error is None
    return events


# ------------------------------------------------------------------ controls
def test_controls_are_checked_and_mapped_to_conditioning_and_sampling():
    c = Controls().updated({"genre": {"jazz": 0.7, "classical": 0.3}, "artist": "Art Tatum", "temperature": 1.2,
                            "top_k": 40, "guidance": 2, "density": 5}, artists=["Art Tatum", "Bill Evans"])
    cond, samp = c.conditioning(), c.sampling(seed=3)
    assert cond.genre == {"jazz": 0.7, "classical": 0.3} and cond.artist == {"Art Tatum": 1.0}
    assert cond.density == 5 and samp.temperature == 1.2 and samp.top_k == 40 and samp.seed == 3
    assert c.label() == "jazz .70 classical .30 · Art Tatum"
    bad = [({"temperature": "hot"}, "temperature must be a number"), ({"temperature": 9}, "0–3"),
           ({"top_k": 2.5}, "whole number"), ({"density": 8}, "0–7"), ({"genre": "polka"}, "unknown style"),
           ({"genre": {"jazz": 0}}, "not all be zero"), ({"artist": "Nobody"}, "unknown pianist"),
           ({"volume": 3}, "unknown control"), ({"guidance": float("nan")}, "number"), ([], "object")]
    for changes, msg in bad:
        with pytest.raises(TatumError, match=msg):
            Controls().updated(changes, artists=["Art Tatum"])


# ------------------------------------------------------------------ timeline and clock
def test_a_cut_drops_notes_from_its_time_on_and_keeps_the_offs_of_notes_already_started():
    tl = Timeline()
    tl.add(Notes([0, 100, 200], [500, 50, 50], [60, 62, 64], [80, 80, 80]))
    assert tl.cut(100) == 2
    left = tl.drain()
    assert [(e.ms, e.kind, e.pitch) for e in left] == [(0.0, ON, 60), (500.0, OFF, 60)]


def test_jam_clock_follows_tempo_changes_and_maps_jam_time_to_the_daws():
    class Daw:
        name = "daw"
        bpm, beat, wall = 100.0, 10.3, 50.0

        def read(self):
            return self.wall, self.beat, self.bpm

    daw = Daw()
    clock = JamClock(daw)
    clock.prepare()
    wall0 = clock.start(lead_s=0.0)
    assert clock.beat0 == 12 and wall0 == pytest.approx(50 + 1.7 * 0.6)      # next bar line
    assert clock.ms_per_beat == pytest.approx(600)
    daw.beat, daw.wall = 14.0, 51.02          # two beats into the jam: 1200 jam ms
    assert clock.now_ms() == pytest.approx(1200)
    daw.bpm = 150.0                           # the DAW speeds up: jam ms now pass faster
    assert clock.wall_at(1800) == pytest.approx(51.02 + 1.0 * 0.4)
    assert clock.tempi == [(0.0, 100.0), (1200.0, 150.0)]
    # on the DAW's timeline, 1200 jam ms are 1200 ms, the next 600 jam ms (one beat) are 400 ms
    assert np.allclose(clock.real_ms(np.array([0, 1200, 1800])), [0, 1200, 1600])
    tm = clock.tempo_map()
    assert np.allclose(tm.tempo_ms, [0, 1200]) and np.allclose(tm.qpm, [100, 150])


def test_midi_clock_tempo_and_beat_from_clock_messages():
    mc = MidiClockTransport()
    mc.feed([0xFA], 0.0)
    for k in range(48):                        # two beats at 125 bpm: a clock every 20 ms
        mc.feed([0xF8], 1.0 + k * 0.02)
    assert mc.ready() and mc.tempo() == pytest.approx(125.0)
    assert mc._last == (pytest.approx(1.94), pytest.approx(47 / 24))
    mc.feed([0xF2, 16, 0])                     # song position: 16 sixteenths = beat 4
    assert mc.clocks == 96
    mc.feed([0xFC])
    assert not mc.ready()



def test_midi_clock_tempo_shrugs_off_late_clocks():
    # a loaded machine delivers a clock 25 ms late now and then; the tempo is still right
    for late in (0, 12, 24):
        mc = MidiClockTransport()
        mc.feed([0xFA], 0.0)
        for k in range(48):                    # two beats at 100 bpm: a clock every 25 ms
            mc.feed([0xF8], k * 0.025 + (0.025 if k == late else 0.0))
        assert mc.ready() and mc.tempo() == pytest.approx(100.0, abs=1.0), late
    # a stall: six clocks held back, then delivered in a burst
    mc = MidiClockTransport()
    mc.feed([0xFA], 0.0)
    for k in range(48):
        mc.feed([0xF8], max(k * 0.025, 0.4) if 10 <= k < 16 else k * 0.025)
    assert mc.tempo() == pytest.approx(100.0, abs=1.0)

def test_midi_clock_counts_a_lost_clock_but_not_a_stall_or_a_slower_tempo():
    def fed(walls):
        mc = MidiClockTransport()
        mc.feed([0xFA], 0.0)
        for w in walls:
            mc.feed([0xF8], w)
        return mc

    clocks = [k * 0.025 for k in range(96)]          # four beats at 100 bpm
    # JACK dropped clock 60: the jam still knows where the DAW is once the next five clocks came
    mc = fed(clocks[:60] + clocks[61:])
    assert mc.clocks == 95 and mc.tempo() == pytest.approx(100.0)
    assert mc._last == (pytest.approx(clocks[-1]), pytest.approx(95 / 24))
    mc = fed(clocks[:60] + clocks[62:])              # two lost in a row
    assert mc.clocks == 95
    # a 1024-frame JACK cycle (21.3 ms) stamps each clock at the cycle it came in: late by up to a
    # cycle, so spacings of one or two cycles, and nothing lost
    cycle = 1024 / 48000
    stamped = [np.ceil((w + 0.004) / cycle) * cycle for w in clocks * 10]
    assert fed([w + 2.4 * (k // 96) for k, w in enumerate(stamped)]).clocks == 959
    # clocks 60–65 held back 60 ms and then delivered in a burst: nothing was lost
    mc = fed([max(w, clocks[60] + 0.06) if 60 <= k < 66 else w for k, w in enumerate(clocks)])
    assert mc.clocks == 95
    # the DAW drops to 60 bpm at clock 60: later clocks, but none missing
    slower = clocks[:60] + [clocks[59] + (k - 59) * 0.0417 for k in range(60, 96)]
    assert fed(slower).clocks == 95


def test_recording_is_written_on_the_daws_tempo_map(tmp_path):
    class Daw:
        name = "daw"
        bpm, beat, wall = 120.0, 0.0, 0.0

        def read(self):
            return self.wall, self.beat, self.bpm

    daw = Daw()
    clock = JamClock(daw)
    clock.start(lead_s=0.0)
    rec = MidiRecorder(clock)
    tl = Timeline()
    tl.add(Notes([0, 500, 1000, 1500], [250, 250, 250, 250], [60, 62, 64, 65], [90] * 4))
    daw.beat, daw.bpm = 2.0, 60.0              # at jam ms 1000 the DAW halves its tempo
    clock.now_ms()
    for ev in tl.drain():
        rec.on_event(ev, 0.0)
    path = tmp_path / "jam.mid"
    rec.save(path, until_ms=1750)
    from symusic import Score

    score = Score(str(path))
    ticks = score.tracks[0].notes.numpy()["time"]
    assert list(ticks) == [0, 480, 960, 1440]   # one note per beat in the file, as heard against the DAW
    assert [round(t.qpm) for t in score.tempos] == [120, 60]
    back = Notes.from_midi(path)
    assert list(back.onset_ms) == [0, 500, 1000, 2000]


# ------------------------------------------------------------------ the scheduler
def test_scheduler_keeps_a_buffer_ahead_and_plays_on_time():
    stream = MockStream(plan_delay_s=0.05)
    sched = Scheduler(stream, Controls(), JamClock(FreeTransport()), chunk_s=0.5, buffer_s=1.0)
    events = run(sched, 1.6)
    ons = [e for e, _, _ in events if e.kind == ON]
    assert [e.ms for e in ons][:6] == [0, 250, 500, 750, 1000, 1250]
    assert [e.pitch for e in ons][:3] == [60, 61, 62] and ons[0].velocity == velocity(Controls())
    late = np.array([sent - due for _, due, sent in events]) * 1000
    assert np.percentile(late, 95) < 5 and sched.stats.underruns == 0
    # the engine was called ahead: at stop, at least one more chunk than the clock had reached
    assert sched.horizon >= 1600 + 500 - 100
    first_starts = [c["start_ms"] for c in stream.calls]
    assert first_starts[:4] == [0, 500, 1000, 1500]


def test_a_control_change_is_heard_within_the_margin_not_after_the_buffer():
    stream = MockStream(plan_delay_s=0.05)
    sched = Scheduler(stream, Controls(), JamClock(FreeTransport()), chunk_s=2.0, buffer_s=4.0)
    asked = {}

    def change(s):
        time.sleep(1.0)
        asked["ms"] = s.clock.now_ms()
        s.request(Controls().updated({"genre": "classical", "temperature": 0.5}))

    events = run(sched, 1.2, change)
    ons = [e for e, _, _ in events if e.kind == ON]
    switched = [e for e in ons if e.pitch < 60]
    assert switched, "the change never reached the engine"
    first = switched[0]
    assert first.velocity == 60 and first.pitch == base_pitch(Controls(genre={"classical": 1}).conditioning()) + \
        (int(first.ms) // 250) % 12
    # heard within margin + one note step of the change, although 4 s were buffered
    assert first.ms - asked["ms"] < 60 + 50 * 1.3 + 30 + 250 + 50
    assert sched.stats.cuts == 1 and sched.stats.latencies_ms and sched.stats.latencies_ms[0] < 450
    # nothing before the cut was redrawn: the notes already played are the old style
    assert all(e.pitch >= 60 for e in ons if e.ms < asked["ms"])
    # the rewind replayed the chunk up to the cut under the old controls, then drew under the new: a
    # short chunk first (FIRST_CHUNK_MS), then longer ones, up to the usual length
    replay = [c for c in stream.calls if c["chunk_s"] < 2.0 and c["conditioning"].genre == {"jazz": 1.0}]
    assert len(replay) == 1
    after = [c["chunk_s"] for c in stream.calls if c["conditioning"].genre == {"classical": 1.0}]
    assert after[0] == FIRST_CHUNK_MS / 1000 and min(after) >= 0.1 and after[-1] == 2.0


def test_the_players_notes_reach_the_stream_and_can_trigger_a_redraw():
    from tatum.realtime.live import LiveInput

    stream = MockStream()
    clock = JamClock(FreeTransport())
    live = LiveInput(lambda wall: clock.ms_at_wall(wall) if clock.beat0 is not None else None)
    sched = Scheduler(stream, Controls(), clock, chunk_s=1.0, buffer_s=2.0, live=live, rewind_on_live=True)

    def play(s):
        time.sleep(0.3)
        live.message([0x90, 67, 100])
        time.sleep(0.2)
        live.message([0x80, 67, 0])

    run(sched, 0.6, play)
    given = [c for c in stream.calls if c["live"]]
    assert given and sched.stats.cuts >= 1
    assert sched.state.live[0][2] == 67 and 200 <= sched.state.live[0][0] <= 400


def test_a_change_is_prepared_for_its_cut_with_the_players_notes_and_starts_inside_one_window():
    from dataclasses import dataclass, field

    from tatum.realtime.live import LiveInput

    @dataclass
    class Prepared(MockStream):      # prepares as Stream does, in 1 s windows
        prepared: list = field(default_factory=list)
        window_ms = 1000

        def prepare(self, state, conditioning=None, sampling=None, at_ms=None, live=None, slack_ms=0):
            self.prepared.append((at_ms, slack_ms, 0 if live is None else len(live), len(self.calls)))

    stream = Prepared(step_ms=100)
    clock = JamClock(FreeTransport())
    live = LiveInput(lambda wall: clock.ms_at_wall(wall) if clock.beat0 is not None else None)
    sched = Scheduler(stream, Controls(), clock, chunk_s=1.0, buffer_s=2.0, live=live)

    def changes(s):
        for k in range(5):
            time.sleep(0.23)
            live.message([0x90, 60 + k, 90])
            s.request(Controls().updated({"genre": ("classical", "pop")[k % 2]}))

    run(sched, 0.3, changes)
    cuts = [r["cut_ms"] for r in sched.stats.rewinds]
    assert len(cuts) == len(stream.prepared) == 5
    for cut, (at, slack, n, calls) in zip(cuts, stream.prepared):
        assert at <= cut <= at + slack + 20 and at // 1000 == cut // 1000    # prepared where it cut
        assert n >= 1                                                       # with the note just played
        first = next(c for c in stream.calls[calls:] if c["start_ms"] == cut)
        assert first["live"] >= 1                                  # given to the first chunk after the cut
        assert cut // 1000 == (cut + round(first["chunk_s"] * 1000) - 1) // 1000   # inside one window


def test_state_stays_json_through_the_scheduler():
    stream = MockStream()
    sched = Scheduler(stream, Controls(), JamClock(FreeTransport()), chunk_s=0.5, buffer_s=0.5)
    run(sched, 0.3)
    json.loads(sched.state.to_json())


def test_scheduler_refuses_a_buffer_smaller_than_a_chunk():
    with pytest.raises(TatumError, match="at least one chunk"):
        Scheduler(MockStream(), Controls(), JamClock(FreeTransport()), chunk_s=2.0, buffer_s=1.0)


def test_a_tiny_real_model_jams_through_the_scheduler():
    import torch

    from tatum.generate.stream import Stream
    from tatum.model.config import preset
    from tatum.model.notelm import NoteLM
    from tatum.tokenizer import Tokenizer

    tok = Tokenizer.default()
    torch.manual_seed(0)
    model = NoteLM(preset("note-tiny", tok.vocab_size)).eval()
    sched = Scheduler(Stream(model, tok), Controls(seed=1), JamClock(FreeTransport()), chunk_s=1.0, buffer_s=2.0)
    events = run(sched, 1.0, lambda s: s.request(Controls(seed=1).updated({"genre": "classical"})))
    assert sched.stats.chunks >= 3 and sched.stats.cuts <= 1
    assert all(21 <= e.pitch <= 108 for e, _, _ in events)


# ------------------------------------------------------------------ audio
def test_a_replaced_tail_crossfades_with_equal_power_over_40_ms():
    pytest.importorskip("fluidsynth")
    from tatum.realtime.audio import AudioStream, equal_power

    old = Notes([0, 300, 600, 900], [500, 500, 500, 500], [60, 64, 67, 72], [90] * 4)
    new = Notes([600, 800], [400, 400], [48, 55], [100, 100])
    a = AudioStream()
    a.add(old)
    head = a.take(12_000)                  # 250 ms handed out
    a.render_until(48_000)                 # 1 s rendered ahead
    a.cut(500)
    a.add(new)
    got = np.concatenate([head, a.take(60_000)])

    def reference(notes):
        r = AudioStream()
        r.add(notes)
        return r.take(72_000)

    before, after = reference(old), reference(Notes.merge([old.slice(0, 500), new]))
    c, x = 24_000, 1920
    fade_in, fade_out = equal_power(x)
    assert np.allclose(fade_in ** 2 + fade_out ** 2, 1.0)
    assert np.array_equal(got[:c], before[:c])                           # what was there stays
    assert np.allclose(got[c:c + x], after[c:c + x] * fade_in[:, None] + before[c:c + x] * fade_out[:, None],
                       atol=1e-6)
    assert np.allclose(got[c + x:], after[c + x:], atol=1e-6)           # then the redrawn tail
    assert np.abs(got[c + x:] - before[c + x:]).max() > 0.01            # which is really different
    assert a.crossfades == 1

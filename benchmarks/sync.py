"""How closely does a jam follow a DAW's timeline? The figures the real-time MIDI tests no longer hold
to tight bounds (a loaded 2-core machine spoils single runs), measured over many runs.

Each run starts a jam (MockStream: the timing is the jam's, not the model's) synced to a DAW — a
process of its own sending MIDI clock at 100 bpm (`--sync midi-clock`), or a Link peer at 100 bpm
that moves to 130 mid-jam (`--sync link`) — and a separate receiver stamps every note-on as it
arrives at a JACK port. For each note: how far it lands from the DAW's sixteenth-note grid. Per run:
the notes' spread around their common phase (the jam's jitter) and that phase's distance from the
grid (the jam's offset from the DAW, of which JACK's own latency is part).

    nice -n 5 .venv/bin/python benchmarks/sync.py [--sync midi-clock|link] [--runs 10] [--seconds 2]

JACK is started on its dummy driver when none runs (`apt-get install jackd2`). The last line printed
is a JSON object with the medians and 95th percentiles over all notes and runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from tatum.realtime.controls import Controls
from tatum.realtime.jam import Jam, JamOptions
from tatum.realtime.mock import MockStream
from tatum.realtime.ports import open_input, start_jack

SIXTEENTH_MS = 150.0       # at 100 bpm

DAW_CLOCK = r"""
import sys, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "daw-clock")
out.open_port([i for i, p in enumerate(out.get_ports()) if p == sys.argv[1]][0])
time.sleep(0.5)
out.send_message([0xFA])
t0 = time.perf_counter()
print(t0, flush=True)
k = 0
while True:
    due = t0 + k * 0.025
    time.sleep(max(0.0, due - time.perf_counter() - 0.001))
    while time.perf_counter() < due:
        pass
    out.send_message([0xF8])
    k += 1
"""


def on_grid(times_ms: np.ndarray, step_ms: float = SIXTEENTH_MS) -> tuple[np.ndarray, float]:
    """Each note's distance from the notes' common phase on a grid of `step_ms`, and that phase's
    distance from the grid's origin (ms)."""
    frac = (times_ms / step_ms) % 1.0
    phase = float(np.angle(np.mean(np.exp(2j * np.pi * frac))) / (2 * np.pi))   # circular mean, in steps
    return np.abs((frac - phase + 0.5) % 1.0 - 0.5) * step_ms, abs(phase) * step_ms


def midi_clock_run(client: str, seconds: float) -> np.ndarray:
    """Arrival times (ms on the DAW's timeline) of the note-ons of one jam synced to MIDI clock."""
    import rtmidi

    jam = Jam(MockStream(step_ms=250), Controls(),
              JamOptions(chunk_s=0.5, buffer_s=1.0, sync="midi-clock", quantize_beats=0.25, midi_api="jack",
                         client=client))
    got = []
    rx = open_input(rtmidi.API_UNIX_JACK, lambda m, wall: got.append((m, wall)), f"{client}:out", "in", "bench-in")
    daw = subprocess.Popen([sys.executable, "-c", DAW_CLOCK, f"{client}-clock:clock"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        t0 = float(daw.stdout.readline())
        jam.wait_for_transport(timeout_s=5)
        wall0 = jam.start()
        time.sleep(max(0.0, wall0 - time.perf_counter()) + seconds)
        jam.stop()
    finally:
        daw.terminate()
        daw.wait(5)
        jam.close()
        rx.delete()
    return np.array([(t - t0) * 1000 for m, t in got if m[0] & 0xF0 == 0x90 and m[2] > 0])


def link_run(client: str, seconds: float) -> np.ndarray:
    """Where on a Link session's timeline (ms at 100 bpm per sixteenth) each note-on of one jam arrived;
    the session moves from 100 to 130 bpm halfway."""
    import rtmidi

    from tatum.realtime.transport import LinkTransport

    daw = LinkTransport(bpm=100)
    jam = Jam(MockStream(step_ms=300), Controls(),
              JamOptions(chunk_s=0.5, buffer_s=1.0, sync="link", quantize_beats=0.25, midi_api="jack",
                         client=client))

    def sixteenth(arrival: float) -> float:
        wall, beat, bpm = daw.read()
        return (beat + (arrival - wall) * bpm / 60) * 4

    got = []
    rx = open_input(rtmidi.API_UNIX_JACK, lambda m, wall: got.append((m, sixteenth(wall))), f"{client}:out", "in",
                    "bench-in")
    try:
        deadline = time.monotonic() + 8
        while jam.transport.peers < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        if jam.transport.peers < 1:
            raise SystemExit("Link peers did not find each other (no multicast here)")
        daw.set_tempo(100)
        time.sleep(0.2)
        wall0 = jam.start()
        time.sleep(max(0.0, wall0 - time.perf_counter()) + seconds / 2)
        daw.set_tempo(130)
        time.sleep(seconds / 2)
        jam.stop()
    finally:
        jam.close()
        rx.delete()
        daw.close()
    return np.array([s * SIXTEENTH_MS for m, s in got if m[0] & 0xF0 == 0x90 and m[2] > 0])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sync", choices=["midi-clock", "link"], default="midi-clock")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args(argv)
    jack = start_jack()
    run = midi_clock_run if a.sync == "midi-clock" else link_run
    spread, phases, notes = [], [], 0
    try:
        for k in range(a.runs):
            times = run(f"bench-{k}", a.seconds)
            if len(times) < 3:
                print(f"run {k}: {len(times)} notes arrived", flush=True)
                continue
            rel, phase = on_grid(times)
            spread.append(rel)
            phases.append(phase)
            notes += len(times)
            print(f"run {k}: {len(times)} notes, jitter median {np.median(rel):.1f} ms, p95 "
                  f"{np.percentile(rel, 95):.1f} ms, offset from the DAW's grid {phase:.1f} ms", flush=True)
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(10)
    rel = np.concatenate(spread) if spread else np.zeros(0)
    out = {"sync": a.sync, "runs": len(phases), "notes": notes,
           "jitter_p50_ms": float(np.median(rel)) if len(rel) else None,
           "jitter_p95_ms": float(np.percentile(rel, 95)) if len(rel) else None,
           "offset_p50_ms": float(np.median(phases)) if phases else None,
           "offset_max_ms": float(np.max(phases)) if phases else None}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()

"""Can tatum jam in real time on this CPU? Four measures, with the shipped model:

1. real-time factor — music seconds drawn per wall second, calling `generate_chunk` back to back on
   dense jazz: the densest of a dozen PiJAMA val performances is the player's live input (its notes
   join the context, as a pianist's would). Target ≥ 5.
2. control-to-note latency — in a real-time jam, a style change every ~`--change-every` seconds
   (jazz → classical → pop → …); the time from asking to the first note drawn under the new style
   going out of the MIDI port. Target p95 ≤ 500 ms.
3. buffer underruns — chunks that come back after the clock has reached them, over `--minutes` of that
   jam at the default chunk and buffer, while another process keeps one core busy (and the PiJAMA
   piece keeps coming in as live input). Target 0.
4. note timing jitter at the MIDI port — every note-on / note-off is received on a real JACK port by a
   separate process; jitter is |arrival − due − median(arrival − due)|. Target p95 ≤ 5 ms.

    nice -n 5 .venv/bin/python benchmarks/realtime.py [--minutes 5] [--chunk 1] [--buffer 2]
        [--rtf-seconds 60] [--change-every 10] [--model PATH] [--mock] [--no-busy] [--data ../shared/data]

JACK is started on its dummy driver when none runs (`apt-get install jackd2`); without it the jitter is
measured at the sending side only. `--mock` runs the harness on MockStream (no model). The last line
printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from valset import DEFAULT_DATA, pijama_val

TARGETS = {"rtf": 5.0, "latency_p95_ms": 500.0, "underruns": 0, "jitter_p95_ms": 5.0}
STYLES = [{"genre": {"classical": 1.0}}, {"genre": {"pop": 1.0}}, {"genre": {"jazz": 1.0}},
          {"genre": {"jazz": 0.5, "classical": 0.5}}]

RECEIVER = r"""
import json, sys, time
import os
import rtmidi
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))   # as a DAW would, where allowed
except (AttributeError, OSError):
    pass
inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "bench-rx", queue_size_limit=1 << 16)
want = sys.argv[1]
deadline = time.monotonic() + 10
while want not in inp.get_ports():
    if time.monotonic() > deadline:
        sys.exit("port not found")
    time.sleep(0.05)
got = []
inp.set_callback(lambda ev, data=None: got.append((time.perf_counter(), ev[0])))
inp.open_port(inp.get_ports().index(want))
print("ready", flush=True)
sys.stdin.read()
print(json.dumps(got), flush=True)
"""


def dense_piece(data: Path, seconds: float, candidates: int = 12):
    """(title, Notes from 0) of the PiJAMA val performance with the most notes in its first `seconds`."""
    from tatum.notes import Notes

    best = None
    for row, path in pijama_val(data, candidates):
        n = Notes.from_midi(path)
        n = n.shift(-n.start_ms).slice(0, seconds * 1000, clip=True)
        if best is None or len(n) > len(best[1]):
            best = (f"{row['artist']} — {row['title']}", n)
    return best


def measure_rtf(stream, controls, piece, seconds: float, chunk_s: float) -> dict:
    """Back-to-back chunks with the piece as live input: music seconds per wall second."""
    state, calls = None, []
    chunk_ms = round(chunk_s * 1000)
    cond, sampling = controls.conditioning(), controls.sampling(1)
    stream.generate_chunk(None, cond, sampling, 0.05)          # warm-up (first-call costs), not timed
    t0 = time.perf_counter()
    for k in range(int(seconds * 1000 // chunk_ms)):
        start = k * chunk_ms
        live = piece.select((piece.onset_ms >= start - chunk_ms) & (piece.onset_ms < start))
        t = time.perf_counter()
        _, state = stream.generate_chunk(state, cond, sampling, chunk_s, live if len(live) else None)
        calls.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    music = len(calls) * chunk_s
    return {"rtf": music / wall, "music_s": music, "wall_s": wall, "slowest_call_s": max(calls),
            "calls": len(calls)}


class SendLog:
    """Wraps a MidiOutSink: remembers when each message was due and when it was sent."""

    def __init__(self, sink):
        self.sink, self.log, self._due = sink, [], 0.0
        log = self

        class Out:                       # rtmidi's methods are read-only: wrap the port instead
            def __init__(self, out):
                self.out = out

            def send_message(self, msg):
                log.log.append((log._due, time.perf_counter(), list(msg)))
                self.out.send_message(msg)

            def __getattr__(self, name):
                return getattr(self.out, name)

        sink.out = Out(sink.out)

    def on_event(self, ev, due):
        self._due = due
        self.sink.on_event(ev, due)
        self._due = None                 # what is sent outside the schedule (all notes off) has no due time


def play_piece(jam, piece, stop: threading.Event) -> None:
    """The pianist: the piece's notes into the jam's live input at their times, looped."""
    length = max(piece.end_ms, 1000)
    events = []
    for loop in range(1000):
        base = loop * length
        for o, d, p, v in zip(piece.onset_ms, piece.dur_ms, piece.pitch, piece.velocity):
            events.append((base + int(o), 1, int(p), int(v)))
            events.append((base + int(o) + int(d), 0, int(p), 0))
        if base > 3600 * 1000:
            break
    heapq.heapify(events)
    while events and not stop.is_set():
        ms, kind, pitch, vel = heapq.heappop(events)
        wait = jam.clock.wall_at(ms) - time.perf_counter()
        if wait > 0 and stop.wait(wait):
            return
        (jam.live.note_on(pitch, vel) if kind else jam.live.note_off(pitch))


def realtime_run(stream, controls, piece, minutes: float, chunk_s: float, buffer_s: float, busy: bool,
                 change_every: float, seed: int = 0) -> dict:
    from tatum.errors import TatumError
    from tatum.realtime.jam import Jam, JamOptions
    from tatum.realtime.ports import start_jack

    rng = random.Random(seed)
    jack_proc, midi, note = None, True, ""
    try:
        jack_proc = start_jack()
    except TatumError as e:
        midi, note = False, f"no JACK ({e}): jitter measured at the sender"
    jam = Jam(stream, controls, JamOptions(chunk_s=chunk_s, buffer_s=buffer_s, ports=midi, midi_api="jack",
                                           client="tatum-bench"))
    receiver = hog = None
    sends = None
    if midi:
        sends = SendLog(jam.out_sink)
        jam.scheduler.on_event[jam.scheduler.on_event.index(jam.out_sink.on_event)] = sends.on_event
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, "tatum-bench:out"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
        if receiver.stdout.readline().strip() != "ready":
            raise SystemExit("the MIDI receiver did not start")
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    stop = threading.Event()
    pianist = threading.Thread(target=play_piece, args=(jam, piece, stop), daemon=True)
    styles = itertools.cycle(STYLES)
    changes = 0
    try:
        jam.start()
        pianist.start()
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            jam.check()
            wait = min(end - time.monotonic(), change_every * rng.uniform(0.7, 1.3))
            if wait <= 0:
                break
            time.sleep(wait)
            if time.monotonic() < end - 2:
                jam.set_controls(next(styles))
                changes += 1
        jam.stop()
    finally:
        stop.set()
        if hog is not None:
            hog.kill()
        jam.close()
    summary = jam.scheduler.stats.summary()
    stats = jam.scheduler.stats
    gen = np.asarray(stats.gen_s) * 1000
    out = {"minutes": minutes, "changes": changes, "underruns": summary["underruns"],
           "late_notes": summary["late_notes"], "notes": summary["notes"], "chunks": summary["chunks"],
           "latency_p50_ms": summary["latency_p50_ms"], "latency_p95_ms": summary["latency_p95_ms"],
           "latencies": len(stats.latencies_ms), "latencies_ms": [round(x) for x in stats.latencies_ms],
           # where a change's latency goes: waiting for the generator, the stream's prepare (the new
           # style's context), the margin (the rest of the redraw), then the model's first note
           "rewinds": [{k: (round(v) if isinstance(v, float) else v) for k, v in r.items()} for r in stats.rewinds],
           "underrun_log": [{k: (round(v) if isinstance(v, float) else v) for k, v in u.items()}
                            for u in list(stats.underrun_log)[:20]],
           "interrupted": stats.interrupted, "call_ms_p50": float(np.median(gen)) if len(gen) else None,
           "call_ms_p95": float(np.percentile(gen, 95)) if len(gen) else None,
           "send_jitter_p95_ms": summary["jitter_p95_ms"], "note": note}
    try:
        if receiver is not None:
            lines = receiver.communicate("", timeout=30)[0].strip().splitlines()
            if lines:
                out.update(port_jitter(sends.log, json.loads(lines[-1])))
            else:   # (it died with the JACK server, say): the jam's own figures still stand
                out["note"] = f"the JACK receiver returned nothing (exit {receiver.returncode}): jitter measured at the sender"
    finally:
        if receiver is not None and receiver.poll() is None:
            receiver.kill()
        if jack_proc is not None:
            jack_proc.terminate()
            jack_proc.wait(10)
    return out


def port_jitter(sent: list, got: list, window_s: float = 0.05) -> dict:
    """Match each message sent with its arrival — the first not yet matched with the same bytes that
    arrived after it was sent and within `window_s` (both sides read the same monotonic clock) — and
    measure jitter and offset at the port. A message lost on the way (or later than `window_s`) is
    counted and skipped; it cannot shift the matching of the ones after it."""
    by_bytes: dict[tuple, list[int]] = {}
    for k, (_, msg) in enumerate(got):
        by_bytes.setdefault(tuple(msg), []).append(k)
    used, d, lost = set(), [], 0
    for due, at, msg in sent:
        k = next((k for k in by_bytes.get(tuple(msg), ()) if k not in used and at - 0.001 <= got[k][0] <= at + window_s),
                 None)
        if k is None:
            lost += 1
            continue
        used.add(k)
        if due is not None:
            d.append(got[k][0] - due)
    d = np.array(d) * 1000
    if not len(d):
        return {"port_events": 0, "port_lost": lost}
    dev = np.abs(d - np.median(d))
    return {"port_events": len(d), "port_sent": len(sent), "port_received": len(got), "port_lost": lost, "port_offset_ms": float(np.median(d)),
            "jitter_p50_ms": float(np.percentile(dev, 50)), "jitter_p95_ms": float(np.percentile(dev, 95)),
            "jitter_max_ms": float(dev.max())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=5.0, help="length of the real-time jam")
    ap.add_argument("--chunk", type=float, default=1.0, help="chunk seconds (tatum jam's default)")
    ap.add_argument("--buffer", type=float, default=2.0, help="buffer seconds (tatum jam's default)")
    ap.add_argument("--rtf-seconds", type=float, default=60.0, help="music drawn for the real-time factor")
    ap.add_argument("--change-every", type=float, default=10.0, help="seconds between style changes")
    ap.add_argument("--model", default=None, help="checkpoint folder or shipped name (default: the shipped one)")
    ap.add_argument("--mock", action="store_true", help="MockStream instead of a model: checks the harness")
    ap.add_argument("--no-busy", action="store_true", help="do not keep a core busy during the jam")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from tatum.realtime.controls import Controls

    console = Console(stderr=True)
    load_before = os.getloadavg()
    title, piece = dense_piece(args.data, max(args.rtf_seconds, 60.0))
    controls = Controls(seed=1)
    if args.mock:
        from tatum.realtime.mock import MockStream

        stream, name = MockStream(), "mock"
    else:
        from tatum.realtime.commands import load_stream

        stream, _ = load_stream(args.model, None, "solo", 600)
        name = args.model or f"shipped default ({type(stream.model).__name__})"
    console.print(f"dense jazz: {title} ({len(piece) / (piece.end_ms / 1000):.1f} notes/s); model: {name}")
    rtf = measure_rtf(stream, controls, piece, args.rtf_seconds, args.chunk)
    console.print(f"real-time factor {rtf['rtf']:.2f}; now a {args.minutes:g}-minute real-time jam …")
    run = realtime_run(stream, controls, piece, args.minutes, args.chunk, args.buffer, not args.no_busy,
                       args.change_every)

    def fmt(v, unit=""):
        return "–" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    jitter = run.get("jitter_p95_ms", run["send_jitter_p95_ms"])
    rows = [("real-time factor (dense jazz, live input)", fmt(rtf["rtf"], "×"), "≥ 5", rtf["rtf"] >= 5),
            ("control → note latency p50", fmt(run["latency_p50_ms"], " ms"), "", None),
            ("control → note latency p95", fmt(run["latency_p95_ms"], " ms"), "≤ 500 ms",
             run["latency_p95_ms"] is not None and run["latency_p95_ms"] <= 500),
            (f"buffer underruns ({args.minutes:g} min, {'one core busy' if not args.no_busy else 'no busy loop of its own'})",
             fmt(run["underruns"]), "0", run["underruns"] == 0),
            ("late notes dropped", fmt(run["late_notes"]), "", None),
            ("MIDI messages lost at the port", fmt(run.get("port_lost")), "", None),
            ("MIDI port jitter p95" + ("" if "jitter_p95_ms" in run else " (sender side)"), fmt(jitter, " ms"),
             "≤ 5 ms", jitter is not None and jitter <= 5)]
    table = Table(title=f"tatum real time — {name}, chunk {args.chunk:g} s, buffer {args.buffer:g} s; "
                        f"load average {load_before[0]:.1f} on {os.cpu_count()} CPUs")
    for col in ("measure", "value", "target", "met"):
        table.add_column(col)
    for label, value, target, ok in rows:
        table.add_row(label, value, target, "" if ok is None else ("yes" if ok else "NO"))
    Console().print(table)
    result = {"model": name, "piece": title, "chunk_s": args.chunk, "buffer_s": args.buffer, **rtf, **run,
              "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
              "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

"""What `tatum jam` and `tatum serve` do; tatum/cli.py only declares their options."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from tatum.errors import TatumError
from tatum.options import Conditioning, Sampling
from tatum.realtime.controls import Controls
from tatum.realtime.keys import JamKeys

QUANTA = {"1/4": 1.0, "1/8": 0.5, "1/16": 0.25, "1/32": 0.125}
MODES = ("solo", "respond", "accompany")


def quantize_arg(text: str, sync: str) -> float | None:
    """"auto" (sixteenths when following a DAW, off when free), "off", or a note value like "1/16"."""
    if text == "auto":
        return 0.25 if sync != "free" else None
    if text == "off":
        return None
    if text not in QUANTA:
        raise TatumError(f"--quantize takes auto, off or {', '.join(QUANTA)}, not {text!r}")
    return QUANTA[text]


def load_stream(model: str | None, artist, mode: str, gap_ms: int):
    """(Stream, tokenizer) for a jam: the shipped stream model, or the Art Tatum model for Art Tatum."""
    import torch

    from tatum.generate.stream import Stream
    from tatum.generate.tasks import get_model

    # A jam decodes one row a note at a time: one thread is faster than several (no spin-waits on a
    # busy machine; measured 0.30× real time with two, ≈4× with one) and leaves a core to the DAW.
    torch.set_num_threads(1)
    m, tok = get_model(model, artist, stream=True)
    return Stream(m, tok, mode=mode, gap_ms=gap_ms), tok


def make_controls(tok, conditioning: Conditioning, sampling: Sampling) -> Controls:
    """The jam's first controls: the options as given, their names checked against the model's vocabulary."""
    return Controls(conditioning.for_vocabulary(tok.genres, tok.artists), sampling)


def run_jam(console, *, out: Path | None, seconds: float | None, wav: Path | None, audio: bool,
            conditioning: Conditioning, sampling: Sampling, mode: str, gap_ms: int, chunk: float, buffer: float,
            sync: str, bpm: float, quantize: str,
            ports: bool, midi_api: str, out_port: str | None, in_port: str | None, clock_port: str | None,
            model: str | None, soundfont: Path | None, force: bool, engine: str = "fluidsynth",
            style_text: str = "1950s solo piano recording", mrt_size: str = "mrt2_small",
            png: Path | None = None, keys: bool = True) -> None:
    """Play until `seconds` (or Ctrl-C, or `q`), recording to `out`, `wav` and `png`; with `keys`, the
    keyboard steers it when stdin is a terminal (tatum.realtime.keys)."""
    from tatum.io import check_writable
    from tatum.realtime.jam import SYNCS, Jam, JamOptions, stats_line

    from tatum.realtime.transport import _check_bpm

    if sync not in SYNCS:
        raise TatumError(f"unknown --sync {sync!r}; use {', '.join(SYNCS)}")
    if mode not in MODES:
        raise TatumError(f"unknown jam mode {mode!r}; modes: {', '.join(MODES)}")
    if not 0.05 <= chunk <= 5.0:
        raise TatumError(f"--chunk must be 0.05–5 seconds, not {chunk:g}")
    if not chunk <= buffer <= 30.0:
        raise TatumError(f"--buffer must hold at least one chunk ({chunk:g} s) and at most 30 s, not {buffer:g}")
    _check_bpm(bpm)
    if seconds is not None and not 0 < seconds <= 24 * 3600:
        raise TatumError(f"--seconds must be more than 0 (and at most a day), not {seconds:g}")
    for path in (out, wav, png):
        if path is not None:
            check_writable(path, force)
    if engine not in ("fluidsynth", "magenta"):
        raise TatumError(f"unknown --engine {engine!r}; use fluidsynth or magenta")
    if (wav is not None or audio) and engine == "fluidsynth":
        from tatum.audio.render import find_soundfont

        find_soundfont(soundfont)
    options = JamOptions(mode=mode, chunk_s=chunk, buffer_s=buffer, sync=sync, bpm=bpm,
                         quantize_beats=quantize_arg(quantize, sync), ports=ports, midi_api=midi_api,
                         out_port=out_port, in_port=in_port, clock_port=clock_port, audio=audio, wav=wav,
                         soundfont=soundfont, engine=engine, style_text=style_text, mrt_size=mrt_size)
    if ports and not (out_port or in_port) and sync != "midi-clock" and (out or wav or audio or png):
        from tatum.realtime.ports import choose_api

        try:
            choose_api(midi_api)
        except TatumError as e:        # ports were only the default: play to the files anyway
            console.print(f"tatum: warning: {e}; playing without MIDI ports", highlight=False, markup=False,
                          soft_wrap=True)
            options.ports = False
    if not (options.ports or out or wav or audio or png):
        raise TatumError("nothing to play to: give -o OUT.mid, --wav OUT.wav, --png OUT.png, --audio, or MIDI ports")
    stream, tok = load_stream(model, conditioning.artist, mode, gap_ms)
    controls = make_controls(tok, conditioning, sampling)
    jam = Jam(stream, controls, options)

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    stopped, finished = 0.0, False
    try:
        if options.ports:
            names = "tatum:out" if not out_port else out_port
            console.print(f"MIDI out → {names}, player in ← {in_port or 'tatum-in:in'}"
                          + (f", clock ← {clock_port or 'tatum-clock:clock'}" if sync == "midi-clock" else ""),
                          highlight=False, markup=False, soft_wrap=True)
        if sync == "midi-clock":
            console.print("waiting for the DAW's MIDI clock (press play)…", highlight=False, markup=False)
            jam.wait_for_transport(None if seconds is None else 30.0)
        jam.start()
        stopped = _play(console, jam, seconds, JamKeys(jam, tok.genres, tok.artists, say) if keys else None)
        finished = True
    except KeyboardInterrupt:
        stopped, finished = jam.stop(), True
    finally:
        if not finished:
            jam.stop()
            jam.abort_outputs()
            jam.close()
    try:
        if jam.scheduler.started:          # (Ctrl-C while waiting for the DAW leaves nothing to save)
            jam.save(out, stopped, png)
        else:
            jam.abort_outputs()
    finally:
        jam.close()
    summary = jam.scheduler.stats.summary()
    written = ", ".join(str(p) for p in (out, wav, png) if p is not None)
    console.print(f"{stopped / 1000:.1f} s jammed: {stats_line(summary)}" + (f" → {written}" if written else ""),
                  highlight=False, markup=False, soft_wrap=True)


def status_line(s: dict) -> str:
    """The jam's live line, from `Jam.status()`."""
    peers = f" · {s['peers']} Link peer(s)" if s["peers"] is not None else ""
    density = "any" if s["density"] is None else s["density"]
    guidance = f" · guidance {s['guidance']:g}" if s["guidance"] else ""
    state = "⏸ paused" if s["paused"] else "♪"
    return (f"{state} {s['seconds']:6.1f} s · {s['style']} · T {s['temperature']:.1f} · density {density}{guidance}"
            f" · {s['bpm']:.1f} bpm{peers} · ahead {s['ahead_s']:.1f} s · {s['notes']} notes"
            f" · {s['underruns']} underruns · in {s['live']} · {s['last']}")


def _play(console, jam, seconds: float | None, keys=None) -> float:
    """Run until `seconds` of jam time (or Ctrl-C, or `q`), showing a live status line on a terminal;
    `keys` (a `JamKeys`) gets the keys typed when stdin is a terminal."""
    from rich.live import Live
    from rich.text import Text

    from tatum.realtime.keys import TerminalKeys

    def line() -> Text:
        return Text(status_line(jam.status()))

    terminal = TerminalKeys(keys.press) if keys is not None else None
    live = Live(line(), console=console, refresh_per_second=5, transient=False) if console.is_terminal else None
    with terminal or contextlib.nullcontext():     # (the terminal's settings come back on any way out)
        if terminal is not None and terminal.active:
            keys.say("keys steer the jam: ? lists them")
        try:
            if live:
                live.start()
            while keys is None or not keys.quit.is_set():
                jam.check()
                if terminal is not None:
                    terminal.check()
                left = None if seconds is None else seconds - jam.clock.now_ms() / 1000
                if left is not None and left <= 0:
                    break
                time.sleep(0.1 if left is None else min(0.1, left))
                if live:
                    live.update(line())
        finally:
            if live:
                live.stop()
    stopped = jam.stop()
    return stopped if seconds is None else min(stopped, seconds * 1000)


class StreamFactory:
    """The stream for a session's controls: the shipped default model, or the Art Tatum model when
    Art Tatum leads the pianist mix (as the other verbs choose); one Stream per model, shared."""

    def __init__(self, model: str | None, mode: str = "solo", gap_ms: int = 600):
        self.model, self.mode, self.gap_ms = model, mode, gap_ms
        self._streams: dict[int, object] = {}
        self.tok = self.pair(None)[1]

    def pair(self, artist):
        from tatum.generate.tasks import get_model

        return get_model(self.model, artist, stream=True)

    def __call__(self, controls: Controls):
        from tatum.generate.stream import Stream

        model, tok = self.pair(controls.artist)
        if id(model) not in self._streams:
            self._streams[id(model)] = Stream(model, tok, mode=self.mode, gap_ms=self.gap_ms)
        return self._streams[id(model)]


def run_serve(console, *, host: str, port: int, model: str | None, max_sessions: int, chunk: float, buffer: float,
              soundfont: Path | None) -> None:
    from tatum.realtime.server import LOOPBACK, Limits, check_bind, create_app, server

    if not 1 <= max_sessions <= 64:
        raise TatumError(f"--max-sessions must be 1–64, not {max_sessions}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise TatumError("tatum serve needs the realtime extra: pip install 'tatum[realtime]' (fastapi, uvicorn)") from None
    check_bind(host, port)
    from tatum.audio.render import find_soundfont

    sf = find_soundfont(soundfont)
    factory = StreamFactory(model)
    if chunk > buffer:
        raise TatumError(f"the buffer must hold at least one chunk ({chunk:g} s), not {buffer:g} s")
    app = create_app(factory, artists=factory.tok.artists, genres=factory.tok.genres,
                     limits=Limits(max_sessions=max_sessions), chunk_s=chunk, buffer_s=buffer, soundfont=sf)
    if host not in LOOPBACK:
        console.print(f"tatum: warning: listening on {host}: anyone who can reach this machine on port {port} "
                      "can open the page and use its CPU", highlight=False, markup=False, soft_wrap=True)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"tatum: the jam page is at http://{shown}:{port}/ (at most {max_sessions} jams at once; "
                  "Ctrl-C stops)", highlight=False, markup=False, soft_wrap=True)
    server(app, host, port).run()

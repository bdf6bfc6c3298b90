"""MIDI ports through python-rtmidi: ALSA's sequencer where the machine has one, JACK otherwise.

tatum opens *virtual* ports by default (`tatum:out`, `tatum-in:in`, `tatum-clock:clock`: each port is
its own client, as JACK would rename a second client of one name) for a DAW to connect to, or
connects to an existing port named by a part of its name. `MidiOutSink` sends the scheduler's
note events; input ports hand every message, stamped with perf_counter on arrival, to a callback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tatum.errors import TatumError
from tatum.realtime.timeline import ON, Event

APIS = ("auto", "alsa", "jack")
NO_MIDI = ("no MIDI system: this machine has no ALSA sequencer (/dev/snd/seq) and no JACK server is "
           "running; start one with `jackd -d dummy -r 48000 &` (Debian: apt-get install jackd2), "
           "or jam without ports (--no-ports -o OUT.mid / --wav OUT.wav)")


def _rtmidi():
    try:
        import rtmidi
    except ImportError:
        raise TatumError("MIDI ports need the realtime extra: pip install 'tatum[realtime]' (python-rtmidi)") from None
    return rtmidi


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """ALSA and libjack print to the process's stderr when they find no server; tatum says it in one line."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def _works(rtmidi, api: int) -> bool:
    try:
        with quiet_stderr():
            rtmidi.MidiOut(api, "tatum-probe").delete()
        return True
    except Exception:
        return False


def choose_api(prefer: str = "auto") -> int:
    """The rtmidi API to use: ALSA when /dev/snd/seq works, else a running JACK server."""
    if prefer not in APIS:
        raise TatumError(f"unknown MIDI system {prefer!r}; use {', '.join(APIS)}")
    rtmidi = _rtmidi()
    compiled = rtmidi.get_compiled_api()
    order = {"auto": ("alsa", "jack"), "alsa": ("alsa",), "jack": ("jack",)}[prefer]
    for name in order:
        api = rtmidi.API_LINUX_ALSA if name == "alsa" else rtmidi.API_UNIX_JACK
        if api not in compiled:
            continue
        if name == "alsa" and not os.path.exists("/dev/snd/seq"):
            continue
        if _works(rtmidi, api):
            return api
    if prefer == "alsa":
        raise TatumError("the ALSA sequencer is not available here (no /dev/snd/seq); try --midi-api jack")
    if prefer == "jack":
        raise TatumError("no JACK server is running; start one with `jackd -d dummy -r 48000 &`")
    raise TatumError(NO_MIDI)


def api_name(api: int) -> str:
    rtmidi = _rtmidi()
    return "alsa" if api == rtmidi.API_LINUX_ALSA else "jack" if api == rtmidi.API_UNIX_JACK else str(api)


def list_ports(api: int, output: bool = True) -> list[str]:
    rtmidi = _rtmidi()
    with quiet_stderr():
        m = rtmidi.MidiOut(api, "tatum-list") if output else rtmidi.MidiIn(api, "tatum-list")
    try:
        return list(m.get_ports())
    finally:
        m.delete()


def _find(ports: list[str], wanted: str, kind: str) -> int:
    hits = [i for i, p in enumerate(ports) if wanted.casefold() in p.casefold()]
    if not hits:
        known = ", ".join(ports) or "none"
        raise TatumError(f"MIDI {kind} port {wanted!r} not found; ports: {known}")
    return hits[0]


def open_output(api: int, port: str | None = None, name: str = "out", client: str = "tatum"):
    """A MidiOut: connected to the existing port whose name contains `port`, or a virtual port `name`."""
    rtmidi = _rtmidi()
    try:
        with quiet_stderr():
            out = rtmidi.MidiOut(api, client)
    except Exception as e:
        raise TatumError(f"cannot open MIDI output: {e}") from None
    try:
        if port:
            out.open_port(_find(out.get_ports(), port, "output"), f"{client}-{name}")
        else:
            out.open_virtual_port(name)
    except TatumError:
        out.delete()
        raise
    except Exception as e:
        out.delete()
        raise TatumError(f"cannot open MIDI output: {e}") from None
    return out


def open_input(api: int, callback: Callable[[list[int], float], None], port: str | None = None,
               name: str = "in", client: str = "tatum", clock: bool = False):
    """A port calling `callback(message, perf_counter_at_arrival)` for every message (MIDI clock
    and transport messages too when `clock`), from a thread of its own; `delete()` closes it."""
    rtmidi = _rtmidi()
    try:
        with quiet_stderr():
            inp = rtmidi.MidiIn(api, client, queue_size_limit=4096)
    except Exception as e:
        raise TatumError(f"cannot open MIDI input: {e}") from None
    try:
        if port:
            inp.open_port(_find(inp.get_ports(), port, "input"), f"{client}-{name}")
        else:
            inp.open_virtual_port(name)
    except TatumError:
        inp.delete()
        raise
    except Exception as e:
        inp.delete()
        raise TatumError(f"cannot open MIDI input: {e}") from None
    inp.ignore_types(sysex=True, timing=not clock, active_sense=True)
    return InputPort(inp, callback)


class InputPort:
    """Reads a MidiIn's queue from a thread of its own. rtmidi calls a Python callback from the MIDI
    system's thread, which under JACK is the server's process cycle: while the callback waits for the
    GIL (the model drawing notes holds it) the whole JACK graph stalls, the DAW's audio included, and
    MIDI of the cycles missed is lost (a lost clock put the jam a clock behind the DAW). Polling the
    queue, which rtmidi fills without the GIL, keeps Python out of that thread."""

    POLL_S = 0.002

    def __init__(self, inp, callback: Callable[[list[int], float], None]):
        self.inp, self.callback, self._stamp = inp, callback, _Stamper()
        self.error: Exception | None = None     # the last a message raised (the port reads on)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="tatum-midi-in", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            got = self.inp.get_message()
            if got is None:
                time.sleep(self.POLL_S)
                continue
            message, delta = got
            try:
                self.callback(message, self._stamp(delta))
            except Exception as e:      # one bad message must not end the port
                self.error = e

    def delete(self) -> None:
        self._stop.set()
        self._thread.join(2)
        if not self._thread.is_alive():        # (rtmidi crashes on a port deleted while in use)
            self.inp.delete()


class _Stamper:
    """Arrival times from rtmidi's own deltas (taken in its MIDI thread, as each event came in) rather
    than from when Python got round to the callback, which waits for the GIL. The deltas are summed
    and anchored to perf_counter by the smallest delay seen over the last 256 messages."""

    def __init__(self):
        self.sum = 0.0
        self.offsets: list[float] = []

    def __call__(self, delta: float) -> float:
        now = time.perf_counter()
        self.sum += delta if self.offsets else 0.0
        self.offsets = (self.offsets + [now - self.sum])[-256:]
        return self.sum + min(self.offsets)


class JackWatch:
    """Says when the JACK server goes away. rtmidi's JACK output waits, spinning, for room in a buffer
    that only the server empties: after the server has gone, nothing may be sent any more. Without
    JACK-Client nothing is watched and `alive` stays True."""

    def __init__(self, name: str = "tatum-watch"):
        self.alive, self.reason, self.client = True, "", None
        try:
            import jack

            with quiet_stderr():
                self.client = jack.Client(name, no_start_server=True)
            self.client.set_shutdown_callback(self._gone)
            self.client.activate()
        except Exception:                  # no JACK-Client or libjack: a jam without the watch
            self.client = None

    def _gone(self, status, reason: str) -> None:
        self.alive, self.reason = False, reason

    def close(self) -> None:
        if self.client is not None and self.alive:
            with quiet_stderr():
                self.client.deactivate()
                self.client.close()
        self.client = None


class MidiOutSink:
    """Plays the scheduler's events on a MIDI output, one channel. A key struck again while it still
    sounds is released first, and only the note that struck it releases it."""

    def __init__(self, out, channel: int = 0, alive: Callable[[], bool] = lambda: True):
        self.out, self.channel, self.alive = out, channel, alive
        self._sounding: dict[int, int] = {}          # pitch → note id
        self._lock = threading.Lock()
        self.sent = 0

    def on_event(self, ev: Event, due: float) -> None:
        if not self.alive():
            return
        with self._lock:
            if ev.kind == ON:
                if ev.pitch in self._sounding:
                    self.out.send_message([0x80 | self.channel, ev.pitch, 0])
                self.out.send_message([0x90 | self.channel, ev.pitch, max(1, min(127, ev.velocity))])
                self._sounding[ev.pitch] = ev.note
                self.sent += 1
            elif self._sounding.get(ev.pitch) == ev.note:
                self.out.send_message([0x80 | self.channel, ev.pitch, 0])
                del self._sounding[ev.pitch]

    def all_off(self) -> None:
        if not self.alive():
            return
        with self._lock:
            for pitch in list(self._sounding):
                self.out.send_message([0x80 | self.channel, pitch, 0])
            self._sounding.clear()
            self.out.send_message([0xB0 | self.channel, 123, 0])     # all notes off

    def close(self) -> None:
        try:
            self.all_off()
        finally:
            with quiet_stderr():
                self.out.close_port()
                self.out.delete()


# ------------------------------------------------------------------ JACK for tests and the benchmark
def jack_running() -> bool:
    try:
        rtmidi = _rtmidi()
    except TatumError:
        return False
    return rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api() and _works(rtmidi, rtmidi.API_UNIX_JACK)


def start_jack(rate: int = 48_000, period: int = 64, timeout_s: float = 10.0) -> subprocess.Popen | None:
    """Start a JACK server on the dummy driver (no sound card needed) unless one runs; returns the
    process started (to end it afterwards), None when a server was already running. Raises
    TatumError when jackd is missing or does not come up."""
    if jack_running():
        return None
    jackd = shutil.which("jackd")
    if jackd is None:
        raise TatumError("jackd not found (Debian: apt-get install jackd2)")
    # real-time scheduling where the system allows it (its timing is what the port's jitter is made of)
    for mode in ("--realtime", "--no-realtime"):
        proc = subprocess.Popen([jackd, mode, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if jack_running():
                return proc
            time.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
    raise TatumError(f"jackd did not start (exit code {proc.returncode})")

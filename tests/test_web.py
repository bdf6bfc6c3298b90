"""tatum serve over real WebSockets: a jam streams notes and audio and takes controls; malformed,
oversized and too frequent messages get an error and never a crash; a closed socket frees its
session; four jams keep real time and a fifth is told the server is busy; only localhost listens."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
ws_client = pytest.importorskip("websockets.sync.client")

from tatum.realtime.controls import Controls  # noqa: E402
from tatum.realtime.mock import MockStream, velocity  # noqa: E402
from tatum.realtime.server import Limits, create_app, server  # noqa: E402

ARTISTS = ["Art Tatum", "Bill Evans"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """The app on a real uvicorn server on a thread; `streams` are the mock streams it handed out."""

    def __init__(self, limits: Limits | None = None, audio: bool = True):
        import tatum.generate.engine  # noqa: F401  (Conditioning's module imports torch: not on the clock)

        self.streams: list[MockStream] = []

        def stream_for(controls: Controls):
            if not self.streams:
                self.streams.append(MockStream())
            return self.streams[0]

        self.app = create_app(stream_for, ARTISTS, limits=limits, chunk_s=0.5, buffer_s=1.0, audio=audio)
        self.port = free_port()
        self.server = server(self.app, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def info(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/info", timeout=5) as r:
            return json.loads(r.read())

    def connect(self, **kw):
        return ws_client.connect(self.url, max_size=None, open_timeout=5, **kw)

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live():
    srv = Live()
    yield srv
    srv.close()


def recv_json(ws, kind: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(msg, str):
            data = json.loads(msg)
            if data["type"] == kind:
                return data
    raise AssertionError(f"no {kind!r} message")


def collect(ws, seconds: float) -> tuple[list[dict], list[bytes]]:
    texts, frames = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            msg = ws.recv(timeout=max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        (frames if isinstance(msg, bytes) else texts).append(msg if isinstance(msg, bytes) else json.loads(msg))
    return texts, frames


def test_a_jam_streams_notes_and_pcm_and_a_control_reaches_the_engine(live):
    with live.connect() as ws:
        hello = recv_json(ws, "hello")
        assert hello["artists"] == ARTISTS and hello["sample_rate"] == 48_000
        ws.send(json.dumps({"type": "play"}))
        texts, frames = collect(ws, 1.0)
        notes = [n for t in texts if t["type"] == "notes" for n in t["notes"]]
        v = velocity(Controls())                 # the mock engine's velocity at the default temperature
        assert notes[:2] == [[0, 200, 60, v], [250, 200, 61, v]]
        # audio: 40 ms blocks of float32 stereo, frame indices back to back from 0, with sound in them
        firsts = [struct.unpack("<q", f[:8])[0] for f in frames]
        assert firsts[:3] == [0, 1920, 3840] and all(len(f) == 8 + 1920 * 8 for f in frames)
        pcm = np.concatenate([np.frombuffer(f[8:], "<f4") for f in frames])
        assert np.abs(pcm).max() > 0.01
        ws.send(json.dumps({"type": "controls", "controls": {"genre": {"classical": 1.0}, "temperature": 0.5}}))
        ack = recv_json(ws, "controls")
        assert ack["controls"]["genre"] == {"classical": 1.0}
        texts, _ = collect(ws, 1.0)
        later = [n for t in texts if t["type"] == "notes" for n in t["notes"]]
        assert later and all(n[2] < 60 and n[3] == 60 for n in later)       # classical mock, T 0.5
        assert any(t["type"] == "cut" for t in texts)                          # the buffered tail was redrawn
        assert live.streams[0].calls[-1]["conditioning"].genre == {"classical": 1.0}
        ws.send(json.dumps({"type": "stop"}))
        assert recv_json(ws, "state")["playing"] is False


def test_bad_messages_get_an_error_and_the_jam_goes_on(live):
    with live.connect() as ws:
        recv_json(ws, "hello")
        bad = ["not json", json.dumps([1, 2]), json.dumps({"kind": "play"}), json.dumps({"type": "dance"}),
               json.dumps({"type": "controls", "controls": {"temperature": "hot"}}),
               json.dumps({"type": "controls", "controls": {"top_k": -1}}),
               json.dumps({"type": "controls", "controls": {"genre": {"polka": 1}}}),
               json.dumps({"type": "controls", "controls": "loud"}),
               json.dumps({"type": "ping", "pad": "x" * 5000}), b"\x00\x01binary"]
        expect = ["not JSON", "object", "object", "unknown message type", "temperature must be a number",
                  "top_k must be 0", "unknown style 'polka'", "controls must be an object", "too large",
                  "binary"]
        for msg, words in zip(bad, expect):
            ws.send(msg)
            err = recv_json(ws, "error")
            assert words in err["message"], (msg, err)
        ws.send(json.dumps({"type": "ping", "time": 1}))
        assert recv_json(ws, "pong")["time"] == 1
    # a message beyond what the socket layer takes at all ends that connection, not the server
    with live.connect() as ws:
        recv_json(ws, "hello")
        ws.send("x" * (2 << 20))
        with pytest.raises(Exception):
            for _ in range(10):
                ws.recv(timeout=5)
    with live.connect() as ws:
        assert recv_json(ws, "hello")


def test_too_frequent_messages_are_refused_politely(live):
    with live.connect() as ws:
        recv_json(ws, "hello")
        for i in range(120):
            ws.send(json.dumps({"type": "ping", "time": i}))
        texts, _ = collect(ws, 1.0)
        pongs = [t for t in texts if t["type"] == "pong"]
        errors = [t for t in texts if t["type"] == "error"]
        assert 40 <= len(pongs) < 120 and errors and "too many messages" in errors[0]["message"]
        time.sleep(1.0)
        ws.send(json.dumps({"type": "ping", "time": "again"}))
        assert recv_json(ws, "pong")["time"] == "again"


def test_a_client_that_disconnects_frees_its_session(live):
    with live.connect() as ws:
        recv_json(ws, "hello")
        ws.send(json.dumps({"type": "play"}))
        collect(ws, 0.5)
        assert live.info()["sessions"] == 1
    deadline = time.monotonic() + 5
    while live.info()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.info()["sessions"] == 0
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if t.name in ("tatum-generate", "tatum-audio")]


def test_four_jams_keep_real_time_and_a_fifth_is_told_the_server_is_busy(live):
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(live.connect()) for _ in range(4)]
        for ws in clients:
            recv_json(ws, "hello")
            ws.send(json.dumps({"type": "play"}))
        received = [0] * 4
        statuses: list[dict] = []
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            for i, ws in enumerate(clients):
                try:
                    while True:
                        msg = ws.recv(timeout=0.01)
                        if isinstance(msg, bytes):
                            if time.monotonic() - start > 1.0:      # once all four have started
                                received[i] += (len(msg) - 8) // 8
                        elif json.loads(msg)["type"] == "status":
                            statuses.append(json.loads(msg))
                except TimeoutError:
                    pass
        elapsed = time.monotonic() - start - 1.0
        assert min(received) >= 0.9 * 48_000 * elapsed, received        # every jam's audio keeps up
        assert statuses and all(s["underruns"] == 0 for s in statuses)
        with live.connect() as fifth:
            err = recv_json(fifth, "error")
            assert err["code"] == "busy" and "server busy: 4 jams are playing" in err["message"]
            with pytest.raises(Exception):
                fifth.recv(timeout=5)
            assert fifth.close_code == 1013
    deadline = time.monotonic() + 5
    while live.info()["sessions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    with live.connect() as again:              # room again once the others left
        assert recv_json(again, "hello")


def test_a_page_from_another_site_may_not_drive_the_jam(live):
    with live.connect(origin="http://evil.example") as ws:
        err = recv_json(ws, "error")
        assert err["code"] == "origin"
    with live.connect(origin=f"http://127.0.0.1:{live.port}") as ws:
        assert recv_json(ws, "hello")


def test_tatum_serve_listens_on_localhost_only_and_serves_the_page(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tatum.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert page is not None and "<canvas id=\"roll\"" in page
        listening = _listening(port)
        assert listening and all(addr == "127.0.0.1" for addr in listening), listening
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert "http://127.0.0.1:" in out
    # a second server on the same port is one clear line and exit code 2
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "tatum.cli", "serve", "--port", str(port)], capture_output=True,
                           text=True, timeout=60)
    finally:
        busy.close()
    assert r.returncode == 2 and r.stderr.strip().startswith("tatum: error: cannot listen on 127.0.0.1")
    assert len(r.stderr.strip().splitlines()) == 1


def _listening(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, st = cols[1], cols[3]
            addr, p = local.split(":")
            if st == "0A" and int(p, 16) == port:
                if len(addr) == 8:
                    out.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    out.append(socket.inet_ntop(socket.AF_INET6, b"".join(
                        bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))))
    return out

"""`tatum serve`: the jam in a browser. FastAPI serves the page (tatum/web) and one WebSocket per
jam; each connection is a `WebJam` session.

Messages from the page are small JSON objects: {"type": "play"}, {"type": "stop"},
{"type": "controls", "controls": {...}}, {"type": "ping"}. Whatever is wrong with one — not JSON,
too big, too frequent, an unknown type, a bad value — is answered with {"type": "error", "message"}
and the jam goes on. A session ends when its socket closes; at most `max_sessions` run at once (the
next is told the server is busy), since every session needs its share of the CPU to stay in real
time. A page from another origin may not drive the jam.
"""


import asyncio
import json
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from tatum.errors import TatumError
from tatum.realtime.controls import GENRES, Controls

WEB = Path(__file__).resolve().parent.parent / "web"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Limits:
    max_sessions: int = 4
    max_message_bytes: int = 4096
    rate: float = 20.0            # messages per second a page may send, on average …
    burst: int = 40               # … and at once
    queue: int = 256              # messages waiting for a slow page; audio is dropped beyond


class _Bucket:
    def __init__(self, rate: float, burst: int):
        self.rate, self.burst, self.tokens, self.t = rate, burst, float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def create_app(stream_for: Callable[[Controls], object], artists: list[str], genres: list[str] | None = None, *,
               limits: Limits | None = None, chunk_s: float = 1.0, buffer_s: float = 2.0, soundfont=None,
               audio: bool = True, controls: Controls | None = None):
    """The FastAPI app. `stream_for(controls)` gives the stream to play them with (the same object for
    the same model)."""
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.websockets import WebSocketDisconnect, WebSocketState

    from tatum.realtime.session import WebJam

    limits = limits or Limits()
    genres = list(genres or GENRES)
    defaults = controls or Controls()
    app = FastAPI(title="tatum", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = {}
    app.state.limits = limits
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/")
    def index():
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/info")
    def info():
        return JSONResponse({"genres": genres, "artists": artists, "controls": defaults.to_dict(),
                             "sessions": len(app.state.sessions), "max_sessions": limits.max_sessions,
                             "sample_rate": 48_000})

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()

        async def error(message: str, **extra) -> None:
            await websocket.send_text(json.dumps({"type": "error", "message": message, **extra}))

        if not _same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
            await error("this jam only takes pages served by tatum itself", code="origin")
            await websocket.close(code=1008)
            return
        if len(app.state.sessions) >= limits.max_sessions:
            await error(f"server busy: {limits.max_sessions} jams are playing, the most this machine keeps in "
                        "real time; try again when one stops", code="busy")
            await websocket.close(code=1013)
            return
        sid = secrets.token_hex(4)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=limits.queue)
        def put(item) -> None:
            if not queue.full():             # a page that does not read loses audio, not the server
                queue.put_nowait(item)

        def send(item) -> None:                 # from any thread
            try:
                loop.call_soon_threadsafe(put, item)
            except RuntimeError:                # the loop has closed: the session is over
                pass

        jam = WebJam(stream_for, defaults, send, artists=artists, genres=genres, chunk_s=chunk_s,
                     buffer_s=buffer_s, soundfont=soundfont, audio=audio)
        app.state.sessions[sid] = jam

        async def sender() -> None:
            while True:
                item = await queue.get()
                if isinstance(item, bytes):
                    await websocket.send_bytes(item)
                else:
                    await websocket.send_text(json.dumps(item))

        out = asyncio.create_task(sender())
        bucket, last_warning = _Bucket(limits.rate, limits.burst), 0.0
        try:
            await websocket.send_text(json.dumps({"type": "hello", "session": sid, "genres": genres,
                                                  "artists": artists, "controls": defaults.to_dict(),
                                                  "sample_rate": 48_000}))
            while True:
                msg = await websocket.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                if not bucket.take():
                    if time.monotonic() - last_warning > 0.5:
                        last_warning = time.monotonic()
                        await error(f"too many messages: at most {limits.rate:g} a second; this one was ignored",
                                    code="rate")
                    continue
                reply = await _handle(msg, jam, limits)
                if reply is not None:
                    await websocket.send_text(json.dumps(reply))
        except WebSocketDisconnect:
            pass
        finally:
            app.state.sessions.pop(sid, None)
            out.cancel()
            await asyncio.to_thread(jam.stop)
            if websocket.client_state == WebSocketState.CONNECTED:
                try:
                    await websocket.close()
                except Exception:
                    pass

    return app


async def _handle(msg: dict, jam, limits: Limits) -> dict | None:
    if msg.get("bytes") is not None:
        return _error("binary messages are not accepted; send JSON text")
    text = msg.get("text") or ""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_message_bytes:
        return _error(f"message too large: {size} bytes, at most {limits.max_message_bytes}", "size")
    try:
        data = json.loads(text)
    except ValueError:
        return _error("malformed message: not JSON", "json")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return _error('malformed message: expected an object with a "type"', "json")
    kind = data["type"]
    try:
        if kind == "play":
            await asyncio.to_thread(jam.play)
            return None
        if kind == "stop":
            await asyncio.to_thread(jam.stop)
            return None
        if kind == "controls":
            new = await asyncio.to_thread(jam.update, data.get("controls"))
            return {"type": "controls", "controls": new.to_dict()}
        if kind == "ping":
            return {"type": "pong", "time": data.get("time")}
    except TatumError as e:
        return _error(str(e), "value")
    return _error(f"unknown message type {kind[:40]!r}; types: play, stop, controls, ping", "type")


def _error(message: str, code: str = "bad") -> dict:
    return {"type": "error", "message": message, "code": code}


def _same_origin(origin: str | None, host: str | None) -> bool:
    """Pages of other sites may not open a jam (a browser always says where a page came from);
    clients that are not browsers send no Origin."""
    if origin is None:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def check_bind(host: str, port: int) -> None:
    """Fail with one line, before any model loads, if the address cannot be listened on."""
    if not 1 <= port <= 65535:
        raise TatumError(f"--port must be 1–65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise TatumError(f"unknown host {host!r}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise TatumError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None


def server(app, host: str = "127.0.0.1", port: int = 8000):
    """A uvicorn server for the app (`.run()` blocks; tests run it on a thread). Messages beyond 1 MiB
    are refused by the WebSocket layer itself (close code 1009); smaller ones get an error message."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws_max_size=1 << 20,
                            ws_ping_interval=20, ws_ping_timeout=20, lifespan="off")
    return uvicorn.Server(config)

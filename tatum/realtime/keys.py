"""Steering `tatum jam` from the terminal's keyboard: single keys, no Enter.

A key becomes a change of controls the way a move on the browser page does: a dict of some of the
controls' names (`changes_for_key`), checked and applied by `Controls.updated` against the model's
vocabulary and handed to the scheduler (`Jam.set_controls`), which redraws from soon after. The mapping
is a pure function of the key and the controls asked for last, so it is tested without a terminal;
`TerminalKeys` is the terminal part (cbreak mode on a background thread, the terminal's own settings
put back on the way out).
"""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from tatum.errors import TatumError
from tatum.options import N_DENSITY, SPECS
from tatum.realtime.controls import Controls

if TYPE_CHECKING:
    from tatum.realtime.jam import Jam

TEMPERATURE_STEP = 0.1
GUIDANCE_STEP = 0.5
ACTIONS = {" ": "pause", "?": "help", "h": "help", "q": "quit"}


def help_text(genres: Sequence[str]) -> str:
    styles = " ".join(f"{i}={g}" for i, g in enumerate(genres[:9], 1))
    return (f"keys: {styles} · s next style · p/P next/previous pianist · 0 no pianist\n"
            "      +/- temperature · ]/[ denser/sparser (d any) · g/G guidance · space pause · q stop · ? keys")


def _step(name: str, value: float, delta: float) -> float | None:
    """value + delta, if the option's own declared range takes it (else None: the key does nothing)."""
    try:
        return SPECS[name].checked(round(value + delta, 2))
    except TatumError:
        return None


def _density(current, up: bool) -> int | None:
    # "any" (the model chooses) sits in the middle, so the first press moves a little, not to an end
    if not isinstance(current, int):
        return N_DENSITY // 2 if up else N_DENSITY // 2 - 1
    new = current + (1 if up else -1)
    return new if 0 <= new < N_DENSITY else None


def _leading(mix: dict[str, float] | None) -> str | None:
    return max(mix, key=mix.get) if mix else None


def _cycle(names: list, current, by: int):
    # (a name not in the list, e.g. "other", counts as the first)
    i = names.index(current) if current in names else 0
    return names[(i + by) % len(names)]


def changes_for_key(key: str, controls: Controls, genres: Sequence[str], artists: Sequence[str]) -> dict | None:
    """The change of controls `key` asks for, as the browser page sends one ({"genre": "pop"},
    {"temperature": 1.1}); None when the key changes no control (an action, an unknown key, or a step
    past the end of a range)."""
    genres, artists = list(genres), list(artists)
    if len(key) == 1 and "1" <= key <= "9":
        i = int(key) - 1
        if i >= len(genres) or controls.genre == {genres[i]: 1.0}:
            return None
        return {"genre": genres[i]}
    if key == "s" and genres:
        lead = _leading(controls.genre)
        return {"genre": _cycle(genres, lead, 1 if lead in genres else 0)}
    if key in ("p", "P") and artists:
        names = [None] + artists
        return {"artist": _cycle(names, _leading(controls.artist), 1 if key == "p" else -1)}
    if key == "0":
        return {"artist": None} if controls.artist else None
    if key in ("+", "=", "-", "_"):      # (= and _ are + and - without shift)
        new = _step("temperature", controls.temperature, TEMPERATURE_STEP if key in ("+", "=") else -TEMPERATURE_STEP)
        return None if new is None else {"temperature": new}
    if key in ("g", "G"):
        new = _step("guidance", controls.guidance, GUIDANCE_STEP if key == "g" else -GUIDANCE_STEP)
        return None if new is None else {"guidance": new}
    if key in ("[", "]"):
        new = _density(controls.density, key == "]")
        return None if new is None else {"density": new}
    if key == "d":
        return {"density": None} if controls.density is not None else None
    return None


def controls_after_key(key: str, controls: Controls, genres: Sequence[str], artists: Sequence[str]) -> Controls | None:
    """The controls after `key`, checked as the page's are (`Controls.updated`); None when unchanged."""
    changes = changes_for_key(key, controls, genres, artists)
    return None if changes is None else controls.updated(changes, artists, genres)


def split_keys(text: str) -> Iterator[str]:
    """The keys in what the terminal sent, without the escape sequences of arrows and function keys
    (ESC [ … final, ESC O final), which would otherwise read as '[' (sparser) and a letter."""
    i = 0
    while i < len(text):
        if text[i] != "\x1b":
            yield text[i]
            i += 1
            continue
        i += 1
        if i < len(text) and text[i] in "[O":
            i += 1
            while i < len(text) and not "\x40" <= text[i] <= "\x7e":
                i += 1
            i += 1


class JamKeys:
    """What each key does to a running jam (`tatum.realtime.jam.Jam`): controls, pause, help, stop.
    `say(text)` shows a line above the jam's live line."""

    def __init__(self, jam: "Jam", genres: Sequence[str], artists: Sequence[str], say: Callable[[str], None]):
        self.jam, self.genres, self.artists, self.say = jam, list(genres), list(artists), say
        self.quit = threading.Event()

    def press(self, key: str) -> None:
        action = ACTIONS.get(key)
        if action == "help":
            self.say(help_text(self.genres))
        elif action == "pause":
            self.jam.resume() if self.jam.paused else self.jam.pause()
        elif action == "quit":
            self.quit.set()
        else:
            changes = changes_for_key(key, self.jam.controls, self.genres, self.artists)
            if changes is not None:
                try:
                    self.jam.set_controls(changes, self.artists, self.genres)
                except TatumError as e:            # the jam goes on, as the page's does
                    self.say(f"tatum: {e}")


class TerminalKeys:
    """Within `with`, each key typed on `stream` (a terminal) goes to `on_key(char)` on a background
    thread, without Enter and without echo; on the way out (also after Ctrl-C or an error) the
    terminal gets its own settings back. Nothing happens when `stream` is not a terminal (a pipe, CI)
    or belongs to a job in the background (changing its terminal would stop the process)."""

    def __init__(self, on_key: Callable[[str], None], stream=None):
        self.on_key, self.stream = on_key, sys.stdin if stream is None else stream
        self.active = False
        self.error: BaseException | None = None
        self._saved = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _usable(self) -> bool:
        try:
            fd = self.stream.fileno()
            if not os.isatty(fd):
                return False
        except (AttributeError, OSError, ValueError):
            return False
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:               # not this process's controlling terminal: no job control to upset
            return True

    def __enter__(self) -> "TerminalKeys":
        if not self._usable():
            return self
        import termios
        import tty

        self._fd = self.stream.fileno()
        self._saved = termios.tcgetattr(self._fd)
        try:
            tty.setcbreak(self._fd)        # keys one at a time, no echo; Ctrl-C still interrupts
            self.active = True
            self._thread = threading.Thread(target=self._read, name="tatum-keys", daemon=True)
            self._thread.start()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
            self.active = False

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._fd], [], [], 0.1)   # (wakes to see the stop)
                if not ready:
                    continue
                data = os.read(self._fd, 64)
                if not data:
                    return
                for ch in split_keys(data.decode("utf-8", "ignore")):
                    self.on_key(ch)
        except BaseException as e:               # the jam's loop raises it (see `check`)
            self.error = e

    def check(self) -> None:
        if self.error is not None:
            raise self.error

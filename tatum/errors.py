"""The one exception type the CLI turns into `tatum: error: ...` and exit code 2, and the one a
real-time caller uses to cut a draw short."""

from __future__ import annotations

import os


class TatumError(Exception):
    """A problem with the user's input or setup, reported in one line without a traceback."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class MidiError(TatumError):
    """A MIDI file that cannot be read as a piano performance."""


class Interrupted(Exception):
    """Decoding was told to stop (`decode_events(stop=…)`): a real-time caller has a newer request.
    Here rather than beside the decoder so that a jam can catch it without importing torch."""

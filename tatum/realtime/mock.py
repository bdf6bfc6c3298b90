"""A stand-in for `tatum.generate.stream.Stream`: the same `generate_chunk`, deterministic notes,
no model. What it plays says what it was asked for, so a test can hear a control reach the engine:

- one note every `step_ms` on the jam's clock, a scale walking up from a base pitch;
- the base pitch is set by the strongest genre (classical 48, jazz 60, pop 72, none 66) plus 2 when an
  artist is asked for, the velocity by the temperature (40 + 40·T, capped at 127);
- `delay_s` makes each call take that long, `plan_delay_s` only calls that enter a new 5 s window or
  follow a change of conditioning (as the real stream decodes then).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tatum.notes import Notes

BASES = {"classical": 48, "jazz": 60, "pop": 72}
WINDOW_MS = 5000


@dataclass
class MockState:
    played_ms: int = 0
    chunk_index: int = 0
    plan_key: str = ""
    window: int = -1
    live: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MockState":
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _key(conditioning) -> str:
    return json.dumps(asdict(conditioning), sort_keys=True, default=str) if conditioning is not None else ""


def base_pitch(conditioning) -> int:
    genre = getattr(conditioning, "genre", None) or {}
    base = BASES.get(max(genre, key=genre.get), 66) if genre else 66
    return base + (2 if getattr(conditioning, "artist", None) else 0)


def velocity(sampling) -> int:
    return int(min(127, 40 + 40 * float(getattr(sampling, "temperature", 1.0))))


@dataclass
class MockStream:
    step_ms: int = 250
    dur_ms: int = 200
    delay_s: float = 0.0
    plan_delay_s: float = 0.0
    calls: list[dict] = field(default_factory=list)

    def generate_chunk(self, state: MockState | None, conditioning=None, sampling=None, chunk_s: float = 2.0,
                       live: Notes | None = None) -> tuple[Notes, MockState]:
        if not 0.05 <= chunk_s <= 5.0:
            from tatum.errors import TatumError

            raise TatumError(f"chunk length must be 0.05–5 s, not {chunk_s}")
        state = MockState() if state is None else MockState.from_dict(state.to_dict())
        start, end = state.played_ms, state.played_ms + round(chunk_s * 1000)
        key = _key(conditioning)
        replans = state.plan_key != key or state.window != (end - 1) // WINDOW_MS
        if live is not None and len(live):
            state.live += [[int(o), int(d), int(p), int(v)] for o, d, p, v in
                           zip(live.onset_ms, live.dur_ms, live.pitch, live.velocity)]
        self.calls.append({"start_ms": start, "chunk_s": chunk_s, "conditioning": conditioning,
                           "sampling": sampling, "live": 0 if live is None else len(live)})
        if self.delay_s or (replans and self.plan_delay_s):
            time.sleep(self.delay_s + (self.plan_delay_s if replans else 0.0))
        first = -(-start // self.step_ms) * self.step_ms
        onsets = np.arange(first, end, self.step_ms, dtype=np.int64)
        base, vel = base_pitch(conditioning), velocity(sampling)
        pitch = base + (onsets // self.step_ms) % 12
        chunk = Notes(onsets, np.full(len(onsets), self.dur_ms), pitch, np.full(len(onsets), vel))
        state.played_ms, state.chunk_index = end, state.chunk_index + 1
        state.plan_key, state.window = key, (end - 1) // WINDOW_MS
        return chunk, state

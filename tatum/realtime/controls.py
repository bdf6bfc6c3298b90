"""The jam's knobs in one checked object: style and pianist mixtures, density, polyphony, and how
tokens are drawn. The browser sends them as JSON and the terminal as options; both end here, so a bad
value is refused the same way (a `TatumError` with one line) wherever it comes from."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from tatum.errors import TatumError

GENRES = ("classical", "jazz", "pop")
N_DENSITY, N_POLYPHONY = 8, 6          # buckets 0–7 and 0–5 (tatum.tokenizer's edges + 1)
LIMITS = {"temperature": (0.05, 3.0), "top_p": (0.01, 1.0), "guidance": (0.0, 10.0)}
TOP_K_MAX = 2000
KEYS = ("genre", "artist", "density", "polyphony", "temperature", "top_k", "top_p", "guidance", "seed")


@dataclass(frozen=True)
class Controls:
    genre: dict[str, float] = field(default_factory=lambda: {"jazz": 1.0})
    artist: dict[str, float] | None = None
    density: int | str | None = None       # a bucket, None (any) or "source" (the last 5 s played)
    polyphony: int | str | None = None
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    guidance: float = 0.0
    seed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def updated(self, changes: dict, artists: list[str] | tuple[str, ...] = (),
                genres: tuple[str, ...] | list[str] = GENRES) -> "Controls":
        """A copy with `changes` (a dict of some of KEYS) checked and applied."""
        if not isinstance(changes, dict):
            raise TatumError("controls must be an object of name: value")
        unknown = [k for k in changes if k not in KEYS]
        if unknown:
            raise TatumError(f"unknown control {unknown[0]!r}; controls: {', '.join(KEYS)}")
        new = {}
        for key, value in changes.items():
            if key == "genre":
                new[key] = _mix(value, genres, "style", allow_none=False)
            elif key == "artist":
                new[key] = _mix(value, list(artists) or None, "pianist", allow_none=True)
            elif key in ("density", "polyphony"):
                top = N_DENSITY if key == "density" else N_POLYPHONY
                new[key] = None if value in (None, "any") else "source" if value == "source" \
                    else _int(value, key, 0, top - 1)
            elif key == "top_k":
                new[key] = _int(value, key, 0, TOP_K_MAX)
            elif key == "seed":
                new[key] = None if value is None else _int(value, key, 0, 2**31 - 1)
            else:
                new[key] = _number(value, key, *LIMITS[key])
        return replace(self, **new)

    def conditioning(self):
        from tatum.generate.engine import Conditioning

        return Conditioning(genre=dict(self.genre), artist=dict(self.artist) if self.artist else None,
                            density=self.density, polyphony=self.polyphony)

    def sampling(self, seed: int | None = None):
        """Sampling with a concrete seed (`seed` when this has none), so that the scheduler can replay
        a chunk exactly when it rewinds."""
        from tatum.generate.sampling import Sampling

        return Sampling(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                        guidance=self.guidance, seed=self.seed if self.seed is not None else seed)

    def label(self) -> str:
        """'jazz .7 classical .3 · Art Tatum' for status lines."""
        def mix(m: dict[str, float]) -> str:
            total = sum(m.values()) or 1.0
            if len(m) == 1:
                return next(iter(m))
            return " ".join(f"{k} {v / total:.2f}".replace(" 0.", " .") for k, v in
                            sorted(m.items(), key=lambda kv: -kv[1]) if v > 0)
        return mix(self.genre) + (f" · {mix(self.artist)}" if self.artist else "")


def _number(value, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TatumError(f"{name} must be a number, not {value!r}")
    if not lo <= value <= hi:
        raise TatumError(f"{name} must be {lo:g}–{hi:g}, not {value:g}")
    return float(value)


def _int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise TatumError(f"{name} must be a whole number, not {value!r}")
    if not lo <= value <= hi:
        raise TatumError(f"{name} must be {lo}–{hi}, not {int(value)}")
    return int(value)


def _mix(value, known, kind: str, allow_none: bool) -> dict[str, float] | None:
    """"jazz", {"jazz": .7, "classical": .3} → a mixture of known names with weights ≥ 0, not all 0."""
    if value is None or value == "" or value == {}:
        if allow_none:
            return None
        raise TatumError(f"a {kind} is needed")
    mix = {value: 1.0} if isinstance(value, str) else value
    if not isinstance(mix, dict) or len(mix) > 64:
        raise TatumError(f"a {kind} is a name or an object of name: weight")
    out = {}
    for name, w in mix.items():
        if not isinstance(name, str) or (known is not None and name not in known):
            names = ", ".join(known or ())
            raise TatumError(f"unknown {kind} {str(name)[:40]!r}" + (f"; known: {names}" if names else ""))
        out[name] = _number(w, f"weight of {name}", 0.0, 10.0)
    if sum(out.values()) <= 0:
        if allow_none:
            return None
        raise TatumError(f"{kind} weights must not all be zero")
    return {k: v for k, v in out.items() if v > 0}

"""The jam's knobs: one `Conditioning` and one `Sampling` (tatum.options), changed by name. The browser
sends changes as JSON and the terminal as options; both are checked by the options' own checks, so a
bad value is refused the same way (a `TatumError` with one line) wherever it comes from, and the same
as `tatum improvise` refuses it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from tatum.errors import TatumError
from tatum.options import N_DENSITY, N_POLYPHONY, SPECS, Conditioning, Sampling  # noqa: F401

GENRES = ("classical", "jazz", "pop")
KEYS = tuple(SPECS)                       # genre, artist, density, polyphony, temperature, top_k, …
_COND = {f.name for f in fields(Conditioning)}


@dataclass(frozen=True, init=False)
class Controls:
    """`Controls(genre={"jazz": 1}, seed=1)` or `Controls(cond, samp)`; every option is readable as an
    attribute (`controls.artist`, `controls.temperature`)."""

    cond: Conditioning
    samp: Sampling

    def __init__(self, cond: Conditioning | None = None, samp: Sampling | None = None, **options):
        unknown = [k for k in options if k not in SPECS]
        if unknown:
            raise TatumError(f"unknown control {unknown[0]!r}; controls: {', '.join(KEYS)}")
        c = (cond or Conditioning()).replace(**{k: v for k, v in options.items() if k in _COND})
        s = (samp or Sampling()).replace(**{k: v for k, v in options.items() if k not in _COND})
        object.__setattr__(self, "cond", c)
        object.__setattr__(self, "samp", s)

    def to_dict(self) -> dict:
        return asdict(self.cond) | asdict(self.samp)

    def updated(self, changes: dict, artists: list[str] | tuple[str, ...] = (),
                genres: tuple[str, ...] | list[str] = GENRES) -> "Controls":
        """A copy with `changes` (a dict of some of KEYS) checked and applied; with `artists`, pianist
        names are checked against them (and styles against `genres`)."""
        if not isinstance(changes, dict):
            raise TatumError("controls must be an object of name: value")
        new = Controls(self.cond, self.samp, **changes)
        if "genre" in changes and new.cond.genre is None:
            raise TatumError("a style is needed")
        cond = new.cond.for_vocabulary(genres, artists) if artists else \
            new.cond.replace(genre=new.cond.for_vocabulary(genres, []).genre)
        return Controls(cond, new.samp)

    def conditioning(self) -> Conditioning:
        return self.cond

    def sampling(self, seed: int | None = None) -> Sampling:
        """Sampling with a concrete seed (`seed` when this has none), so that the scheduler can replay
        a chunk exactly when it rewinds."""
        return self.samp if self.samp.seed is not None else self.samp.replace(seed=seed)

    def label(self) -> str:
        """'jazz .7 classical .3 · Art Tatum' for status lines."""
        def mix(m: dict[str, float]) -> str:
            total = sum(m.values()) or 1.0
            if len(m) == 1:
                return next(iter(m))
            return " ".join(f"{k} {v / total:.2f}".replace(" 0.", " .") for k, v in
                            sorted(m.items(), key=lambda kv: -kv[1]) if v > 0)
        return (mix(self.cond.genre) if self.cond.genre else "no style") + \
            (f" · {mix(self.cond.artist)}" if self.cond.artist else "")


for _name in KEYS:   # controls.genre, controls.top_k, …: read through to the object that holds them
    setattr(Controls, _name, property(lambda self, n=_name: getattr(self.cond if n in _COND else self.samp, n)))

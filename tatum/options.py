"""The options of generation, each declared once: `Conditioning` (what to play toward: style and
pianist mixtures, density and polyphony buckets) and `Sampling` (how tokens are drawn).

Every field carries its default, its check and its help line (`option(...)`). The command line builds
its options from them (tatum/cli_options.py), the Python API takes the objects or their fields as
keywords (`resolve`), and the stream and the jam's controls check what the browser sends with the same
checks, so a verb cannot grow an option another lacks, nor accept a value another refuses.

No torch here: the command line imports this before it knows whether a model is needed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Iterable

from tatum import tokenizer as tk
from tatum.errors import TatumError

N_DENSITY = len(tk.DENSITY_EDGES) + 1      # buckets 0–7
N_POLYPHONY = len(tk.POLYPHONY_EDGES) + 1  # buckets 0–5
SEED_MAX = 2**31 - 1
MAX_MIX = 64                               # names in one mixture (the browser sends these)

Mix = dict[str, float]
Check = Callable[[Any, str], Any]


# ------------------------------------------------------------------ checks
# A check takes a value and the name to blame (a keyword, a JSON key or a command-line flag) and
# returns the value in its one normal form, or raises a one-line TatumError.
def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def number(lo: float, hi: float) -> Check:
    def check(value, label: str) -> float:
        if not _is_number(value):
            raise TatumError(f"{label} must be a number, not {value!r}")
        if not lo <= value <= hi:
            raise TatumError(f"{label} must be {lo:g}–{hi:g}, not {value:g}")
        return float(value)
    return check


def whole(lo: int, hi: int, none: bool = False) -> Check:
    def check(value, label: str) -> int | None:
        if value is None and none:
            return None
        if not _is_number(value) or int(value) != value:
            raise TatumError(f"{label} must be a whole number, not {value!r}")
        if not lo <= value <= hi:
            raise TatumError(f"{label} must be {lo}–{hi}, not {int(value)}")
        return int(value)
    return check


def bucket(n: int) -> Check:
    """A control bucket 0..n-1, None ("any": the model chooses) or "source" (the bucket of the music
    being rewritten, or of the prompt)."""
    def check(value, label: str) -> int | str | None:
        if value is None or value == "any":
            return None
        if value == "source":
            return value
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise TatumError(f"{label} is a bucket 0–{n - 1}, 'any' or 'source', not {value!r}") from None
        if not _is_number(value) or int(value) != value or not 0 <= value < n:
            raise TatumError(f"{label} bucket must be 0–{n - 1}, 'any' or 'source', not {value!r}")
        return int(value)
    return check


def parse_mix(text: str, label: str) -> Mix:
    """"jazz" or "jazz:0.7,classical:0.3" → {name: weight}."""
    if ":" not in text:
        return {text.strip(): 1.0}
    mix = {}
    for part in text.split(","):
        name, _, w = part.rpartition(":")
        try:
            mix[name.strip()] = float(w)
        except ValueError:
            raise TatumError(f"{label}: bad mixture {text!r}; write name:weight,name:weight") from None
    return mix


def mixture(kind: str) -> Check:
    """A name, "name:w,name:w" or {name: weight} → {name: weight} with weights ≥ 0, not all 0; None,
    "" and {} are None (no style: the model's NULL token). Names are checked against a model's
    vocabulary later (`Conditioning.for_vocabulary`), once the model is known."""
    def check(value, label: str) -> Mix | None:
        if value is None or value == "" or value == {}:
            return None
        mix = parse_mix(value, label) if isinstance(value, str) else value
        if not isinstance(mix, dict) or len(mix) > MAX_MIX:
            raise TatumError(f"{label}: a {kind} is a name or a mixture of name: weight")
        out = {}
        for name, w in mix.items():
            if not isinstance(name, str) or not name.strip():
                raise TatumError(f"{label}: a {kind} name must be text, not {str(name)[:40]!r}")
            if not _is_number(w):
                raise TatumError(f"{label}: weight of {name[:40]!r} must be a number, not {w!r}")
            if w < 0:
                raise TatumError(f"{label}: weight of {name[:40]!r} must not be negative, not {w:g}")
            out[name.strip()] = float(w)
        if sum(out.values()) <= 0:
            raise TatumError(f"{label}: {kind} weights must not all be zero")
        return {k: v for k, v in out.items() if v > 0}
    return check


# ------------------------------------------------------------------ declarations
@dataclass(frozen=True)
class Spec:
    """One option: everything the command line, the Python API and the browser need to know."""

    name: str                # the field, the JSON key
    default: Any
    check: Check
    help: str                # one short line for --help (details in the README)
    flag: str                # the command-line option
    keyword: str             # the Python API's keyword argument
    metavar: str
    text: bool               # given as text on the command line (parsed by `check`)
    advanced: bool           # shown under "Advanced" in --help

    def checked(self, value, label: str | None = None):
        return self.check(value, label or self.name)


def option(default, check: Check, help: str, *, flag: str | None = None, keyword: str | None = None,
           metavar: str = "", text: bool = False, advanced: bool = True):
    """A dataclass field that declares its option (the name is filled in from the field)."""
    meta = {"spec": dict(default=default, check=check, help=help, flag=flag, keyword=keyword,
                         metavar=metavar, text=text, advanced=advanced)}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def specs(cls) -> list[Spec]:
    out = []
    for f in fields(cls):
        s = dict(f.metadata["spec"])
        out.append(Spec(name=f.name, flag=s.pop("flag") or "--" + f.name.replace("_", "-"),
                        keyword=s.pop("keyword") or f.name, **s))
    return out


def _check_fields(obj) -> None:
    for s in specs(type(obj)):
        object.__setattr__(obj, s.name, s.check(getattr(obj, s.name), s.keyword))


@dataclass(frozen=True)
class Conditioning:
    """What to play toward, for every window: mixtures of styles and pianists, density and polyphony
    buckets (None = any, "source" = the bucket of the music being rewritten, or of the prompt)."""

    genre: Mix | None = option({"jazz": 1.0}, mixture("style"), 'Style, or a mix like jazz:.7,pop:.3.',
                               flag="--style", keyword="style", metavar="MIX", text=True, advanced=False)
    artist: Mix | None = option(None, mixture("pianist"), 'In the manner of a pianist (or a mix).',
                                metavar="NAME", text=True, advanced=False)
    density: int | str | None = option(None, bucket(N_DENSITY), f"Density 0–{N_DENSITY - 1}, any or source.",
                                       metavar="B", text=True)
    polyphony: int | str | None = option(None, bucket(N_POLYPHONY), f"Polyphony 0–{N_POLYPHONY - 1}, any or source.", metavar="B", text=True)

    def __post_init__(self):
        _check_fields(self)

    def replace(self, **changes) -> "Conditioning":
        return replace(self, **changes)

    def for_vocabulary(self, genres: Iterable[str], artists: Iterable[str]) -> "Conditioning":
        """The same conditioning with its names spelt as the model's vocabulary spells them
        (case aside); an unknown name is refused with the likeliest meant one and the list."""
        return replace(self, genre=_known(self.genre, list(genres), "style"),
                       artist=_known(self.artist, list(artists) + ["other"], "pianist"))

    def tokens(self, tok, source):
        """(genre, artist, density, polyphony) token ids for a window whose notes are `source`, and the
        mixtures the decoder blends where more than one name is given."""
        from tatum.generate.decode import Style

        def single(mix, lookup):
            return lookup(max(mix, key=mix.get)) if mix else tok.null_style

        def blend(mix, lookup):    # a single name needs no mixing: its token is in the input already
            return {lookup(k): w for k, w in mix.items()} if mix and len(mix) > 1 else None

        dens = tk.density_bucket(len(source)) if self.density == "source" else self.density
        poly = tk.polyphony_bucket(source) if self.polyphony == "source" else self.polyphony
        style = Style(genre=blend(self.genre, tok.genre_id), artist=blend(self.artist, tok.artist_id))
        ids = (single(self.genre, tok.genre_id), single(self.artist, tok.artist_id), tok.density_id(dens),
               tok.polyphony_id(poly))
        return ids, style

    def lead_artist(self) -> str | None:
        return max(self.artist, key=self.artist.get) if self.artist else None


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn. `guidance` w mixes logits as (1+w)·cond − w·uncond (0 = off)."""

    # A cut to the 50 likeliest of 704 key-velocity classes dropped most bass notes (their probability
    # is spread over many keys): continuations kept 0.24 of the time below C3 where pianists have 0.59.
    temperature: float = option(0.9, number(0.0, 3.0), "0–3: lower is safer; 0 greedy.", metavar="T")
    top_k: int = option(0, whole(0, 2000), "Draw among the K likeliest; 0 all.", metavar="K")
    top_p: float = option(1.0, number(0.01, 1.0), "Draw among tokens summing to P.", metavar="P")
    guidance: float = option(0.0, number(0.0, 10.0), "0–10: push toward style, controls.", metavar="W")
    # the model drifts up as it goes (a continuation climbed an octave in 15 s) and thins the left hand:
    # a soft cost on keys outside the range of the music around the window, the keys below C3
    # favoured while the window has less bass than the two windows before, and onsets drawn sharper,
    # so the beat it hears is kept (tatum.generate.sampling: pitch_anchor, LeftHand, steady)
    anchor: float = option(0.0, number(0.0, 3.0), "0–3: hold the register, bass and beat.", metavar="A")
    seed: int | None = option(None, whole(0, SEED_MAX, none=True), "Make the run reproducible.", metavar="N",
                              advanced=False)

    def __post_init__(self):
        _check_fields(self)

    def replace(self, **changes) -> "Sampling":
        return replace(self, **changes)

    def generator(self, salt: int = 0):
        import secrets

        import torch

        g = torch.Generator()
        seed = self.seed if self.seed is not None else secrets.randbelow(2**31)
        g.manual_seed(seed * 1_000_003 + salt)
        return g


SPECS: dict[str, Spec] = {s.name: s for s in specs(Conditioning) + specs(Sampling)}
KEYWORDS: dict[str, Spec] = {s.keyword: s for s in SPECS.values()} | SPECS

# Where a verb's defaults differ from the fields' (the one place that says so, for the command line and
# the Python API alike): a continuation keeps its prompt's texture (the sampler's pace holds it; guidance
# toward it made NoteLM's continuations more random-like and their bass thinner, benchmarks/continue_sampling.py).
# Drafts per window that a verb keeps the best of (verbs not named: one). On PiJAMA val the best of 4 is
# heard as real music far more often by a classifier the reranker never consults (tatum-judge), at under
# twice the time of one draft: continuations 0.32 random-like against 0.74, infilled gaps 0.35 against
# 0.70 (32 gaps, README "Rerank with the classifiers"). A continuation keeps the best of 8: with the
# keep and beat terms (RERANK_WEIGHTS) the judge heard 0.11 random-like against 0.17 for the best of 4
# of the equal weights, at 1.5 times the time (96 prompts, README "continue keeps the prompt's key").
# (and improvise's replay plan: the pianist's manner comes most from choosing among drafts; README)
CANDIDATES: dict[str, int] = {"continue": 8, "infill": 4, "replay": 8}
# How the reranker weighs its terms for a verb (`tatum.evaluate.rerank.Weights`; verbs not named: its
# defaults). A continuation is chosen as much for keeping the prompt's key, register and bass and for
# a clear beat as for sounding real; the realness weight keeps those terms from choosing music the
# judge hears as random (96 PiJAMA val prompts, README "continue keeps the prompt's key")
# (an infill keeps the music on both sides of its gap the same way: 32 gaps, README "infill keeps ...")
_KEEP_THE_MUSIC_GIVEN = {"real": 3.0, "keep": 0.5, "beat": 0.5}
RERANK_WEIGHTS: dict[str, dict[str, float]] = {"continue": dict(_KEEP_THE_MUSIC_GIVEN),
                                               "infill": dict(_KEEP_THE_MUSIC_GIVEN)}
# replay's first re-played window is drawn from this many times as many drafts: every later window
# continues the manner it sets (README, "Re-play in a pianist's manner")
OPENING_DRAFTS = 4

VERB_DEFAULTS: dict[str, dict[str, Any]] = {
    # anchor 1: on 96 PiJAMA val prompts the median pitch moved 5.0 semitones from the prompt's end
    # (6.1 without), the bass stayed 0.44 of the time (0.40) and the judge heard 0.09 random-like (0.12)
    "continue": {"density": "source", "polyphony": "source", "anchor": 1.0},
    # the jam continues what it has played and heard, as `continue` does
    "jam": {"anchor": 1.0},
    # each window keeps its own texture: left to choose, the model sounds less like jazz and strays
    # further from the tune (README, "improvise keeps ...")
    "improvise": {"density": "source", "polyphony": "source"},
    # a melody has no texture of its own to keep; left to itself the model stacks 14 notes on average
    # (up to 41) under a 1.6 notes/s tune, where jazz pianists sound about 4 (PiJAMA val: median 4.0)
    "harmonize": {"polyphony": 3},
    # the texture of the music given around the gap: left to choose, the model filled PiJAMA val gaps
    # with 73 notes per 5 s where the pianists played 55, and drifted up (README, "infill keeps ...")
    "infill": {"density": "source", "polyphony": "source"},
}


def default(name: str, verb: str | None = None):
    return VERB_DEFAULTS.get(verb, {}).get(name, SPECS[name].default)


def resolve(verb: str | None = None, conditioning: Conditioning | None = None, sampling: Sampling | None = None,
            **options) -> tuple[Conditioning, Sampling]:
    """The objects a task runs with: `conditioning` and `sampling` (or the verb's defaults), with any
    option given by keyword (style, artist, density, polyphony, temperature, top_k, top_p, guidance,
    seed) laid over them. An unknown keyword is a TypeError, as for any Python function."""
    unknown = [k for k in options if k not in KEYWORDS]
    if unknown:
        raise TypeError(f"unexpected option {unknown[0]!r}; options: {', '.join(s.keyword for s in SPECS.values())}")
    given = {KEYWORDS[k].name: v for k, v in options.items()}
    names_c = {f.name for f in fields(Conditioning)}
    verb_d = VERB_DEFAULTS.get(verb, {})
    base_c = conditioning or Conditioning(**{k: v for k, v in verb_d.items() if k in names_c})
    base_s = sampling or Sampling(**{k: v for k, v in verb_d.items() if k not in names_c})
    cond = base_c.replace(**{k: v for k, v in given.items() if k in names_c})
    samp = base_s.replace(**{k: v for k, v in given.items() if k not in names_c})
    return cond, samp


def _known(mix: Mix | None, known: list[str], kind: str) -> Mix | None:
    if not mix:
        return mix
    folded = {k.casefold(): k for k in known}
    out = {}
    for name, w in mix.items():
        real = folded.get(name.casefold())
        if real is None:
            guess = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
            hint = f"; did you mean {folded[guess[0]]!r}?" if guess else ""
            raise TatumError(f"unknown {kind} {name[:40]!r}{hint} ({kind}s: {', '.join(known)})")
        out[real] = out.get(real, 0.0) + w
    return out


def vocabulary() -> tuple[list[str], list[str]]:
    """(styles, pianists) of the shipped models, for help texts."""
    tok = tk.Tokenizer.default()
    return list(tok.genres), list(tok.artists)

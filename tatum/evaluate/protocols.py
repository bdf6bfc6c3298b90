"""ImprovNet's evaluation protocols, run on real pieces with fixed seeds (`tatum evaluate`).

- continuation: the first 20 s of a performance → 15 s generated, against the real next 15 s;
- infill: 0–20 s and 40–60 s given → 20–40 s generated, against the real 20–40 s;
- style-transfer: the first 60 s of a piece (pianolatron val) → jazz with improvise's default plan
  (ImprovNet's passes; replay when a pianist is asked), measured after every pass or window;
- harmonize: the skyline of a performance's first 30 s → harmonized, against the pianist's own.

Piece k is generated with seed `seed + k`, so a run repeats exactly. Every measure comes from
`tatum.evaluate.metrics` and the shipped classifiers (`tatum.evaluate.classify`: the one reranking
uses, and the independent judge, `judge_…` measures); `report` writes the tables, JSON and pictures.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tatum.errors import TatumError
from tatum.evaluate import metrics as mt
from tatum.evaluate.classify import JUDGE, MODELS_DIR, Classifier, Scores
from tatum.notes import Notes
from tatum.options import CANDIDATES

TASKS = ("continuation", "infill", "style-transfer", "harmonize")
DEFAULT_DATA = {"continuation": "pijama:val", "infill": "pijama:val", "style-transfer": "pianolatron:val",
                "harmonize": "pijama:val"}
KNOWN_SOURCES = ("pijama", "pianolatron", "pop909")
PROMPT_S, CONTINUE_S = 20.0, 15.0
INFILL_S = (20.0, 40.0, 60.0)            # generated from 20 to 40 s of a 60 s excerpt
STYLE_S, HARMONIZE_S = 60.0, 30.0         # default excerpt lengths
RERANKED = ("continuation", "infill", "style-transfer")
VERB_OF = {"continuation": "continue", "infill": "infill", "style-transfer": "improvise"}   # the verb each task runs


def default_data_root() -> Path:
    """$TATUM_DATA, else the shared data folder beside the project (../shared/data)."""
    env = os.environ.get("TATUM_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass
class Setup:
    """One evaluation run. `data` is SOURCE:SPLIT (pijama, pianolatron or pop909 under `data_root`)
    or FOLDER[:SPLIT] (any folder `tatum data prepare` reads); `artist` is the pianist asked for, and
    on PiJAMA also whose pieces are used; `seconds` the excerpt length of style-transfer (60) and
    harmonize (30)."""

    task: str
    data: str | None = None
    n: int = 8
    model: str | None = None
    artist: str | None = None
    seed: int = 0
    candidates: int | None = None      # drafts per window; None: the verb's default
    seconds: float | None = None
    data_root: Path | None = None
    plan: str | None = None            # style-transfer: improvise's plan (None: improvise's default)
    keep_first: float | None = None    # style-transfer: seconds improvise leaves as they were (None: its default)

    def __post_init__(self):
        if self.task not in TASKS:
            raise TatumError(f"unknown task {self.task!r}; tasks: {', '.join(TASKS)}")
        if self.n < 1:
            raise TatumError(f"--n must be 1 or more, not {self.n}")
        for name, value in (("--plan", self.plan), ("--keep-first", self.keep_first)):
            if value is not None and self.task != "style-transfer":
                raise TatumError(f"{name} is style-transfer's; {self.task} has its verb's own")
        if self.keep_first is not None and not 0 <= self.keep_first <= 600:
            raise TatumError(f"--keep-first must be 0–600 seconds, not {self.keep_first:g}")
        if self.task == "style-transfer" and self.plan is None:
            from tatum.generate.tasks import plan_for

            self.plan = plan_for(self.artist)
        if self.plan not in (None, "replay"):    # refused before any model or data is loaded, as improvise does
            from tatum.generate.engine import check_plan, parse_plan
            from tatum.tokenizer import Tokenizer

            check_plan(parse_plan(self.plan), Tokenizer.default())
        if self.candidates is None:
            self.candidates = CANDIDATES.get(self.plan if self.plan == "replay" else VERB_OF.get(self.task, self.task), 1)
        if int(self.candidates) != self.candidates or self.candidates < 1:
            raise TatumError(f"--candidates must be a whole number, 1 or more, not {self.candidates}")
        if self.candidates > 1 and self.task not in RERANKED:
            raise TatumError(f"--candidates reranks {', '.join(RERANKED)}; {self.task} decodes one candidate")
        if self.seconds is not None and self.task not in ("style-transfer", "harmonize"):
            raise TatumError("--seconds sets the excerpt of style-transfer and harmonize; "
                             f"{self.task} follows ImprovNet's fixed spans")
        low = {"style-transfer": 15.0, "harmonize": 5.0}.get(self.task, 0)
        if self.seconds is not None and self.seconds < low:
            raise TatumError(f"--seconds must be at least {low:g} for {self.task}")
        self.data = self.data or DEFAULT_DATA[self.task]
        self.data_root = Path(self.data_root) if self.data_root else default_data_root()

    @property
    def excerpt_s(self) -> float:
        return {"continuation": PROMPT_S + CONTINUE_S, "infill": INFILL_S[2]}.get(
            self.task, self.seconds or (STYLE_S if self.task == "style-transfer" else HARMONIZE_S))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_root"] = str(self.data_root)
        return d


@dataclass
class PieceResult:
    """One piece: what it is, its measures (generated, and `real_…` for the music it is compared
    with), per-pass curves, the generated notes and what to picture."""

    title: str
    artist: str | None
    path: str
    measures: dict[str, float | bool | None]
    curves: dict[str, list[float]]
    result: Notes
    before: Notes
    titles: tuple[str, str]
    wall_s: float


@dataclass
class Evaluation:
    setup: Setup
    model: dict
    pieces: list[PieceResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, dict]:
        """Per measure: mean, standard deviation, median and how many pieces had a value (booleans
        as shares)."""
        keys = list(dict.fromkeys(k for p in self.pieces for k in p.measures))
        out = {}
        for k in keys:
            xs = [float(p.measures[k]) for p in self.pieces
                  if p.measures.get(k) is not None and not _nan(p.measures[k])]
            out[k] = {"mean": statistics.fmean(xs) if xs else None,
                      "sd": statistics.stdev(xs) if len(xs) > 1 else None,
                      "median": statistics.median(xs) if xs else None, "n": len(xs)}
        walls = [p.wall_s for p in self.pieces]
        if walls:
            out["wall_s"] = {"mean": statistics.fmean(walls), "sd": statistics.stdev(walls) if len(walls) > 1 else None,
                             "median": statistics.median(walls), "n": len(walls)}
        return out

    def curve_means(self) -> dict[str, list[float | None]]:
        """Per curve, the mean over pieces at each pass (None where no piece has a value)."""
        names = list(dict.fromkeys(k for p in self.pieces for k in p.curves))
        out = {}
        for name in names:
            length = max(len(p.curves.get(name, [])) for p in self.pieces)
            col = []
            for i in range(length):
                xs = [p.curves[name][i] for p in self.pieces if i < len(p.curves.get(name, []))
                      and p.curves[name][i] is not None and not _nan(p.curves[name][i])]
                col.append(statistics.fmean(xs) if xs else None)
            out[name] = col
        return out


def _nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ----------------------------------------------------------------- the data
@dataclass
class Source:
    title: str
    artist: str | None
    path: str
    start_s: float = 0.0
    end_s: float | None = None


def select_pieces(setup: Setup) -> list[Source]:
    """The pieces of `setup.data` in a fixed order: evenly spaced through the split (sorted by path),
    then the rest, so the first n long enough are a spread of the collection."""
    from tatum.data.sources import detect

    name, _, split = setup.data.partition(":")
    if not name:
        raise TatumError(f"bad --data {setup.data!r}: write SOURCE:SPLIT (e.g. pijama:val) or FOLDER:SPLIT")
    split = split or "val"
    folder = setup.data_root / name if name in KNOWN_SOURCES else Path(name).expanduser()
    if not folder.is_dir():
        raise TatumError(f"no data folder for --data {setup.data!r}" +
                         (" (set --data-root or $TATUM_DATA)" if name in KNOWN_SOURCES else ""), folder)
    refs = sorted((r for r in detect(str(folder)) if r.split == split), key=lambda r: r.path)
    if not refs:
        raise TatumError(f"no pieces of split {split!r} in {setup.data}", folder)
    if setup.artist and setup.task != "style-transfer" and any(r.artist for r in refs):
        refs = [r for r in refs if (r.artist or "").casefold() == setup.artist.casefold()]
        if not refs:
            raise TatumError(f"no pieces by {setup.artist!r} in {setup.data}")
    need = setup.excerpt_s
    refs = [r for r in refs if r.end_s is None or r.end_s - r.start_s >= need]
    step = max(1, len(refs) // setup.n)
    first = list(range(0, len(refs), step))[:setup.n]
    order = first + [i for i in range(len(refs)) if i not in set(first)]
    return [Source(refs[i].title or Path(refs[i].path).stem, refs[i].artist, refs[i].path, refs[i].start_s,
                   refs[i].end_s) for i in order]


def load(src: Source, seconds: float) -> Notes:
    """The performance (inside its boundaries) from its first note, its first `seconds`."""
    notes = Notes.from_midi(src.path)
    if src.start_s or src.end_s is not None:
        notes = notes.slice(src.start_s * 1000, src.end_s * 1000 if src.end_s is not None else np.inf, clip=True)
    if not len(notes):
        return notes
    notes = notes.shift(-notes.start_ms)
    return notes.slice(0, seconds * 1000, clip=True)


# ------------------------------------------------------------ the measures
@dataclass(frozen=True)
class Judges:
    """Who listens: the classifier (the one `--candidates` reranks with) and, when shipped, the
    independently trained judge, whose scores reranking cannot have learnt to please."""

    classifier: Classifier
    judge: Classifier | None = None

    @classmethod
    def load(cls, classifier: Classifier | None = None) -> "Judges":
        return cls(classifier or Classifier.load(),
                   Classifier.load(JUDGE) if (MODELS_DIR / JUDGE / "config.json").exists() else None)

    def measures(self, notes: Notes, artist: str | None, prefix: str = "") -> dict:
        """P(jazz), P(artist) (None for a pianist the classifier does not know) and random-like, by
        each (the judge's keys begin `judge_`)."""
        out = classifier_measures(self.classifier, notes, artist, prefix)
        if self.judge is not None:
            out |= classifier_measures(self.judge, notes, artist, prefix + "judge_")
        return out


def classifier_measures(clf: Classifier, notes: Notes, artist: str | None, prefix: str = "") -> dict:
    """P(jazz), P(artist) (None for a pianist the classifier does not know) and random-like."""
    s: Scores = clf.score(notes)
    nan = float("nan")
    return {f"{prefix}p_jazz": s.genre.get("jazz", nan), f"{prefix}random_like": s.random_like,
            f"{prefix}p_artist": s.artist.get(artist) if artist in s.artist else None}


def fifths_apart(a: tuple[int, str], b: tuple[int, str]) -> int:
    """Steps between two keys on the circle of fifths (0–6), a minor key counted as its relative
    major: jazz moves between neighbouring keys, which 'key kept' alone calls a miss."""
    major = lambda k: k[0] if k[1] == "major" else (k[0] + 3) % 12  # noqa: E731
    d = (major(a) - major(b)) * 7 % 12
    return min(d, 12 - d)


def compare_section(real: Notes, gen: Notes, context: Notes, seconds: float, yardstick: Notes | None = None) -> dict:
    """ImprovNet's continuation / infilling measures of a generated section against the real one,
    and ours: key kept (vs the given context), register, bass, beat clarity. `yardstick` (given music
    as long as the section, e.g. the prompt's end) is scored against the real section the same way:
    what copying the context would get."""
    key = mt.estimate_key(context)
    ref = {} if yardstick is None else {"real_pctm_cosine": mt.pctm_cosine(real, yardstick),
                                        "real_pitch_class_kl": mt.pitch_class_kl(real, yardstick),
                                        **_improvnet_pitch(real, yardstick, "real_")}
    # Nothing generated has no pitch-class profile: the smoothed KL would score it as a flat one (well).
    return {"empty": not len(gen), "pctm_cosine": mt.pctm_cosine(real, gen),
            "pitch_class_kl": mt.pitch_class_kl(real, gen) if len(gen) else None, **_improvnet_pitch(real, gen),
            "notes_per_5s": mt.note_density(gen, seconds), "real_notes_per_5s": mt.note_density(real, seconds),
            "key_kept": bool(len(gen)) and mt.same_key(key, mt.estimate_key(gen)),
            "real_key_kept": bool(len(real)) and mt.same_key(key, mt.estimate_key(real)),
            "key_fifths": fifths_apart(key, mt.estimate_key(gen)) if len(gen) else None,
            "real_key_fifths": fifths_apart(key, mt.estimate_key(real)) if len(real) else None,
            "median_pitch_diff": abs(mt.median_pitch(gen) - mt.median_pitch(real)),
            "bass_presence": mt.bass_presence(gen), "real_bass_presence": mt.bass_presence(real),
            "pulse_clarity": mt.pulse_clarity(gen), "real_pulse_clarity": mt.pulse_clarity(real)} | ref


def _improvnet_pitch(real: Notes, other: Notes, prefix: str = "") -> dict:
    """PCTM cosine and pitch-class KL as ImprovNet computed them (pretty_midi's 50 ms legato
    transitions; 1e-5 smoothing), so its published figures compare."""
    return {f"{prefix}pctm_cosine_improvnet": mt.pctm_cosine(mt.pctm_legato(real), mt.pctm_legato(other)),
            f"{prefix}pitch_class_kl_improvnet": mt.pitch_class_kl(real, other, eps=1e-5) if len(other) else None}


def per_window_density(notes: Notes, t0: float, t1: float) -> list[float]:
    """Notes per 5 s window from t0 to t1 (ms)."""
    return [float(len(notes.slice(a, a + 5000))) for a in np.arange(t0, t1, 5000)]


# --------------------------------------------------------------- the tasks
def _continuation(setup: Setup, notes: Notes, k: int, judges: Judges, artist: str | None) -> PieceResult:
    from tatum.generate.tasks import continue_

    P, C = PROMPT_S * 1000, CONTINUE_S * 1000
    prompt, real = notes.slice(0, P, clip=True), notes.slice(P, P + C, clip=True)
    t = time.perf_counter()
    # the piece itself, cut by continue_ at PROMPT_S: a prompt whose last note ends before it is still whole
    out = continue_(notes, seconds=CONTINUE_S, prompt_seconds=PROMPT_S, style="jazz", artist=setup.artist,
                    seed=setup.seed + k, model=setup.model, candidates=setup.candidates)
    wall = time.perf_counter() - t
    gen = out.slice(P, P + C, clip=True)
    m = compare_section(real, gen, prompt, CONTINUE_S, notes.slice(P - C, P, clip=True))
    m |= judges.measures(gen, artist) | judges.measures(real, artist, "real_")
    curves = {"notes per 5 s": per_window_density(gen, P, P + C),
              "notes per 5 s (real)": per_window_density(real, P, P + C)}
    return PieceResult("", None, "", m, curves, out, notes.slice(0, P + C, clip=True),
                       ("the pianist: prompt and real continuation", "tatum: prompt and continuation"), wall)


def _infill(setup: Setup, notes: Notes, k: int, judges: Judges, artist: str | None) -> PieceResult:
    from tatum.generate.tasks import infill

    a, b, end = (x * 1000 for x in INFILL_S)
    t = time.perf_counter()
    out = infill(notes, a / 1000, b / 1000, style="jazz", artist=setup.artist, seed=setup.seed + k,
                 model=setup.model, candidates=setup.candidates)
    wall = time.perf_counter() - t
    gen, real = out.slice(a, b, clip=True), notes.slice(a, b, clip=True)
    context = Notes.merge([notes.slice(0, a, clip=True), notes.slice(b, end)])
    m = compare_section(real, gen, context, (b - a) / 1000, notes.slice(0, a, clip=True))
    m |= judges.measures(gen, artist) | judges.measures(real, artist, "real_")
    curves = {"notes per 5 s": per_window_density(gen, a, b), "notes per 5 s (real)": per_window_density(real, a, b)}
    return PieceResult("", None, "", m, curves, out, notes, ("the pianist", "tatum: 20–40 s filled in"), wall)


def _style_transfer(setup: Setup, notes: Notes, k: int, judges: Judges, artist: str | None) -> PieceResult:
    from tatum.generate.tasks import improvise

    curves: dict[str, list[float]] = {"P(jazz)": [], "random-like": [], "SSM correlation with the input": []}
    if artist:
        curves[f"P({artist})"] = []
    if judges.judge is not None:
        curves["random-like (judge)"] = []
    names = {"p_jazz": "P(jazz)", "random_like": "random-like", "p_artist": f"P({artist})",
             "judge_random_like": "random-like (judge)"}

    def measure(x: Notes) -> dict:
        vals = judges.measures(x, artist) | {"ssm_correlation": mt.ssm_correlation(notes, x)}
        for key, v in vals.items():
            name = "SSM correlation with the input" if key == "ssm_correlation" else names.get(key)
            if name in curves:
                curves[name].append(v)
        return vals

    seen = [measure(notes)]
    t = time.perf_counter()
    out = improvise(notes, style="jazz", artist=setup.artist, plan=setup.plan, seed=setup.seed + k,
                    keep_first_s=setup.keep_first, model=setup.model, candidates=setup.candidates, on_notes=lambda _, x: seen.append(measure(x)))
    wall = time.perf_counter() - t
    m = dict(seen[-1]) | {"real_" + key: v for key, v in seen[0].items() if key != "ssm_correlation"}
    m |= {"notes_per_5s": mt.note_density(out), "real_notes_per_5s": mt.note_density(notes),
          "chroma_r": mt.chroma_r(notes, out, notes.start_ms, notes.end_ms)}
    return PieceResult("", None, "", m, curves, out, notes, ("input", f"tatum: after the {setup.plan} plan"), wall)


def _harmonize(setup: Setup, notes: Notes, k: int, judges: Judges, artist: str | None) -> PieceResult:
    import warnings

    from tatum.corruption import skyline_notes
    from tatum.generate.tasks import harmonize

    melody = skyline_notes(notes)
    seconds = setup.excerpt_s
    curves: dict[str, list[float]] = {"polyphony rate": [], "distinct chords": [], "notes per s": []}

    def measure(_, x: Notes) -> None:
        curves["polyphony rate"].append(mt.polyphony_rate(x, include_silence=True))
        curves["distinct chords"].append(float(mt.distinct_chords(x)))
        curves["notes per s"].append(len(x) / seconds)

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a skyline is one line; nothing to warn about
        out = harmonize(melody, style="jazz", artist=setup.artist, seed=setup.seed + k, model=setup.model,
                        on_notes=measure)
    wall = time.perf_counter() - t
    m = {"polyphony_rate": mt.polyphony_rate(out, include_silence=True),
         "real_polyphony_rate": mt.polyphony_rate(notes, include_silence=True),
         "melody_polyphony_rate": mt.polyphony_rate(melody, include_silence=True),
         "distinct_chords": mt.distinct_chords(out), "real_distinct_chords": mt.distinct_chords(notes),
         "notes_per_s": len(out) / seconds, "real_notes_per_s": len(notes) / seconds,
         "melody_kept": mt.melody_kept(melody, out)}
    m |= judges.measures(out, artist) | judges.measures(notes, artist, "real_")
    return PieceResult("", None, "", m, curves, out, melody, ("melody (the pianist's skyline)", "tatum: harmonized"),
                       wall)


RUNNERS: dict[str, Callable] = {"continuation": _continuation, "infill": _infill,
                                "style-transfer": _style_transfer, "harmonize": _harmonize}


def model_info(setup: Setup) -> dict:
    """Load the generator (one error line for a bad --model or --artist before any work) and say
    which it is."""
    from tatum.generate.tasks import _mix, get_model

    model, tok = get_model(setup.model, setup.artist)
    if setup.artist:
        _mix(tok, setup.artist, "artist")
    cfg = getattr(model, "config_json", {})
    training = cfg.get("training", {})
    return {"model": str(setup.model) if setup.model else _shipped_name(setup.artist),
            "architecture": cfg.get("architecture"), "n_params": cfg.get("n_params"),
            "steps": training.get("steps"), "val_loss": (training.get("val_loss") or {}).get("all")}


def _shipped_name(artist: str | None) -> str:
    from tatum.generate.tasks import TATUM_MODEL
    from tatum.model.checkpoint import DEFAULT_MODEL, MODELS_DIR

    tatum = artist == "Art Tatum" and (MODELS_DIR / TATUM_MODEL / "config.json").exists()
    return TATUM_MODEL if tatum else DEFAULT_MODEL


def evaluate(setup: Setup, progress: Callable[[int, int, str], None] | None = None,
             classifier: Classifier | None = None) -> Evaluation:
    """Run `setup.task` on `setup.n` pieces; `progress(done, total, title)` as each piece starts, and
    once at the end."""
    info = model_info(setup)
    pieces = select_pieces(setup)
    judges = Judges.load(classifier)
    artist = setup.artist
    ev = Evaluation(setup, info)
    need = setup.excerpt_s
    for src in pieces:
        if len(ev.pieces) >= setup.n:
            break
        try:
            notes = load(src, need)
        except TatumError as e:
            ev.skipped.append((src.title, e.reason))
            continue
        if not len(notes) or notes.end_ms < need * 1000 - 1000:
            ev.skipped.append((src.title, f"shorter than {need:g} s"))
            continue
        # Without --artist, P(pianist) is that of the piece's own pianist (does it still sound like them).
        who = artist or (src.artist if setup.task != "style-transfer" else None)
        if progress is not None:
            progress(len(ev.pieces), setup.n, src.title)
        res = RUNNERS[setup.task](setup, notes, len(ev.pieces), judges, who)
        res.title, res.artist, res.path = src.title, src.artist, src.path
        ev.pieces.append(res)
    if progress is not None and ev.pieces:
        progress(len(ev.pieces), setup.n, "done")
    if not ev.pieces:
        raise TatumError(f"no piece of {setup.data} is {need:g} s long or more")
    return ev

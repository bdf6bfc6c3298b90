"""The pass engine: every task is a plan of passes of corruption–refinement over a piece's windows.

A pass picks windows (each with probability `rate`), corrupts each with its corruption, and has the
model rewrite it from the corrupted version and its clean neighbours. Windows of one pass are decoded
together as one batch from the piece as it stood when the pass began (or one after another, each
seeing its refined left neighbours, with `order="sequential"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tatum import layout
from tatum import tokenizer as tk
from tatum.corruption import corrupt, skyline_notes
from tatum.data.examples import build_encoder_input, join_windows
from tatum.errors import TatumError
from tatum.generate.decode import Row, Style, decode_rows
from tatum.generate.sampling import Pace
from tatum.generate.sampling import Sampling
from tatum.options import Conditioning  # noqa: F401  (declared with the other options; imported from here too)
from tatum.model.notelm import NoteLM
from tatum.model.transformer import Seq2Seq
from tatum.notes import Notes, TempoMap
from tatum.tokenizer import Tokenizer


ROOM = 128    # NoteLM: input events kept free for the window being generated (more may follow)


@dataclass
class Pass:
    corruption: str          # a registered corruption, or "random" (drawn per window)
    rate: float = 1.0        # share of windows refined in this pass


PLANS: dict[str, list[Pass]] = {
    # ImprovNet's ten-pass style-transfer recipe.
    "improvnet": [Pass("skyline", 1), Pass("skyline", 1), Pass("pitch_velocity_mask", .5),
                  Pass("incorrect_transposition", .5), Pass("permute_pitch", .5), Pass("note_modification", .5),
                  Pass("onset_duration_mask", 1), Pass("fragmentation", .5), Pass("whole_mask", .25),
                  Pass("random", .25)],
    # A lighter touch that keeps the piece closer to itself.
    "light": [Pass("skyline", 1), Pass("note_modification", .5), Pass("onset_duration_mask", .5)],
    # Rewrites everything from scratch around the original's outline.
    "free": [Pass("skyline", 1), Pass("whole_mask", .5), Pass("random", .5)],
}
# Not passes: each window drawn anew after the music before it, pulled toward its source
# (tatum.generate.guide; tatum.generate.tasks.improvise).
REPLAY = "replay"


@dataclass
class Piece:
    """A performance cut into 5 s windows of note tokens, and where they sit in time."""

    windows: list[np.ndarray]
    origin_ms: int
    tempo: TempoMap = field(default_factory=TempoMap)

    @classmethod
    def from_notes(cls, notes: Notes, origin_ms: int | None = None) -> "Piece":
        origin = notes.start_ms if origin_ms is None else origin_ms
        segs = tk.split_segments(notes, origin)
        return cls([tk.encode_segment(s) for s in segs], origin, notes.tempo)

    def notes(self) -> Notes:
        return tk.decode(join_windows(self.windows), origin_ms=self.origin_ms, tempo=self.tempo)

    def window_notes(self, i: int) -> Notes:
        return tk.decode_segment(self.windows[i])

    def __len__(self) -> int:
        return len(self.windows)


@dataclass
class Engine:
    """Runs plans of passes with one model."""

    model: Seq2Seq | NoteLM
    tok: Tokenizer
    sampling: Sampling = field(default_factory=Sampling)
    context: tuple[int, int] = (5, 5)
    batch_size: int = 16
    chord_size: int = 3
    chord_gap_ms: int = 0    # the chord rule serves melody onsets at least this far apart (0: all),
                             # and holds those chords at least as long (harmonize sets it)
    detached: bool = False   # the pace's detached touch (tatum.generate.sampling.Pace)
    candidates: int = 1      # with `choose`: decode each window this many times (one batch) and keep
    choose: Callable[[Piece, list[int], list[list[np.ndarray]]], list[int]] | None = None
                             # (piece, targets, candidates per target) → the kept candidate of each
                             # (tatum.evaluate.rerank.Reranker scores them with the classifiers)

    def rows_for(self, piece: Piece, targets: list[int], names: list[str], cond: Conditioning,
                 rng: np.random.Generator, right_context: dict[int, list[np.ndarray]] | None = None,
                 harmonize: bool = False, inputs: dict[int, Notes] | None = None,
                 bias: dict[int, torch.Tensor | None] | None = None) -> tuple[list[Row], Style]:
        rows, style = [], Style()
        L, R = self.context
        for i, name in zip(targets, names):
            source = piece.window_notes(i)
            left = piece.windows[max(0, i - L):i]
            right = right_context[i] if right_context and i in right_context else piece.windows[i + 1:i + 1 + R]
            # `inputs` gives a window's corrupted version directly (harmonize shows the melody itself).
            corrupted = tk.encode_segment(inputs[i]) if inputs and i in inputs else corrupt(name, source, rng)
            style_ids, style = cond.tokens(self.tok, source)
            if isinstance(self.model, NoteLM):
                enc = layout.build(style_ids, self.tok.corruption_id(name), corrupted, left, right, None,
                                   self.model.cfg.max_len, reserve=ROOM)
            else:
                enc = build_encoder_input(self.tok, style_ids, left, name, corrupted, right,
                                          self.model.cfg.max_enc_len)
            melody = None
            if harmonize:
                line = inputs[i] if inputs and i in inputs else skyline_notes(source)
                melody = {}
                for o, p in zip((line.onset_ms // tk.GRID_MS).tolist(), line.pitch.tolist()):
                    melody[o] = max(p, melody.get(o, 0))
                melody = thin_onsets(melody, self.chord_gap_ms // tk.GRID_MS)
            rows.append(Row(enc, melody, pace=Pace.from_tokens(self.tok, style_ids[2], style_ids[3], self.detached),
                            previous=piece.windows[i - 1] if i > 0 else None, bias=(bias or {}).get(i)))
        return rows, style

    def decode(self, rows: list[Row], style: Style, salt: int, per: int = 1) -> list[np.ndarray]:
        """Decode `rows` in batches; `per` consecutive rows (one window's candidates) share a batch."""
        out = []
        size = max(1, self.batch_size // per) * per
        for k in range(0, len(rows), size):
            gen = self.sampling.generator(salt * 7919 + k)
            out += decode_rows(self.model, rows[k:k + size], self.sampling, style,
                               self.tok.null_style, gen, chord_size=self.chord_size,
                               any_controls=(self.tok.density_id(None), self.tok.polyphony_id(None)),
                               chord_hold=self.chord_gap_ms // tk.GRID_MS)
        return out

    def run_pass(self, piece: Piece, p: Pass, cond: Conditioning, targets: list[int], seed: int,
                 order: str = "parallel", harmonize: bool = False,
                 right_context: dict[int, list[np.ndarray]] | None = None,
                 inputs: dict[int, Notes] | None = None,
                 bias: dict[int, torch.Tensor | None] | None = None) -> list[int]:
        """Refine `targets` (window indices) in place; returns those refined. `bias` adds to a
        window's pitch head (`tatum.generate.guide`)."""
        rng = np.random.default_rng(seed)
        names = [self.tok.corruptions[rng.integers(len(self.tok.corruptions))] if p.corruption == "random"
                 else p.corruption for _ in targets]
        for n in set(names):
            self.tok.corruption_id(n)
        groups = [targets] if order == "parallel" else [[t] for t in targets]
        for g, group in enumerate(groups):
            gnames = [names[targets.index(t)] for t in group]
            rows, style = self.rows_for(piece, group, gnames, cond, rng, right_context, harmonize, inputs, bias)
            for t, ids in zip(group, self.decode_best(piece, group, rows, style, salt=seed * 1009 + g)):
                piece.windows[t] = tk.encode_segment(tk.decode_segment(ids))
        return targets

    def decode_best(self, piece: Piece, targets: list[int], rows: list[Row], style: Style,
                    salt: int) -> list[np.ndarray]:
        """One decoded window per row: the only one, or the candidate `choose` keeps of `candidates`."""
        k = self.candidates if self.choose is not None else 1
        if k <= 1:
            return self.decode(rows, style, salt)
        many = self.decode([r for r in rows for _ in range(k)], style, salt, per=k)
        cands = [[tk.encode_segment(tk.decode_segment(ids)) for ids in many[i * k:(i + 1) * k]]
                 for i in range(len(rows))]
        return [c[p] for c, p in zip(cands, self.choose(piece, targets, cands))]


def pick_targets(n: int, rate: float, rng: np.random.Generator, start: int = 0, stop: int | None = None,
                 keep: set[int] = frozenset()) -> list[int]:
    stop = n if stop is None else min(stop, n)
    return [i for i in range(start, stop) if i not in keep and rng.random() < rate]


def run_plan(engine: Engine, piece: Piece, plan: list[Pass], cond: Conditioning, *, start: int = 0,
             stop: int | None = None, keep: set[int] = frozenset(), seed: int = 0, order: str = "parallel",
             harmonize: bool = False, inputs: dict[int, Notes] | None = None,
             melody: dict[int, Notes] | None = None,
             on_pass: Callable[[int, int], None] | None = None) -> Piece:
    """Apply each pass of `plan` to the windows in [start, stop) that are not in `keep`.

    With `melody` (window index → its tune), skyline passes show the model that tune as the window's
    skyline, and after every pass the tune is laid back on top. `harmonize` adds the chord rule
    (groups start under the tune's notes).
    """
    check_plan(plan, engine.tok)
    for k, p in enumerate(plan):
        rng = np.random.default_rng([seed, k])
        targets = pick_targets(len(piece), p.rate, rng, start, stop, keep)
        targets = [t for t in targets if len(piece.windows[t]) or p.corruption in ("whole_mask", "random")]
        anchored = melody is not None and p.corruption == "skyline"
        if targets:
            engine.run_pass(piece, p, cond, targets, seed=int(rng.integers(2**31)), order=order,
                            harmonize=harmonize, inputs=melody if anchored else inputs)
        if melody is not None:
            for t in targets:
                if t in melody:
                    piece.windows[t] = tk.encode_segment(keep_melody_on_top(piece.window_notes(t), melody[t]))
        if on_pass is not None:
            on_pass(k, len(targets))
    return piece


def keep_melody_on_top(accomp: Notes, melody: Notes, window_ms: int = 50) -> Notes:
    """The melody exactly as given, over the generated notes that lie below it.

    A generated note is dropped where it would sound at or above the melody note in force at its onset
    (it would replace or cover the tune), or where it doubles a melody note's onset and pitch.
    """
    if not len(melody):
        return accomp
    m_on = melody.onset_ms.astype(np.int64)
    idx = np.searchsorted(m_on, accomp.onset_ms.astype(np.int64) + window_ms, side="right") - 1
    has = idx >= 0
    current = np.where(has, melody.pitch[np.maximum(idx, 0)], 200)
    m_end = m_on + melody.dur_ms
    sounding = has & (accomp.onset_ms < m_end[np.maximum(idx, 0)] + window_ms)
    below = ~sounding | (accomp.pitch < current)
    return Notes.merge([melody, accomp.select(below)])


def check_plan(plan: list[Pass], tok: Tokenizer) -> None:
    """Refuse a misspelt corruption or a bad rate before any window is touched."""
    from tatum.corruption import CORRUPTIONS, token_name

    for p in plan:
        if p.corruption != "random" and p.corruption not in tok.corruptions:
            try:
                token_name(p.corruption)      # one of the user's, registered
            except TatumError:
                raise TatumError(f"unknown plan or corruption {p.corruption!r}; plans: {', '.join([*PLANS, REPLAY])}; "
                                 f"corruptions: {', '.join(CORRUPTIONS)}, random (one of your own: "
                                 "@register it, and on the command line --plugin FILE.py)") from None
        if not 0 <= p.rate <= 1:
            raise TatumError(f"pass rate must be in 0–1, not {p.rate}")


def parse_plan(spec: str) -> list[Pass]:
    """A plan by name, or as text: "skyline:1,whole_mask:.25,random:.5"."""
    if spec in PLANS:
        return list(PLANS[spec])
    passes = []
    for part in spec.split(","):
        name, _, rate = part.strip().partition(":")
        try:
            passes.append(Pass(name.strip(), float(rate) if rate else 1.0))
        except ValueError:
            raise TatumError(f"bad pass {part!r}: write corruption:rate, e.g. skyline:1") from None
    if not passes:
        raise TatumError(f"empty plan {spec!r}; known plans: {', '.join([*PLANS, REPLAY])}")
    return passes


def thin_onsets(melody: dict[int, int], gap: int) -> dict[int, int]:
    """The melody onsets (grid steps) the chord rule serves: greedily, each at least `gap` steps after
    the last one served. A chord under every note of a fast line is a wall of notes; pianists comp
    on the stronger, sparser onsets and let the passing notes pass."""
    if gap <= 0:
        return melody
    out, last = {}, None
    for step in sorted(melody):
        if last is None or step - last >= gap:
            out[step], last = melody[step], step
    return out

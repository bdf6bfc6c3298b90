"""Training examples in the ImprovNet manner (DESIGN §4), drawn from token shards.

An example is one target window of a piece, corrupted, between clean context windows:

    encoder: [genre] [artist] [density] [polyphony]  ctx_L … T  SEP <corruption> corrupted SEP  T … ctx_R
    decoder: BOS target…            labels: target… EOS   (padding is -100 in labels)

Example `i` of epoch `e` is a pure function of (seed, e, i), so a resumed run sees the same data.
Needs numpy and torch only (no MIDI library), so it runs on a bare GPU machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tatum import layout
from tatum import tokenizer as tk
from tatum.corruption import corrupt
from tatum.data.shards import Entry, ShardSet
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer

IGNORE = -100


@dataclass
class ExampleConfig:
    max_enc_len: int = 1024
    max_dec_len: int = 512
    context: tuple[int, int] = (1, 5)          # segments on each side, drawn uniformly in this range
    corruptions: dict[str, float] = field(default_factory=lambda: {c: 1.0 for c in tk.CORRUPTIONS})
    style_dropout: float = 0.15                # genre and artist each → NULL_STYLE
    control_dropout: float = 0.15              # density and polyphony each → ANY
    augment: bool = True
    pitch_shift: int = 5                       # semitones, uniform in ±pitch_shift
    stretch: tuple[float, float] = (0.9, 1.1)  # time-stretch factor range
    velocity_shift: int = 1                    # velocity bins, uniform in ±velocity_shift
    layout: str = "seq2seq"                    # "seq2seq" (encoder/decoder pair) or "notelm" (tatum.layout)
    max_len: int = 512                         # notelm: input events
    right_context: tuple[int, int] | None = None   # drawn like `context` when None
    p_no_right: float = 0.0                    # share of examples without right context (continuation)


@dataclass
class Draw:
    """What one example is made of, before it is laid out for a model."""

    windows: list[np.ndarray]
    k: int                                     # the target's index in `windows`
    corruption: str
    corrupted: np.ndarray
    style: tuple[int, int, int, int]           # genre, artist, density, polyphony token ids


def _valid_starts(ids: np.ndarray) -> np.ndarray:
    """Positions where a cut may begin: a note's onset token or a window boundary."""
    return np.flatnonzero(((ids >= tk.ONSET0) & (ids < tk.DUR0)) | (ids == tk.T))


def _valid_ends(ids: np.ndarray) -> np.ndarray:
    """Lengths at which a cut may end: after a note's pv token or a window boundary."""
    return np.flatnonzero((ids >= tk.PV0) | (ids == tk.T)) + 1


def keep_tail(ids: np.ndarray, budget: int) -> np.ndarray:
    """The last ≤ budget tokens of left context, starting on a note or window boundary."""
    if len(ids) <= budget:
        return ids
    starts = _valid_starts(ids)
    starts = starts[starts >= len(ids) - budget]
    return ids[starts[0]:] if len(starts) else ids[:0]


def keep_head(ids: np.ndarray, budget: int) -> np.ndarray:
    """The first ≤ budget tokens of right context, ending after a note or window boundary."""
    if len(ids) <= budget:
        return ids
    ends = _valid_ends(ids)
    ends = ends[ends <= budget]
    return ids[: ends[-1]] if len(ends) else ids[:0]


def join_windows(windows: list[np.ndarray]) -> np.ndarray:
    """Windows' tokens joined by T."""
    if not windows:
        return np.zeros(0, dtype=np.int64)
    parts = []
    for i, w in enumerate(windows):
        if i:
            parts.append(np.array([tk.T]))
        parts.append(np.asarray(w, dtype=np.int64))
    return np.concatenate(parts)


def build_encoder_input(tok: Tokenizer, style: tuple[int, int, int, int], left: list[np.ndarray],
                        corruption: str, corrupted: np.ndarray, right: list[np.ndarray],
                        max_len: int) -> np.ndarray:
    """Assemble the encoder input, trimming context symmetrically around the target to `max_len`.

    `style` holds the token ids of the genre, artist, density and polyphony positions. Shared by
    training and generation so both see the same layout.
    """
    middle = np.concatenate([[tk.SEP, tok.corruption_id(corruption)], corrupted, [tk.SEP]]).astype(np.int64)
    room = max_len - 4 - len(middle)
    if room < 0:  # a target too dense for the encoder: keep whole notes of it that fit
        keep = max(0, (len(corrupted) + room) // 3 * 3)
        middle = np.concatenate([middle[:2], corrupted[:keep], [tk.SEP]]).astype(np.int64)
        room = max_len - 4 - len(middle)
    lctx = np.concatenate([join_windows(left), [tk.T]]) if left else np.zeros(0, dtype=np.int64)
    rctx = np.concatenate([[tk.T], join_windows(right)]) if right else np.zeros(0, dtype=np.int64)
    n_left = min(len(lctx), max(room // 2, room - len(rctx)))
    n_right = min(len(rctx), room - n_left)
    lctx, rctx = keep_tail(lctx, n_left), keep_head(rctx, n_right)
    return np.concatenate([np.asarray(style, dtype=np.int64), lctx, middle, rctx]).astype(np.int64)


def decoder_pair(target: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Decoder input (BOS + target) and labels (target + EOS), cut to `max_len`."""
    target = np.asarray(target, dtype=np.int64)
    dec_in = np.concatenate([[tk.BOS], target])[:max_len]
    labels = np.concatenate([target, [tk.EOS]])[:max_len]
    return dec_in, labels


class ExampleDataset(torch.utils.data.Dataset):
    """Corruption–refinement examples over every non-empty window of one split of a shard folder.

    >>> ds = ExampleDataset(ShardSet("shards"), "train", ExampleConfig(max_enc_len=1024))
    >>> ex = ds[0]          # dict of numpy arrays: enc, dec_in, labels, corruption
    >>> batch = collate([ds[i] for i in range(8)])
    """

    def __init__(self, shards: ShardSet, split: str = "train", config: ExampleConfig | None = None,
                 tokenizer: Tokenizer | None = None, seed: int = 0, pieces: list[Entry] | None = None):
        self.shards = shards
        self.config = config or ExampleConfig()
        self.tok = tokenizer or shards.tokenizer
        self.seed, self.epoch = seed, 0
        self.pieces = pieces if pieces is not None else shards.split(split)
        names = list(self.config.corruptions)
        weights = np.array([self.config.corruptions[c] for c in names], dtype=np.float64)
        self.corruption_names = names
        self.corruption_p = weights / weights.sum()
        for c in names:
            self.tok.corruption_id(c)
        piece_idx, seg_idx = [], []
        for i, p in enumerate(self.pieces):
            nonempty = np.flatnonzero(shards.segment_lengths(p) > 0)
            piece_idx.append(np.full(len(nonempty), i, dtype=np.int32))
            seg_idx.append(nonempty.astype(np.int32))
        self.piece_idx = np.concatenate(piece_idx) if piece_idx else np.zeros(0, np.int32)
        self.seg_idx = np.concatenate(seg_idx) if seg_idx else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.piece_idx)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        return self.example(int(i))

    def draw(self, i: int, corruption: str | None = None, rng: np.random.Generator | None = None,
             context: tuple[int, int] | None = None) -> Draw:
        """The ingredients of example `i`: its windows (augmented), the corruption and the style.
        `context` fixes the (left, right) window counts instead of drawing them."""
        cfg = self.config
        rng = rng or np.random.default_rng([self.seed, self.epoch, i])
        piece = self.pieces[self.piece_idx[i]]
        t = int(self.seg_idx[i])
        segs = self.shards.segments(piece)
        if context is None:
            right = cfg.right_context or cfg.context
            n_left = int(rng.integers(cfg.context[0], cfg.context[1] + 1))
            n_right = 0 if rng.random() < cfg.p_no_right else int(rng.integers(right[0], right[1] + 1))
        else:
            n_left, n_right = context
        lo, hi = max(0, t - n_left), min(len(segs), t + 1 + n_right)
        windows = self._augment(segs[lo:hi], t - lo, rng) if cfg.augment else \
            ([np.asarray(s, dtype=np.int64) for s in segs[lo:hi]], t - lo)
        windows, k = windows
        target = tk.decode_segment(windows[k])
        if corruption is None:
            corruption = self.corruption_names[rng.choice(len(self.corruption_names), p=self.corruption_p)]
        corrupted = corrupt(corruption, target, rng)

        genre = self.tok.genre_id(piece.genre) if piece.genre in self.tok.genres else self.tok.null_style
        artist = self.tok.artist_id(piece.artist)
        density = self.tok.density_id(tk.density_bucket(len(target)))
        poly = self.tok.polyphony_id(tk.polyphony_bucket(target))
        drop = rng.random(4)
        if drop[0] < cfg.style_dropout:
            genre = self.tok.null_style
        if drop[1] < cfg.style_dropout:
            artist = self.tok.null_style
        if drop[2] < cfg.control_dropout:
            density = self.tok.density_id(None)
        if drop[3] < cfg.control_dropout:
            poly = self.tok.polyphony_id(None)
        return Draw(windows, k, corruption, corrupted, (genre, artist, density, poly))

    def example(self, i: int, corruption: str | None = None, rng: np.random.Generator | None = None,
                context: tuple[int, int] | None = None) -> dict:
        d = self.draw(i, corruption, rng, context)
        cfg = self.config
        index = self.corruption_names.index(d.corruption) if d.corruption in self.corruption_names else -1
        if cfg.layout == "notelm":
            lay = layout.build(d.style, self.tok.corruption_id(d.corruption), d.corrupted, d.windows[:d.k],
                               d.windows[d.k + 1:], d.windows[d.k], cfg.max_len)
            return {"events": lay.events, "place": lay.place, "time": lay.time, "aligned": lay.aligned,
                    "loss": lay.loss, "target": lay.target, "corruption": index}
        enc = build_encoder_input(self.tok, d.style, d.windows[:d.k], d.corruption, d.corrupted,
                                  d.windows[d.k + 1:], cfg.max_enc_len)
        dec_in, labels = decoder_pair(d.windows[d.k], cfg.max_dec_len)
        return {"enc": enc, "dec_in": dec_in, "labels": labels, "corruption": index}

    def _augment(self, segs: list[np.ndarray], k: int, rng: np.random.Generator):
        """Transpose, shift velocity and time-stretch a span of windows; re-cut it into windows."""
        cfg = self.config
        notes = tk.decode(join_windows(segs))
        shift = int(rng.integers(-cfg.pitch_shift, cfg.pitch_shift + 1))
        dv = int(rng.integers(-cfg.velocity_shift, cfg.velocity_shift + 1)) * tk.VEL_WIDTH
        factor = float(rng.uniform(*cfg.stretch))
        if len(notes):
            notes = Notes(np.round(notes.onset_ms * factor), np.maximum(1, np.round(notes.dur_ms * factor)),
                          notes.pitch, np.clip(notes.velocity + dv, 1, 127)).transpose(shift)
        windows = [tk.encode_segment(s) for s in tk.split_segments(notes, origin_ms=0)]
        k = int(np.floor(k * factor + 0.5))
        while len(windows) <= k:
            windows.append(np.zeros(0, dtype=np.int64))
        return windows, k


def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
    """Pad a list of examples of either layout: token ids with PAD, labels with -100, masks with False."""
    def pad(key: str, value) -> torch.Tensor:
        first = np.asarray(batch[0][key])
        n = max(len(b[key]) for b in batch)
        out = np.full((len(batch), n) + first.shape[1:], value, dtype=first.dtype)
        for j, b in enumerate(batch):
            out[j, : len(b[key])] = b[key]
        return torch.from_numpy(out)

    out = {"corruption": torch.tensor([b["corruption"] for b in batch], dtype=torch.long)}
    if "events" in batch[0]:
        return out | {"events": pad("events", tk.PAD), "place": pad("place", 0), "time": pad("time", 0),
                      "aligned": pad("aligned", tk.PAD), "loss": pad("loss", False), "target": pad("target", False)}
    return out | {"enc": pad("enc", tk.PAD), "dec_in": pad("dec_in", tk.PAD), "labels": pad("labels", IGNORE)}

"""What a re-played window is drawn toward (improvise's `replay` plan).

`replay` draws each window of a piece as a continuation of the music before it — so the texture and
the manner are the model's, and the pianist's it is asked for, as in `continue` — and keeps the piece
under it with a bias on the pitch head, from the source window only: its harmony (the pitch classes it
sounds), its tune (the keys of its skyline) and its register. Passes that show the model the source
window corrupted (ImprovNet's) are answered with the source's own texture, and a classical tune kept
on top is heard as classical, whatever the pianist asked for (README, "Re-play in a pianist's manner").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tatum import tokenizer as tk
from tatum.corruption import skyline_notes
from tatum.generate.sampling import pitch_anchor
from tatum.notes import Notes

MAX_HELD_MS = 2000      # a held note counts toward its pitch class up to this long
SLICES = 20             # the tune's keys are favoured where they sound: slices of 250 ms


@dataclass(frozen=True)
class Guide:
    """How closely a re-played window follows its source, in nats at the pitch head."""

    harmony: float = 1.5    # a key whose pitch class the source does not sound costs this much
                            # (one it sounds a little, a share of it)
    tune: float = 1.0       # a key of the source's tune gains this much where (within 250 ms) it sounds
    register: float = 1.0   # keys outside the source's range cost this much per 6 semitones

    def scaled(self, factor: float) -> "Guide":
        return Guide(self.harmony * factor, self.tune * factor, self.register * factor)


def guide_bias(source: Notes, guide: Guide) -> torch.Tensor | None:
    """The bias [SLICES, N_PV] on the pitch-velocity head that draws a window toward `source` (the
    window of the piece it replaces; onsets relative to it), for a note whose onset lies in each slice
    of the window; None where the source has too few notes."""
    if len(source) < 3:
        return None
    keys = np.arange(tk.PIANO_LOW, tk.PIANO_HIGH + 1)
    held = np.bincount(source.pitch % 12, weights=np.minimum(source.dur_ms, MAX_HELD_MS), minlength=12)
    bias = np.tile(guide.harmony * (held[keys % 12] / max(held.max(), 1e-9) - 1), (SLICES, 1))
    width = tk.SEGMENT_MS / SLICES
    tune = skyline_notes(source)
    for on, dur, pitch in zip(tune.onset_ms, tune.dur_ms, tune.pitch):
        first = int(np.clip((on - width) // width, 0, SLICES - 1))
        last = int(np.clip((on + min(dur, 2 * width)) // width, first, SLICES - 1))
        bias[first:last + 1, pitch - tk.PIANO_LOW] += guide.tune
    out = torch.from_numpy(np.repeat(bias, tk.VEL_BINS, axis=1)).float()
    register = pitch_anchor(source.pitch, guide.register)
    return out if register is None else out + register

"""Piano-roll pictures: the original above, the result below, new notes highlighted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tatum.io import atomic_output
from tatum.notes import Notes


def changed_mask(before: Notes, after: Notes, tol_ms: int = 30) -> np.ndarray:
    """For each note of `after`: True where `before` has no note of that pitch within `tol_ms`."""
    keys = {}
    for o, p in zip(before.onset_ms.tolist(), before.pitch.tolist()):
        keys.setdefault(p, []).append(o)
    arrays = {p: np.sort(np.array(v)) for p, v in keys.items()}
    out = np.ones(len(after), dtype=bool)
    for i, (o, p) in enumerate(zip(after.onset_ms.tolist(), after.pitch.tolist())):
        a = arrays.get(p)
        if a is not None:
            j = np.searchsorted(a, o)
            near = [a[k] for k in (j - 1, j) if 0 <= k < len(a)]
            out[i] = not any(abs(x - o) <= tol_ms for x in near)
    return out


def _roll(ax, notes: Notes, title: str, highlight: np.ndarray | None, t0: float, t1: float):
    from matplotlib.collections import PolyCollection

    on = notes.onset_ms / 1000.0
    du = notes.dur_ms / 1000.0
    p = notes.pitch.astype(float)
    verts = [[(a, b - .4), (a + d, b - .4), (a + d, b + .4), (a, b + .4)] for a, d, b in zip(on, du, p)]
    alpha = 0.35 + 0.65 * (notes.velocity / 127.0)
    colors = np.zeros((len(notes), 4))
    colors[:, :3] = (0.2, 0.3, 0.55)
    if highlight is not None:
        colors[highlight, :3] = (0.85, 0.33, 0.1)
    colors[:, 3] = alpha
    ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors="none"))
    lo, hi = (int(p.min()) - 2, int(p.max()) + 2) if len(p) else (21, 108)
    ax.set_xlim(t0, t1)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("pitch")
    ax.set_title(title, fontsize=10, loc="left")
    for c in range(12 * (lo // 12), hi + 1, 12):
        ax.axhline(c, color="grey", lw=0.3, alpha=0.5)


def piano_roll(path: str | os.PathLike, after: Notes, before: Notes | None = None,
               titles: tuple[str, str] = ("original", "result")) -> Path:
    """Write a PNG: `before` above (when given) and `after` below, with notes of `after` that are not in
    `before` in orange. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [n for n in (before, after) if n is not None]
    t0 = min(n.start_ms for n in parts if len(n)) / 1000 if any(len(n) for n in parts) else 0
    t1 = max(n.end_ms for n in parts) / 1000 + 0.5
    width = min(40, max(10, (t1 - t0) / 4))
    fig, axes = plt.subplots(len(parts), 1, figsize=(width, 3.2 * len(parts)), sharex=True, squeeze=False)
    if before is not None:
        _roll(axes[0, 0], before, f"{titles[0]} ({len(before)} notes)", None, t0, t1)
        hl = changed_mask(before, after)
        _roll(axes[1, 0], after, f"{titles[1]} ({len(after)} notes, {int(hl.sum())} new in orange)", hl, t0, t1)
    else:
        _roll(axes[0, 0], after, f"{titles[1]} ({len(after)} notes)", None, t0, t1)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path

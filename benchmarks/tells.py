"""What tells tatum's continuations from the pianists'? Hand-made features of each generated 15 s beside
the pianist's real next 15 s, on the continuation protocol's PiJAMA val prompts (20 s → 15 s).

For each feature: the mean over the generated and over the real continuations, and how often the
generated one is the higher of the pair (0.5: no tell; near 0 or 1: a tell). This is how the
re-striking of one key 10–20 ms after itself was found, which the judge heard as random notes. The
features: notes per second; onset groups (notes within 30 ms of a group's first onset): their size,
the share of single notes, their pitch span, the share of groups of three pitch classes or more that
fit a triad or seventh chord (added ninths, elevenths and thirteenths allowed), semitones between
neighbours in a group; the top and bottom voices' movement from group to group; how often a key is
struck again within 100 ms of its last strike; note lengths; pitch spread; time below C3.

    python benchmarks/tells.py [--n 24] [--seed 100] [--model tatum-note] [--candidates 1]
                               [--data-root ../shared/data]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from valset import DEFAULT_DATA

from tatum.evaluate.metrics import onset_groups
from tatum.notes import Notes

CHORDS = [frozenset(c) for c in ([0, 4, 7], [0, 3, 7], [0, 4, 7, 10], [0, 3, 7, 10], [0, 4, 7, 11], [0, 3, 6],
                                 [0, 3, 6, 9], [0, 3, 6, 10], [0, 4, 8], [0, 4, 7, 9], [0, 3, 7, 9])]
TENSIONS = frozenset([2, 5, 9])


def fits_a_chord(pitch_classes: set[int]) -> bool:
    """Some root makes the pitch classes a triad or seventh chord's (three of its notes at least),
    with tensions allowed."""
    for root in range(12):
        rel = {(p - root) % 12 for p in pitch_classes}
        if any(len(rel & c) >= 3 and rel <= c | TENSIONS for c in CHORDS):
            return True
    return False


def features(n: Notes, seconds: float) -> dict[str, float] | None:
    """The features of one continuation (None with fewer than 10 notes)."""
    if len(n) < 10:
        return None
    onset, pitch, dur = n.onset_ms.astype(float), n.pitch.astype(int), n.dur_ms.astype(float)
    group = onset_groups(n, 30)
    groups = [np.flatnonzero(group == g) for g in range(group.max() + 1)]
    size = np.array([len(g) for g in groups])
    top = np.array([pitch[g].max() for g in groups])
    bottom = np.array([pitch[g].min() for g in groups])
    chords = [set(pitch[g] % 12) for g in groups if len(set(pitch[g] % 12)) >= 3]
    gaps = np.concatenate([np.diff(np.sort(pitch[g])) for g in groups if len(g) > 1] or [np.zeros(0)])
    restrike = np.concatenate([np.diff(np.sort(onset[pitch == k])) for k in np.unique(pitch)])
    nan = float("nan")
    return {
        "notes per s": len(n) / seconds,
        "notes per onset group": float(size.mean()),
        "single notes (share of groups)": float((size == 1).mean()),
        "group span, semitones": float((top - bottom)[size > 1].mean()) if (size > 1).any() else nan,
        "chords that fit a chord": float(np.mean([fits_a_chord(c) for c in chords])) if chords else nan,
        "semitone neighbours in a group": float((gaps == 1).mean()) if len(gaps) else nan,
        "top voice repeats its pitch": float((np.diff(top) == 0).mean()) if len(top) > 1 else nan,
        "top voice moves by step": float((np.abs(np.diff(top)) <= 2).mean()) if len(top) > 1 else nan,
        "bottom voice movement, semitones": float(np.abs(np.diff(bottom)).mean()) if len(bottom) > 1 else nan,
        "key struck again within 100 ms": float((restrike < 100).mean()) if len(restrike) else nan,
        "median note, ms": float(np.median(dur)),
        "notes under 80 ms": float((dur < 80).mean()),
        "pitch spread (sd)": float(pitch.std()),
        "notes below C3": float((pitch < 48).mean()),
    }


def compare(pairs: list[tuple[dict, dict]]) -> dict[str, dict[str, float]]:
    """Per feature: the generated mean, the real mean and the share of pairs where the generated is higher."""
    out = {}
    for k in pairs[0][0]:
        g = np.array([a[k] for a, _ in pairs])
        r = np.array([b[k] for _, b in pairs])
        ok = ~np.isnan(g) & ~np.isnan(r)
        if ok.any():
            out[k] = {"generated": round(float(g[ok].mean()), 3), "pianists": round(float(r[ok].mean()), 3),
                      "generated higher": round(float(np.mean(g[ok] > r[ok]) + 0.5 * np.mean(g[ok] == r[ok])), 2)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--model", default=None)
    ap.add_argument("--candidates", type=int, default=None, help="drafts per window (default: the verb's)")
    ap.add_argument("--data-root", default=str(DEFAULT_DATA))
    a = ap.parse_args(argv)

    from tatum.evaluate.protocols import CONTINUE_S, PROMPT_S, Setup, evaluate

    ev = evaluate(Setup("continuation", n=a.n, model=a.model, seed=a.seed, candidates=a.candidates,
                        data_root=a.data_root))
    P, C = PROMPT_S * 1000, CONTINUE_S * 1000
    pairs = []
    for p in ev.pieces:
        gen = features(p.result.slice(P, P + C, clip=True), CONTINUE_S)
        real = features(p.before.slice(P, P + C, clip=True), CONTINUE_S)
        if gen and real:
            pairs.append((gen, real))
    table = compare(pairs)
    print(f"{len(pairs)} prompts; generated vs the pianists' next {CONTINUE_S:g} s")
    print(f"{'feature':34s} {'generated':>10s} {'pianists':>10s} {'gen higher':>10s}")
    for k, v in table.items():
        print(f"{k:34s} {v['generated']:10.3f} {v['pianists']:10.3f} {v['generated higher']:10.2f}")
    result = {"prompts": len(pairs), "seed": a.seed, "model": a.model or "default", "features": table}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

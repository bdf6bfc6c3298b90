"""The shipped classifier on held-out val files, read from MIDI as a user's file would be.

- pianist, per track, among the 12 pianists with the most hours in PiJAMA train: each PiJAMA val
  track of theirs is scored (the mean of its 15 s windows) and the likeliest of those 12 is its
  guess; also per 15 s window, and with all of the classifier's pianists (+ "other") to choose from;
- Art Tatum vs the rest: ROC-AUC of P(Art Tatum) over all PiJAMA val tracks;
- genre, per genre: PiJAMA val (jazz), pianolatron val (classical) and POP909 val (pop) tracks;
- real music vs random notes: the mean random-like score of real val windows and of synthetic
  windows of each kind made from them (tatum.evaluate.noise), and the share above 0.5;
- speed: milliseconds to score the first 60 s of a track (MIDI already read), on one thread.

    python benchmarks/classifiers.py [--data ../shared/data] [--model tatum-classifier] [--write-card]

The last line printed is a JSON object with the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from valset import DEFAULT_DATA

TOP = 12


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def top_pianists(data: Path, known: list[str], n: int) -> list[str]:
    """The `n` pianists with the most hours in PiJAMA train that the classifier knows."""
    hours: dict[str, float] = defaultdict(float)
    with open(data / "pijama" / "pijama.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["split"] == "train":
                hours[r["artist"]] += float(r["duration_sec"]) / 3600
    return [a for a in sorted(hours, key=lambda a: -hours[a]) if a in known][:n]


def read(ref):
    from tatum.notes import Notes

    notes = Notes.from_midi(ref.path)
    if ref.start_s or ref.end_s is not None:       # PiJAMA's performance boundaries, as prepare uses
        notes = notes.slice(ref.start_s * 1000, ref.end_s * 1000 if ref.end_s is not None else np.inf, clip=True)
    return notes


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", default=None, help="classifier folder or shipped name (default: tatum-classifier)")
    ap.add_argument("--hop", type=int, default=None, help="ms between window starts (default: the classifier's 5 s)")
    ap.add_argument("--write-card", action="store_true", help="put these results into the model's README.md")
    args = ap.parse_args(argv)

    import torch

    from tatum.data.sources import pianolatron, pijama, pop909
    from tatum.evaluate.classify import Classifier
    from tatum.evaluate.features import WINDOW_MS, cut, encode_window, windows
    from tatum.evaluate.noise import MAKERS, make_noise

    torch.set_num_threads(1)
    t = time.perf_counter()
    clf = Classifier.load(args.model)
    load_ms = (time.perf_counter() - t) * 1000
    refs = {"jazz": [r for r in pijama(args.data / "pijama") if r.split == "val"],
            "classical": [r for r in pianolatron(args.data / "pianolatron") if r.split == "val"],
            "pop": [r for r in pop909(args.data / "pop909") if r.split == "val"]}
    top = top_pianists(args.data, clf.artists, TOP)
    top_idx = [clf.artists.index(a) for a in top]
    rng = np.random.default_rng(0)

    tracks, real_rows, fake_rows, fake_kind, speed = [], [], [], [], []
    for genre, rs in refs.items():
        for ref in rs:
            notes = read(ref)
            p = clf.window_probs(notes) if args.hop is None else clf.predict(windows(notes.playable(), hop_ms=args.hop))
            if not len(p["random"]):
                continue
            tracks.append({"genre": genre, "artist": ref.artist, "title": ref.title, "windows": len(p["random"]),
                           "genre_probs": p["genre"].mean(0), "artist_probs": p["artist"].mean(0),
                           "window_artist": p["artist"].argmax(1), "window_top": np.array(top_idx)[
                               p["artist"][:, top_idx].argmax(1)],
                           "random_like": float(p["random"].mean())})
            for w in cut(notes, hop_ms=15_000):             # each note once
                real_rows.append(encode_window(*w))
                kind = list(MAKERS)[len(fake_rows) % len(MAKERS)]
                fake_rows.append(encode_window(*make_noise(kind, w, rng, WINDOW_MS)))
                fake_kind.append(kind)
            if genre == "jazz" and notes.duration_s >= 60 and len(speed) < 20:
                first = notes.slice(notes.start_ms, notes.start_ms + 60_000)
                t = time.perf_counter()
                clf.score(first)
                speed.append((time.perf_counter() - t) * 1000)
        print(f"{genre}: {sum(x['genre'] == genre for x in tracks)} val tracks scored", flush=True)

    res: dict = {"benchmark": "classifiers_val", "model": args.model or "tatum-classifier", "hop_ms": args.hop,
                 "top_pianists": top, "load_ms": round(load_ms, 1)}
    # pianist among the top 12
    mine = [x for x in tracks if x["genre"] == "jazz" and x["artist"] in top]
    truth = np.array([clf.artists.index(x["artist"]) for x in mine])
    guess_top = np.array([top_idx[int(np.argmax(x["artist_probs"][top_idx]))] for x in mine])
    guess_all = np.array([int(np.argmax(x["artist_probs"])) for x in mine])
    win_truth = np.concatenate([np.full(x["windows"], t) for x, t in zip(mine, truth)])
    res["pianist_top12"] = {
        "tracks": len(mine), "track_acc": float((guess_top == truth).mean()),
        "track_acc_all_classes": float((guess_all == truth).mean()),
        "window_acc": float((np.concatenate([x["window_top"] for x in mine]) == win_truth).mean()),
        "window_acc_all_classes": float((np.concatenate([x["window_artist"] for x in mine]) == win_truth).mean()),
        "per_pianist": {a: f"{int(((guess_top == truth) & (truth == i)).sum())}/{int((truth == i).sum())}"
                        for a, i in zip(top, top_idx)}}
    # Art Tatum vs the rest
    jazz = [x for x in tracks if x["genre"] == "jazz"]
    tatum = clf.artists.index("Art Tatum")
    res["art_tatum_auc"] = roc_auc(np.array([x["artist_probs"][tatum] for x in jazz]),
                                   np.array([x["artist"] == "Art Tatum" for x in jazz]))
    res["art_tatum_tracks"] = int(sum(x["artist"] == "Art Tatum" for x in jazz))
    res["jazz_tracks"] = len(jazz)
    # genre
    res["genre"] = {}
    for genre in refs:
        xs = [x for x in tracks if x["genre"] == genre]
        gi = clf.genres.index(genre)
        res["genre"][genre] = {"tracks": len(xs),
                               "track_acc": float(np.mean([np.argmax(x["genre_probs"]) == gi for x in xs])),
                               "mean_prob": float(np.mean([x["genre_probs"][gi] for x in xs]))}
    # real vs random
    pr, pf = clf.predict(real_rows)["random"], clf.predict(fake_rows)["random"]
    kinds = np.array(fake_kind)
    res["random_like"] = {"real": {"windows": len(pr), "mean": float(pr.mean()), "above_0.5": float((pr > 0.5).mean())}}
    for kind in MAKERS:
        s = pf[kinds == kind]
        res["random_like"][kind] = {"windows": len(s), "mean": float(s.mean()), "above_0.5": float((s > 0.5).mean())}
    res["random_like_per_genre_real"] = {g: float(np.mean([x["random_like"] for x in tracks if x["genre"] == g]))
                                         for g in refs}
    res["score_60s_ms_median"] = statistics.median(speed) if speed else None

    p = res["pianist_top12"]
    print(f"\npianist, {p['tracks']} PiJAMA val tracks of the top {TOP}: per track {p['track_acc']:.3f} "
          f"(all {len(clf.artists)} classes {p['track_acc_all_classes']:.3f}); per 15 s window "
          f"{p['window_acc']:.3f} ({p['window_acc_all_classes']:.3f})")
    print("  " + ", ".join(f"{a} {v}" for a, v in p["per_pianist"].items()))
    print(f"Art Tatum vs the rest ({res['art_tatum_tracks']} of {len(jazz)} tracks): "
          f"ROC-AUC {res['art_tatum_auc']:.3f}")
    for g, v in res["genre"].items():
        print(f"genre {g:9s}: {v['tracks']:3d} tracks, accuracy {v['track_acc']:.3f}, mean P({g}) {v['mean_prob']:.2f}")
    for k, v in res["random_like"].items():
        print(f"random-like {k:12s}: mean {v['mean']:.3f}, above 0.5 {v['above_0.5']:.3f} ({v['windows']} windows)")
    print(f"scoring 60 s: {res['score_60s_ms_median']:.1f} ms (median); load {load_ms:.0f} ms")
    if args.write_card:
        from tatum.evaluate.card import classifier_card
        from tatum.io import write_atomic

        write_atomic(clf.folder / "README.md", classifier_card(clf.folder.name, clf.config, res))
        print(f"model card → {clf.folder / 'README.md'}")
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()

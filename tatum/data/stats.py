"""`tatum data stats`: what a shard folder holds, per genre and per artist."""

from __future__ import annotations

from collections import defaultdict

from tatum.data.shards import ShardSet


def summarize(shards: ShardSet, by: str) -> list[dict]:
    """Rows of pieces / hours / notes / tokens per value of `by` (genre, artist, source or split),
    with the train and val hours apart; sorted by hours, largest first."""
    rows: dict[str, dict] = defaultdict(lambda: {"pieces": 0, "hours": 0.0, "notes": 0, "tokens": 0,
                                                 "train_h": 0.0, "val_h": 0.0})
    for p in shards.pieces:
        key = p.meta.get(by) or "—"
        r = rows[key]
        h = p.meta["seconds"] / 3600
        r["pieces"] += 1
        r["hours"] += h
        r["notes"] += p.meta["n_notes"]
        r["tokens"] += p.meta["n_tokens"]
        if p.split in ("train", "val"):
            r[f"{p.split}_h"] += h
    out = [{by: k} | v for k, v in rows.items()]
    return sorted(out, key=lambda r: -r["hours"])

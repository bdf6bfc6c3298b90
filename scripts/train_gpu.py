"""The shipped models' recipe on one GPU for a fixed time: the general NoteLM, then its Art Tatum fine-tune.

    python scripts/train_gpu.py SHARDS OUT [--minutes 5.5] [--tatum-minutes 0.5] [--init tatum/models/tatum-note]
                                [--lr 3e-4] [--warmup 150] [--seed 7]

OUT/general and OUT/tatum are run folders (`tatum train`'s: --resume-able state, log, best/); OUT/tatum-note
and OUT/tatum-note-tatum their best checkpoints as `scripts/ship_model.py` ships them (fp16, a card).
Minutes count step time only; validation and start-up come on top (about 15 % on an H200).
Runs on a CPU too, slowly: a smoke test with --minutes 0.05.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from ship_model import main as ship     # scripts/ is on the path when this runs as a script

from tatum.train import TrainConfig, train


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shards")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=5.5)
    ap.add_argument("--tatum-minutes", type=float, default=0.5)
    ap.add_argument("--init", default="tatum/models/tatum-note")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    out, gpu = Path(a.out), torch.cuda.is_available()
    # Half the examples have no right context: continuation is what every verb but refinement asks.
    common = dict(shards=a.shards, preset="note-small", p_no_right=0.5, chunks=2, val_per_corruption=32,
                  log_every=20, max_steps=1_000_000, save_every=500, workers=min(14, os.cpu_count() or 1) if gpu else 0,
                  threads=0 if gpu else 1)

    # --- the general model: batch 256, a cosine over the minutes given
    train(TrainConfig(out=str(out / "general"), init=a.init, batch_size=256 if gpu else 4, lr=a.lr, min_lr=2e-5,
                      warmup=a.warmup, seed=a.seed, val_every=250, budget_wall_s=60 * a.minutes, **common))
    ship(str(out / "general" / "best"), str(out / "tatum-note"))

    # --- Art Tatum: his training recordings only, the lowest Tatum validation loss kept
    train(TrainConfig(out=str(out / "tatum"), init=str(out / "general" / "best"), artist="Art Tatum",
                      batch_size=64 if gpu else 4, lr=1e-4, min_lr=1e-5, warmup=20, seed=a.seed + 1, val_every=25,
                      budget_wall_s=60 * a.tatum_minutes, **common))
    ship(str(out / "tatum" / "best"), str(out / "tatum-note-tatum"))
    print(f"→ {out / 'tatum-note'}, {out / 'tatum-note-tatum'}")


if __name__ == "__main__":
    main()

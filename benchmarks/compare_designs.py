"""Equal-CPU-time comparison of model designs: train each candidate from scratch for the same process CPU
time, on the same shards and seed, then read their validation curves at the same CPU seconds.

    # train (one process per candidate, one thread each, side by side so the machine's noise is shared)
    python benchmarks/compare_designs.py train A --shards out/shards --out runs/cmp --budget 2700 &
    python benchmarks/compare_designs.py train D --shards out/shards --out runs/cmp --budget 2700 &
    # the table: nats per target note per task, interpolated at the given CPU seconds
    python benchmarks/compare_designs.py table --out runs/cmp --at 450,900,1350

Candidates: A the encoder–decoder (`small`, the design shipped until 2026-12), B NoteLM (`note-small`,
time heads, no aligned input), C B without time heads, D NoteLM with the aligned corrupted note as input
(`note-small` as shipped from 2026-12). The learning rate follows a cosine over the CPU budget, so every
candidate ends its schedule at the same CPU time. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CANDIDATES = {
    "A": dict(preset="small", batch_size=16),
    "B": dict(preset="note-small", batch_size=8, model={"align_input": False}),
    "C": dict(preset="note-small", batch_size=8, model={"align_input": False, "time_heads": 0}),
    "D": dict(preset="note-small", batch_size=8, model={"align_input": True}),
}
TASKS = ("all", "whole_mask", "continuation", "no_context", "pitch_velocity_mask", "incorrect_transposition",
         "skyline", "fragmentation", "note_modification")


def train_one(name: str, shards: str, out: Path, budget: float) -> None:
    import torch

    from tatum.train import TrainConfig, train

    torch.set_num_threads(1)
    cfg = TrainConfig(shards=shards, out=str(out / name), max_steps=10**6, lr=7e-4, min_lr=7e-5, warmup=100,
                      val_every=100, save_every=50, threads=1, log_every=10, val_per_corruption=16,
                      budget_cpu_s=budget, **CANDIDATES[name])
    train(cfg, progress=False)


def curves(run: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rows = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "val" in r]
    cpu = np.array([r["cpu_s"] for r in rows])
    return cpu, {t: np.array([r["val"][t] for r in rows]) for t in TASKS}


def table(out: Path, at: list[float]) -> dict:
    res = {}
    for run in sorted(p for p in out.iterdir() if (p / "log.jsonl").exists()):
        cpu, val = curves(run)
        res[run.name] = {str(int(a)): {t: (float(np.interp(a, cpu, v)) if cpu[0] <= a <= cpu[-1] else None)
                                       for t, v in val.items()} for a in at}
    print("nats per target note, interpolated at equal process CPU seconds (1 thread each)\n")
    print("| candidate | CPU s | " + " | ".join(TASKS) + " |")
    print("|---|---|" + "---|" * len(TASKS))
    for name, points in res.items():
        for a, s in points.items():
            if s["all"] is not None:
                print(f"| {name} | {a} | " + " | ".join(f"{s[t]:.2f}" for t in TASKS) + " |")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("candidate", choices=sorted(CANDIDATES))
    t.add_argument("--shards", default="out/shards")
    t.add_argument("--out", default="runs/cmp")
    t.add_argument("--budget", type=float, default=2700.0, help="process CPU seconds")
    s = sub.add_parser("table")
    s.add_argument("--out", default="runs/cmp")
    s.add_argument("--at", default="450,900,1350", help="CPU seconds to compare at")
    args = ap.parse_args()
    if args.cmd == "train":
        train_one(args.candidate, args.shards, Path(args.out), args.budget)
    else:
        print(json.dumps(table(Path(args.out), [float(a) for a in args.at.split(",")])))


if __name__ == "__main__":
    main()

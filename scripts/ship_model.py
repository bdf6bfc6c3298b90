"""Copy a trained checkpoint into models/ as a shipped model: fp16 weights, a fresh model card.

    .venv/bin/python scripts/ship_model.py /work/train/small/best models/tatum-small
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tatum.model.checkpoint import load_model, save_checkpoint


def main(src: str, dst: str) -> None:
    model, tok = load_model(src)
    training = json.loads((Path(src) / "config.json").read_text()).get("training", {})
    save_checkpoint(model, tok, dst, training=training, dtype=torch.float16)
    size = sum(p.stat().st_size for p in Path(dst).iterdir()) / 1e6
    print(f"{dst}: {model.n_params() / 1e6:.1f} M parameters, {size:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

"""Copy a trained checkpoint into tatum/models/ as a shipped model: fp16 weights, a fresh model card.

    .venv/bin/python scripts/ship_model.py /work/train/small/best tatum/models/tatum-small ["status note"]
                                           [--init "what it started from"]

The optional note goes into the model card under "Status"; --init replaces the training record's
starting checkpoint (a path on the training machine) by a description.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tatum.model.checkpoint import load_model, save_checkpoint


def main(src: str, dst: str, note: str = "", init: str | None = None) -> None:
    from tatum.model.card import model_card

    model, tok = load_model(src)
    config = json.loads((Path(src) / "config.json").read_text())
    training = config.get("training", {})
    if init is not None:
        training["init"] = init
        config["training"] = training
    config["n_params"] = model.n_params()
    card = model_card(Path(dst).name, config) + (f"\n## Status\n\n{note}\n" if note else "")
    save_checkpoint(model, tok, dst, training=training, dtype=torch.float16, card=card)
    size = sum(p.stat().st_size for p in Path(dst).iterdir()) / 1e6
    print(f"{dst}: {model.n_params() / 1e6:.1f} M parameters, {size:.1f} MB")


if __name__ == "__main__":
    args = sys.argv[1:]
    init = None
    if "--init" in args:
        i = args.index("--init")
        if i + 1 >= len(args):
            sys.exit(__doc__)
        init = args[i + 1]
        del args[i:i + 2]
    if len(args) not in (2, 3):
        sys.exit(__doc__)
    main(*args, init=init)

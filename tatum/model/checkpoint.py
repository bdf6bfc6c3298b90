"""Checkpoints as Hugging Face–style folders: config.json + model.safetensors + README.md (the model
card, with the Hub's front matter).

Loading reads JSON and raw tensors only; it never unpickles, so a checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tatum.errors import TatumError
from tatum.model.config import ModelConfig, build_model
from tatum.model.notelm import NoteLM, NoteLMConfig
from tatum.model.transformer import Seq2Seq
from tatum.tokenizer import FORMAT_VERSION, Tokenizer

CHECKPOINT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"   # inside the package, so a wheel carries them
DEFAULT_MODEL = "tatum-note"
ARCHITECTURES = {"tatum-seq2seq": (Seq2Seq, ModelConfig), "tatum-notelm": (NoteLM, NoteLMConfig)}


def architecture(model) -> str:
    return next(name for name, (cls, _) in ARCHITECTURES.items() if isinstance(model, cls))


def _state_for_saving(model: Seq2Seq, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out


def save_checkpoint(model: Seq2Seq, tokenizer: Tokenizer, folder: str | os.PathLike, *,
                    training: dict | None = None, card: str | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write a checkpoint folder atomically (a complete folder appears, or nothing changes)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        config = {"checkpoint_version": CHECKPOINT_VERSION, "format_version": FORMAT_VERSION,
                  "architecture": architecture(model), "model": model.cfg.to_dict(), "n_params": model.n_params(),
                  "tokenizer": tokenizer.to_dict(), "training": training or {}}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        save_file(_state_for_saving(model, dtype), str(tmp / "model.safetensors"),
                  metadata={"format": "pt", "tatum_checkpoint_version": str(CHECKPOINT_VERSION)})
        from tatum.model.card import CARD, model_card, with_front_matter

        card = model_card(folder.name, config) if card is None else with_front_matter(folder.name, config, card)
        (tmp / CARD).write_text(card)
        os.chmod(tmp, 0o755)
        for p in tmp.iterdir():
            os.chmod(p, 0o644)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def default_model() -> str:
    """The model used when none is named: $TATUM_MODEL (a folder or a shipped name), else tatum-note."""
    return os.environ.get("TATUM_MODEL") or DEFAULT_MODEL


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    """A checkpoint folder from a path or the name of a shipped model (None: `default_model()`)."""
    if name_or_path is None:
        name_or_path = default_model()
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    shipped = MODELS_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    known = sorted(d.name for d in MODELS_DIR.glob("*") if (d / "config.json").exists()) if MODELS_DIR.is_dir() else []
    raise TatumError(f"no such model folder (shipped models: {', '.join(known) or 'none'})", name_or_path)


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.exists():
        raise TatumError("not a tatum model folder (no config.json)", folder)
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise TatumError(f"config.json is not valid JSON ({e})", path) from None
    if config.get("architecture") not in ARCHITECTURES:
        raise TatumError(f"not a tatum model (architecture {config.get('architecture')!r} is not one of "
                         f"{', '.join(ARCHITECTURES)})", path)
    if config.get("format_version") != FORMAT_VERSION:
        raise TatumError(f"model uses token format {config.get('format_version')}; this tatum reads "
                         f"format {FORMAT_VERSION}", folder)
    return config


def load_model(name_or_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> tuple[Seq2Seq | NoteLM, Tokenizer]:
    """Load a checkpoint folder (default: the shipped model) → (model in eval mode, tokenizer)."""
    folder = resolve(name_or_path)
    config = read_config(folder)
    tokenizer = Tokenizer.from_dict(config["tokenizer"], str(folder))
    cfg = ARCHITECTURES[config["architecture"]][1].from_dict(config["model"])
    if cfg.vocab_size != tokenizer.vocab_size:
        raise TatumError("model and vocabulary sizes disagree", folder)
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise TatumError("model.safetensors is missing", folder)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:
        raise TatumError(f"model.safetensors is unreadable ({str(e)[:100]})", weights) from None
    model = build_model(cfg)
    try:
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    except RuntimeError as e:  # tensors of the wrong shape
        raise TatumError(f"weights do not fit the config ({str(e).splitlines()[-1].strip()[:120]})", weights) from None
    if missing or unexpected:
        raise TatumError(f"weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})",
                         weights)
    model.config_json = config
    return model.to(device=device, dtype=dtype).eval(), tokenizer

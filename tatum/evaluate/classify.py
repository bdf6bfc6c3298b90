"""Genre, pianist and real-music scores of a performance, from a shipped classifier folder.

>>> from tatum.evaluate.classify import Classifier
>>> clf = Classifier.load()                       # tatum/models/tatum-classifier, cached
>>> s = clf.score(Notes.from_midi("song.mid"))
>>> s.genre["jazz"], s.artist["Art Tatum"], s.random_like   # means over 15 s windows

A classifier folder is config.json + model.safetensors + README.md (model card); loading reads JSON
and raw tensors only, never a pickle.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tatum.errors import TatumError
from tatum.evaluate.features import FIELDS, WINDOW_MS, pad_batch, windows
from tatum.evaluate.net import ClassifierNet, NetConfig
from tatum.notes import Notes

ARCHITECTURE = "tatum-classifier"
CLASSIFIER_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"   # inside the package, so a wheel carries them
DEFAULT_CLASSIFIER = "tatum-classifier"
# Trained apart (another architecture and seed) so that its figures check what reranking, which
# optimises the default classifier's scores, can have learnt to please.
JUDGE = "tatum-judge"


@dataclass
class Scores:
    """Probabilities averaged over a piece's 15 s windows; `windows` is how many were scored
    (0 when the piece has too few notes: then every probability is NaN)."""

    genre: dict[str, float]
    artist: dict[str, float]
    random_like: float
    windows: int

    def top_artists(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.artist.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict:
        """JSON-ready: NaN (nothing scored) becomes None."""
        clean = lambda x: None if math.isnan(x) else x  # noqa: E731
        return {"genre": {k: clean(v) for k, v in self.genre.items()},
                "artist": {k: clean(v) for k, v in self.artist.items()},
                "random_like": clean(self.random_like), "windows": self.windows}


class Classifier:
    def __init__(self, net: ClassifierNet, config: dict, folder: Path | None = None):
        self.net = net.eval()
        self.config = config
        self.folder = folder
        self.genres: list[str] = list(config["genres"])
        self.artists: list[str] = list(config["artists"])

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None) -> "Classifier":
        """A classifier folder, or the name of a shipped one (default: tatum-classifier); cached, so
        a second load of the same folder costs nothing."""
        return _load(resolve(name_or_path).resolve())

    def window_probs(self, notes: Notes) -> dict[str, np.ndarray]:
        """Per 15 s window: genre [W, G], artist [W, A] and random-like [W] probabilities, of the notes
        as a MIDI file holds them (two notes of one pitch at one onset, which no real performance has,
        would otherwise read as random)."""
        return self.predict(windows(notes.playable(), WINDOW_MS))   # on the token grid, as the training windows

    @torch.no_grad()
    def predict(self, rows: list[np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
        """Probabilities of encoded windows (`features.encode_window`), in their order."""
        out = {"genre": [np.zeros((0, len(self.genres)))], "artist": [np.zeros((0, len(self.artists)))],
               "random": [np.zeros(0)]}
        order = np.argsort([len(r) for r in rows], kind="stable")   # similar lengths: less padding
        for k in range(0, len(rows), batch):
            x, mask = pad_batch([rows[i] for i in order[k:k + batch]])
            y = self.net(torch.from_numpy(x), torch.from_numpy(mask))
            out["genre"].append(y["genre"].softmax(-1).numpy())
            out["artist"].append(y["artist"].softmax(-1).numpy())
            out["random"].append(torch.sigmoid(y["random"]).numpy())
        inv = np.empty(len(order), dtype=np.int64)
        inv[order] = np.arange(len(order))
        return {k: np.concatenate(v)[inv] for k, v in out.items()}

    def score(self, notes: Notes) -> Scores:
        """Genre and pianist probabilities and the random-like score (real music ≈ 0), each the
        mean over the piece's 15 s windows."""
        p = self.window_probs(notes)
        n = len(p["random"])
        mean = (lambda a: a.mean(0)) if n else (lambda a: np.full(a.shape[1:], np.nan))
        return Scores({g: float(v) for g, v in zip(self.genres, mean(p["genre"]))},
                      {a: float(v) for a, v in zip(self.artists, mean(p["artist"]))},
                      float(p["random"].mean()) if n else float("nan"), n)


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    p = Path(name_or_path or DEFAULT_CLASSIFIER).expanduser()
    if p.is_dir():
        return p
    shipped = MODELS_DIR / str(name_or_path or DEFAULT_CLASSIFIER)
    if shipped.is_dir():
        return shipped
    raise TatumError("no such classifier folder", name_or_path or shipped)


@lru_cache(maxsize=4)
def _load(folder: Path) -> Classifier:
    path = folder / "config.json"
    if not path.exists():
        raise TatumError("not a classifier folder (no config.json)", folder)
    try:
        config = json.loads(path.read_text())
    except ValueError as e:
        raise TatumError(f"config.json is not valid JSON ({e})", path) from None
    if config.get("architecture") != ARCHITECTURE:
        raise TatumError(f"not a tatum classifier (architecture is not {ARCHITECTURE})", path)
    if config.get("classifier_version") != CLASSIFIER_VERSION or config.get("features") != list(FIELDS):
        raise TatumError("classifier made by another version of tatum (features differ)", folder)
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise TatumError("model.safetensors is missing", folder)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:
        raise TatumError(f"model.safetensors is unreadable ({str(e)[:100]})", weights) from None
    net = ClassifierNet(NetConfig.from_dict(config["model"]))
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise TatumError(f"weights do not fit the config ({str(e).splitlines()[-1].strip()[:120]})",
                         weights) from None
    return Classifier(net, config, folder)


def save_classifier(net: ClassifierNet, folder: Path, *, genres: list[str], artists: list[str],
                    training: dict | None = None, card: str | None = None,
                    dtype: torch.dtype = torch.float16) -> Path:
    """Write a classifier folder atomically: a complete folder appears in one rename, or nothing
    changes. Weights are stored as float16 (half the size; scores move by < 1e-3)."""
    from tatum.evaluate.card import classifier_card

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = {"architecture": ARCHITECTURE, "classifier_version": CLASSIFIER_VERSION, "features": list(FIELDS),
              "window_ms": WINDOW_MS, "model": net.cfg.to_dict(), "n_params": net.n_params(),
              "genres": genres, "artists": artists, "training": training or {}}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
                 for k, v in net.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "README.md").write_text(card if card is not None else classifier_card(folder.name, config))
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
    _load.cache_clear()
    return folder

"""Structure preservation without audio: novelty peaks of the piece's own symbolic self-similarity."""

from __future__ import annotations

import math

import numpy as np

from tatum.evaluate.metrics import pitch_class_histogram
from tatum.notes import Notes


def segment_features(segments: list[Notes]) -> np.ndarray:
    """Per 5 s window: duration-weighted pitch-class profile, register and density, unit-normalised."""
    feats = np.zeros((len(segments), 16))
    for i, s in enumerate(segments):
        if not len(s):
            continue
        w = s.dur_ms.astype(np.float64)
        feats[i, :12] = pitch_class_histogram(s, velocity=False)
        feats[i, 12] = (np.average(s.pitch, weights=w) - 60) / 24
        feats[i, 13] = np.log1p(len(s)) / 5
        feats[i, 14] = (s.pitch.max() - s.pitch.min()) / 48
        feats[i, 15] = np.log1p(np.mean(s.velocity)) / 5
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norm, 1e-9)


def novelty(segments: list[Notes], kernel: int = 2) -> np.ndarray:
    """Foote novelty along the diagonal of the cosine self-similarity matrix (checkerboard kernel)."""
    f = segment_features(segments)
    ssm = f @ f.T
    n = len(segments)
    k = kernel
    sign = np.ones((2 * k, 2 * k))
    sign[:k, k:] = sign[k:, :k] = -1
    padded = np.pad(ssm, k, mode="edge")
    nov = np.zeros(n)
    for i in range(n):
        nov[i] = (padded[i:i + 2 * k, i:i + 2 * k] * sign).sum()
    return np.maximum(nov, 0)


def preserved_segments(segments: list[Notes], fraction: float) -> set[int]:
    """The windows at the strongest novelty peaks (section starts), ceil(fraction · n) of them."""
    n = len(segments)
    if fraction <= 0 or n < 4:
        return set()
    nov = novelty(segments)
    peaks = [i for i in range(1, n) if nov[i] >= nov[i - 1] and (i + 1 >= n or nov[i] >= nov[i + 1]) and nov[i] > 0]
    peaks.sort(key=lambda i: -nov[i])
    return set(peaks[: math.ceil(fraction * n)])

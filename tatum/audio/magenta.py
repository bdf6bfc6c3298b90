"""Starting audio from a text prompt with Magenta RealTime, when it is installed with its weights.

A thin adapter over the documented v1 API (`magenta_rt.system.MagentaRT`: `embed_style`, then
`generate_chunk(state, style, seed)` returning 2 s stereo chunks at 48 kHz). tatum neither ships nor
downloads Magenta RT or its weights.
"""

from __future__ import annotations

import math

import numpy as np

from tatum.errors import TatumError

INSTALL_HINT = ("--from-prompt needs Magenta RealTime and its weights: `pip install magenta-rt` "
                "(see github.com/magenta/magenta-realtime), with the checkpoint available offline")


def prompt_audio(text: str, seconds: float = 20.0, seed: int | None = None,
                 tag: str = "base") -> tuple[np.ndarray, int]:
    """(samples (n, 2) float32, sample rate): `seconds` of music generated from `text`."""
    try:
        from magenta_rt import system
    except ImportError:
        raise TatumError(INSTALL_HINT) from None
    if not text.strip():
        raise TatumError("--from-prompt needs some text, e.g. \"solo stride piano\"")
    try:
        mrt = system.MagentaRT(tag=tag, lazy=False)
        style = mrt.embed_style(text)
        state, chunks, rate = None, [], 48_000
        n = max(1, math.ceil(seconds / 2.0))
        for i in range(n):
            # MRT seeds each chunk itself from seed + chunk index
            chunk, state = mrt.generate_chunk(state=state, style=style, seed=seed)
            samples = np.asarray(getattr(chunk, "samples", chunk), dtype=np.float32)
            rate = int(getattr(chunk, "sample_rate", rate))
            chunks.append(samples.reshape(len(samples), -1))
    except TatumError:
        raise
    except Exception as e:  # missing weights, no accelerator, …: Magenta RT's own message
        raise TatumError(f"Magenta RealTime failed: {' '.join(str(e).split())[:160]}") from None
    audio = np.concatenate(chunks)[: int(seconds * rate)]
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return audio, rate

"""tatum: controllable piano improvisation on MIDI.

>>> from tatum import Notes, Tokenizer
>>> notes = Notes.from_midi("song.mid")
>>> ids = Tokenizer.default().encode(notes)
>>> import tatum
>>> jazz = tatum.improvise(notes, style="jazz", artist="Art Tatum", seed=1)   # needs a model
>>> tatum.write_edit("song.mid", jazz, "jazz.mid")     # over the source: its tracks, ticks and drums kept
"""

from tatum.errors import MidiError, TatumError
from tatum.notes import Notes, TempoMap
from tatum.options import Conditioning, Sampling
from tatum.tokenizer import Tokenizer

__all__ = ["Notes", "TempoMap", "Tokenizer", "TatumError", "MidiError", "Conditioning", "Sampling", "load_model",
           "improvise", "harmonize", "continue_", "infill", "write_edit"]
__version__ = "0.1.0"

# The model and generation pull in torch; import them only when asked for.
_LAZY = {"load_model": "tatum.model.checkpoint", "improvise": "tatum.generate.tasks",
         "harmonize": "tatum.generate.tasks", "continue_": "tatum.generate.tasks", "infill": "tatum.generate.tasks",
         "write_edit": "tatum.edit"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tatum' has no attribute {name!r}")

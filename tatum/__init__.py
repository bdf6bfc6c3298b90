"""tatum: controllable piano improvisation on MIDI.

>>> from tatum import Notes, Tokenizer
>>> notes = Notes.from_midi("song.mid")
>>> ids = Tokenizer.default().encode(notes)
"""

from tatum.errors import MidiError, TatumError
from tatum.notes import Notes, TempoMap
from tatum.tokenizer import Tokenizer

__all__ = ["Notes", "TempoMap", "Tokenizer", "TatumError", "MidiError"]
__version__ = "0.1.0"

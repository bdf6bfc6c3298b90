"""Model cards (issue 17 item 6): README.md beside config.json and model.safetensors, with the Hugging
Face front matter that states licence, data, tags and metrics; folders with the old MODEL_CARD.md load."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from tatum.model.card import CARD, OLD_CARD, front_matter, model_card
from tatum.model.checkpoint import MODELS_DIR, load_model, save_checkpoint
from tatum.model.config import preset
from tatum.model.transformer import Seq2Seq
from tatum.tokenizer import Tokenizer

SHIPPED = ["tatum-small", "tatum-note", "tatum-note-tatum", "tatum-classifier", "tatum-judge"]


def header(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_has_a_card_with_front_matter(name):
    folder = MODELS_DIR / name
    assert {"config.json", "model.safetensors", CARD} <= {p.name for p in folder.iterdir()}
    assert not (folder / OLD_CARD).exists()
    meta = header((folder / CARD).read_text())
    assert meta["license"] == "cc-by-nc-4.0"                 # PiJAMA-derived weights: non-commercial
    assert "PiJAMA" in meta["datasets"] and meta["library_name"] == "tatum"
    assert {"midi", "piano"} <= set(meta["tags"]) and meta["metrics"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] > 0


def test_the_hub_reads_the_cards():
    hub = pytest.importorskip("huggingface_hub")
    for name in SHIPPED:
        card = hub.ModelCard.load(MODELS_DIR / name / CARD)
        assert card.data.license == "cc-by-nc-4.0" and card.data.eval_results


def test_licence_and_data_follow_the_training_data():
    config = {"training": {"data": {"genres": ["classical", "pop"]}, "val_loss": {"all": 2.5}}}
    meta = header(front_matter("m", config))
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["pianolatron", "POP909"]
    meta = header(front_matter("m", {"training": {"data": {"genres": ["jazz"]}, "artist": "Art Tatum"}}))
    assert meta["license"] == "cc-by-nc-4.0" and "art-tatum" in meta["tags"] and "model-index" not in meta


def test_a_saved_checkpoint_gets_a_card_and_an_old_folder_still_loads(tmp_path):
    tok = Tokenizer.default()
    torch.manual_seed(0)
    model = Seq2Seq(preset("tiny", tok.vocab_size, dropout=0.0))
    training = {"steps": 3, "data": {"pieces": 2, "genres": ["jazz"]}, "val_loss": {"all": 3.0}}
    folder = save_checkpoint(model, tok, tmp_path / "m", training=training)
    text = (folder / CARD).read_text()
    assert header(text)["license"] == "cc-by-nc-4.0" and "# m" in text
    assert text == model_card("m", json.loads((folder / "config.json").read_text()))
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    (old / CARD).rename(old / OLD_CARD)       # as folders were written before
    loaded, _ = load_model(old)
    assert loaded.cfg == model.cfg


def test_every_verb_and_the_jam_play_the_note_model_unless_told(monkeypatch):
    """The default is the note-per-position model (offline and, with int8 weights, in a jam), Art Tatum's
    is its fine-tuned copy; a user's $TATUM_MODEL is used for all."""
    from tatum.generate.tasks import get_model
    from tatum.model.notelm import NoteLM

    monkeypatch.delenv("TATUM_MODEL", raising=False)
    offline, live = get_model(None, None)[0], get_model(None, None, stream=True)[0]
    assert isinstance(offline, NoteLM) and isinstance(live, NoteLM)
    assert not getattr(offline, "quantized", False) and getattr(live, "quantized", False)
    tatum = get_model(None, "Art Tatum")[0]
    assert isinstance(tatum, NoteLM) and tatum is not offline
    monkeypatch.setenv("TATUM_MODEL", "tatum-small")
    assert isinstance(get_model(None, None, stream=True)[0], Seq2Seq)
    assert isinstance(get_model(None, "Art Tatum")[0], Seq2Seq)

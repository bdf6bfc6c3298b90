"""The model card of a checkpoint, README.md in the Hugging Face habit: YAML front matter (licence,
datasets, tags, metrics) that the Hub and other tools read, then the card itself, both written from
what its config.json records about training. Folders from before hold MODEL_CARD.md without front
matter; nothing reads the card to load a model, so they still load."""

from __future__ import annotations

CARD = "README.md"
OLD_CARD = "MODEL_CARD.md"
DATASETS = {"jazz": "PiJAMA", "classical": "pianolatron", "pop": "POP909"}
LICENCES = {
    "jazz": "PiJAMA (jazz): research and non-commercial use only",
    "classical": "pianolatron (classical): MIT",
    "pop": "POP909 (pop): MIT",
}


def licence(config: dict) -> str:
    """PiJAMA's terms are research and non-commercial, so weights trained on it are CC BY-NC 4.0; a
    model of the MIT collections only is under the project's own licence."""
    genres = config.get("training", {}).get("data", {}).get("genres", [])
    return "cc-by-nc-4.0" if "jazz" in genres or not genres else "apache-2.0"


def front_matter(name: str, config: dict) -> str:
    """The card's YAML header: licence, datasets, tags and the validation loss as a model-index."""
    t = config.get("training", {})
    genres = t.get("data", {}).get("genres", [])
    lines = ["---", f"license: {licence(config)}", "library_name: tatum", "tags:"]
    lines += [f"- {x}" for x in ("symbolic-music", "midi", "piano", "music-generation", "improvisation")]
    if t.get("artist"):
        lines.append(f"- {t['artist'].lower().replace(' ', '-')}")
    if genres:
        lines += ["datasets:"] + [f"- {DATASETS[g]}" for g in genres if g in DATASETS]
    val = (t.get("val_loss") or {}).get("all")
    if val is not None:
        unit = t.get("val_unit", "target token")
        lines += ["metrics:", "- loss", "model-index:", f"- name: {name}", "  results:", "  - task:",
                  "      type: other", "      name: corruption-refinement of 5 s piano windows", "    dataset:",
                  f"      name: {' / '.join(DATASETS[g] for g in genres if g in DATASETS) or 'held-out'} val",
                  "      type: midi", "      split: val", "    metrics:", "    - type: loss",
                  f"      name: validation loss, nats per {unit}, all corruptions", f"      value: {val:.4f}"]
    return "\n".join(lines + ["---", "", ""])


def with_front_matter(name: str, config: dict, body: str) -> str:
    """`body` (a card, perhaps an old MODEL_CARD.md) under the front matter, replacing any it had."""
    if body.startswith("---\n"):
        end = body.find("\n---\n", 4)
        body = body[end + 5:].lstrip("\n") if end >= 0 else body
    return front_matter(name, config) + body


def model_card(name: str, config: dict) -> str:
    """The whole card, front matter included."""
    return with_front_matter(name, config, _body(name, config))


def _body(name: str, config: dict) -> str:
    m, t = config["model"], config.get("training", {})
    n_params = config.get("n_params", 0)
    if "enc_layers" in m:
        kind = "An encoder–decoder transformer"
        shape = [f"- {m['enc_layers']} encoder + {m['dec_layers']} decoder layers, d {m['d_model']}, "
                 f"{m['n_heads']} heads, FF {m['d_ff']}; encoder {m['max_enc_len']} / decoder {m['max_dec_len']} tokens",
                 f"- encoder positions {m.get('enc_positions', 'absolute')}, cross-attention bias "
                 f"{m.get('cross_bias', 'none')}"]
    else:
        kind = "A decoder-only transformer over note events (NoteLM, one position per note)"
        shape = [f"- {m['n_layers']} layers, d {m['d_model']}, {m['n_heads']} heads, FF {m['d_ff']}, "
                 f"{m['max_len']} events; rotary positions; factorised onset → duration → pitch-velocity heads"]
    lines = [f"# {name}", "",
             f"{kind} for corruption–refinement piano improvisation (tatum, token "
             f"format {config['format_version']}).", "",
             "## Model", ""] + shape + [
             f"- about {n_params / 1e6:.1f} M parameters; vocabulary {m['vocab_size']} tokens",
             f"- styles: {', '.join(config['tokenizer']['genres'])}; pianists: "
             f"{', '.join(config['tokenizer']['artists'])}, and `other`", ""]
    if t:
        data = t.get("data", {})
        lines += ["## Training", "",
                  f"- data: {data.get('pieces', '?')} training pieces, {data.get('hours', '?')} h "
                  f"({', '.join(data.get('genres', []))})" + (f"; only {t['artist']}" if t.get("artist") else ""),
                  f"- started from: {t['init']}" if t.get("init") else "- started from random weights",
                  f"- low-rank adapters (LoRA, rank {t['lora_rank']}) on a frozen model, merged into these weights"
                  if t.get("lora_rank") else "- all weights trained",
                  f"- {t.get('steps', '?')} steps of {t.get('batch', '?')} examples; "
                  f"{t.get('tokens_seen', 0) / 1e6:.2f} M predicted {t.get('unit', 'target token')}s seen",
                  f"- wall time {t.get('wall_s', 0) / 3600:.2f} h on {t.get('hardware', '?')}", ""]
        val, uni = t.get("val_loss") or {}, t.get("unigram_loss") or {}
        if val:
            per = t.get("val_unit", "target token")
            lines += [f"## Validation loss (nats per {per}, held-out val pieces)", "",
                      "| task | model | unigram baseline |" if uni else "| task | model |",
                      "|---|---|---|" if uni else "|---|---|"]
            for k, v in val.items():
                lines.append(f"| {k} | {v:.3f} | {uni[k]:.3f} |" if k in uni else f"| {k} | {v:.3f} |")
            lines.append("")
        genres = data.get("genres", [])
        licences = [LICENCES[g] for g in genres if g in LICENCES]
        if licences:
            lines += ["## Data licences", ""] + [f"- {x}" for x in licences] + [
                "", "Because of PiJAMA, these weights are for research and non-commercial use." if "jazz" in genres
                else "", ""]
    return "\n".join(lines)

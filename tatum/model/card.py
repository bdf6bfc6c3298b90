"""MODEL_CARD.md for a checkpoint, written from what its config.json records about training."""

from __future__ import annotations

LICENCES = {
    "jazz": "PiJAMA (jazz): research and non-commercial use only",
    "classical": "pianolatron (classical): MIT",
    "pop": "POP909 (pop): MIT",
}


def model_card(name: str, config: dict) -> str:
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

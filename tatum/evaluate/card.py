"""README.md (Hugging Face model card) of a classifier folder, from what its config.json records and,
when given, what `benchmarks/classifiers.py` measured on the val files."""

from __future__ import annotations

from tatum.evaluate.classify import JUDGE

DATASETS = {"jazz": "PiJAMA", "classical": "pianolatron", "pop": "POP909"}
JUDGE_NOTE = ("The independent judge: trained apart from `tatum-classifier` (another architecture and seed), "
              "which `--candidates` reranks with, so that `tatum evaluate` can check what reranking may have "
              "learnt to please. Its noise windows never strike one key twice at one onset.")


def _flags(c: dict) -> str:
    """The options of `train_classifier` that differ from its defaults."""
    seed = f" --seed {c['seed']}" if c.get("seed") else ""
    return seed + "".join(f" --set {k}={v}" for k, v in (c.get("net") or {}).items())


def _front(name: str, config: dict, bench: dict | None) -> list[str]:
    genres = config.get("training", {}).get("data", {}).get("genres", config["genres"])
    lines = ["---", f"license: {'cc-by-nc-4.0' if 'jazz' in genres else 'mit'}", "library_name: tatum",
             "tags:", "- symbolic-music", "- midi", "- piano", "- music-classification", "datasets:"]
    lines += [f"- {DATASETS.get(g, g)}" for g in genres]
    lines += ["metrics:", "- accuracy", "- roc_auc"]
    if bench:
        def result(task: str, dataset: str, metrics: list[tuple[str, str, float]]) -> list[str]:
            out = ["  - task:", "      type: other", f"      name: {task}", "    dataset:",
                   f"      name: {dataset}", "      type: midi", "      split: val", "    metrics:"]
            for kind, label, value in metrics:
                out += [f"    - type: {kind}", f"      name: {label}", f"      value: {value:.4f}"]
            return out

        p = bench["pianist_top12"]
        lines += ["model-index:", f"- name: {name}", "  results:"]
        lines += result("pianist identification (symbolic piano)", "PiJAMA val",
                        [("accuracy", "per-track accuracy, 12 pianists with the most hours", p["track_acc"]),
                         ("accuracy", "per-15 s-window accuracy, same pianists", p["window_acc"]),
                         ("roc_auc", "Art Tatum vs the rest, per track", bench["art_tatum_auc"])])
        lines += result("genre classification (symbolic piano)", "PiJAMA / pianolatron / POP909 val",
                        [("accuracy", f"per-track accuracy, {g}", v["track_acc"]) for g, v in bench["genre"].items()])
    return lines + ["---"]


def classifier_card(name: str, config: dict, bench: dict | None = None) -> str:
    t = config.get("training", {})
    data, val, m = t.get("data", {}), t.get("val") or {}, config["model"]
    genres = data.get("genres", config["genres"])
    trunk = (f"{m['layers']} residual dilated depthwise 1-D convolution layers"
             + (f" and {m['attn_layers']} self-attention layer{'s' * (m['attn_layers'] > 1)}" if m.get("attn_layers") else "")
             if m["trunk"] == "cnn" else f"{m['layers']} transformer layers")
    lines = _front(name, config, bench) + [
        "", f"# {name}", "", *([JUDGE_NOTE, ""] if name == JUDGE else []),
        "Three classifiers in one small network for symbolic piano performances (tatum): **genre** "
        f"({', '.join(config['genres'])}), **pianist** ({len(config['artists']) - 1} PiJAMA pianists and "
        "`other`), and a **random-like** score: the probability that the input is synthetic non-music "
        "(uniform random notes, random walks, random notes of one scale, real notes with shuffled "
        "pitches/onsets/durations, and mixes of these with real music) rather than real music (≈ 0).",
        "", "Every score is the mean over the piece's 15 s windows, one starting every 5 s.", "",
        "```python", "from tatum.evaluate.classify import Classifier",
        f"scores = Classifier.load({name!r}).score(notes)   # .genre, .artist, .random_like", "```",
        "", "or `tatum classify FILE... [--json]`.", "", "## Model", "",
        "- input: one position per note (key, velocity bin, duration, gap to the previous onset, interval "
        "to the previous note, second of the window), as summed embeddings; at most 512 notes per window",
        f"- trunk: {trunk}, width {m['d_model']}; masked mean + max pooling; three linear heads",
        f"- {config.get('n_params', 0) / 1e6:.2f} M parameters, float16 weights", ""]
    if t:
        c = t.get("config", {})
        stretch = c.get("stretch", ["?", "?"])
        lines += ["## Training", "",
                  f"- data: {data.get('train_pieces', '?')} train pieces, {data.get('train_hours', '?')} h "
                  f"({', '.join(genres)}); random 15 s windows, transposed up to ±{c.get('transpose', '?')} "
                  f"semitones and stretched ×{stretch[0]}–{stretch[1]}",
                  f"- {c.get('noise_share', 0):.0%} of each batch synthetic non-music, made on the fly from the "
                  "same windows; the genre and pianist heads learn from real windows only, the pianist head "
                  "from jazz only; the genre loss is weighted for equal genre priors",
                  f"- {t.get('steps', '?')} steps of {c.get('batch_size', '?')} windows, "
                  f"{t.get('wall_s', 0) / 60:.0f} min on {t.get('hardware', '?')}", "",
                  "Reproduce: `python -m tatum.evaluate.train_classifier SHARDS -o OUT --minutes "
                  f"{c.get('minutes', '?'):g}{_flags(c)}`" if isinstance(c.get("minutes"), (int, float)) else "", ""]
    if bench:
        p = bench["pianist_top12"]
        lines += ["## Held-out val files (`python benchmarks/classifiers.py`)", "",
                  "| measure | value |", "|---|---|",
                  f"| pianist, per track, {p['tracks']} PiJAMA val tracks of the 12 pianists with the most hours "
                  f"(choosing among those 12) | {p['track_acc']:.3f} |",
                  f"| same, choosing among all {len(config['artists'])} classes | {p['track_acc_all_classes']:.3f} |",
                  f"| same tracks, per 15 s window (12 / all classes) | {p['window_acc']:.3f} / "
                  f"{p['window_acc_all_classes']:.3f} |",
                  f"| Art Tatum vs the rest, ROC-AUC over {bench['jazz_tracks']} PiJAMA val "
                  f"tracks | {bench['art_tatum_auc']:.3f} |"]
        lines += [f"| genre {g}, per track ({v['tracks']} tracks) | {v['track_acc']:.3f} |"
                  for g, v in bench["genre"].items()]
        lines += [f"| random-like, {k} windows: mean (share > 0.5) | {v['mean']:.3f} ({v['above_0.5']:.3f}) |"
                  for k, v in bench["random_like"].items()]
        lines += [f"| scoring the first 60 s of a file, one CPU thread | {bench['score_60s_ms_median']:.0f} ms |", ""]
    elif val:
        lines += ["## Validation during training (fixed windows of every val piece)", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in val.items() if isinstance(v, float) and k != "wall_s"]
        lines.append("")
    lines += ["## Licence and limits", "",
              "Trained on PiJAMA (research and non-commercial use only), pianolatron (MIT) and POP909 (MIT): "
              "these weights are for non-commercial research use (CC BY-NC 4.0)." if "jazz" in genres else
              "Trained on MIT-licensed data.", "",
              "The genres come from three different kinds of source (transcribed jazz recordings, "
              "reproducing-piano rolls, pop arrangements), so the genre head may partly recognise the kind of "
              "source rather than the style. PiJAMA's val tracks share albums with its train tracks, so the "
              "pianist figures include whatever a recording's sound leaves in its transcription.", ""]
    return "\n".join(lines)

"""What `tatum evaluate` writes: results.json, results.md (our figures beside ImprovNet's published
ones), curves.png (measures after every pass), a piano roll and the MIDI of every piece."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from tatum.evaluate.protocols import Evaluation
from tatum.io import atomic_output, write_atomic

# ImprovNet (arXiv 2502.04522; its repository's metrics_summary notebook), and AMT where it compared.
PUBLISHED = {
    "continuation": {"pctm_cosine_improvnet": ("0.347", "0.307"), "pitch_class_kl_improvnet": ("1.25", "1.61"),
                     "notes_per_5s": ("37 (originals 31)", "68")},
    "infill": {"pctm_cosine_improvnet": ("0.404", "0.362"), "pitch_class_kl_improvnet": ("0.89", "1.46"),
               "notes_per_5s": ("36 (originals 32)", "50")},
    "style-transfer": {"p_jazz": ("≈ 0.80 (random corruption, α = 1, pass 10)", ""),
                       "ssm_correlation": ("≈ 0.13 (audio chroma SSM)", "")},
    "harmonize": {"polyphony_rate": ("0.92 (originals 0.96; without constraint 0.23)", ""),
                  "distinct_chords": ("21.2 per piece (originals 13.3)", "")},
}

# (label, our key, the key of what it is compared with, format)
ROWS = {
    "continuation": [
        ("PCTM cosine vs the real next 15 s, ImprovNet's rule (pianist column: the prompt's last 15 s)",
         "pctm_cosine_improvnet", "real_pctm_cosine_improvnet", ".3f"),
        ("pitch-class KL (real ‖ generated), ImprovNet's smoothing, nats (pianist column: the prompt's last 15 s)",
         "pitch_class_kl_improvnet", "real_pitch_class_kl_improvnet", ".2f"),
        ("PCTM cosine, consecutive notes", "pctm_cosine", "real_pctm_cosine", ".3f"),
        ("pitch-class KL, smoothed by 1e-3", "pitch_class_kl", "real_pitch_class_kl", ".2f"),
        ("notes per 5 s", "notes_per_5s", "real_notes_per_5s", ".1f"),
        ("P(jazz)", "p_jazz", "real_p_jazz", ".2f"),
        ("{artist}", "p_artist", "real_p_artist", ".2f"),
        ("random-like (real music ≈ 0.05)", "random_like", "real_random_like", ".2f"),
        ("key kept (vs the prompt), share", "key_kept", "real_key_kept", ".2f"),
        ("key distance (vs the prompt), fifths (0–6)", "key_fifths", "real_key_fifths", ".1f"),
        ("median pitch difference to the real, semitones", "median_pitch_diff", None, ".1f"),
        ("nothing generated, share of pieces (KL left out)", "empty", None, ".2f"),
        ("bass presence (share of time below C3)", "bass_presence", "real_bass_presence", ".2f"),
        ("beat clarity (onset autocorrelation peak)", "pulse_clarity", "real_pulse_clarity", ".2f"),
    ],
    "style-transfer": [
        ("P(jazz) after the last pass", "p_jazz", "real_p_jazz", ".2f"),
        ("SSM correlation with the input", "ssm_correlation", None, ".2f"),
        ("{artist}", "p_artist", "real_p_artist", ".2f"),
        ("random-like (real music ≈ 0.05)", "random_like", "real_random_like", ".2f"),
        ("chroma r with the input (per 1 s frame)", "chroma_r", None, ".2f"),
        ("notes per 5 s", "notes_per_5s", "real_notes_per_5s", ".1f"),
    ],
    "harmonize": [
        ("polyphony rate (silence included, as ImprovNet)", "polyphony_rate", "real_polyphony_rate", ".2f"),
        ("distinct chords (≥ 3 pitch classes)", "distinct_chords", "real_distinct_chords", ".1f"),
        ("notes per s", "notes_per_s", "real_notes_per_s", ".1f"),
        ("melody kept", "melody_kept", None, ".2f"),
        ("P(jazz)", "p_jazz", "real_p_jazz", ".2f"),
        ("{artist}", "p_artist", "real_p_artist", ".2f"),
        ("random-like (real music ≈ 0.05)", "random_like", "real_random_like", ".2f"),
    ],
}
# The independent judge's verdict, after the classifier's own rows (absent when it is not shipped).
JUDGE_ROWS = [("P(jazz), independent judge", "judge_p_jazz", "real_judge_p_jazz", ".2f"),
              ("{artist}, independent judge", "judge_p_artist", "real_judge_p_artist", ".2f"),
              ("random-like, independent judge", "judge_random_like", "real_judge_random_like", ".2f")]


def _with_judge(rows: list[tuple]) -> list[tuple]:
    at = next(i for i, r in enumerate(rows) if r[1] == "random_like") + 1
    return rows[:at] + JUDGE_ROWS + rows[at:]


ROWS = {task: _with_judge(rows) for task, rows in ROWS.items()}
ROWS["infill"] = [(label.replace("next 15 s", "20–40 s").replace("the prompt's last 15 s", "the given 0–20 s")
                   .replace("the prompt", "0–20 s and 40–60 s"), *rest) for label, *rest in ROWS["continuation"]]

REFERENCE = {"continuation": "the pianist (real next 15 s)", "infill": "the pianist (real 20–40 s)",
             "style-transfer": "the input", "harmonize": "the pianist (same 30 s)"}

NOTES = {
    "continuation": "Prompt: each performance's first 20 s (from its first note); 15 s generated with "
                    "`tatum.continue_(style=\"jazz\")` and its defaults (the prompt's density and polyphony, the "
                    "best of 8 drafts per window, kept for their realness, style, beat and the prompt's key, register "
                    "and bass).",
    "infill": "Given 0–20 s and 40–60 s of each performance; 20–40 s generated with `tatum.infill(style=\"jazz\")`.",
    "style-transfer": "The first {seconds:g} s of each piece → jazz with `tatum.improvise(plan=\"improvnet\")` and its "
                      "defaults (first 10 s and last window kept, the tune kept on top, 5 % of windows kept for "
                      "structure). ImprovNet's SSM is of audio chroma resized to 512 × 512; ours is symbolic "
                      "chroma per 1 s frame, so the two SSM figures compare only roughly.",
    "style-transfer/replay": "The first {seconds:g} s of each piece → jazz with `tatum.improvise(plan=\"replay\")` and "
                             "its defaults (each window drawn after the music played before it, best of 8, "
                             "pulled toward the source window's harmony, tune and register). ImprovNet's SSM is of "
                             "audio chroma resized to 512 × 512; ours is symbolic chroma per 1 s frame.",
    "harmonize": "The skyline (top line) of each performance's first {seconds:g} s, harmonized with `tatum.harmonize"
                 "(style=\"jazz\")` and its defaults. ImprovNet counts chords with chorder (root, quality) over whole "
                 "pieces; we count distinct pitch-class sets of ≥ 3 classes in the excerpt.",
}


def _step_name(s) -> str:
    """What a curve's steps are: passes over the piece, or windows drawn one after another."""
    passes = s.task == "harmonize" or (s.task == "style-transfer" and s.plan != "replay")
    return "pass" if passes else "window"


COMMON_NOTE = ("Means ± standard deviation over pieces. Measures: `tatum.evaluate.metrics`, "
               "`tatum/models/tatum-classifier` (the classifier `--candidates` reranks with) and "
               "`tatum/models/tatum-judge` (trained apart, another architecture and seed), means over 15 s windows.")
SECTION_NOTE = ("ImprovNet's rule for the PCTM counts every pair of notes where one ends within 50 ms of the other's "
                "start (pretty_midi), and its KL adds 1e-5 to each pitch class, so a pitch class the real music "
                "plays and the generated never does costs up to 11.5 nats; our own rows count consecutive notes "
                "and smooth by 1e-3 (an empty pitch class costs at most 6.9 nats). Keys: "
                "Krumhansl–Kessler, relative major/minor counted as kept. Beat clarity: the highest "
                "autocorrelation of the onset train at a lag of 0.25–1.5 s (1 = metronome, ≈ 0.1 for random "
                "onsets).")


def _fmt(stat: dict | None, fmt: str) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    s = format(stat["mean"], fmt)
    if stat.get("sd") is not None:
        s += f" ± {format(stat['sd'], fmt)}"
    return s


def markdown(ev: Evaluation) -> str:
    s = ev.setup
    summ = ev.summary()
    who = s.artist or ("the piece's pianist" if s.task != "style-transfer" else None)
    lines = [f"# tatum evaluate: {s.task}", "",
             f"Model `{ev.model['model']}` ({ev.model.get('architecture') or '?'}, "
             f"{_steps(ev.model.get('steps'))}), data `{s.data}`, {len(ev.pieces)} pieces, seeds {s.seed}–"
             f"{s.seed + len(ev.pieces) - 1}" + (f", artist {s.artist}" if s.artist else "")
             + (f", {s.candidates} candidates per window (reranked)" if s.candidates > 1 else "") + ".", "",
             f"| measure | tatum | {REFERENCE[s.task]} | ImprovNet | AMT |", "|---|---|---|---|---|"]
    pub = PUBLISHED.get(s.task, {})
    rows = _rows_of(ev)
    for label, key, ref, fmt in rows:
        if "{artist}" in label:
            if who is None:
                continue
            label = label.replace("{artist}", f"P({who})")
        imp, amt = pub.get(key, ("", ""))
        lines.append(f"| {label} | {_fmt(summ.get(key), fmt)} | {_fmt(summ.get(ref), fmt) if ref else ''} | "
                     f"{imp} | {amt} |")
    wall = summ.get("wall_s")
    lines += ["", f"Generation time per piece: {_fmt(wall, '.1f')} s.", "",
              NOTES.get(f"{s.task}/{s.plan}", NOTES[s.task]).format(seconds=s.excerpt_s)
              + ("" if s.keep_first is None else f" The first {s.keep_first:g} s kept (`--keep-first`).")
              + " " + COMMON_NOTE
              + (" " + SECTION_NOTE if s.task in ("continuation", "infill") else "")]
    curves = ev.curve_means()
    if curves:
        width = max(len(c) for c in curves.values())
        first = 0 if s.task == "style-transfer" else 1
        head = _step_name(s)
        lines += ["", f"Per {head} (mean over pieces{f'; {head} 0 is the input' if first == 0 else ''}):", "",
                  f"| {head} | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
        for i in range(width):
            cells = [("–" if i >= len(c) or c[i] is None else f"{c[i]:.2f}") for c in curves.values()]
            lines.append(f"| {i + first} | " + " | ".join(cells) + " |")
    cols = [(k, fmt) for _, k, _, fmt in rows if not k.endswith("p_artist") or who]
    lines += ["", "| # | piece | pianist | " + " | ".join(k for k, _ in cols) + " | s |", "|---" * (4 + len(cols)) + "|"]
    for i, p in enumerate(ev.pieces):
        vals = [_cell(p.measures.get(k), fmt) for k, fmt in cols]
        lines.append(f"| {i + 1} | {p.title[:40]} | {p.artist or ''} | " + " | ".join(vals) + f" | {p.wall_s:.1f} |")
    if ev.skipped:
        lines += ["", "Skipped: " + "; ".join(f"{t} ({why})" for t, why in ev.skipped)]
    return "\n".join(lines) + "\n"


def _rows_of(ev: Evaluation) -> list[tuple]:
    """The task's rows, the judge's only where it scored."""
    keys = {k for p in ev.pieces for k in p.measures}
    return [r for r in ROWS[ev.setup.task] if not r[1].startswith("judge_") or r[1] in keys]


def _steps(steps) -> str:
    return f"{steps:,} steps" if isinstance(steps, int) else "steps unknown"


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return format(v, fmt)


def to_json(ev: Evaluation, files: dict[str, str]) -> dict:
    clean = lambda x: None if isinstance(x, float) and math.isnan(x) else x  # noqa: E731
    return {"task": ev.setup.task, "setup": ev.setup.to_dict(), "model": ev.model,
            "summary": ev.summary(), "curves": ev.curve_means(), "published": {k: v[0] for k, v in
                                                                              PUBLISHED.get(ev.setup.task, {}).items()},
            "pieces": [{"title": p.title, "artist": p.artist, "path": p.path, "wall_s": p.wall_s,
                        "measures": {k: clean(v) for k, v in p.measures.items()},
                        "curves": {k: [clean(x) for x in v] for k, v in p.curves.items()}} for p in ev.pieces],
            "skipped": [{"title": t, "reason": r} for t, r in ev.skipped], "files": files}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "piece"


def curves_png(path: Path, ev: Evaluation) -> Path | None:
    """One panel per curve: each piece thin, the mean bold."""
    names = list(dict.fromkeys(k for p in ev.pieces for k in p.curves if not k.endswith("(real)")))
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = 0 if ev.setup.task == "style-transfer" else 1
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    means = ev.curve_means()
    for ax, name in zip(axes[0], names):
        for p in ev.pieces:
            ys = [math.nan if v is None else v for v in p.curves.get(name, [])]
            ax.plot(range(first, first + len(ys)), ys, color="grey", lw=0.7, alpha=0.6)
        ys = [math.nan if v is None else v for v in means[name]]
        ax.plot(range(first, first + len(ys)), ys, color="C0", lw=2.2, marker="o", label="tatum (mean)")
        real = means.get(f"{name} (real)")
        if real:
            ax.plot(range(first, first + len(real)), [math.nan if v is None else v for v in real], color="C2",
                    lw=2, ls="--", marker="s", label="the pianist (mean)")
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(_step_name(ev.setup))
        ax.grid(alpha=0.3)
    fig.suptitle(f"tatum evaluate {ev.setup.task}: {ev.model['model']}", fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


def write(ev: Evaluation, out_dir: str | os.PathLike, pictures: bool = True) -> dict[str, str]:
    """Write everything into `out_dir` (created if needed), each file atomically; returns the paths."""
    from tatum.plot import piano_roll

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for i, p in enumerate(ev.pieces):
        name = f"{i + 1:02d}-{slug(p.title)}"
        with atomic_output(out / "midi" / f"{name}.mid") as tmp:
            p.result.to_midi(tmp)
        files[f"midi/{name}"] = str(out / "midi" / f"{name}.mid")
        if pictures:
            piano_roll(out / "rolls" / f"{name}.png", p.result, p.before, titles=p.titles)
            files[f"roll/{name}"] = str(out / "rolls" / f"{name}.png")
    if pictures and curves_png(out / "curves.png", ev):
        files["curves"] = str(out / "curves.png")
    md = markdown(ev)
    write_atomic(out / "results.md", md)
    files["markdown"] = str(out / "results.md")
    files["json"] = str(out / "results.json")
    write_atomic(out / "results.json", json.dumps(to_json(ev, files), indent=1, ensure_ascii=False))
    return files

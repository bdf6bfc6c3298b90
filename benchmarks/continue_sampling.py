"""Which settings make the best continuations? `tatum evaluate`'s continuation protocol under several
settings of the continue verb (with `--task style-transfer`, its style-transfer protocol under settings
of the improvise verb: P(jazz), P(pianist), random-like, SSM correlation with the input).

For each variant (options laid over the verb's defaults: guidance, temperature, top_k, top_p, density,
polyphony; null is "any"; "rerank": the reranker's weights for the verb, as `options.RERANK_WEIGHTS`,
`{}` for equal ones), the same
`--n` evenly spaced PiJAMA **val** prompts (20 s) are continued by 15 s with the same seeds, and the
protocol's means are printed: random-like, P(jazz), P(pianist) (by the classifier and by the
independent judge), PCTM cosine and pitch-class KL against the real next 15 s, notes per 5 s, key
kept, median pitch difference to the prompt's end, bass presence, pulse clarity. Pieces differ far more than settings do, so compare variants on 32 prompts or more.

    python benchmarks/continue_sampling.py [--n 32] [--seed 100] [--model tatum-note] [--candidates 1]
        [--variants '{"g0": {"guidance": 0}, "g2": {"guidance": 2}, "equal": {"rerank": {}}}']
        [--data-root ../shared/data]
        [--task infill | --task style-transfer [--plan PLAN]] [--artist NAME]

One JSON object per variant, one per line.
"""

from __future__ import annotations

import argparse
import json
import time

from valset import DEFAULT_DATA

from tatum.evaluate.protocols import VERB_OF

DEFAULT_VARIANTS = {"default": {}, "old default (k50 T1)": {"top_k": 50, "temperature": 1.0}, "g2": {"guidance": 2.0},
                    "T1": {"temperature": 1.0}, "p.95": {"top_p": 0.95}}
KEYS = ["random_like", "p_jazz", "p_artist", "judge_random_like", "judge_p_jazz", "judge_p_artist", "pctm_cosine_improvnet", "pitch_class_kl_improvnet", "notes_per_5s",
        "key_kept", "median_pitch_diff", "bass_presence", "pulse_clarity", "ssm_correlation"]


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--model", default=None)
    ap.add_argument("--artist", default=None)
    ap.add_argument("--candidates", type=int, default=None, help="drafts per window (default: the verb's)")
    ap.add_argument("--variants", type=json.loads, default=DEFAULT_VARIANTS)
    ap.add_argument("--data-root", default=str(DEFAULT_DATA))
    ap.add_argument("--task", choices=list(VERB_OF), default="continuation")
    ap.add_argument("--plan", default=None, help="style-transfer: improvise's plan (default: improvise's)")
    a = ap.parse_args(argv)
    verb = VERB_OF[a.task]

    from tatum import options
    from tatum.evaluate.classify import Classifier
    from tatum.evaluate.protocols import Setup, evaluate

    clf, base, rows = Classifier.load(), dict(options.VERB_DEFAULTS.get(verb, {})), []
    weights = options.RERANK_WEIGHTS.get(verb)
    real = None
    try:
        for name, changes in a.variants.items():
            sampling = {k: v for k, v in changes.items() if k != "rerank"}
            options.VERB_DEFAULTS[verb] = base | sampling
            options.RERANK_WEIGHTS[verb] = changes.get("rerank", weights or {})
            t = time.perf_counter()
            ev = evaluate(Setup(a.task, n=a.n, model=a.model, artist=a.artist, seed=a.seed,
                                candidates=a.candidates, data_root=a.data_root, plan=a.plan), classifier=clf)
            s = ev.summary()
            row = {"variant": name, **changes, "pieces": len(ev.pieces), "wall_s": round(time.perf_counter() - t)}
            row |= {k: round(s[k]["mean"], 3) for k in KEYS if k in s and s[k]["mean"] is not None}
            real = real or {k: round(s["real_" + k]["mean"], 3) for k in KEYS
                            if "real_" + k in s and s["real_" + k]["mean"] is not None}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        options.VERB_DEFAULTS[verb] = base
        if weights is None:
            options.RERANK_WEIGHTS.pop(verb, None)
        else:
            options.RERANK_WEIGHTS[verb] = weights
    who = {"continuation": "the pianist (real next 15 s)", "infill": "the pianist (real 20–40 s)"}
    who = who.get(a.task, "the input")
    print(json.dumps({"variant": who, **(real or {})}), flush=True)
    return rows


if __name__ == "__main__":
    main()

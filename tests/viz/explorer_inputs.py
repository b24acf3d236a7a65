"""Synthetic inputs of the feature explorer: concept clusters in 2-D, token examples, histograms, pairs."""

from __future__ import annotations

import numpy as np

from featgeom_tda.viz.explorer import ExplorerFeature

HOSTILE = "<img src=x onerror=alert(1)>"
CONCEPTS = ["months", "weekdays", "numbers", "code", "punctuation", "names", "places", "colours"]
WORDS = {
    "months": [" January", " February", " March", " April", " May", " June", " July", " August"],
    "weekdays": [" Monday", " Tuesday", " Wednesday", " Thursday", " Friday", " Saturday", " Sunday"],
    "numbers": [" one", " two", " three", " 4", " 5", " 12", " hundred", " million"],
    "code": ["def", " return", "(", "):", " import", " self", "\n", " None"],
    "punctuation": [".", ",", ";", " -", "!", "?", "\"", "'s"],
    "names": [" Alice", " Bob", " Carol", " Dave", " Erin", " Frank", " Grace", " Heidi"],
    "places": [" Paris", " London", " Tokyo", " Rome", " Cairo", " Lima", " Oslo", " Delhi"],
    "colours": [" red", " green", " blue", " yellow", " purple", " orange", " black", " white"],
}
FILLER = [" the", " a", " of", " in", " and", " to", " was", " is", " on", " at", " with", " it", " for", " as"]


def _side(n: int, rng: np.random.Generator, *, n_examples: int, n_tokens: int, n_bins: int, n_out: int,
          vocab_extra: int, hostile_feature: int | None):
    centres = rng.normal(size=(len(CONCEPTS), 2)) * 4.0
    concept = rng.integers(0, len(CONCEPTS), size=n)
    points = centres[concept] + rng.normal(size=(n, 2))
    dead = rng.random(n) < 0.05
    pool = FILLER + [f" w{i}" for i in range(vocab_extra)]
    features = []
    for i in range(n):
        c = CONCEPTS[concept[i]]
        own = WORDS[c]
        top = own[i % len(own)]
        examples = []
        if not dead[i]:
            for e in range(n_examples):
                toks = [pool[j] for j in rng.integers(0, len(pool), size=n_tokens)]
                peak = int(rng.integers(n_tokens // 2, n_tokens))
                toks[peak] = top if e == 0 else own[int(rng.integers(0, len(own)))]
                vals = np.round(np.maximum(rng.normal(0.0, 0.3, size=n_tokens), 0.0), 3)
                vals[peak] = round(4.0 - 0.4 * e + float(rng.random()), 3)
                examples.append((toks, vals.tolist()))
        hist = np.sort(rng.integers(0, 400, size=n_bins))[::-1].tolist() if not dead[i] else []
        promoted = [(top, 3.1)] + [(own[(i + k) % len(own)], round(3.0 - 0.25 * k, 3)) for k in range(1, n_out)]
        suppressed = [(FILLER[(i + k) % len(FILLER)], round(-1.0 - 0.2 * k, 3)) for k in range(n_out)]
        features.append(ExplorerFeature(
            examples=examples, histogram=hist, histogram_range=(0.0, 5.0) if hist else None, promoted=promoted,
            suppressed=suppressed, concept=c, dead=bool(dead[i]), mapper_node=f"cube{concept[i]}_cluster{i % 3}",
        ))
    if hostile_feature is not None:
        f = features[hostile_feature]
        features[hostile_feature] = ExplorerFeature(
            examples=[([" the", HOSTILE, " end"], [0.1, 2.5, 0.0])], histogram=[3, 2, 1], histogram_range=(0.0, 2.5),
            promoted=[(HOSTILE, 2.0), (" ok", 1.0)], suppressed=[(" no", -1.0)], concept=f.concept,
            dead=False, mapper_node=f.mapper_node,
        )
    return points, features, concept, dead


def synthetic_explorer_inputs(n_a: int, n_b: int, *, seed: int = 0, n_examples: int = 6, n_tokens: int = 24,
                              n_bins: int = 24, n_out: int = 8, vocab_extra: int = 0, hostile: bool = True) -> dict:
    """write_explorer keyword arguments: features with concept clusters, pairs between same-concept features
    (about 70% of A's features, some with two partners), feature 1 of A carrying the hostile token."""
    rng = np.random.default_rng(seed)
    kw = dict(n_examples=n_examples, n_tokens=n_tokens, n_bins=n_bins, n_out=n_out, vocab_extra=vocab_extra)
    pa, fa, ca, da = _side(n_a, rng, hostile_feature=1 if hostile else None, **kw)
    pb, fb, cb, db = _side(n_b, rng, hostile_feature=None, **kw)
    by_concept = {c: np.flatnonzero((cb == c) & ~db) for c in range(len(CONCEPTS))}
    pairs = []
    for i in range(n_a):
        if da[i] or rng.random() > 0.7 or not by_concept[ca[i]].size:
            continue
        js = rng.choice(by_concept[ca[i]], size=min(2 if rng.random() < 0.15 else 1, by_concept[ca[i]].size), replace=False)
        for j in js:
            pairs.append((i, int(j), round(float(rng.uniform(0.2, 0.97)), 4)))
    return dict(model_a="model A <b>", model_b="model B", points_a=pa, points_b=pb, features_a=fa, features_b=fb,
                pairs=pairs, title="Feature explorer: synthetic")


def with_crosscoder_labels(inputs: dict, *, seed: int = 0, multi_node: tuple[int, ...] = ()) -> dict:
    """A copy of ``inputs`` whose features carry a crosscoder class (dead features: "none"), latent id and
    correlation, drawn from their own generator; A features in ``multi_node`` sit in two Mapper nodes."""
    import dataclasses

    rng = np.random.default_rng(seed)
    classes = ("shared", "exclusive_a", "exclusive_b", "partial")
    out = dict(inputs)
    for side in ("a", "b"):
        feats = []
        for i, f in enumerate(inputs[f"features_{side}"]):
            changes = {"crosscoder_class": "none"} if f.dead else {
                "crosscoder_class": classes[int(rng.integers(0, len(classes)))],
                "crosscoder_latent": int(rng.integers(0, 1000)),
                "crosscoder_correlation": round(float(rng.uniform(0.1, 0.99)), 4)}
            if side == "a" and i in multi_node:
                changes["mapper_node"] = (f.mapper_node, f"{f.mapper_node}_overlap")
            feats.append(dataclasses.replace(f, **changes))
        out[f"features_{side}"] = feats
    return out

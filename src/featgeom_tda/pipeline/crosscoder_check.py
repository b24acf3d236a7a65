"""Crosscoder against post-hoc SAE matching on synthetic pairs with known shared and private features.

For each shared fraction and seed: draw a synthetic pair; train one acausal TopK crosscoder on both models'
activations (a latent is shared when 0.3 <= r <= 0.7 and exclusive when r < 0.1 or r > 0.9, r the relative
decoder norm); train one TopK SAE per model and match them (a kept pair predicts a shared feature, a live
unmatched latent an exclusive one); score both against the truth (a latent corresponds to a true feature at
decoder cosine >= 0.9). The matching's shared precision and recall are checked against :func:`check_pipeline`'s
scorecard on the same SAEs. ``split`` counts crosscoder latents that look exclusive but sit on a shared
feature; ``flagged`` the exclusive-looking latents that latent scaling says the other model carries.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from featgeom_tda.core._validation import check_positive_int

__all__ = ["crosscoder_truth_rows", "crosscoder_truth_markdown"]

_KEYS = ("precision_shared", "recall_shared", "precision_exclusive", "recall_exclusive")


def _train_options(steps: int, batch_size: int) -> dict[str, Any]:
    # the self-check's SAE training: rows with replacement, no warm-up, no input scaling, lr 1e-2
    return dict(steps=steps, batch_size=batch_size, lr=1e-2, lr_warm_up_steps=0, normalize=False,
                init_b_dec_to_mean=False, dead_feature_window=100, feature_sampling_window=steps + 1,
                sampling="replacement", progress=False)


def _mean(values: list) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return [float(np.nanmean(c)) if np.isfinite(c).any() else float("nan") for c in arr.T]


def crosscoder_truth_rows(
    *, fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), seeds: Sequence[int] = (0,), n_features: int = 24,
    d_a: int = 32, d_b: int = 28, n_samples: int = 20_000, steps: int = 1000, batch_size: int = 2048,
) -> list[dict[str, Any]]:
    """One row per shared fraction (means over ``seeds``): crosscoder and matching precision / recall of shared
    and of exclusive features, split and flagged counts, the crosscoder's per-model FVU."""
    from featgeom_tda.analyses.crosscoder_truth import crosscoder_truth, matching_truth
    from featgeom_tda.pipeline.selfcheck import check_pipeline
    from featgeom_tda.sources.crosscoders import train_crosscoder
    from featgeom_tda.sources.saes import train_sae
    from featgeom_tda.sources.synthetic import make_synthetic_pair

    n_features = check_positive_int(n_features, "n_features", minimum=2)
    train = _train_options(check_positive_int(steps, "steps"), check_positive_int(batch_size, "batch_size"))
    out = []
    for frac in fractions:
        n_shared = int(round(float(frac) * n_features))
        n_private = n_features - n_shared
        acc: dict[str, list] = {"cc": [], "m": [], "split": [], "flag": [], "flag_shared": [], "fvu": []}
        for seed in seeds:
            pair = make_synthetic_pair(n_shared=n_shared, n_private_a=n_private, n_private_b=n_private, d_a=d_a,
                                       d_b=d_b, n_samples=n_samples, seed=seed)
            k_cc = int(math.ceil(float(pair.firing_probabilities.sum()))) + 2
            cc = train_crosscoder(pair.acts_a, pair.acts_b, width=pair.n_union, k=k_cc, seed=seed, **train)
            sc = crosscoder_truth(cc, pair)
            saes = []
            for offset, name in enumerate(("a", "b")):
                acts = pair.model(name)[0]
                k = min(int(math.ceil(pair.expected_l0(name))) + 2, acts.shape[1])
                width = pair.n_features_a if name == "a" else pair.n_features_b
                saes.append(train_sae(acts, width=width, architecture="topk", k=k, inference=False,
                                      seed=seed + offset, **train))
            mt = matching_truth(pair, saes[0], saes[1])
            card = check_pipeline(pair, saes=(saes[0], saes[1]), seed=seed, n_permutations=10, metrics=("cka",))
            for ours, theirs in ((mt.precision_shared, card.precision), (mt.recall_shared, card.recall)):
                if not ((math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) < 1e-12):
                    raise RuntimeError(f"matching truth {ours} disagrees with the self-check's {theirs}")
            metrics = cc.metrics(pair.acts_a, pair.acts_b)
            acc["cc"].append([getattr(sc, key) for key in _KEYS])
            acc["m"].append([getattr(mt, key) for key in _KEYS])
            acc["split"].append(sc.counts["n_exclusive_on_shared_feature"])
            acc["flag"].append(sc.counts["n_flagged_by_scaling"])
            acc["flag_shared"].append(sc.counts["n_flagged_on_shared_feature"])
            acc["fvu"].append([metrics["fvu_a"], metrics["fvu_b"]])
        cc_mean, m_mean, fvu = _mean(acc["cc"]), _mean(acc["m"]), _mean(acc["fvu"])
        out.append({"shared_fraction": float(frac), "n_seeds": len(seeds),
                    "crosscoder": dict(zip(_KEYS, cc_mean)), "matching": dict(zip(_KEYS, m_mean)),
                    "split": float(np.mean(acc["split"])), "flagged": float(np.mean(acc["flag"])),
                    "flagged_on_shared": float(np.mean(acc["flag_shared"])), "fvu_a": fvu[0], "fvu_b": fvu[1]})
    return out


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def crosscoder_truth_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`crosscoder_truth_rows` as a markdown table."""
    lines = ["| shared fraction | crosscoder P/R shared | crosscoder P/R exclusive | split | flagged (on shared) | "
             "FVU a/b | matching P/R shared | matching P/R exclusive |", "|" + "---|" * 8]
    for r in rows:
        c, m = r["crosscoder"], r["matching"]
        lines.append(
            f"| {r['shared_fraction']:.2f} | {_fmt(c['precision_shared'])} / {_fmt(c['recall_shared'])} | "
            f"{_fmt(c['precision_exclusive'])} / {_fmt(c['recall_exclusive'])} | {r['split']:.1f} | "
            f"{r['flagged']:.0f} ({r['flagged_on_shared']:.0f}) | {_fmt(r['fvu_a'])}/{_fmt(r['fvu_b'])} | "
            f"{_fmt(m['precision_shared'])} / {_fmt(m['recall_shared'])} | "
            f"{_fmt(m['precision_exclusive'])} / {_fmt(m['recall_exclusive'])} |"
        )
    return "\n".join(lines)

"""Crosscoders and post-hoc SAE matching scored against the ground truth of a synthetic pair.

A latent *corresponds* to a true feature in model M when the cosine between its decoder row (for a
crosscoder: its block for M) and the feature's direction in M is at least ``cosine_threshold`` (the best
such feature), as in :class:`featgeom_tda.pipeline.selfcheck.Scorecard`.

Both methods predict which latents are shared and which exclusive:

- crosscoder: a live latent classed "shared" by its relative decoder norm (:func:`~featgeom_tda.analyses.
  crosscoder.classify_latents`, default ``0.3 <= r <= 0.7``) predicts a shared feature, and is correct when
  both its blocks correspond to the same shared feature; one classed "exclusive_a" (``r < 0.1``) or
  "exclusive_b" (``r > 0.9``) is correct when its block for that model corresponds to a private feature
  of that model. "partial" latents predict neither.
- matching (two SAEs trained separately, paired by :func:`~featgeom_tda.analyses.matching.match_features`):
  a kept pair predicts a shared feature and is correct when both latents correspond to the same shared
  feature (the Scorecard's precision and recall); a live latent left out of every pair predicts an
  exclusive feature and is correct when it corresponds to a private feature of its model.

Precision: correct predictions / predictions. Recall of "shared": shared features with a correct
prediction / n_shared; of "exclusive": private features (both models) with a correct prediction /
(n_private_a + n_private_b). NaN where a denominator is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from featgeom_tda.analyses.crosscoder import (
    EXCLUSIVE_THRESHOLD,
    SHARED_BAND,
    classify_latents,
    exclusive_but_shared,
    latent_scaling,
    relative_decoder_norm,
)
from featgeom_tda.core._validation import check_choice, check_fraction

__all__ = ["TruthScore", "latent_labels", "crosscoder_truth", "matching_truth"]


@dataclass
class TruthScore:
    """Precision and recall of one method's shared / exclusive predictions against the truth.

    Attributes:
        method: "crosscoder" or "matching".
        precision_shared, recall_shared, precision_exclusive, recall_exclusive: see the module docstring.
        counts: the numbers behind them (predictions, correct ones, features found, ...).
        config: thresholds and options.
    """

    method: str
    precision_shared: float
    recall_shared: float
    precision_exclusive: float
    recall_exclusive: float
    counts: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "method": self.method,
            "precision_shared": clean(self.precision_shared),
            "recall_shared": clean(self.recall_shared),
            "precision_exclusive": clean(self.precision_exclusive),
            "recall_exclusive": clean(self.recall_exclusive),
            "counts": dict(self.counts),
            "config": dict(self.config),
        }


def _check_pair(pair: Any) -> None:
    from featgeom_tda.sources.synthetic import SyntheticPair

    if not isinstance(pair, SyntheticPair):
        raise ValueError(f"pair must be a SyntheticPair from make_synthetic_pair; got {type(pair).__name__}")


def latent_labels(decoder: np.ndarray, directions: np.ndarray, union_index: np.ndarray,
                  cosine_threshold: float) -> np.ndarray:
    """int64 union id of the true feature each decoder row corresponds to (best cosine >= threshold), else -1."""
    cosine_threshold = check_fraction(cosine_threshold, "cosine_threshold")
    dec = np.asarray(decoder, dtype=np.float64)
    truth = np.asarray(directions, dtype=np.float64)
    if dec.shape[1] != truth.shape[1]:
        raise ValueError(f"decoder has {dec.shape[1]} columns but the true directions have {truth.shape[1]}")
    dn = np.linalg.norm(dec, axis=1, keepdims=True)
    tn = np.linalg.norm(truth, axis=1, keepdims=True)
    cos = (dec / np.where(dn > 0, dn, 1.0)) @ (truth / np.where(tn > 0, tn, 1.0)).T
    labels = np.asarray(union_index, dtype=np.int64)[cos.argmax(axis=1)]
    labels[cos.max(axis=1) < cosine_threshold] = -1
    return labels


def _rate(num: int, den: int) -> float:
    return float(num / den) if den else math.nan


def _scores(pair: Any, *, shared_correct_labels: np.ndarray, n_shared_pred: int, excl_labels: np.ndarray,
            n_excl_pred: int) -> tuple[dict[str, float], dict[str, int]]:
    """Rates and counts from the labels of correct shared predictions and of correct exclusive predictions."""
    n_private = pair.n_private_a + pair.n_private_b
    found_shared = np.unique(shared_correct_labels)
    found_private = np.unique(excl_labels)
    rates = {
        "precision_shared": _rate(shared_correct_labels.size, n_shared_pred),
        "recall_shared": _rate(found_shared.size, pair.n_shared),
        "precision_exclusive": _rate(excl_labels.size, n_excl_pred),
        "recall_exclusive": _rate(found_private.size, n_private),
    }
    counts = {
        "n_shared": int(pair.n_shared), "n_private": int(n_private),
        "n_shared_predicted": int(n_shared_pred), "n_shared_correct": int(shared_correct_labels.size),
        "n_shared_found": int(found_shared.size),
        "n_exclusive_predicted": int(n_excl_pred), "n_exclusive_correct": int(excl_labels.size),
        "n_private_found": int(found_private.size),
    }  # fmt: skip
    return rates, counts


def crosscoder_truth(
    crosscoder: Any,
    pair: Any,
    *,
    cosine_threshold: float = 0.9,
    exclusive_threshold: float = EXCLUSIVE_THRESHOLD,
    shared_band: tuple[float, float] = SHARED_BAND,
    scaling: bool = True,
    nu_threshold: float = 0.5,
) -> TruthScore:
    """Score a crosscoder trained on ``(pair.acts_a, pair.acts_b)`` against the pair's true features.

    With ``scaling``, also count the exclusive-looking latents that latent scaling flags as carried by the
    other model (:func:`~featgeom_tda.analyses.crosscoder.exclusive_but_shared`, "activation" target,
    ``nu_threshold``) and how many of them correspond to a shared feature.
    """
    _check_pair(pair)
    wa, wb = crosscoder.decoder_blocks(units="original")
    if wa.shape[1] != pair.acts_a.shape[1] or wb.shape[1] != pair.acts_b.shape[1]:
        raise ValueError(f"crosscoder has d_a={wa.shape[1]}, d_b={wb.shape[1]} but the pair has "
                         f"d_a={pair.acts_a.shape[1]}, d_b={pair.acts_b.shape[1]}")  # fmt: skip
    lab_a = latent_labels(wa, pair.directions_a, pair.union_index_a, cosine_threshold)
    lab_b = latent_labels(wb, pair.directions_b, pair.union_index_b, cosine_threshold)
    z = crosscoder.encode(pair.acts_a, pair.acts_b)
    live = np.bincount(z.indices, minlength=crosscoder.width) > 0
    r = relative_decoder_norm(crosscoder)
    classes = classify_latents(r, exclusive_threshold=exclusive_threshold, shared_band=shared_band, dead=~live)
    ns = pair.n_shared
    shared = classes == "shared"
    ok_shared = shared & (lab_a == lab_b) & (lab_a >= 0) & (lab_a < ns)
    ex_a, ex_b = classes == "exclusive_a", classes == "exclusive_b"
    ok_a, ok_b = ex_a & (lab_a >= ns), ex_b & (lab_b >= ns)
    rates, counts = _scores(
        pair, shared_correct_labels=lab_a[ok_shared], n_shared_pred=int(shared.sum()),
        excl_labels=np.concatenate([lab_a[ok_a], lab_b[ok_b]]), n_excl_pred=int(ex_a.sum() + ex_b.sum()),
    )  # fmt: skip
    side_label = np.where(ex_a, lab_a, np.where(ex_b, lab_b, -1))
    split = (ex_a | ex_b) & (side_label >= 0) & (side_label < ns)
    counts.update({
        "width": int(crosscoder.width), "n_live": int(live.sum()), "n_partial": int((classes == "partial").sum()),
        "n_exclusive_on_shared_feature": int(split.sum()),
    })  # fmt: skip
    if scaling:
        sc = latent_scaling(crosscoder, pair.acts_a, pair.acts_b)
        flagged = exclusive_but_shared(sc, nu_threshold=nu_threshold, exclusive_threshold=exclusive_threshold) & live
        counts["n_flagged_by_scaling"] = int(flagged.sum())
        counts["n_flagged_on_shared_feature"] = int((flagged & split).sum())
    config = {"cosine_threshold": float(cosine_threshold), "exclusive_threshold": float(exclusive_threshold),
              "shared_band": [float(v) for v in shared_band], "scaling": bool(scaling),
              "nu_threshold": float(nu_threshold)}  # fmt: skip
    return TruthScore(method="crosscoder", **rates, counts=counts, config=config)


def matching_truth(
    pair: Any,
    sae_a: Any,
    sae_b: Any,
    *,
    cosine_threshold: float = 0.9,
    threshold: float = 0.5,
    mode: Literal["one-to-one", "many-to-one", "mutual", "optimal"] = "one-to-one",
    method: Literal["auto", "fused", "scipy", "dense"] = "scipy",
) -> TruthScore:
    """Score post-hoc matching of two separately trained SAEs (one per model of ``pair``) against the truth.

    Pairs come from :func:`~featgeom_tda.analyses.matching.match_features` (``mode``, correlation
    ``threshold``, ``method``) on the SAEs' codes of the pair's activations; the shared precision and recall
    are those of :func:`featgeom_tda.pipeline.selfcheck.check_pipeline` with the same options.
    """
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.sources.synthetic import decoder_directions, encode_synthetic

    _check_pair(pair)
    check_choice(mode, "mode", ("one-to-one", "many-to-one", "mutual", "optimal"))
    threshold = check_fraction(threshold, "threshold", open_low=False)
    for sae, name, d in ((sae_a, "sae_a", pair.acts_a.shape[1]), (sae_b, "sae_b", pair.acts_b.shape[1])):
        if not hasattr(sae, "W_dec") or int(sae.W_dec.shape[1]) != d:
            raise ValueError(f"{name} must be an SAE with d_in = {d} (its model's width)")
    lab_a = latent_labels(decoder_directions(sae_a), pair.directions_a, pair.union_index_a, cosine_threshold)
    lab_b = latent_labels(decoder_directions(sae_b), pair.directions_b, pair.union_index_b, cosine_threshold)
    codes_a, codes_b = encode_synthetic(sae_a, pair.acts_a), encode_synthetic(sae_b, pair.acts_b)
    live_a = np.bincount(codes_a.matrix.indices, minlength=lab_a.size) > 0
    live_b = np.bincount(codes_b.matrix.indices, minlength=lab_b.size) > 0
    matching = match_features(codes_a, codes_b, mode=mode, threshold=threshold, method=method)
    ia, ib = np.asarray(matching.index_a, dtype=np.int64), np.asarray(matching.index_b, dtype=np.int64)
    ua, ub = lab_a[ia], lab_b[ib]
    ns = pair.n_shared
    correct = (ua == ub) & (ua >= 0) & (ua < ns)
    free_a = live_a & ~np.isin(np.arange(lab_a.size), ia)
    free_b = live_b & ~np.isin(np.arange(lab_b.size), ib)
    ok_a, ok_b = free_a & (lab_a >= ns), free_b & (lab_b >= ns)
    rates, counts = _scores(
        pair, shared_correct_labels=ua[correct], n_shared_pred=int(ia.size),
        excl_labels=np.concatenate([lab_a[ok_a], lab_b[ok_b]]), n_excl_pred=int(free_a.sum() + free_b.sum()),
    )  # fmt: skip
    counts.update({"width_a": int(lab_a.size), "width_b": int(lab_b.size), "n_live_a": int(live_a.sum()),
                   "n_live_b": int(live_b.sum())})  # fmt: skip
    config = {"cosine_threshold": float(cosine_threshold), "threshold": threshold, "mode": mode, "method": method}
    return TruthScore(method="matching", **rates, counts=counts, config=config)

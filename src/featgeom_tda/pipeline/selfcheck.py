"""The synthetic self-check: matching and geometry scored against known ground truth.

:func:`check_pipeline` trains SAEs on both models of a :class:`~featgeom_tda.sources.synthetic.SyntheticPair`,
matches their latents with :func:`featgeom_tda.analyses.matching.match_features`, then scores precision /
recall of the matching and the similarity of shared vs private subspaces with
:mod:`featgeom_tda.analyses.geometry`, each against a random-pairing permutation null.
:mod:`featgeom_tda.pipeline.selfcheck_sweep` repeats it over shared fractions and SAE widths.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from featgeom_tda.core._validation import check_choice, check_fraction, check_positive_int
from featgeom_tda.sources.synthetic import (
    RecoveryReport,
    SyntheticPair,
    decoder_directions,
    encode_synthetic,
    make_synthetic_pair,
    sae_recovery,
)

__all__ = ["Scorecard", "check_pipeline"]

logger = logging.getLogger(__name__)

Architecture = Literal["topk", "standard"]
GEOMETRY_METRICS = ("svcca", "cka", "rsa")
# Decoder rows are compared up to each model's rotation: the cosine RDM is rotation invariant, the
# correlation RDM (rows centred over their coordinates) is not.
DEFAULT_METRIC_OPTIONS: dict[str, dict[str, Any]] = {"rsa": {"rdm": "cosine"}}



def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}"


def _fmt_p(p: Any) -> str:
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    return f"{float(p):.3f}" if p >= 0.001 else f"{float(p):.1e}"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Scorecard:
    """Matching and geometry of two synthetic models' SAEs, scored against the ground truth.

    A latent *corresponds* to a true feature when the cosine between its decoder row and the feature's
    direction is at least ``cosine_threshold`` (the best such feature). A matched pair is *correct* when
    both latents correspond to the same shared feature.

    Attributes:
        precision: correct pairs / kept pairs (NaN without pairs).
        precision_same_feature: kept pairs whose two latents have the same shared feature as their best
            match, at any cosine / kept pairs (separates wrong partners from imperfect or split latents).
        recall: shared features with at least one correct pair / n_shared (NaN without shared features).
        recall_recovered: the same over shared features that both SAEs recovered (separates matching
            errors from SAE errors).
        private_fp_rate: latents corresponding to private features that appear in a kept pair / all such
            latents, over both SAEs (NaN without private latents).
        geometry: subspace ("shared", "private", "matched") -> metric -> {"score", "null_mean", "null_std",
            "z_score", "p_value", "n_rows"}; "shared" pairs the best latents of each shared feature by the
            truth, "private" pairs the best latents of A's and B's private features in index order (an
            arbitrary pairing: one draw from the null, so its p-value is uniform and its z-score small),
            "matched" uses the kept pairs of the matching. With no more rows than dimensions SVCCA
            saturates at 1 for every pairing (z = 0, p = 1).
        recovery_a, recovery_b: :class:`RecoveryReport` of each SAE.
        matching: the :class:`~featgeom_tda.core.types.FeatureMatching` that was scored.
        counts: pair and latent counts behind the rates.
        config: options of the run and of the generator.
    """

    precision: float
    precision_same_feature: float
    recall: float
    recall_recovered: float
    private_fp_rate: float
    geometry: dict[str, dict[str, dict[str, float]]]
    recovery_a: RecoveryReport
    recovery_b: RecoveryReport
    matching: Any
    counts: dict[str, int]
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (NaN -> None)."""
        return _nan_to_none(
            {
                "precision": self.precision,
                "precision_same_feature": self.precision_same_feature,
                "recall": self.recall,
                "recall_recovered": self.recall_recovered,
                "private_fp_rate": self.private_fp_rate,
                "counts": dict(self.counts),
                "geometry": self.geometry,
                "recovery_a": self.recovery_a.to_dict(),
                "recovery_b": self.recovery_b.to_dict(),
                "matching": self.matching.to_dict(),
                "config": self.config,
            }
        )

    def to_markdown(self) -> str:
        """Two markdown tables: matching vs truth, and subspace similarity vs the random-pairing null."""
        c = self.counts
        summary = [
            ("SAE recovery MCC (A / B)", f"{_fmt(self.recovery_a.mcc)} / {_fmt(self.recovery_b.mcc)}"),
            ("dead latents (A / B)", f"{_fmt(self.recovery_a.dead_fraction)} / {_fmt(self.recovery_b.dead_fraction)}"),
            ("kept pairs (correct)", f"{c['n_pairs']} ({c['n_correct']})"),
            ("precision (both latents at cosine >= threshold)", _fmt(self.precision)),
            ("precision (same best feature, any cosine)", _fmt(self.precision_same_feature)),
            ("recall (all shared)", f"{_fmt(self.recall)} of {c['n_shared']}"),
            ("recall (shared, recovered by both SAEs)", f"{_fmt(self.recall_recovered)} of {c['n_shared_recovered']}"),
            ("private false-positive rate", f"{_fmt(self.private_fp_rate)} ({c['n_private_matched']} of "
             f"{c['n_private_latents']} private latents)"),
        ]  # fmt: skip
        parts = [
            _markdown_table(["matching vs truth", "value"], [list(r) for r in summary]),
            "",
            _markdown_table(
                ["subspace", "metric", "rows", "score", "null mean ± std", "z", "p"],
                [
                    [
                        subspace,
                        metric,
                        str(r["n_rows"]),
                        _fmt(r["score"]),
                        f"{_fmt(r['null_mean'])} ± {_fmt(r['null_std'])}",
                        _fmt(r["z_score"], 1),
                        _fmt_p(r["p_value"]),
                    ]
                    for subspace, by_metric in self.geometry.items()
                    for metric, r in by_metric.items()
                ],
            ),
        ]
        return "\n".join(parts)


def _latent_labels(report: RecoveryReport, union_index: np.ndarray, cosine_threshold: float) -> np.ndarray:
    """Union id of the true feature each latent corresponds to, -1 where its best cosine is too low."""
    labels = union_index[report.latent_to_true].astype(np.int64)
    labels[report.latent_cosine < cosine_threshold] = -1
    return labels


def _best_latents(report: RecoveryReport, features: np.ndarray, cosine_threshold: float) -> np.ndarray:
    """Best latent of each true feature in ``features``, -1 where none reaches the threshold."""
    best = report.true_to_latent[features].astype(np.int64)
    best[report.true_cosine[features] < cosine_threshold] = -1
    return best


def _z_score(score: float, null_mean: float, null_std: float) -> float:
    """(score - null mean) / null std; 0 when a spread-less null equals the score (a saturated metric)."""
    if null_std > 0:
        return float((score - null_mean) / null_std)
    return 0.0 if score <= null_mean + 1e-9 * max(1.0, abs(null_mean)) else math.inf


def _geometry_scores(
    X: np.ndarray,
    Y: np.ndarray,
    metrics: Sequence[str],
    *,
    n_permutations: int,
    seed: int,
    min_rows: int,
    metric_options: dict[str, dict[str, Any]],
) -> dict[str, dict[str, float]]:
    from featgeom_tda.analyses.geometry import permutation_test

    out: dict[str, dict[str, float]] = {}
    n = int(X.shape[0])
    for i, metric in enumerate(metrics):
        if n < min_rows:
            out[metric] = {"score": math.nan, "null_mean": math.nan, "null_std": math.nan, "p_value": math.nan,
                           "z_score": math.nan, "n_rows": n}  # fmt: skip
            continue
        options = metric_options.get(metric, {})
        res = permutation_test(metric, X, Y, n_permutations=n_permutations, seed=seed + i, **options)
        out[metric] = {
            "score": float(res.score),
            "null_mean": float(res.null_mean),
            "null_std": float(res.null_std),
            "p_value": float(res.p_value),
            "z_score": _z_score(res.score, res.null_mean, res.null_std),
            "n_rows": n,
        }
    return out



def _train_synthetic_sae(acts: Any, *, width: int, architecture: str, k: int, l1_coefficient: float, steps: int,
                         batch_size: int, lr: float, seed: int, progress: bool) -> Any:
    """An SAE trained on a fixed activation matrix: rows drawn with replacement, no warm-up, no input scaling."""
    from featgeom_tda.sources.saes import train_sae

    return train_sae(
        acts, width=width, architecture=architecture, k=k, l1_coefficient=l1_coefficient, steps=steps,
        batch_size=batch_size, lr=lr, lr_warm_up_steps=0, normalize=False, init_b_dec_to_mean=False,
        dead_feature_window=100, feature_sampling_window=max(steps + 1, 2), sampling="replacement",
        inference=False, seed=seed, progress=progress,
    )  # fmt: skip


def _metric_options(metric_options: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    options = {name: dict(opts) for name, opts in DEFAULT_METRIC_OPTIONS.items()}
    for name, opts in (metric_options or {}).items():
        if not isinstance(opts, dict):
            raise ValueError(f"metric_options[{name!r}] must be a dict of keyword options; got {type(opts).__name__}")
        options[name] = {**options.get(name, {}), **opts}
    return options


def _matching_options(matching_options: dict[str, Any] | None) -> dict[str, Any]:
    out = dict({"method": "scipy"} if matching_options is None else matching_options)
    clash = set(out) & {"mode", "threshold", "progress"}
    if clash:
        raise ValueError(f"matching_options must not set {sorted(clash)}; they are arguments of check_pipeline")
    return out


def _checked_run_options(*, architecture: str, mode: str, threshold: float, cosine_threshold: float,
                         n_permutations: int, seed: int, min_rows: int, metrics: Sequence[str]) -> tuple:
    """Validated (threshold, cosine_threshold, n_permutations, seed, min_rows, metrics) of a check."""
    check_choice(architecture, "architecture", ("topk", "standard"))
    check_choice(mode, "mode", ("one-to-one", "many-to-one", "mutual"))
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric; got an empty sequence")
    return (
        check_fraction(threshold, "threshold", open_low=False),
        check_fraction(cosine_threshold, "cosine_threshold"),
        check_positive_int(n_permutations, "n_permutations"),
        check_positive_int(seed, "seed", minimum=0),
        check_positive_int(min_rows, "min_rows", minimum=3),
        metrics,
    )


def _sae_sizes(pair: SyntheticPair, width_multiple: float, k: int | None) -> tuple[dict[str, int], dict[str, int]]:
    """SAE width and k of each model: ``k`` defaults to ``ceil(expected L0) + 2``, capped at the width."""
    if not (isinstance(width_multiple, (int, float)) and math.isfinite(width_multiple) and width_multiple > 0):
        raise ValueError(f"width_multiple must be a positive number; got {width_multiple!r}")
    widths = {name: max(1, int(round(width_multiple * n))) for name, n in (("a", pair.n_features_a), ("b", pair.n_features_b))}
    ks = {}
    for name in ("a", "b"):
        kk = k if k is not None else int(math.ceil(pair.expected_l0(name))) + 2
        ks[name] = min(int(kk), widths[name])
    return widths, ks


def _pair_of_saes(pair: SyntheticPair, saes: tuple[Any, Any] | None, *, widths: dict[str, int],
                  ks: dict[str, int], seed: int, **training: Any) -> tuple[Any, Any]:
    """The given ``(sae_a, sae_b)`` checked against the models, or two newly trained (seeds seed, seed + 1)."""
    if saes is None:
        trained = [
            _train_synthetic_sae(pair.model(name)[0], width=widths[name], k=ks[name], seed=seed + offset, **training)
            for offset, name in enumerate(("a", "b"))
        ]
        return trained[0], trained[1]
    if len(saes) != 2:
        raise ValueError(f"saes must be a pair (sae_a, sae_b); got {len(saes)} items")
    for sae, name, d in ((saes[0], "saes[0]", pair.acts_a.shape[1]), (saes[1], "saes[1]", pair.acts_b.shape[1])):
        if int(sae.W_dec.shape[1]) != d:
            raise ValueError(f"{name} has d_in {int(sae.W_dec.shape[1])} but its model has width {d}")
    return saes[0], saes[1]


def _match(pair: SyntheticPair, saes: tuple[Any, Any], *, seed: int, **options: Any) -> Any:
    """Latents of the two SAEs on their models' activations, matched by correlation."""
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.core.types import Provenance

    codes_a = encode_synthetic(saes[0], pair.acts_a, provenance=Provenance(model="synthetic-a", sae_id="sae-a", seed=seed))
    codes_b = encode_synthetic(saes[1], pair.acts_b, provenance=Provenance(model="synthetic-b", sae_id="sae-b", seed=seed + 1))
    return match_features(codes_a, codes_b, **options)


def _matching_scores(pair: SyntheticPair, rec_a: RecoveryReport, rec_b: RecoveryReport, matching: Any,
                     cosine_threshold: float) -> tuple[dict[str, float], dict[str, int], dict[str, np.ndarray]]:
    """(rates, counts, best latents) of a matching scored against the truth."""
    n_shared = pair.n_shared
    lab_a = _latent_labels(rec_a, pair.union_index_a, cosine_threshold)
    lab_b = _latent_labels(rec_b, pair.union_index_b, cosine_threshold)
    ua, ub = lab_a[matching.index_a], lab_b[matching.index_b]
    correct = (ua == ub) & (ua >= 0) & (ua < n_shared)
    best_a = pair.union_index_a[rec_a.latent_to_true][matching.index_a]
    best_b = pair.union_index_b[rec_b.latent_to_true][matching.index_b]
    same_feature = (best_a == best_b) & (best_a < n_shared)
    n_pairs = len(matching)
    found = np.unique(ua[correct])
    shared_best_a = _best_latents(rec_a, pair.shared_a, cosine_threshold)
    shared_best_b = _best_latents(rec_b, pair.shared_b, cosine_threshold)
    recovered_both = np.flatnonzero((shared_best_a >= 0) & (shared_best_b >= 0))
    private_lat_a = np.flatnonzero(lab_a >= n_shared)
    private_lat_b = np.flatnonzero(lab_b >= n_shared)
    n_private_latents = private_lat_a.size + private_lat_b.size
    n_private_matched = int(
        np.isin(private_lat_a, matching.index_a).sum() + np.isin(private_lat_b, matching.index_b).sum()
    )
    counts = {
        "n_pairs": int(n_pairs),
        "n_correct": int(correct.sum()),
        "n_same_feature": int(same_feature.sum()),
        "n_wrong_shared": int(((ua != ub) & (ua >= 0) & (ua < n_shared) & (ub >= 0) & (ub < n_shared)).sum()),
        "n_with_private": int(((ua >= n_shared) | (ub >= n_shared)).sum()),
        "n_with_unlabelled": int(((ua < 0) | (ub < 0)).sum()),
        "n_shared": int(n_shared),
        "n_shared_found": int(found.size),
        "n_shared_recovered": int(recovered_both.size),
        "n_private_latents": int(n_private_latents),
        "n_private_matched": n_private_matched,
    }
    rates = {
        "precision": float(correct.sum() / n_pairs) if n_pairs else math.nan,
        "precision_same_feature": float(same_feature.sum() / n_pairs) if n_pairs else math.nan,
        "recall": float(found.size / n_shared) if n_shared else math.nan,
        "recall_recovered": (
            float(np.isin(recovered_both, found).sum() / recovered_both.size) if recovered_both.size else math.nan
        ),
        "private_fp_rate": float(n_private_matched / n_private_latents) if n_private_latents else math.nan,
    }
    best = {"shared_a": shared_best_a, "shared_b": shared_best_b, "both": recovered_both}
    return rates, counts, best


def _subspaces(pair: SyntheticPair, saes: tuple[Any, Any], recs: tuple[RecoveryReport, RecoveryReport],
               matching: Any, best: dict[str, np.ndarray], cosine_threshold: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decoder rows of the shared (paired by the truth), private (index order) and matched subspaces."""
    dec_a, dec_b = decoder_directions(saes[0]), decoder_directions(saes[1])
    both = best["both"]
    priv_a = _best_latents(recs[0], pair.private_a, cosine_threshold)
    priv_b = _best_latents(recs[1], pair.private_b, cosine_threshold)
    priv_a, priv_b = priv_a[priv_a >= 0], priv_b[priv_b >= 0]
    m = min(priv_a.size, priv_b.size)
    return {
        "shared": (dec_a[best["shared_a"][both]], dec_b[best["shared_b"][both]]),
        "private": (dec_a[priv_a[:m]], dec_b[priv_b[:m]]),
        "matched": (dec_a[matching.index_a], dec_b[matching.index_b]),
    }


def check_pipeline(
    pair: SyntheticPair,
    *,
    width_multiple: float = 1.0,
    architecture: Architecture = "topk",
    threshold: float = 0.5,
    n_permutations: int = 200,
    seed: int = 0,
    mode: Literal["one-to-one", "many-to-one", "mutual"] = "one-to-one",
    cosine_threshold: float = 0.9,
    k: int | None = None,
    l1_coefficient: float = 0.3,
    steps: int = 1000,
    batch_size: int = 2048,
    lr: float = 1e-2,
    metrics: Sequence[str] = GEOMETRY_METRICS,
    metric_options: dict[str, dict[str, Any]] | None = None,
    min_rows: int = 5,
    matching_options: dict[str, Any] | None = None,
    saes: tuple[Any, Any] | None = None,
    progress: bool = False,
) -> Scorecard:
    """Train SAEs on both synthetic models, match their latents, and score the result against the truth.

    Args:
        pair: from :func:`~featgeom_tda.sources.synthetic.make_synthetic_pair`.
        width_multiple: SAE width as a multiple of each model's number of true features.
        architecture, k, l1_coefficient, steps, batch_size, lr: SAE training with
            :func:`featgeom_tda.sources.saes.train_sae` (rows drawn with replacement, lr decaying to lr / 10);
            ``k`` defaults to ``ceil(expected L0) + 2`` per model.
        threshold, mode: correlation threshold and mode of :func:`featgeom_tda.analyses.matching.match_features`.
        n_permutations: permutations per similarity null (smallest p-value ``1 / (1 + n_permutations)``).
        seed: seed of SAE training (A uses ``seed``, B ``seed + 1``) and of the permutation nulls.
        cosine_threshold: decoder-to-truth cosine at which a latent corresponds to a true feature.
        metrics: similarity metrics for :func:`featgeom_tda.analyses.geometry.permutation_test`.
        metric_options: metric name -> keyword options, merged over the default ``{"rsa": {"rdm": "cosine"}}``.
        matching_options: further keyword options of ``match_features``; default ``{"method": "scipy"}``
            (exact, and as fast as any method at these sizes; the compiled parallel kernel leaves OpenMP
            threads spinning that slow later torch training in the same process many times over).
        min_rows: subspaces with fewer paired rows are reported as NaN.
        saes: already trained ``(sae_a, sae_b)`` to score instead of training new ones.
        progress: progress bars.
    """
    if not isinstance(pair, SyntheticPair):
        raise ValueError(f"pair must be a SyntheticPair from make_synthetic_pair; got {type(pair).__name__}")
    widths, ks = _sae_sizes(pair, width_multiple, k)
    threshold, cosine_threshold, n_permutations, seed, min_rows, metrics = _checked_run_options(
        architecture=architecture, mode=mode, threshold=threshold, cosine_threshold=cosine_threshold,
        n_permutations=n_permutations, seed=seed, min_rows=min_rows, metrics=metrics,
    )  # fmt: skip
    options, match_options = _metric_options(metric_options), _matching_options(matching_options)

    sae_a, sae_b = _pair_of_saes(
        pair, saes, widths=widths, ks=ks, seed=seed, architecture=architecture, l1_coefficient=l1_coefficient,
        steps=steps, batch_size=batch_size, lr=lr, progress=progress,
    )  # fmt: skip
    rec_a, rec_b = (sae_recovery(sae, truth, acts, threshold=cosine_threshold)
                    for sae, truth, acts in ((sae_a, pair.directions_a, pair.acts_a), (sae_b, pair.directions_b, pair.acts_b)))
    matching = _match(pair, (sae_a, sae_b), seed=seed, mode=mode, threshold=threshold, progress=progress, **match_options)

    rates, counts, best = _matching_scores(pair, rec_a, rec_b, matching, cosine_threshold)
    counts.update({"width_a": widths["a"], "width_b": widths["b"], "k_a": ks["a"], "k_b": ks["b"]})
    subspaces = _subspaces(pair, (sae_a, sae_b), (rec_a, rec_b), matching, best, cosine_threshold)
    geometry = {
        name: _geometry_scores(X, Y, metrics, n_permutations=n_permutations, seed=seed + 100 * j, min_rows=min_rows,
                               metric_options=options)
        for j, (name, (X, Y)) in enumerate(subspaces.items())
    }  # fmt: skip
    config = {
        "width_multiple": float(width_multiple), "architecture": architecture, "threshold": threshold,
        "n_permutations": n_permutations, "seed": seed, "mode": mode, "cosine_threshold": cosine_threshold,
        "k": k, "l1_coefficient": float(l1_coefficient), "steps": int(steps), "batch_size": int(batch_size),
        "lr": float(lr), "metrics": list(metrics), "metric_options": options, "min_rows": min_rows,
        "matching_options": {key: repr(v) for key, v in match_options.items()}, "trained_here": saes is None,
        "pair": dict(pair.config),
    }  # fmt: skip
    return Scorecard(
        **rates, geometry=geometry, recovery_a=rec_a, recovery_b=rec_b, matching=matching, counts=counts, config=config
    )


# ================================================================================================
# Sweeps
# ================================================================================================

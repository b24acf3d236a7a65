"""Do the features of one concept (royalty, months, colours, ...) span similar subspaces in two models?

:func:`compare_concept_subspaces` takes the feature directions of both sides (FeatureWeights, e.g. SAE decoder
rows), concept labels per side (``{concept: feature indices}``, as made by ``featgeom_tda.analyses.interpret``) and,
optionally, a :class:`~featgeom_tda.core.types.FeatureMatching`. Two modes:

- **matched** (a matching is given): the pairs of the matching whose feature carries the concept's label on BOTH
  sides give paired rows ``X = W_a[index_a]``, ``Y = W_b[index_b]``; each requested paired metric (SVCCA, CKA,
  RSA, ...) is scored with its random-pairing permutation null (:func:`~featgeom_tda.analyses.geometry.permutation_test`).
  This works across models whose residual bases differ, because the paired metrics compare within-side
  geometry.
- **unpaired** (no matching): the rows have no pairing, so the paired metrics do not apply. The two subspaces
  spanned by the concept's directions are compared by their principal angles (mean cosine,
  :func:`principal_angle_similarity`), with a null of random feature subsets of the same sizes from all features
  of each side. Principal angles assume both sides live in one coordinate system (same model and hook, e.g. two
  SAEs of different widths); across models pass a matching. Sides of different widths are skipped with that
  reason.

:func:`compare_rematched_subspaces` is the variant of the original experiments: each side's concept features are
selected on their own (by keyword, e.g. with :func:`featgeom_tda.analyses.interpret.feature_concepts`), the two
selections are **re-matched** among themselves (the given matcher run on the activations restricted to those
feature columns), and the re-matched pairs' rows are scored against the within-concept permutation null (random
pairings among the concept's re-matched pairs). Its results have ``pairing="rematched"``.

Concepts with too few features (or matched pairs) are skipped with the reason recorded, never silently.
Each concept draws its null from its own seed, ``SeedSequence([seed, crc32(concept)])``, so results do not
depend on the order of the concepts; all metrics of one concept share that seed (the same permutations).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom_tda.core._linalg import svd
from featgeom_tda.core._validation import as_float_matrix, check_positive_int
from featgeom_tda.analyses.geometry.baselines import (
    METRIC_NAMES,
    _check_null_memory,
    _jsonable,
    _resolve,
    check_metric_options,
    permutation_test,
    random_subset_baseline,
)
from featgeom_tda.core.types import FeatureMatching, as_activations, as_weights

__all__ = [
    "SubspaceResult",
    "compare_concept_subspaces",
    "compare_rematched_subspaces",
    "principal_angle_cosines",
    "principal_angle_similarity",
]

UNPAIRED_METRIC = "principal_angles"


@dataclass
class SubspaceResult:
    """Comparison of one concept's subspaces.

    Attributes:
        concept: concept name.
        pairing: ``"matched"``, ``"unpaired"`` or ``"rematched"`` (:func:`compare_rematched_subspaces`).
        n_features_a, n_features_b: features labelled with the concept on each side.
        n_pairs: matched pairs with the label on both sides (0 in unpaired mode).
        scores, nulls, null_means, null_stds, p_values: per metric name. p-values are
            ``(1 + #(null >= score)) / (1 + n_null)``.
        null_kind: ``"permutation"`` (random pairing of the concept's pairs) or ``"random_subsets"`` (random
            features of the same sizes).
        skipped: why the concept was not compared, else None.
        metric_errors: metric name -> why that metric could not be computed (the others still were); a
            saturated SVCCA (``k_x + k_y > n_pairs - 1``) is one such error, never a score.
        details: metric name -> what its score was computed from (SVCCA: k_x, k_y, n_rows, n_forced, rule, ...).
        seed: seed of this concept's null.
        mean_correlation: mean activation correlation of the re-matched pairs (``"rematched"`` only).
    """

    concept: str
    pairing: str
    n_features_a: int
    n_features_b: int
    n_pairs: int
    scores: dict[str, float] = field(default_factory=dict)
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    null_means: dict[str, float] = field(default_factory=dict)
    null_stds: dict[str, float] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    null_kind: str = "permutation"
    skipped: str | None = None
    metric_errors: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    mean_correlation: float | None = None

    @property
    def compared(self) -> bool:
        return self.skipped is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "pairing": self.pairing,
            "n_features_a": int(self.n_features_a),
            "n_features_b": int(self.n_features_b),
            "n_pairs": int(self.n_pairs),
            "scores": {k: float(v) for k, v in self.scores.items()},
            "nulls": {k: [float(x) for x in v] for k, v in self.nulls.items()},
            "null_means": {k: float(v) for k, v in self.null_means.items()},
            "null_stds": {k: float(v) for k, v in self.null_stds.items()},
            "p_values": {k: float(v) for k, v in self.p_values.items()},
            "null_kind": self.null_kind,
            "skipped": self.skipped,
            "metric_errors": dict(self.metric_errors),
            "details": _jsonable(self.details),
            "seed": int(self.seed),
            "options": _jsonable(self.options),
            "mean_correlation": None if self.mean_correlation is None else float(self.mean_correlation),
        }


def _row_span_basis(A: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x r) of the span of the rows of A (n x d), r = numerical rank."""
    _, s, Vt = svd(A, full_matrices=False)
    if s.size == 0 or not s[0] > 0:
        return np.zeros((A.shape[1], 0))
    r = int(np.count_nonzero(s > s[0] * max(A.shape) * np.finfo(np.float64).eps))
    return Vt[:r].T


def principal_angle_cosines(A: Any, B: Any) -> np.ndarray:
    """Cosines of the principal angles between the spans of the rows of A and of B (no centring).

    Args:
        A: (n_a, d) directions; B: (n_b, d) directions in the same coordinates.
    Returns:
        (min(rank A, rank B),) descending values in [0, 1].
    """
    Aa = as_float_matrix(A, "A")
    Ba = as_float_matrix(B, "B")
    if Aa.shape[1] != Ba.shape[1]:
        raise ValueError(
            f"A has {Aa.shape[1]} columns but B has {Ba.shape[1]}; principal angles need directions in one space"
        )
    Qa, Qb = _row_span_basis(Aa), _row_span_basis(Ba)
    for name, Q in (("A", Qa), ("B", Qb)):
        if Q.shape[1] == 0:
            raise ValueError(f"{name} has only zero rows; its span is empty")
    return np.clip(svd(Qa.T @ Qb, compute_uv=False), 0.0, 1.0)


def principal_angle_similarity(A: Any, B: Any) -> float:
    """Mean cosine of the principal angles between the row spans of A (n_a, d) and B (n_b, d); in [0, 1]."""
    return float(principal_angle_cosines(A, B).mean())


def _check_concept_options(labels_a: Any, labels_b: Any, n_a: int, n_b: int, metrics: Any, metric_options: Any,
                           min_features: Any, n_permutations: Any, seed: Any) -> tuple:
    """The checked labels, metric names and options, ``min_features`` and ``n_permutations`` of a concept comparison."""
    la = _check_labels(labels_a, "labels_a", n_a)
    lb = _check_labels(labels_b, "labels_b", n_b)
    names, options = _check_metrics(metrics, metric_options)
    min_features = check_positive_int(min_features, "min_features", minimum=2)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return la, lb, names, options, min_features, n_permutations


def _check_labels(labels: Any, name: str, n_features: int) -> dict[str, np.ndarray]:
    if not isinstance(labels, dict):
        raise ValueError(f"{name} must be a dict concept -> feature indices; got {type(labels).__name__}")
    out: dict[str, np.ndarray] = {}
    for concept, idx in labels.items():
        if not isinstance(concept, str):
            raise ValueError(f"{name} keys must be concept names (str); got {concept!r}")
        arr = np.asarray(idx)
        if arr.size == 0:
            out[concept] = np.zeros(0, dtype=np.int64)
            continue
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name}[{concept!r}] must be a 1-D list of integer feature indices; got {arr.dtype} "
                             f"of shape {arr.shape}")
        if arr.min() < 0 or arr.max() >= n_features:
            raise ValueError(
                f"{name}[{concept!r}] has feature indices outside [0, {n_features}) (min {arr.min()}, "
                f"max {arr.max()}); the weights have {n_features} features"
            )
        out[concept] = np.unique(arr.astype(np.int64))
    return out


def _concept_seed(seed: int, concept: str) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(concept.encode("utf-8"))]).generate_state(1)[0])


def _check_metrics(metrics: Any, metric_options: Any) -> tuple[tuple[str, ...], dict[str, dict[str, Any]]]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise ValueError(f"metrics must be a sequence of metric names; got {metrics!r}") from None
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    names = []
    for m in metrics:
        if not isinstance(m, str):
            raise ValueError(f"metrics must be names from {METRIC_NAMES}; got {m!r}")
        names.append(_resolve(m).name)
    options = {} if metric_options is None else metric_options
    if not isinstance(options, dict):
        raise ValueError(f"metric_options must be a dict metric name -> options dict; got {type(options).__name__}")
    resolved: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if key == UNPAIRED_METRIC:
            raise ValueError(f"principal angles take no options; got metric_options[{key!r}]={value!r}")
        name = _resolve(key).name
        if name not in names:
            raise ValueError(f"metric_options has options for {key!r}, which is not in metrics {tuple(names)}")
        if not isinstance(value, dict):
            raise ValueError(f"metric_options[{key!r}] must be a dict of keyword options; got {value!r}")
        check_metric_options(name, value)
        resolved[name] = dict(value)
    return tuple(dict.fromkeys(names)), resolved


def _record(result: SubspaceResult, name: str, score: float, null: np.ndarray, p_value: float) -> None:
    result.scores[name] = float(score)
    result.nulls[name] = null
    result.null_means[name] = float(null.mean())
    result.null_stds[name] = float(null.std())
    result.p_values[name] = float(p_value)


def compare_concept_subspaces(
    weights_a: Any,
    weights_b: Any,
    labels_a: dict[str, Any],
    labels_b: dict[str, Any],
    *,
    metrics: Any = ("svcca", "cka", "rsa"),
    min_features: int = 5,
    n_permutations: int = 1000,
    seed: int = 0,
    matching: FeatureMatching | None = None,
    metric_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> list[SubspaceResult]:
    """Compare each concept's feature subspace in side a with the same concept's in side b.

    Args:
        weights_a: (n_features_a, d_a) FeatureWeights / array of feature directions; weights_b likewise.
        labels_a, labels_b: concept -> feature indices into weights_a / weights_b.
        metrics: paired metric names used in matched mode (``"svcca"``, ``"cka"``, ``"rsa"``, ``"procrustes"``,
            ``"knn_jaccard"``, ``"mutual_knn"``). Unpaired mode always uses ``"principal_angles"``.
        min_features: fewest matched pairs (matched mode) or features per side (unpaired mode) to compare.
        n_permutations: null size (permutations, or random subset draws in unpaired mode).
        seed: base seed; each concept uses ``SeedSequence([seed, crc32(concept)])``.
        matching: pairs of features; selects the mode (see the module docstring).
        metric_options: metric name -> keyword options, e.g. ``{"rsa": {"rdm": "cosine"}}``. SVCCA keeps by default
            at most ``max(1, n_pairs // 4)`` components a side; a saturated choice is a metric error.
    Returns:
        One :class:`SubspaceResult` per concept (concepts of labels_a in order, then those only in labels_b).
    """
    Wa = as_weights(weights_a, "weights_a").weights
    Wb = as_weights(weights_b, "weights_b").weights
    la, lb, names, options, min_features, n_permutations = _check_concept_options(
        labels_a, labels_b, Wa.shape[0], Wb.shape[0], metrics, metric_options, min_features, n_permutations, seed)
    if matching is not None:
        if not isinstance(matching, FeatureMatching):
            raise ValueError(f"matching must be a FeatureMatching or None; got {type(matching).__name__}")
        for side, idx, n in (("a", matching.index_a, Wa.shape[0]), ("b", matching.index_b, Wb.shape[0])):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(
                    f"matching.index_{side} has indices outside [0, {n}); weights_{side} has {n} features"
                )

    concepts = list(la) + [c for c in lb if c not in la]
    n_nulls = len(concepts) * (len(names) if matching is not None else 1)
    _check_null_memory(n_permutations, "n_permutations", copies=n_nulls,
                       what=f"{n_nulls} nulls ({len(concepts)} concepts)")
    run_options = {"metrics": list(names), "min_features": min_features, "n_permutations": n_permutations,
                   "seed": int(seed), "metric_options": options}
    results = []
    for concept in concepts:
        fa = la.get(concept, np.zeros(0, dtype=np.int64))
        fb = lb.get(concept, np.zeros(0, dtype=np.int64))
        result = SubspaceResult(
            concept=concept,
            pairing="matched" if matching is not None else "unpaired",
            n_features_a=int(fa.size),
            n_features_b=int(fb.size),
            n_pairs=0,
            null_kind="permutation" if matching is not None else "random_subsets",
            seed=_concept_seed(int(seed), concept),
            options=run_options,
        )
        results.append(result)
        missing = [side for side, f in (("labels_a", fa), ("labels_b", fb)) if f.size == 0]
        if missing:
            result.skipped = f"no features labelled {concept!r} in {' and '.join(missing)}"
            continue
        if matching is not None:
            _compare_matched(result, Wa, Wb, fa, fb, matching, names, options, min_features, n_permutations,
                             progress)
        else:
            _compare_unpaired(result, Wa, Wb, fa, fb, min_features, n_permutations, progress)
    return results


def _compare_matched(result, Wa, Wb, fa, fb, matching, names, options, min_features, n_permutations, progress):
    inside = np.isin(matching.index_a, fa) & np.isin(matching.index_b, fb)
    ia, ib = matching.index_a[inside], matching.index_b[inside]
    result.n_pairs = int(ia.size)
    if ia.size < min_features:
        result.skipped = (
            f"only {ia.size} matched pairs carry the label {result.concept!r} on both sides; "
            f"min_features={min_features}"
        )
        return
    _score_pairs(result, Wa[ia], Wb[ib], names, options, n_permutations, progress)


def _score_pairs(result, X, Y, names, options, n_permutations, progress):
    """Each metric of the paired rows X, Y with its random-pairing null (errors, e.g. a saturated SVCCA, kept)."""
    for name in names:
        try:
            res = permutation_test(name, X, Y, n_permutations=n_permutations, seed=result.seed, progress=progress,
                                   **options.get(name, {}))
        except ValueError as exc:
            result.metric_errors[name] = str(exc)
            continue
        _record(result, name, res.score, res.null, res.p_value)
        if res.details:
            result.details[name] = res.details
    if not result.scores:
        result.skipped = "no metric could be computed: " + "; ".join(
            f"{k}: {v}" for k, v in result.metric_errors.items()
        )


def _compare_unpaired(result, Wa, Wb, fa, fb, min_features, n_permutations, progress):
    if Wa.shape[1] != Wb.shape[1]:
        result.skipped = (
            f"no matching, and the sides live in different spaces (d={Wa.shape[1]} vs d={Wb.shape[1]}); "
            "principal angles need one coordinate system, so pass a matching to use the paired metrics"
        )
        return
    small = [f"{side} has {f.size}" for side, f in (("side a", fa), ("side b", fb)) if f.size < min_features]
    if small:
        result.skipped = (
            f"too few features labelled {result.concept!r} ({', '.join(small)}); min_features={min_features}"
        )
        return
    score = principal_angle_similarity(Wa[fa], Wb[fb])
    base = random_subset_baseline(
        principal_angle_similarity, Wa, Wb, (int(fa.size), int(fb.size)), n_draws=n_permutations,
        seed=result.seed, observed=score, progress=progress,
    )
    _record(result, UNPAIRED_METRIC, score, base.scores, base.p_value)


def _check_rematch_inputs(acts: Any, W: np.ndarray, side: str) -> Any:
    a = as_activations(acts, f"acts_{side}")
    if a.n_features != W.shape[0]:
        raise ValueError(
            f"acts_{side} has {a.n_features} features but weights_{side} has {W.shape[0]} rows; they must describe "
            "the same dictionary"
        )
    return a


def compare_rematched_subspaces(
    acts_a: Any,
    acts_b: Any,
    weights_a: Any,
    weights_b: Any,
    labels_a: dict[str, Any],
    labels_b: dict[str, Any],
    *,
    match: Any,
    metrics: Any = ("svcca", "cka", "rsa"),
    min_features: int = 5,
    n_permutations: int = 1000,
    seed: int = 0,
    metric_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> list[SubspaceResult]:
    """Per concept: re-match the concept's features of both sides among themselves, then score the pairs.

    For a concept with features ``fa`` (side a) and ``fb`` (side b), ``match(acts_a[:, fa], acts_b[:, fb])``
    pairs them (activation correlation over the same token rows, with whatever options ``match`` carries); its
    pairs, mapped back to the full indices, give ``X = W_a[index_a]``, ``Y = W_b[index_b]``, and each metric is
    scored against the permutation null that re-pairs the rows of Y among the concept's own pairs
    (:func:`~featgeom_tda.analyses.geometry.permutation_test`), so the null answers "is the pairing inside the
    concept better than chance", not "does the concept differ from the rest of the dictionary".

    Args:
        acts_a, acts_b: FeatureActivations (or arrays) of the two dictionaries over the same token rows.
        weights_a, weights_b: (n_features, d) directions of the same dictionaries (e.g. SAE decoder rows).
        labels_a, labels_b: concept -> feature indices selected on each side (e.g. by keyword).
        match: callable ``(acts_a_subset, acts_b_subset) -> FeatureMatching`` (e.g. ``functools.partial`` of
            :func:`featgeom_tda.analyses.matching.match_features` with the run's options); its indices refer
            to the subset columns.
        metrics, min_features, n_permutations, seed, metric_options: as :func:`compare_concept_subspaces`;
            ``min_features`` bounds both the features per side and the re-matched pairs. A saturated SVCCA
            (too few pairs for its components) is a metric error, never a score.
    Returns:
        One :class:`SubspaceResult` (``pairing="rematched"``) per concept, in the order of
        :func:`compare_concept_subspaces`.
    """
    Wa = as_weights(weights_a, "weights_a").weights
    Wb = as_weights(weights_b, "weights_b").weights
    xa, xb = _check_rematch_inputs(acts_a, Wa, "a"), _check_rematch_inputs(acts_b, Wb, "b")
    if xa.n_tokens != xb.n_tokens:
        raise ValueError(
            f"acts_a has {xa.n_tokens} rows but acts_b has {xb.n_tokens}; re-matching needs the same token rows"
        )
    if not callable(match):
        raise ValueError(f"match must be a callable (acts_a, acts_b) -> FeatureMatching; got {type(match).__name__}")
    la, lb, names, options, min_features, n_permutations = _check_concept_options(
        labels_a, labels_b, Wa.shape[0], Wb.shape[0], metrics, metric_options, min_features, n_permutations, seed)
    concepts = list(la) + [c for c in lb if c not in la]
    n_nulls = len(concepts) * len(names)
    _check_null_memory(n_permutations, "n_permutations", copies=n_nulls,
                       what=f"{n_nulls} nulls ({len(concepts)} concepts)")
    run_options = {"metrics": list(names), "min_features": min_features, "n_permutations": n_permutations,
                   "seed": int(seed), "metric_options": options, "null": "permutation within the concept's pairs"}
    results = []
    for concept in concepts:
        fa = la.get(concept, np.zeros(0, dtype=np.int64))
        fb = lb.get(concept, np.zeros(0, dtype=np.int64))
        result = SubspaceResult(
            concept=concept, pairing="rematched", n_features_a=int(fa.size), n_features_b=int(fb.size), n_pairs=0,
            null_kind="permutation", seed=_concept_seed(int(seed), concept), options=run_options,
        )
        results.append(result)
        small = [f"side {side} has {f.size}" for side, f in (("a", fa), ("b", fb)) if f.size < min_features]
        if small:
            result.skipped = f"too few features selected for {concept!r} ({', '.join(small)}); min_features={min_features}"
            continue
        m = match(xa.select_features(fa), xb.select_features(fb))
        if not isinstance(m, FeatureMatching):
            raise ValueError(f"match must return a FeatureMatching; got {type(m).__name__}")
        if m.index_a.size and (m.index_a.max() >= fa.size or m.index_b.max() >= fb.size):
            raise ValueError(
                f"match returned indices outside the {fa.size} x {fb.size} features of concept {concept!r}; "
                "they must refer to the subset columns"
            )
        ia, ib = fa[m.index_a], fb[m.index_b]
        result.n_pairs = int(ia.size)
        if ia.size:
            result.mean_correlation = float(np.mean(np.asarray(m.correlation, dtype=np.float64)))
        if ia.size < min_features:
            result.skipped = (
                f"re-matching the {fa.size} x {fb.size} features of {concept!r} gave {ia.size} pairs; "
                f"min_features={min_features}"
            )
            continue
        _score_pairs(result, Wa[ia], Wb[ib], names, options, n_permutations, progress)
    return results

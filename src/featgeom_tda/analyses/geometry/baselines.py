"""Seeded baselines for the paired similarity metrics.

Two questions, two baselines:

- :func:`permutation_test`: is the pairing itself informative? The null scores shuffle the rows of Y (a random
  pairing of the same two point clouds).
- :func:`random_subset_baseline`: is this set of n features more similar than n features picked at random?
  The null scores compare randomly drawn rows of the full X and Y (unmatched, or with ``paired=True`` random
  matched pairs).

For the named metrics the permutation test takes a fast path that does the expensive work once (SVD bases for
SVCCA, centred Gram or feature matrices for CKA, the ranked RDMs for RSA, normalised matrices for Procrustes,
neighbour lists for the kNN scores) and only re-indexes by the permutation. Both paths draw the same permutation
stream from ``np.random.default_rng(seed)``, and the fast scores equal a plain recomputation ``metric(X, Y[perm])``
to float rounding (about 1e-12).

SVCCA with a saturated choice of components (``k_x + k_y > n - 1``, so that some canonical correlations are 1 for
any pairing) is refused with a ValueError by both functions, as by :func:`~.similarity.svcca` itself. The null
scores are held in memory (8 bytes each); counts whose null would exceed ``MAX_NULL_BYTES`` are refused before
any work.
"""

from __future__ import annotations

import dataclasses

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from featgeom_tda.core._validation import (
    as_float_matrix,
    check_choice,
    check_fraction,
    check_positive_int,
    check_same_rows,
)
from featgeom_tda.analyses.geometry import pwcca as pw
from featgeom_tda.analyses.geometry import similarity as sim
from featgeom_tda.analyses.geometry.fast_nulls import (
    Scorer,
    _fast_cka,
    _fast_knn_jaccard,
    _fast_mutual_knn,
    _fast_procrustes,
    _fast_rsa,
    _fast_svcca,
)

__all__ = [
    "PermutationResult",
    "SubsetBaselineResult",
    "permutation_test",
    "prepare_permutation_test",
    "PreparedPermutationTest",
    "random_subset_baseline",
    "permutation_tests",
    "random_subset_baselines",
    "METRIC_NAMES",
    "METRIC_LABELS",
    "MAX_NULL_BYTES",
    "resolve_metric",
    "check_metric_options",
]

# Null scores within this (times max(1, |score|)) of the observed score count as ties, i.e. as >= the score.
TIE_TOLERANCE = 1e-10
# The null scores of one call (8 bytes each, float64) may take at most this much memory: 2**25 = 33,554,432
# scores, a smallest p-value of about 3e-8; larger counts are refused before any work.
MAX_NULL_BYTES = 2**28
_BYTES_PER_SCORE = 8


def _size(n_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def _check_null_memory(count: int, name: str, *, copies: int = 1, what: str = "") -> None:
    """Refuse ``count`` null scores (times ``copies`` nulls) whose float64 storage would exceed MAX_NULL_BYTES."""
    estimate = _BYTES_PER_SCORE * count * max(1, copies)
    if estimate > MAX_NULL_BYTES:
        most = MAX_NULL_BYTES // (_BYTES_PER_SCORE * max(1, copies))
        per = f" for {what}" if what else ""
        raise ValueError(
            f"{name}={count} needs an estimated {_size(estimate)} for the null scores{per} ({_BYTES_PER_SCORE} bytes "
            f"each); the limit is {_size(MAX_NULL_BYTES)} (MAX_NULL_BYTES), so {name} must be at most {most}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_float(value: Any) -> float | None:
    """A float for JSON: NaN (an undefined score or p-value) is written as null."""
    value = float(value)
    return None if np.isnan(value) else value


def _float(value: Any) -> float:
    """The inverse of :func:`_json_float`: null reads back as NaN."""
    return float("nan") if value is None else float(value)


def _checked_fields(cls: type, d: Any, where: str) -> dict[str, Any]:
    """``d`` as keyword arguments of dataclass ``cls``; ValueError naming an unknown or missing key."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping for {cls.__name__}, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; {cls.__name__} has {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r} of {cls.__name__}")
    return dict(d)


def _read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a saved result (not valid JSON: {exc})") from None


def _p_value(score: float, null: np.ndarray) -> float:
    """(1 + #(null >= score)) / (1 + len(null)), with near-ties (float rounding) counted as >=.

    NaN when the score or any null score is NaN: an undefined score has no p-value, and a NaN null score can be
    neither counted as >= the score nor dropped without changing the denominator.
    """
    if np.isnan(score) or np.isnan(null).any():
        return float("nan")
    tol = TIE_TOLERANCE * max(1.0, abs(score))
    return float((1 + np.count_nonzero(null >= score - tol)) / (1 + null.shape[0]))


@dataclass
class PermutationResult:
    """Observed score and its random-pairing null.

    Attributes:
        metric: metric name.
        score: the metric on the given pairing.
        null: (n_permutations,) scores with the rows of Y shuffled.
        null_mean, null_std: mean and standard deviation of ``null``.
        p_value: ``(1 + #(null >= score)) / (1 + n_permutations)`` (near-ties within 1e-10 count as >=); NaN when
            the score or any null score is NaN.
        n_permutations, seed: how the null was drawn (``np.random.default_rng(seed).permutation(n)`` each).
        method: ``"fast"`` or ``"naive"`` (recompute the metric per permutation).
        options: keyword options passed to the metric.
        details: what the observed score was computed from; for SVCCA :meth:`SVCCAResult.summary` (k_x, k_y,
            n_rows, n_forced, saturated, rule, ...), else empty.
    """

    metric: str
    score: float
    null: np.ndarray
    null_mean: float
    null_std: float
    p_value: float
    n_permutations: int
    seed: int
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def z_score(self) -> float:
        """(score - null_mean) / null_std; inf when the null has no spread."""
        if self.null_std > 0:
            return float((self.score - self.null_mean) / self.null_std)
        return float("inf") if self.score > self.null_mean else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "score": _json_float(self.score),
            "null": [_json_float(v) for v in self.null],
            "null_mean": _json_float(self.null_mean),
            "null_std": _json_float(self.null_std),
            "p_value": _json_float(self.p_value),
            "n_permutations": int(self.n_permutations),
            "seed": int(self.seed),
            "method": self.method,
            "options": _jsonable(self.options),
            "details": _jsonable(self.details),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "PermutationResult") -> "PermutationResult":
        d = _checked_fields(cls, d, where)
        d["null"] = np.asarray([_float(v) for v in d["null"]], dtype=np.float64)
        for name in ("score", "null_mean", "null_std", "p_value"):
            d[name] = _float(d[name])
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        """Write JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PermutationResult":
        return cls.from_dict(_read_json(path), where=str(path))


@dataclass
class SubsetBaselineResult:
    """Scores of randomly drawn feature subsets of a fixed size.

    Attributes:
        metric: metric name.
        scores: (n_draws,) scores of the random subsets.
        mean, std: of ``scores``.
        n: subset size (rows drawn from X, rows drawn from Y).
        n_draws, seed: how the subsets were drawn.
        paired: True when the same rows were drawn from X and Y (random matched pairs).
        observed: the score being compared, if given.
        p_value: ``(1 + #(scores >= observed)) / (1 + n_draws)`` when ``observed`` is given, else None; NaN when
            ``observed`` or any score is NaN.
        options: keyword options passed to the metric.
    """

    metric: str
    scores: np.ndarray
    mean: float
    std: float
    n: tuple[int, int]
    n_draws: int
    seed: int
    paired: bool
    observed: float | None = None
    p_value: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "scores": [_json_float(v) for v in self.scores],
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "n": [int(self.n[0]), int(self.n[1])],
            "n_draws": int(self.n_draws),
            "seed": int(self.seed),
            "paired": bool(self.paired),
            "observed": None if self.observed is None else _json_float(self.observed),
            "p_value": None if self.p_value is None else _json_float(self.p_value),
            "options": _jsonable(self.options),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "SubsetBaselineResult") -> "SubsetBaselineResult":
        d = _checked_fields(cls, d, where)
        d["scores"] = np.asarray([_float(v) for v in d["scores"]], dtype=np.float64)
        d["mean"], d["std"] = _float(d["mean"]), _float(d["std"])
        d["n"] = tuple(d["n"])
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SubsetBaselineResult":
        return cls.from_dict(_read_json(path), where=str(path))


# ---------------------------------------------------------------------------------------------------------------
# Metric registry
# ---------------------------------------------------------------------------------------------------------------


def _check_svcca_options(variance: Any = 0.99, n_components: Any = None, max_components: Any = "auto") -> None:
    check_fraction(variance, "variance")
    sim._check_n_components(n_components)
    sim._check_max_components(max_components)


def _observe_svcca(X: np.ndarray, Y: np.ndarray, **options: Any) -> tuple[float, dict[str, Any]]:
    res = sim.svcca_result(X, Y, **options)
    return res.score, res.summary()


def _check_cka_options(debiased: Any = False) -> None:
    sim._check_debiased(debiased)


def _check_rsa_options(rdm: Any = "correlation", compare: Any = "spearman") -> None:
    sim._check_rsa_options(rdm, compare)


def _check_knn_options(k: Any = 10, metric: Any = "cosine") -> None:
    check_positive_int(k, "k")
    check_choice(metric, "metric", sim.KNN_METRICS)


@dataclass(frozen=True)
class _MetricSpec:
    name: str
    label: str  # display name in tables and figures
    func: Callable[..., float]
    fast: Callable[..., Scorer] | None
    check: Callable[..., None] | None = None
    observe: Callable[..., tuple[float, dict[str, Any]]] | None = None  # (score, details) of the observed pairing


_REGISTRY: dict[str, _MetricSpec] = {
    spec.name: spec
    for spec in (
        _MetricSpec("svcca", "SVCCA", sim.svcca, _fast_svcca, _check_svcca_options, _observe_svcca),
        _MetricSpec("cka", "linear CKA", sim.linear_cka, _fast_cka, _check_cka_options),
        _MetricSpec("rsa", "RSA (Spearman)", sim.rsa, _fast_rsa, _check_rsa_options),
        _MetricSpec("procrustes", "Procrustes", sim.procrustes, _fast_procrustes, lambda: None),
        _MetricSpec("knn_jaccard", "kNN Jaccard", sim.knn_jaccard, _fast_knn_jaccard, _check_knn_options),
        _MetricSpec("mutual_knn", "mutual kNN", sim.mutual_knn, _fast_mutual_knn, _check_knn_options),
        _MetricSpec("pwcca", "PWCCA", pw.pwcca, pw._fast_pwcca, pw._check_pwcca_options, pw._observe_pwcca),
    )
}
_ALIASES = {"linear_cka": "cka"}
METRIC_NAMES = tuple(_REGISTRY)
METRIC_LABELS: dict[str, str] = {name: spec.label for name, spec in _REGISTRY.items()}  # the one table of display names


def resolve_metric(metric: Any) -> tuple[str, Callable[..., float]]:
    """Name and function of a metric given by name (``"svcca"``, ``"cka"``, ...) or as a callable."""
    spec = _resolve(metric)
    return spec.name, spec.func


def _resolve(metric: Any) -> _MetricSpec:
    if isinstance(metric, str):
        key = _ALIASES.get(metric, metric)
        if key not in _REGISTRY:
            names = ", ".join(repr(m) for m in (*METRIC_NAMES, *_ALIASES))
            raise ValueError(f"metric must be one of {names} or a callable f(X, Y) -> float; got {metric!r}")
        return _REGISTRY[key]
    if callable(metric):
        for spec in _REGISTRY.values():
            if spec.func is metric:
                return spec
        name = getattr(metric, "__name__", type(metric).__name__)
        return _MetricSpec(name, name, metric, None)
    raise ValueError(f"metric must be a metric name or a callable f(X, Y) -> float; got {type(metric).__name__}")


def check_metric_options(metric: Any, options: dict[str, Any]) -> None:
    """Raise ValueError unless ``options`` are valid keyword options of ``metric`` (names and, for the named
    metrics, values), before any data is touched."""
    _check_options(_resolve(metric), options)


def _check_options(spec: _MetricSpec, options: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(spec.func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None, **options)
    except TypeError as exc:
        valid = [p.name for p in signature.parameters.values() if p.kind == p.KEYWORD_ONLY]
        raise ValueError(
            f"metric {spec.name!r} does not take the options {sorted(options)} ({exc}); its options are {valid}"
        ) from None
    if spec.check is not None:
        spec.check(**options)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _progress(iterable: Any, progress: bool, desc: str) -> Any:
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=None)


# ---------------------------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------------------------


def permutation_test(
    metric: str | Callable[..., float],
    X: Any,
    Y: Any,
    /,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    method: str = "auto",
    progress: bool = False,
    **metric_kwargs: Any,
) -> PermutationResult:
    """Random-pairing null of a paired metric: scores of ``metric(X, Y[perm])`` for random permutations.

    Args:
        metric: a name (``"svcca"``, ``"cka"`` / ``"linear_cka"``, ``"rsa"``, ``"procrustes"``, ``"knn_jaccard"``,
            ``"mutual_knn"``, ``"pwcca"``) or a callable ``f(X, Y, **metric_kwargs) -> float`` (called with float64
            numpy arrays).
        X: (n, d1) array; Y: (n, d2) array; row i of X paired with row i of Y.
        n_permutations: number of null scores; the smallest possible p-value is 1 / (1 + n_permutations).
        seed: permutations are ``np.random.default_rng(seed).permutation(n)``, drawn in order.
        method: ``"auto"`` (fast path when the metric has one), ``"fast"`` or ``"naive"`` (recompute the metric
            for every permutation). Both give the same null for the same seed, to float rounding.
        progress: show a progress bar.
        **metric_kwargs: options of the metric (e.g. ``variance=0.99``, ``rdm="cosine"``, ``k=10``).
    Returns:
        :class:`PermutationResult` with p-value ``(1 + #(null >= score)) / (1 + n_permutations)``, or NaN when
        the observed score or any null score is NaN (a NaN never counts as >= the score).
    Raises:
        ValueError: invalid arguments; ``n_permutations`` whose null would exceed ``MAX_NULL_BYTES`` (before any
        work); a saturated SVCCA or PWCCA (``k_x + k_y > n - 1``).

    For the named metrics, which are all invariant to a positive isotropic scaling, inputs of extreme magnitude
    are first rescaled by an exact power of two (as the metrics themselves do), so that the fast null neither
    overflows nor underflows; inputs of ordinary magnitude are used as given.
    """
    test = prepare_permutation_test(metric, X, Y, n_permutations=n_permutations, seed=seed, method=method,
                                    **metric_kwargs)
    spec, Xa, Ya = test.spec, test.X, test.Y
    if test.use_fast:
        evaluate = spec.fast(Xa, Ya, **metric_kwargs)
    else:

        def evaluate(perm: np.ndarray) -> float:
            return float(spec.func(Xa, Ya[perm], **metric_kwargs))

    rng = np.random.default_rng(test.seed)
    null = np.empty(test.n_permutations, dtype=np.float64)
    for i in _progress(range(test.n_permutations), progress, f"{spec.name} permutations"):
        null[i] = evaluate(rng.permutation(Xa.shape[0]))
    return test.result(null)


@dataclass
class PreparedPermutationTest:
    """A checked permutation test before its null: the metric, the float64 inputs (rescaled for the named
    metrics), the observed score and how the null will be scored. ``result(null)`` completes it."""

    spec: Any
    X: np.ndarray
    Y: np.ndarray
    score: float
    details: dict[str, Any]
    use_fast: bool
    n_permutations: int
    seed: int
    options: dict[str, Any]

    def result(self, null: np.ndarray) -> PermutationResult:
        return PermutationResult(
            metric=self.spec.name,
            score=self.score,
            null=null,
            null_mean=float(null.mean()),
            null_std=float(null.std()),
            p_value=_p_value(self.score, null),
            n_permutations=self.n_permutations,
            seed=self.seed,
            method="fast" if self.use_fast else "naive",
            options=dict(self.options),
            details=self.details,
        )


def prepare_permutation_test(
    metric: str | Callable[..., float],
    X: Any,
    Y: Any,
    /,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    method: str = "auto",
    **metric_kwargs: Any,
) -> PreparedPermutationTest:
    """Every check of :func:`permutation_test` and its observed score, for engines that score the null
    elsewhere (e.g. sharded over a cluster) with the same permutations."""
    spec = _resolve(metric)
    check_choice(method, "method", ("auto", "fast", "naive"))
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    _check_null_memory(n_permutations, "n_permutations")
    seed = _check_seed(seed)
    _check_options(spec, metric_kwargs)
    Xa = as_float_matrix(X, "X")
    Ya = as_float_matrix(Y, "Y")
    check_same_rows(Xa, "X", Ya, "Y", what="paired metrics")
    n = Xa.shape[0]
    if n < 2:
        raise ValueError(f"X and Y have {n} rows; a permutation test needs at least 2 paired rows")
    if method == "fast" and spec.fast is None:
        raise ValueError(
            f"metric {spec.name!r} has no fast permutation path; use method='naive' or 'auto' "
            f"(fast paths exist for {', '.join(n for n, s in _REGISTRY.items() if s.fast)})"
        )

    if spec.fast is not None:  # a named metric: scale invariant, so an exact power-of-two rescaling is free
        Xa, Ya = sim._rescaled(Xa), sim._rescaled(Ya)
    if spec.observe is not None:
        score, details = spec.observe(Xa, Ya, **metric_kwargs)
    else:
        score, details = spec.func(Xa, Ya, **metric_kwargs), {}
    return PreparedPermutationTest(
        spec=spec, X=Xa, Y=Ya, score=float(score), details=details, use_fast=spec.fast is not None and method != "naive",
        n_permutations=n_permutations, seed=seed, options=dict(metric_kwargs),
    )


def _subset_inputs(X_full: Any, Y_full: Any, n: Any, paired: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The checked float64 inputs of a random-subset baseline and its subset sizes (n_x, n_y)."""
    Xa = as_float_matrix(X_full, "X_full")
    Ya = as_float_matrix(Y_full, "Y_full")
    nx, ny = _subset_sizes(n, paired)
    if paired:
        check_same_rows(Xa, "X_full", Ya, "Y_full", what="paired subsets")
    for name, size, rows in (("X_full", nx, Xa.shape[0]), ("Y_full", ny, Ya.shape[0])):
        if size > rows:
            raise ValueError(f"n={size} exceeds the {rows} rows of {name}; draw at most {rows}")
    return Xa, Ya, nx, ny


def _subset_draws(Xa: np.ndarray, Ya: np.ndarray, nx: int, ny: int, n_draws: int, seed: int,
                  paired: bool) -> Any:
    """The ``n_draws`` subsets (X rows, Y rows) of ``np.random.default_rng(seed)``, in order."""
    rng = np.random.default_rng(seed)
    for _ in range(n_draws):
        rows_x = rng.choice(Xa.shape[0], size=nx, replace=False)
        rows_y = rows_x if paired else rng.choice(Ya.shape[0], size=ny, replace=False)
        yield Xa[rows_x], Ya[rows_y]


def _subset_sizes(n: Any, paired: bool) -> tuple[int, int]:
    if isinstance(n, (tuple, list)):
        if len(n) != 2:
            raise ValueError(f"n must be an integer or a pair (rows from X, rows from Y); got length {len(n)}")
        sizes = (check_positive_int(n[0], "n[0]", minimum=2), check_positive_int(n[1], "n[1]", minimum=2))
        if paired and sizes[0] != sizes[1]:
            raise ValueError(f"n must be one size when paired=True; got {sizes}")
        return sizes
    size = check_positive_int(n, "n", minimum=2)
    return size, size


def random_subset_baseline(
    metric: str | Callable[..., float],
    X_full: Any,
    Y_full: Any,
    n: int | tuple[int, int],
    /,
    *,
    n_draws: int = 100,
    seed: int = 0,
    paired: bool = False,
    observed: float | None = None,
    progress: bool = False,
    **metric_kwargs: Any,
) -> SubsetBaselineResult:
    """Scores of randomly drawn feature subsets of size n: the "any n features" baseline.

    Each draw takes n rows of ``X_full`` and, independently, n rows of ``Y_full`` (without replacement, in random
    order) and scores ``metric(X_full[rows_x], Y_full[rows_y])``. With ``paired=True`` the same rows are drawn
    from both (random matched pairs; ``X_full`` and ``Y_full`` must then be paired row by row). ``n`` may be a
    pair ``(n_x, n_y)`` for metrics that do not need paired rows.

    Args:
        metric: a name or a callable, as in :func:`permutation_test`.
        X_full: (N_x, d1) array; Y_full: (N_y, d2) array.
        n: subset size (>= 2, <= the rows available).
        n_draws, seed: draws use ``np.random.default_rng(seed)``.
        observed: optional score to compare; sets ``p_value = (1 + #(scores >= observed)) / (1 + n_draws)``
            (NaN when ``observed`` or any score is NaN).
    Returns:
        :class:`SubsetBaselineResult`.
    Raises:
        ValueError: invalid arguments; ``n_draws`` whose scores would exceed ``MAX_NULL_BYTES`` (before any work);
        a draw whose SVCCA is saturated (``k_x + k_y > n - 1``).
    """
    spec = _resolve(metric)
    n_draws = check_positive_int(n_draws, "n_draws")
    _check_null_memory(n_draws, "n_draws")
    seed = _check_seed(seed)
    _check_options(spec, metric_kwargs)
    Xa, Ya, nx, ny = _subset_inputs(X_full, Y_full, n, paired)
    if observed is not None:
        observed = float(observed)

    scores = np.empty(n_draws, dtype=np.float64)
    draws = _subset_draws(Xa, Ya, nx, ny, n_draws, seed, paired)
    for i, (Xs, Ys) in enumerate(_progress(draws, progress, f"{spec.name} random subsets")):
        scores[i] = float(spec.func(Xs, Ys, **metric_kwargs))

    return SubsetBaselineResult(
        metric=spec.name,
        scores=scores,
        mean=float(scores.mean()),
        std=float(scores.std()),
        n=(nx, ny),
        n_draws=n_draws,
        seed=seed,
        paired=bool(paired),
        observed=observed,
        p_value=None if observed is None else _p_value(observed, scores),
        options=dict(metric_kwargs),
    )


def _joint_cca(metrics: dict[str, dict[str, Any]]) -> bool:
    """SVCCA and PWCCA both asked for, with the same kept components: one CCA serves both."""
    return "svcca" in metrics and "pwcca" in metrics and pw.shares_svcca_bases(metrics["svcca"], metrics["pwcca"])


def _named(metrics: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f"{where} must map metric names to their options, e.g. {{'cka': {{}}}}; got {metrics!r}")
    out = {}
    for name, options in metrics.items():
        spec = _resolve(name)
        if spec.fast is None or not isinstance(options, dict):
            raise ValueError(f"{where}: {name!r} must be a named metric with a dict of options")
        out[spec.name] = dict(options)
    return out


def permutation_tests(
    metrics: dict[str, dict[str, Any]], X: Any, Y: Any, /, *, n_permutations: int = 1000, seed: int = 0,
) -> dict[str, PermutationResult]:
    """:func:`permutation_test` of several named metrics on the same rows: the same permutations (one stream from
    ``seed``, as each separate call draws) and the same results to float rounding, in less time: the permutations
    are drawn once, and SVCCA and PWCCA with the same kept components share one SVD per permutation.

    Args:
        metrics: metric name -> its options, e.g. ``{"svcca": {"variance": 0.99}, "cka": {}}``.
        X, Y, n_permutations, seed: as in :func:`permutation_test`.
    Returns:
        metric name -> :class:`PermutationResult`, in the order of ``metrics``.
    """
    metrics = _named(metrics, "metrics")
    tests = {name: prepare_permutation_test(name, X, Y, n_permutations=n_permutations, seed=seed, **opts)
             for name, opts in metrics.items()}
    scorers: dict[str, Scorer] = {}
    joint = None
    if _joint_cca(metrics):
        t = tests["pwcca"]
        joint = pw._fast_pwcca_and_svcca(t.X, t.Y, **metrics["pwcca"])
    for name, t in tests.items():
        if joint is None or name not in ("svcca", "pwcca"):
            scorers[name] = t.spec.fast(t.X, t.Y, **metrics[name])
    first = next(iter(tests.values()))
    rng = np.random.default_rng(first.seed)
    nulls = {name: np.empty(first.n_permutations, dtype=np.float64) for name in tests}
    for i in range(first.n_permutations):
        perm = rng.permutation(first.X.shape[0])
        for name, score in scorers.items():
            nulls[name][i] = score(perm)
        if joint is not None:
            nulls["pwcca"][i], nulls["svcca"][i] = joint(perm)
    return {name: tests[name].result(nulls[name]) for name in tests}


def random_subset_baselines(
    metrics: dict[str, dict[str, Any]], X_full: Any, Y_full: Any, n: int | tuple[int, int], /, *, n_draws: int = 100,
    seed: int = 0,
) -> dict[str, SubsetBaselineResult]:
    """:func:`random_subset_baseline` of several named metrics, each draw scored by every metric: the same draws
    (one stream from ``seed``, as each separate call draws) and the same scores, SVCCA and PWCCA of the same kept
    components from one CCA per draw. Returns metric name ->
    :class:`SubsetBaselineResult`, in the order of ``metrics``."""
    metrics = _named(metrics, "metrics")
    n_draws = check_positive_int(n_draws, "n_draws")
    _check_null_memory(n_draws, "n_draws")
    seed = _check_seed(seed)
    for name, opts in metrics.items():
        _check_options(_resolve(name), opts)
    Xa, Ya, nx, ny = _subset_inputs(X_full, Y_full, n, False)
    joint = nx == ny and _joint_cca(metrics)  # one CCA per draw gives both
    scores = {name: np.empty(n_draws, dtype=np.float64) for name in metrics}
    for i, (Xs, Ys) in enumerate(_subset_draws(Xa, Ya, nx, ny, n_draws, seed, False)):
        if joint:
            scores["pwcca"][i], scores["svcca"][i] = pw.pwcca_and_svcca(Xs, Ys, **metrics["pwcca"])
        for name, opts in metrics.items():
            if not (joint and name in ("svcca", "pwcca")):
                scores[name][i] = float(_resolve(name).func(Xs, Ys, **opts))
    return {
        name: SubsetBaselineResult(metric=name, scores=v, mean=float(v.mean()), std=float(v.std()), n=(nx, ny),
                                   n_draws=n_draws, seed=seed, paired=False, observed=None, p_value=None,
                                   options=dict(metrics[name]))
        for name, v in scores.items()
    }

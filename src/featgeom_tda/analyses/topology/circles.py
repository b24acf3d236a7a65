"""Is a point cloud a circle? The longest H1 bar of its top principal components against seeded baselines.

Engels et al. (2024), "Not All Language Model Features Are Linear", find that the representations of the
days of the week and the months of the year lie on circles in the top principal components of real language
models. :func:`circle_test` turns that observation into a test with a p-value:

1. centre the points (n, d) and project them on their top ``n_components`` principal components
   (``n_components=None`` keeps every dimension, centred);
2. compute the Vietoris-Rips persistence of the projection (:func:`~featgeom_tda.analyses.topology.persistence`,
   H0 and H1) and take the longest finite H1 bar, ``death - birth``;
3. divide it by the enclosing radius of the projection (``min_i max_j |x_i - x_j|``; every H1 class of the
   Rips filtration is dead there, so the relative bar lies in [0, 1]) so that the statistic does not depend
   on the scale; ``statistic="absolute"`` keeps the raw length;
4. compute the same statistic on ``n_baselines`` seeded baselines of the projection:
   ``"gaussian"``: Gaussian clouds with the same mean and sample covariance
   (:func:`~featgeom_tda.analyses.topology.gaussian_baseline`); ``"shuffle"``: every principal coordinate
   permuted independently (same marginals, no joint structure);
5. p-value ``(k + 1) / (n_baselines + 1)`` with ``k`` the number of baselines whose statistic is at least the
   data's (a Monte Carlo test that is exact under exchangeability), and the null mean and standard deviation.

:func:`class_means` turns per-token rows and class labels into one mean per class (the "centroids of the 12
months" variant: a circle of 12 points).

Both the statistic and the p-value are invariant to rotating, translating and (relative statistic) scaling
the input: the principal coordinates change only by signs, which change no distance of the data and no
distance of either baseline. (With ``n_components=None`` the shuffle permutes the input's own columns, which
a rotation changes.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np

from featgeom_tda.analyses.topology.homology.distances import MAX_BASELINES, gaussian_baseline
from featgeom_tda.analyses.topology.homology.persistence import distance_matrix, persistence
from featgeom_tda.core._validation import check_choice, check_positive_int, to_numpy
from featgeom_tda.core.types import as_points

__all__ = ["CircleTest", "circle_test", "longest_h1_bar", "ClassMeans", "class_means", "monte_carlo_p_value"]

_BASELINES = ("gaussian", "shuffle")
_STATISTICS = ("relative", "absolute")
MIN_POINTS = 4  # the fewest points whose Rips filtration can hold a loop (a square)


# ---------------------------------------------------------------------------------------------------
# result type
# ---------------------------------------------------------------------------------------------------
@dataclass
class CircleTest:
    """Result of :func:`circle_test`.

    Attributes:
        n_points, dim: rows and columns of the input.
        n_components: principal components kept (``dim`` when the test ran on all dimensions).
        explained_variance_ratio: variance fraction of each kept component (of the total variance of the input).
        baseline, statistic, n_baselines, seed: the options of the test.
        birth, death: the longest finite H1 bar of the projection (0, 0 when there is no H1 bar).
        length: ``death - birth``.
        enclosing_radius: ``min_i max_j |x_i - x_j|`` of the projection; ``relative_length = length / enclosing_radius``.
        diameter: largest distance of the projection.
        observed: the test statistic of the data (``relative_length`` or ``length``).
        null_values: the statistic on each baseline, float64 (n_baselines,).
        null_mean, null_std: their mean and standard deviation (ddof=1).
        z_score: ``(observed - null_mean) / null_std`` (inf when the null has no spread and observed is above it).
        n_at_least: baselines whose statistic is >= observed.
        p_value: ``(n_at_least + 1) / (n_baselines + 1)``.
        coordinates: the projection, float64 (n_points, n_components) (not in :meth:`to_dict`).
        seconds: wall time of the whole test.
    """

    n_points: int
    dim: int
    n_components: int
    explained_variance_ratio: list[float]
    baseline: str
    statistic: str
    n_baselines: int
    seed: int
    birth: float
    death: float
    length: float
    enclosing_radius: float
    diameter: float
    relative_length: float
    observed: float
    null_values: np.ndarray
    null_mean: float
    null_std: float
    z_score: float
    n_at_least: int
    p_value: float
    coordinates: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    seconds: float = 0.0

    @property
    def significant(self) -> bool:
        """p <= 0.05."""
        return self.p_value <= 0.05

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary: every field but ``coordinates``; floats as Python floats (inf as None)."""

        def num(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "n_points": self.n_points,
            "dim": self.dim,
            "n_components": self.n_components,
            "explained_variance_ratio": [float(v) for v in self.explained_variance_ratio],
            "baseline": self.baseline,
            "statistic": self.statistic,
            "n_baselines": self.n_baselines,
            "seed": self.seed,
            "longest_h1_bar": {"birth": num(self.birth), "death": num(self.death), "length": num(self.length)},
            "enclosing_radius": num(self.enclosing_radius),
            "diameter": num(self.diameter),
            "relative_length": num(self.relative_length),
            "observed": num(self.observed),
            "null_mean": num(self.null_mean),
            "null_std": num(self.null_std),
            "z_score": num(self.z_score),
            "n_at_least": self.n_at_least,
            "p_value": float(self.p_value),
            "null_values": [float(v) for v in self.null_values],
            "seconds": float(self.seconds),
        }


# ---------------------------------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------------------------------
def monte_carlo_p_value(observed: float, null_values: Any) -> tuple[float, int]:
    """``((k + 1) / (n + 1), k)`` with ``k = #{null >= observed}`` over the ``n`` null values (the observed
    value counts as one draw of the null, so the p-value is never 0)."""
    null = np.asarray(null_values, dtype=np.float64).ravel()
    k = int(np.count_nonzero(null >= observed))
    return (k + 1) / (null.size + 1), k


def longest_h1_bar(points: Any, *, n_threads: int = 2) -> tuple[float, float, float, float]:
    """``(birth, death, enclosing_radius, diameter)`` of the longest finite H1 bar of the Rips filtration of
    the rows of ``points`` (euclidean); ``(0, 0, r, D)`` when there is no H1 bar."""
    x = as_points(points, "points")
    dist = distance_matrix(x, "euclidean", np.float64)
    enclosing = float(dist.max(axis=1).min())
    diameter = float(dist.max())
    dgm = persistence(x, maxdim=1, n_threads=n_threads).finite(1)
    if dgm.shape[0] == 0:
        return 0.0, 0.0, enclosing, diameter
    i = int(np.argmax(dgm[:, 1] - dgm[:, 0]))
    return float(dgm[i, 0]), float(dgm[i, 1]), enclosing, diameter


def _principal_coordinates(x: np.ndarray, n_components: int | None) -> tuple[np.ndarray, list[float]]:
    """Centred ``x`` on its top principal components, and their explained-variance ratios."""
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum())
    if total == 0.0 or not np.isfinite(total):
        raise ValueError("points are all the same point (zero variance); a circle needs spread")
    if n_components is None:
        # all dimensions: the centred points themselves (no rotation needed for distances)
        return centred, [float(v) for v in (s**2) / total]
    # principal coordinates U S; a deterministic sign (largest entry positive) for reproducibility
    coords = u[:, :n_components] * s[:n_components]
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(n_components)])
    signs[signs == 0] = 1.0
    return coords * signs, [float(v) for v in (s[:n_components] ** 2) / total]


def _baseline_cloud(coords: np.ndarray, kind: str, seed: int, i: int) -> np.ndarray:
    if kind == "gaussian":
        return gaussian_baseline(coords, seed=seed + 1 + i)
    rng = np.random.default_rng([seed, i])
    out = np.empty_like(coords)
    for j in range(coords.shape[1]):
        out[:, j] = coords[rng.permutation(coords.shape[0]), j]
    return out


def _statistic(points: np.ndarray, statistic: str, n_threads: int) -> tuple[float, tuple[float, float, float, float]]:
    birth, death, enclosing, diameter = longest_h1_bar(points, n_threads=n_threads)
    length = death - birth
    if statistic == "absolute":
        return length, (birth, death, enclosing, diameter)
    return (length / enclosing if enclosing > 0 else 0.0), (birth, death, enclosing, diameter)


# ---------------------------------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------------------------------
def circle_test(
    points: Any,
    *,
    n_components: int | None = 2,
    n_baselines: int = 99,
    baseline: Literal["gaussian", "shuffle"] = "gaussian",
    statistic: Literal["relative", "absolute"] = "relative",
    seed: int = 0,
    n_threads: int = 2,
) -> CircleTest:
    """Test whether ``points`` (n, d) lie on a loop: the longest H1 bar of their top principal components
    against ``n_baselines`` seeded baselines (module notes).

    Args:
        points: numpy / torch (n, d) or FeatureWeights, at least 4 finite rows that are not all equal.
        n_components: principal components to project on, between 2 and ``min(n - 1, d)``; None: all
            dimensions (centred).
        n_baselines: baseline clouds, 1 to 200 (99 gives p-values in steps of 0.01).
        baseline: "gaussian" (same mean and covariance) or "shuffle" (each principal coordinate permuted
            independently).
        statistic: "relative" (bar length / enclosing radius; scale-free) or "absolute" (bar length).
        seed: baseline ``i`` uses seed ``seed + 1 + i`` (gaussian) or ``[seed, i]`` (shuffle).
        n_threads: threads of the persistence engine.
    """
    start = time.perf_counter()
    x = as_points(points, "points")
    n, d = x.shape
    if n < MIN_POINTS:
        raise ValueError(f"points has {n} rows; a loop needs at least {MIN_POINTS} points")
    if n_components is not None:
        top = min(n - 1, d)
        n_components = check_positive_int(n_components, "n_components", minimum=2)
        if n_components > top:
            raise ValueError(
                f"n_components must be at most min(n_points - 1, dim) = {top} for points of shape {x.shape}; "
                f"got {n_components}"
            )
    n_baselines = check_positive_int(n_baselines, "n_baselines")
    if n_baselines > MAX_BASELINES:
        raise ValueError(f"n_baselines must be at most {MAX_BASELINES} (each is a persistence run); got {n_baselines}")
    check_choice(baseline, "baseline", _BASELINES)
    check_choice(statistic, "statistic", _STATISTICS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    n_threads = check_positive_int(n_threads, "n_threads")

    coords, evr = _principal_coordinates(x, n_components)
    observed, (birth, death, enclosing, diameter) = _statistic(coords, statistic, n_threads)
    null = np.array(
        [_statistic(_baseline_cloud(coords, baseline, seed, i), statistic, n_threads)[0] for i in range(n_baselines)],
        dtype=np.float64,
    )
    p, k = monte_carlo_p_value(observed, null)
    mean = float(null.mean())
    std = float(null.std(ddof=1)) if n_baselines > 1 else 0.0
    if std > 0:
        z = (observed - mean) / std
    else:
        z = 0.0 if observed == mean else math.copysign(math.inf, observed - mean)
    length = death - birth
    return CircleTest(
        n_points=n,
        dim=d,
        n_components=int(coords.shape[1]),
        explained_variance_ratio=evr if n_components is not None else evr[: coords.shape[1]],
        baseline=baseline,
        statistic=statistic,
        n_baselines=n_baselines,
        seed=seed,
        birth=birth,
        death=death,
        length=length,
        enclosing_radius=enclosing,
        diameter=diameter,
        relative_length=length / enclosing if enclosing > 0 else 0.0,
        observed=float(observed),
        null_values=null,
        null_mean=mean,
        null_std=std,
        z_score=float(z),
        n_at_least=k,
        p_value=float(p),
        coordinates=coords,
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------------------------------------------
# class means
# ---------------------------------------------------------------------------------------------------
class ClassMeans(NamedTuple):
    """Per-class mean rows: ``means`` float64 (n_classes, d), the ``classes`` in that order, and ``counts``."""

    means: np.ndarray
    classes: list[Any]
    counts: np.ndarray


def class_means(points: Any, labels: Any, *, classes: Sequence[Any] | None = None) -> ClassMeans:
    """Mean of the rows of ``points`` (n, d) per label of ``labels`` (n,).

    ``classes`` fixes the order (e.g. January..December); every class in it must have at least one row, and
    rows whose label is not in it are ignored. Default: the sorted distinct labels.
    """
    x = as_points(points, "points")
    lab = to_numpy(labels, "labels")
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per row of points); got shape {lab.shape}")
    if lab.shape[0] != x.shape[0]:
        raise ValueError(f"points has {x.shape[0]} rows but labels has {lab.shape[0]}; they must match")
    if classes is None:
        order = [c.item() if hasattr(c, "item") else c for c in np.unique(lab)]
    else:
        order = list(classes)
        if len(order) == 0:
            raise ValueError("classes must name at least one class; got an empty sequence")
        if len(set(order)) != len(order):
            raise ValueError(f"classes must be distinct; got {order!r}")
    means = np.empty((len(order), x.shape[1]), dtype=np.float64)
    counts = np.empty(len(order), dtype=np.int64)
    for i, c in enumerate(order):
        rows = lab == c
        counts[i] = int(rows.sum())
        if counts[i] == 0:
            raise ValueError(f"class {c!r} of classes has no row in labels")
        means[i] = x[rows].mean(axis=0)
    return ClassMeans(means=means, classes=order, counts=counts)

"""Distances between persistence diagrams and the Gaussian baseline of a point cloud."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featgeom_tda.analyses.topology.homology.diagrams import diagram_of
from featgeom_tda.analyses.topology.homology.persistence import persistence
from featgeom_tda.core._validation import check_choice, check_number, check_positive_int
from featgeom_tda.core.types import as_points

__all__ = ["diagram_distance", "gaussian_baseline", "compare_with_gaussian"]

# ---------------------------------------------------------------------------------------------------
# distances between diagrams
# ---------------------------------------------------------------------------------------------------
def diagram_distance(
    a: Any,
    b: Any,
    *,
    kind: str = "bottleneck",
    dim: int = 1,
    order: float = 1.0,
    internal_p: float = math.inf,
    relative_error: float = 0.01,
) -> float:
    """Bottleneck or q-Wasserstein distance between the dimension-``dim`` diagrams of ``a`` and ``b``.

    ``a``/``b``: PersistenceDiagrams, (m, 3) canonical bars or (m, 2) (birth, death) arrays. Infinite bars
    are matched among themselves (by birth); different numbers of them give ``inf``.
    Bottleneck uses ``gudhi.bottleneck_distance`` (L-infinity ground metric, exact up to float rounding).
    Wasserstein uses Hera (``gudhi.hera.wasserstein_distance``) with ground metric L^``internal_p`` and
    relative error ``relative_error``; ``internal_p=2, order=1`` is persim's ``wasserstein``.
    """
    check_choice(kind, "kind", ("bottleneck", "wasserstein"))
    dim = check_positive_int(dim, "dim", minimum=0)
    order = check_number(order, "order", low=1.0)
    ip = check_number(internal_p, "internal_p", low=1.0, allow_inf=True)
    err = check_number(relative_error, "relative_error", low=0.0, low_open=True)
    da = diagram_of(a, dim, "a")
    db = diagram_of(b, dim, "b")
    da = da[da[:, 1] > da[:, 0]]
    db = db[db[:, 1] > db[:, 0]]
    if da.shape == db.shape and np.array_equal(da[np.lexsort(da.T[::-1])], db[np.lexsort(db.T[::-1])]):
        return 0.0  # the same multiset of bars
    if kind == "bottleneck":
        import gudhi

        return float(gudhi.bottleneck_distance(da, db))
    from gudhi.hera import wasserstein_distance

    if da.shape[0] == 0 and db.shape[0] == 0:
        return 0.0
    return float(wasserstein_distance(da, db, order=order, internal_p=ip, delta=err))


# ---------------------------------------------------------------------------------------------------
# Gaussian baseline
# ---------------------------------------------------------------------------------------------------
def gaussian_baseline(points: Any, *, seed: int = 0) -> np.ndarray:
    """Gaussian point cloud with the same size, mean and sample covariance (hence spectrum) as ``points``.

    Returns float64 (n, d): ``mean + Q diag(s) V^T`` where ``points - mean = U diag(s) V^T`` and ``Q`` is an
    orthonormal basis of centred Gaussian noise, so the sample covariance matches exactly.
    """
    x = as_points(points, "points", min_rows=2)
    n, d = x.shape
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    r = min(n - 1, d)
    s, vt = s[:r], vt[:r]
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, r))
    z -= z.mean(axis=0)
    q, rr = np.linalg.qr(z)
    q = q * np.sign(np.diag(rr))[None, :]
    return mean[None, :] + (q * s[None, :]) @ vt


MAX_BASELINES = 200


def compare_with_gaussian(
    points: Any,
    *,
    n_baselines: int = 5,
    seed: int = 0,
    kind: str = "bottleneck",
    **persistence_kwargs: Any,
) -> dict[str, Any]:
    """Diagrams of ``points`` against ``n_baselines`` Gaussian clouds of the same spectrum.

    Returns a dict: ``data`` (PersistenceDiagrams), ``baselines`` (list), and per dimension ``H<k>``:
    distances data-to-baseline, distances between baselines (the null spread), the data's and baselines'
    max persistence, and ``p_value = (1 + #{baseline max persistence >= data's}) / (1 + n_baselines)``.
    """
    n_baselines = check_positive_int(n_baselines, "n_baselines")
    if n_baselines > MAX_BASELINES:
        raise ValueError(
            f"n_baselines must be at most {MAX_BASELINES} (each is a full persistence run, and their spread "
            f"compares every pair); got {n_baselines}"
        )
    data = persistence(points, seed=seed, **persistence_kwargs)
    base = [
        persistence(gaussian_baseline(points, seed=seed + 1 + i), seed=seed, **persistence_kwargs)
        for i in range(n_baselines)
    ]
    out: dict[str, Any] = {"data": data, "baselines": base}
    for k in range(data.maxdim + 1):
        to_base = [diagram_distance(data, b, kind=kind, dim=k) for b in base]
        spread = [
            diagram_distance(base[i], base[j], kind=kind, dim=k)
            for i in range(n_baselines)
            for j in range(i + 1, n_baselines)
        ]
        mp_data = data.summary()[f"H{k}"]["max_persistence"]
        mp_base = [b.summary()[f"H{k}"]["max_persistence"] for b in base]
        out[f"H{k}"] = {
            "distance_to_baselines": to_base,
            "baseline_spread": spread,
            "max_persistence": mp_data,
            "baseline_max_persistence": mp_base,
            "p_value": (1 + sum(v >= mp_data for v in mp_base)) / (1 + n_baselines),
        }
    return out



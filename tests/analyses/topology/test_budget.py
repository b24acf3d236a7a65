"""Cost of Rips runs above H1: simplex counts against gudhi's exact complex, refusals before any engine work."""

import math
import time

import numpy as np
import pytest

from featgeom_tda.analyses.topology import estimate_memory_bytes, landmarks, persistence
from featgeom_tda.analyses.topology.homology.budget import (
    check_run_cost,
    enclosing_radius,
    run_cost,
    simplex_counts,
)
from featgeom_tda.analyses.topology.homology.persistence import distance_matrix


def _gudhi_counts(dist: np.ndarray, t: float, maxdim: int) -> np.ndarray:
    import gudhi

    tree = gudhi.RipsComplex(distance_matrix=dist.astype(np.float64), max_edge_length=t).create_simplex_tree(
        max_dimension=maxdim
    )
    out = np.zeros(maxdim + 1)
    for simplex, _ in tree.get_simplices():
        out[len(simplex) - 1] += 1
    return out


@pytest.mark.parametrize(
    "n, d, maxdim, quantile",
    [(40, 3, 3, None), (40, 3, 3, 0.3), (60, 8, 3, None), (80, 2, 4, 0.2), (200, 3, 2, 0.1), (30, 8, 4, None)],
)
def test_simplex_counts_match_gudhi(n, d, maxdim, quantile):
    x = np.random.default_rng(n + d).standard_normal((n, d))
    dist = distance_matrix(x, "euclidean", np.float32)
    t = enclosing_radius(dist) if quantile is None else float(np.quantile(dist[np.triu_indices(n, 1)], quantile))
    exact = _gudhi_counts(dist, t, maxdim)
    est = simplex_counts(dist, t, maxdim, seed=1)
    np.testing.assert_array_equal(est[:2], exact[:2])  # points and edges are counted exactly
    np.testing.assert_allclose(est, exact, rtol=0.08)


def test_complete_complex_is_counted_exactly():
    dist = distance_matrix(np.random.default_rng(0).standard_normal((25, 4)), "euclidean", np.float32)
    est = simplex_counts(dist, float(dist.max()), 4)
    np.testing.assert_array_equal(est, [math.comb(25, k + 1) for k in range(5)])


def test_maxdim_4_on_300_points_is_refused_quickly():
    """Issue 14, class 5: ``featgeom topology x.npy --maxdim 4`` ran past 300 s while the guard said 0.07 GB."""
    x = np.random.default_rng(0).standard_normal((300, 8))
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        persistence(x, maxdim=4)
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    assert "300 points with maxdim=4 is too large" in msg
    assert "4-simplices up to the enclosing radius" in msg and "GB (memory_budget_gb=4)" in msg
    assert "time_budget_s=600" in msg
    for remedy in ("n_landmarks=<= ", "lower maxdim (maxdim=3)", "threshold=<= "):
        assert remedy in msg
    # C(300, 5) = 1.96e10 simplices in the complete complex; at the enclosing radius a good share remain
    assert 2e9 < estimate_memory_bytes(300, maxdim=4) / 8 and float(msg.split("about ")[1].split(" ")[0]) > 1e9


def test_suggested_landmarks_fit():
    x = np.random.default_rng(0).standard_normal((300, 8))
    with pytest.raises(ValueError) as err:
        persistence(x, maxdim=4)
    fit = int(str(err.value).split("n_landmarks=<= ")[1].split(")")[0])
    dist = distance_matrix(x[landmarks(x, fit)], "euclidean", np.float32)
    cost = check_run_cost(dist, maxdim=4, threshold=None, memory_left_bytes=4e9, memory_budget_gb=4, time_budget_s=600)
    assert 0 < cost[0] < 4e9 and 0 < cost[1] < 600


def test_time_budget_alone_refuses_and_none_lifts_it():
    x = np.random.default_rng(3).standard_normal((120, 6))
    with pytest.raises(ValueError, match=r"120 points with maxdim=3 is too large: .*time_budget_s=0.01"):
        persistence(x, maxdim=3, time_budget_s=0.01)
    dist = distance_matrix(x, "euclidean", np.float32)
    assert check_run_cost(dist, maxdim=3, threshold=None, memory_left_bytes=4e9, memory_budget_gb=4,
                          time_budget_s=None)[1] > 0.01
    with pytest.raises(ValueError, match="time_budget_s must be a number"):
        persistence(x, maxdim=3, time_budget_s=0)
    with pytest.raises(ValueError, match="time_budget_s must be a number"):
        persistence(x, maxdim=3, time_budget_s=True)


def test_a_low_threshold_makes_a_large_run_fit():
    x = np.random.default_rng(4).standard_normal((300, 3))
    with pytest.raises(ValueError, match="maxdim=4 is too large"):
        persistence(x, maxdim=4, threshold=None)
    dg = persistence(x, maxdim=4, threshold=0.3)
    assert dg.maxdim == 4 and not dg.exact


def test_usual_runs_still_run():
    x = np.random.default_rng(5).standard_normal((200, 5))
    assert persistence(x, maxdim=1).n_points == 200
    assert persistence(x[:60], maxdim=2).maxdim == 2


def test_predicted_time_is_within_a_sane_factor_of_a_measured_run():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist = distance_matrix(x, "euclidean", np.float32)
    _, predicted = run_cost(100, simplex_counts(dist, enclosing_radius(dist), 3))
    start = time.process_time()  # CPU seconds: a machine loaded by other jobs stretches wall time, not this
    persistence(x, maxdim=3, engine="giotto", n_threads=1)
    measured = time.process_time() - start
    assert predicted / 8 < measured < predicted * 8  # measured here: 0.7 s against 0.4 s predicted


def test_memory_estimate_counts_the_complete_complex_above_h1():
    n, fixed = 1000, 64 * 2**20
    assert estimate_memory_bytes(n, maxdim=2) == 24 * n * n + fixed + 8 * math.comb(n, 3)
    assert estimate_memory_bytes(n, maxdim=3, n_simplices=10) == 28 * n * n + fixed + 80

"""Distances between diagrams (closed forms, persim) and the Gaussian baseline."""

import math

import numpy as np
import pytest

from analyses.topology.shapes import circle
from featgeom_tda.analyses.topology import (
    PersistenceDiagrams,
    compare_with_gaussian,
    diagram_distance,
    gaussian_baseline,
    persistence,
)


def _toy():
    bars = np.array(
        [[0.0, np.inf, 0], [0.0, 1.0, 0], [0.0, 3.0, 0], [1.0, 2.0, 1], [1.5, 4.0, 1], [2.0, 2.5, 1]], dtype=float
    )
    return PersistenceDiagrams(bars=bars, maxdim=1)


def test_diagram_distance_closed_forms():
    a = np.array([[0.0, 1.0]])
    empty = np.zeros((0, 2))
    assert diagram_distance(a, a) == 0.0
    assert diagram_distance(a, empty) == pytest.approx(0.5)  # L-inf distance to the diagonal
    assert diagram_distance(a, np.array([[0.0, 1.2]])) == pytest.approx(0.2)
    assert diagram_distance(np.array([[0.0, 2.0]]), empty, kind="wasserstein") == pytest.approx(1.0, rel=0.011)
    w = diagram_distance(np.array([[0.0, 2.0], [0.0, 1.0]]), empty, kind="wasserstein", order=2)
    assert w == pytest.approx(math.sqrt(1.0 + 0.25), rel=0.011)
    assert diagram_distance(np.array([[0.0, np.inf]]), empty) == math.inf  # essential classes must match


def test_diagram_distance_matches_persim():
    import persim

    rng = np.random.default_rng(21)
    d1 = persistence(rng.standard_normal((40, 3)))
    d2 = persistence(rng.standard_normal((40, 3)))
    assert diagram_distance(d1, d1) == 0.0
    assert diagram_distance(d1, d1, kind="wasserstein") == 0.0
    for k in (0, 1):
        a, b = d1.finite(k), d2.finite(k)
        assert diagram_distance(a, b, dim=k) == pytest.approx(persim.bottleneck(a, b), abs=1e-6)
        ours = diagram_distance(a, b, kind="wasserstein", internal_p=2.0, relative_error=1e-3)
        assert ours == pytest.approx(persim.wasserstein(a, b), rel=2e-3)
    # canonical (n, 3) arrays select the dimension
    assert diagram_distance(d1.bars, d2.bars, dim=1) == diagram_distance(d1, d2, dim=1)


def test_gaussian_baseline_has_same_mean_and_covariance():
    x = np.random.default_rng(31).standard_normal((200, 8)) @ np.diag([5, 3, 2, 1, 1, 0.5, 0.2, 0.1]) + 3.0
    g = gaussian_baseline(x, seed=1)
    assert g.shape == x.shape
    np.testing.assert_allclose(g.mean(axis=0), x.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(np.cov(g.T), np.cov(x.T), atol=1e-10)
    assert not np.allclose(g, gaussian_baseline(x, seed=2))
    np.testing.assert_array_equal(g, gaussian_baseline(x, seed=1))
    # fewer rows than columns: same spectrum still
    w = np.random.default_rng(32).standard_normal((10, 30))
    np.testing.assert_allclose(np.cov(gaussian_baseline(w, seed=0).T), np.cov(w.T), atol=1e-10)


def test_compare_with_gaussian_circle_beats_baselines():
    out = compare_with_gaussian(circle(n=80), n_baselines=3, seed=0)
    assert out["H1"]["p_value"] == pytest.approx(1 / 4)
    assert out["H1"]["max_persistence"] > max(out["H1"]["baseline_max_persistence"])
    assert len(out["H1"]["distance_to_baselines"]) == 3 and len(out["H1"]["baseline_spread"]) == 3
    assert isinstance(out["data"], PersistenceDiagrams)


def test_bad_inputs_raise_value_errors():
    x = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="kind"):
        diagram_distance(x[:2, :2] ** 2, x[:2, :2] ** 2, kind="energy")
    with pytest.raises(ValueError, match="order"):
        diagram_distance(_toy(), _toy(), kind="wasserstein", order=0.5)
    with pytest.raises(ValueError, match="internal_p"):
        diagram_distance(_toy(), _toy(), internal_p="two")
    with pytest.raises(ValueError, match=r"internal_p must be a number in \[1, inf\]; got True"):
        diagram_distance(_toy(), _toy(), internal_p=True)
    with pytest.raises(ValueError, match=r"relative_error must be a number in \(0, inf\]; got False"):
        diagram_distance(_toy(), _toy(), kind="wasserstein", relative_error=False)
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        diagram_distance(np.zeros((3, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="dim=2"):
        diagram_distance(_toy(), _toy(), dim=2)

"""circle_test(): a circle against Gaussian and shuffled baselines, invariances, the p-value, bad inputs."""

import json
import math

import numpy as np
import pytest

from analyses.topology.shapes import _rotation, circle
from featgeom_tda.analyses.topology import CircleTest, class_means, circle_test, longest_h1_bar, monte_carlo_p_value


@pytest.fixture(scope="module")
def ring():
    return circle(n=60, d=64, noise=0.05, seed=1)


@pytest.fixture(scope="module")
def blob():
    return np.random.default_rng(0).standard_normal((60, 64))


@pytest.mark.parametrize("baseline", ["gaussian", "shuffle"])
def test_noisy_circle_in_64d_is_a_circle(ring, baseline):
    res = circle_test(ring, n_components=2, n_baselines=99, baseline=baseline, seed=0)
    assert isinstance(res, CircleTest)
    assert res.p_value <= 0.05 and res.n_at_least == 0 and res.p_value == pytest.approx(1 / 100)
    # unit circle: the loop dies near the inscribed equilateral triangle (sqrt 3), the enclosing radius is ~2
    assert res.death == pytest.approx(math.sqrt(3), abs=0.15)
    assert res.enclosing_radius == pytest.approx(2.0, abs=0.2)
    assert res.relative_length > 0.6
    assert res.observed > res.null_mean + 5 * res.null_std and res.z_score > 5
    assert res.null_values.shape == (99,) and res.coordinates.shape == (60, 2)
    assert sum(res.explained_variance_ratio) > 0.8


@pytest.mark.parametrize("baseline", ["gaussian", "shuffle"])
def test_gaussian_blob_is_not_a_circle(blob, baseline):
    res = circle_test(blob, n_components=2, n_baselines=99, baseline=baseline, seed=0)
    assert res.p_value > 0.2
    assert res.relative_length < 0.3


def test_statistic_against_an_independent_square():
    # four corners of a square of side 1: the 4-cycle is born at 1, dies at the diagonal sqrt 2
    sq = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    birth, death, enclosing, diameter = longest_h1_bar(sq)
    assert (birth, death) == pytest.approx((1.0, math.sqrt(2)))
    assert enclosing == pytest.approx(math.sqrt(2)) and diameter == pytest.approx(math.sqrt(2))
    res = circle_test(sq, n_baselines=5, baseline="shuffle")
    assert res.length == pytest.approx(math.sqrt(2) - 1)
    assert res.relative_length == pytest.approx((math.sqrt(2) - 1) / math.sqrt(2))
    assert circle_test(sq, n_baselines=5, statistic="absolute").observed == pytest.approx(math.sqrt(2) - 1)


@pytest.mark.parametrize("baseline", ["gaussian", "shuffle"])
def test_invariant_to_scale_rotation_and_translation(ring, baseline):
    ref = circle_test(ring, n_baselines=19, baseline=baseline, seed=3)
    moved = 7.5 * ring @ _rotation(64, 11) + 3.0
    res = circle_test(moved, n_baselines=19, baseline=baseline, seed=3)
    assert res.relative_length == pytest.approx(ref.relative_length, rel=1e-6)
    assert res.length == pytest.approx(7.5 * ref.length, rel=1e-6)
    np.testing.assert_allclose(res.null_values, ref.null_values, rtol=1e-6)
    assert res.p_value == ref.p_value and res.null_mean == pytest.approx(ref.null_mean, rel=1e-6)


def test_seeded_and_reproducible(ring):
    a = circle_test(ring, n_baselines=9, seed=5)
    b = circle_test(ring, n_baselines=9, seed=5)
    c = circle_test(ring, n_baselines=9, seed=6)
    np.testing.assert_array_equal(a.null_values, b.null_values)
    assert not np.array_equal(a.null_values, c.null_values)


def test_p_value_formula():
    assert monte_carlo_p_value(1.0, [0.5, 1.0, 2.0, 0.1]) == (3 / 5, 2)  # ties count as "at least as long"
    assert monte_carlo_p_value(9.0, np.zeros(99)) == (1 / 100, 0)
    assert monte_carlo_p_value(0.0, np.ones(9)) == (1.0, 9)


def test_p_value_and_null_summary_match_the_null_values(blob):
    res = circle_test(blob, n_baselines=19, seed=2)
    k = int((res.null_values >= res.observed).sum())
    assert res.n_at_least == k and res.p_value == (k + 1) / 20
    assert res.null_mean == pytest.approx(res.null_values.mean())
    assert res.null_std == pytest.approx(np.std(res.null_values, ddof=1))
    assert res.z_score == pytest.approx((res.observed - res.null_mean) / res.null_std)


def test_all_dimensions_and_to_dict(ring):
    res = circle_test(ring[:, :8], n_components=None, n_baselines=5)
    assert res.n_components == 8 and res.coordinates.shape == (60, 8)
    d = circle_test(ring, n_baselines=5).to_dict()
    json.dumps(d)
    assert "coordinates" not in d and len(d["null_values"]) == 5
    assert d["longest_h1_bar"]["length"] == pytest.approx(d["longest_h1_bar"]["death"] - d["longest_h1_bar"]["birth"])


def test_class_means_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4))
    labels = np.array(["b", "a", "c"] * 10)
    out = class_means(x, labels, classes=["c", "a", "b"])
    assert out.classes == ["c", "a", "b"] and out.counts.tolist() == [10, 10, 10]
    np.testing.assert_allclose(out.means[0], x[2::3].mean(axis=0))
    np.testing.assert_allclose(out.means[1], x[1::3].mean(axis=0))
    assert class_means(x, labels).classes == ["a", "b", "c"]
    assert class_means(x, labels, classes=["a"]).means.shape == (1, 4)  # other labels ignored


def test_twelve_centroids_of_a_circle_form_a_circle():
    rng = np.random.default_rng(0)
    theta = np.repeat(np.arange(12) * 2 * np.pi / 12, 20)
    pts = np.zeros((240, 64))
    pts[:, 0], pts[:, 1] = np.cos(theta), np.sin(theta)
    pts = pts @ _rotation(64, 2) + 0.3 * rng.standard_normal((240, 64))
    cm = class_means(pts, np.repeat(np.arange(12), 20), classes=range(12))
    res = circle_test(cm.means, n_baselines=99, seed=0)
    assert res.p_value <= 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"points": np.zeros((3, 5))}, "at least 4"),
        ({"points": np.zeros(10)}, "points"),
        ({"points": np.full((10, 3), np.nan)}, "points"),
        ({"points": np.ones((10, 3))}, "zero variance"),
        ({"n_components": 1}, "n_components"),
        ({"n_components": 65}, "n_components"),
        ({"n_components": 2.0}, "n_components"),
        ({"n_baselines": 0}, "n_baselines"),
        ({"n_baselines": 201}, "n_baselines"),
        ({"baseline": "uniform"}, "baseline"),
        ({"statistic": "max"}, "statistic"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"n_threads": 0}, "n_threads"),
    ],
)
def test_bad_inputs_refused(ring, kwargs, match):
    kwargs = {"points": ring, "n_baselines": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        circle_test(**kwargs)


def test_n_components_capped_by_rows():
    with pytest.raises(ValueError, match=r"n_components must be at most min\(n_points - 1, dim\) = 4"):
        circle_test(np.random.default_rng(0).standard_normal((5, 10)), n_components=5, n_baselines=3)


def test_class_means_bad_inputs():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="labels has 3"):
        class_means(x, [0, 1, 2])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        class_means(x, np.zeros((4, 1)))
    with pytest.raises(ValueError, match="class 7"):
        class_means(x, [0, 0, 1, 1], classes=[0, 7])
    with pytest.raises(ValueError, match="distinct"):
        class_means(x, [0, 0, 1, 1], classes=[0, 0])

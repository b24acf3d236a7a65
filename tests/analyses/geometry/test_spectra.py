import numpy as np
import pytest
import torch

from featgeom_tda.analyses.geometry import (
    Spectrum,
    effective_rank,
    random_spectrum,
    spectrum,
    spectrum_distance,
)
from featgeom_tda.core.types import FeatureWeights, Provenance


def with_singular_values(s, n_rows, seed=0):
    """A matrix n_rows x len(s) whose singular values are exactly s."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n_rows, len(s))))[0]
    V = np.linalg.qr(rng.standard_normal((len(s), len(s))))[0]
    return U @ np.diag(s) @ V.T


def test_singular_values_match_numpy_for_every_input_type():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((30, 8)).astype(np.float32)
    expected = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    fw = FeatureWeights(W, provenance=Provenance(model="m", hook_name="blocks.0.hook_mlp_out", sae_id="s"))
    for source in (W, torch.from_numpy(W), fw):
        spec = spectrum(source)
        assert np.allclose(spec.singular_values, expected, rtol=1e-12)
        assert spec.shape == (30, 8) and spec.kind == "weights" and len(spec) == 8
    assert spectrum(fw).name == "m/blocks.0.hook_mlp_out/s"
    assert spectrum(fw).provenance["model"] == "m"


def test_normalisations():
    spec = spectrum(with_singular_values([4.0, 3.0, 1.0], 10))
    assert np.allclose(spec.normalized, [0.5, 0.375, 0.125])
    assert np.allclose(spec.explained_variance, np.array([16.0, 9.0, 1.0]) / 26.0)


def test_centering_removes_the_mean_direction():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((50, 4)) * 0.01 + 10.0
    assert spectrum(W).singular_values[0] > 100
    assert spectrum(W, center=True).singular_values[0] < 1


def test_effective_rank_closed_forms():
    assert spectrum(with_singular_values([2.0] * 6, 20)).effective_rank == pytest.approx(6.0, rel=1e-10)
    assert spectrum(np.outer(np.arange(1, 6), np.arange(1, 4))).effective_rank == pytest.approx(1.0, abs=1e-6)
    p = np.array([0.75, 0.25])
    assert effective_rank([3.0, 1.0]) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert effective_rank([1.0, 0.0, 0.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_power_law_slope_of_an_exact_power_law(alpha):
    s = np.arange(1, 101, dtype=float) ** -alpha
    spec = spectrum(with_singular_values(s, 150))
    assert spec.tail_ranks == (10, 90)
    assert spec.slope == pytest.approx(-alpha, abs=1e-6)
    assert spec.intercept == pytest.approx(0.0, abs=1e-5)


def test_power_law_fit_uses_only_the_tail():
    # a broken power law: exponent -3 for the top 10 values, -1 below; the default tail (0.1, 0.9) sees -1
    k = np.arange(1, 201, dtype=float)
    s = np.where(k <= 10, 10.0**2 * k**-3.0, k**-1.0)
    spec = spectrum(with_singular_values(s, 250))
    assert spec.slope == pytest.approx(-1.0, abs=1e-6)
    assert spectrum(with_singular_values(s, 250), tail=(0.0, 0.04)).slope == pytest.approx(-3.0, abs=1e-6)


def test_slope_is_nan_when_the_tail_is_too_short():
    spec = spectrum(with_singular_values([2.0, 1.0], 5))
    assert np.isnan(spec.slope)
    assert spec.to_dict()["slope"] is None


def test_random_spectrum_follows_marchenko_pastur_edges_and_is_seeded():
    n, d = 3000, 60
    a = random_spectrum((n, d), seed=3)
    assert a.kind == "random" and a.seed == 3 and a.shape == (n, d)
    s = a.singular_values
    assert s.max() == pytest.approx(np.sqrt(n) + np.sqrt(d), rel=0.02)
    assert s.min() == pytest.approx(np.sqrt(n) - np.sqrt(d), rel=0.02)
    assert np.array_equal(random_spectrum((n, d), seed=3).singular_values, s)
    assert not np.array_equal(random_spectrum((n, d), seed=4).singular_values, s)


def test_spectrum_distance_closed_forms_for_equal_lengths():
    a = np.array([5.0, 3.0, 2.0])
    b = np.array([4.0, 4.0, 2.0])
    pa, pb = a / a.sum(), b / b.sum()
    assert spectrum_distance(a, b, method="l1") == pytest.approx(np.abs(pa - pb).sum(), abs=1e-14)
    assert spectrum_distance(a, b, method="ks") == pytest.approx(
        np.abs(np.cumsum(pa) - np.cumsum(pb)).max(), abs=1e-14
    )


def _fine_grid_distances(a, b, resolution):
    """Independent check: sample both relative-rank densities on a fine common grid."""
    pa, pb = np.asarray(a) / np.sum(a), np.asarray(b) / np.sum(b)
    u = (np.arange(resolution) + 0.5) / resolution
    fa = len(pa) * pa[np.floor(u * len(pa)).astype(int)]
    fb = len(pb) * pb[np.floor(u * len(pb)).astype(int)]
    l1 = np.abs(fa - fb).mean()
    ks = np.abs(np.cumsum(fa - fb) / resolution).max()
    return l1, ks


def test_spectrum_distance_for_different_lengths_matches_a_fine_grid():
    rng = np.random.default_rng(5)
    a, b = np.sort(rng.uniform(0.1, 3, 7))[::-1], np.sort(rng.uniform(0.1, 3, 5))[::-1]
    l1, ks = _fine_grid_distances(a, b, 7 * 5 * 40)
    assert spectrum_distance(a, b, method="l1") == pytest.approx(l1, abs=1e-12)
    assert spectrum_distance(a, b, method="ks") == pytest.approx(ks, abs=1e-12)


def test_spectrum_distance_invariances_symmetry_and_bounds():
    rng = np.random.default_rng(6)
    s = np.sort(rng.uniform(0.1, 2, 6))[::-1]
    for method in ("ks", "l1"):
        assert spectrum_distance(s, 3.0 * s, method=method) == pytest.approx(0.0, abs=1e-14)
        assert spectrum_distance(s, np.repeat(s, 3), method=method) == pytest.approx(0.0, abs=1e-14)
        t = np.sort(rng.uniform(0.1, 2, 9))[::-1]
        assert spectrum_distance(s, t, method=method) == pytest.approx(spectrum_distance(t, s, method=method))
    assert spectrum_distance([1.0, 0.0], [0.0, 1.0], method="l1") == pytest.approx(2.0)
    assert spectrum_distance([1.0, 0.0], [0.0, 1.0], method="ks") == pytest.approx(1.0)
    structured = spectrum(with_singular_values(np.arange(1, 41, dtype=float) ** -1.5, 100))
    baseline = random_spectrum((100, 40), seed=0)
    assert spectrum_distance(structured, baseline) > spectrum_distance(baseline, random_spectrum((100, 40), seed=1))


def test_spectra_reject_bad_input():
    with pytest.raises(ValueError, match=r"W must be 2-D"):
        spectrum(np.ones(5))
    with pytest.raises(ValueError, match=r"W contains 1 NaN"):
        spectrum(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"W is all zeros"):
        spectrum(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"tail must satisfy 0 <= lo < hi <= 1"):
        spectrum(np.eye(3), tail=(0.5, 0.2))
    with pytest.raises(ValueError, match=r"shape must be a pair"):
        random_spectrum(10)
    with pytest.raises(ValueError, match=r"shape\[0\] must be an integer >= 1; got 0"):
        random_spectrum((0, 3))
    with pytest.raises(ValueError, match=r"method must be one of 'ks', 'l1'; got 'emd'"):
        spectrum_distance([1.0], [1.0], method="emd")
    with pytest.raises(ValueError, match=r"a must hold finite non-negative values"):
        spectrum_distance([1.0, -1.0], [1.0])


def test_spectrum_to_dict_is_plain_json():
    import json

    spec = random_spectrum((20, 5), seed=2)
    d = json.loads(json.dumps(spec.to_dict(), allow_nan=False))
    assert d["kind"] == "random" and len(d["singular_values"]) == 5 and isinstance(spec, Spectrum)

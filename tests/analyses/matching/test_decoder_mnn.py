"""decoder_mutual_neighbours: planted rotations (same and different widths), a dense float64 reference, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from featgeom_tda.analyses.matching import decoder_mnn
from featgeom_tda.analyses.matching.decoder_mnn import DecoderNeighbours, decoder_mutual_neighbours
from featgeom_tda.core.types import FeatureMatching, FeatureWeights, Provenance


def unit(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def planted(rng, n=300, d=32, noise=0.05):
    """A's rows; B = A's rows permuted (B row j is A row perm[j]), rotated by Q, with a little noise."""
    W_a = unit(rng.standard_normal((n, d)))
    perm = rng.permutation(n)
    Q = ortho_group.rvs(d, random_state=int(rng.integers(1 << 30)))
    W_b = W_a[perm] @ Q + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    return W_a, W_b, perm, Q


def true_anchor_matching(perm, rows_b):
    """FeatureMatching of the true pairs (perm[j], j) for the given B rows."""
    rows_b = np.asarray(rows_b)
    return FeatureMatching(perm[rows_b], rows_b, np.ones(rows_b.size, dtype=np.float32))


def dense_reference(W_a, W_b, ia, ib, metric="cosine"):
    """Mutual nearest neighbours from full float64 similarity matrices, with the map fitted by scipy's square
    orthogonal_procrustes on both sides zero-padded to max(d_a, d_b) columns."""
    d = max(W_a.shape[1], W_b.shape[1])
    pad = lambda Z: np.hstack([Z, np.zeros((Z.shape[0], d - Z.shape[1]))])  # noqa: E731
    fa, fb = (unit(W_a[ia]), unit(W_b[ib])) if metric == "cosine" else (W_a[ia], W_b[ib])
    Q, _ = orthogonal_procrustes(pad(fa), pad(fb))
    mapped = (pad(W_a) @ Q)[:, : W_b.shape[1]]
    if metric == "cosine":
        S = unit(mapped) @ unit(W_b).T
    else:
        S = -np.linalg.norm(mapped[:, None, :] - W_b[None, :, :], axis=2)
    nn_b, nn_a = S.argmax(axis=1), S.argmax(axis=0)
    pairs = {(i, int(nn_b[i])) for i in range(W_a.shape[0]) if nn_a[nn_b[i]] == i}
    return pairs, mapped


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_planted_rotation_is_recovered_from_a_few_anchors(metric):
    rng = np.random.default_rng(0)
    W_a, W_b, perm, Q = planted(rng)
    anchors = true_anchor_matching(perm, rng.choice(300, 64, replace=False))
    res = decoder_mutual_neighbours(W_a, W_b, metric=metric, anchors=anchors)
    assert isinstance(res, DecoderNeighbours) and len(res) == 300
    np.testing.assert_array_equal(res.index_a, np.arange(300))
    np.testing.assert_array_equal(perm[res.index_b], res.index_a)
    np.testing.assert_allclose(res.alignment, Q, atol=0.05)  # the planted rotation itself
    assert res.cosine.min() > 0.95 and res.config["n_anchors"] == 64 and res.config["anchor_rank"] == 32
    assert res.filtered == {"zero_a": 0, "zero_b": 0, "not_mutual_a": 0}
    # without the alignment the rotated spaces do not match
    raw = decoder_mutual_neighbours(W_a, W_b, metric=metric, align=None)
    assert np.mean(perm[raw.index_b] == raw.index_a) * len(raw) < 30


@pytest.mark.parametrize("widths", [(24, 40), (40, 24)])
def test_different_widths(widths):
    """d_a < d_b: A's space embeds isometrically; d_a > d_b: A lives in a wider space whose extra directions B
    lacks (A's rows = shared part + a little private part), and the map projects them out."""
    rng = np.random.default_rng(1)
    d_a, d_b = widths
    d = min(d_a, d_b)
    n = 250
    Z = unit(rng.standard_normal((n, d)))
    perm = rng.permutation(n)
    E_a = ortho_group.rvs(d_a, random_state=2)[:d]  # (d, d_a) orthonormal rows
    E_b = ortho_group.rvs(d_b, random_state=3)[:d]
    W_a = Z @ E_a + (0.1 * rng.standard_normal((n, d_a)) / np.sqrt(d_a) if d_a > d_b else 0.0)
    W_b = Z[perm] @ E_b + 0.02 * rng.standard_normal((n, d_b)) / np.sqrt(d_b)
    anchors = (perm[:80], np.arange(80))  # a pair of index arrays
    res = decoder_mutual_neighbours(W_a, W_b, anchors=anchors)
    assert res.alignment.shape == (d_a, d_b)
    R = res.alignment
    gram = R @ R.T if d_a < d_b else R.T @ R
    np.testing.assert_allclose(gram, np.eye(d), atol=1e-10)  # orthonormal rows / columns
    assert ("embedding" if d_a < d_b else "projection") in res.config["dims"]
    assert np.mean(perm[res.index_b] == res.index_a) == 1.0 and len(res) >= 0.98 * n
    pairs, _ = dense_reference(W_a, W_b, perm[:80], np.arange(80))
    assert set(zip(res.index_a.tolist(), res.index_b.tolist())) == pairs


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_equals_a_dense_float64_reference_on_unrelated_rows(metric, monkeypatch):
    monkeypatch.setattr(decoder_mnn, "_CHUNK_ENTRIES", 90)  # several A blocks: the running column maxima
    rng = np.random.default_rng(4)
    W_a, W_b = rng.standard_normal((70, 10)) * rng.uniform(0.5, 2, (70, 1)), rng.standard_normal((55, 12))
    ia, ib = rng.integers(0, 70, 30), rng.integers(0, 55, 30)  # random anchors: a poor but well-defined map
    res = decoder_mutual_neighbours(W_a, W_b, metric=metric, anchors=np.column_stack([ia, ib]))
    pairs, mapped = dense_reference(W_a, W_b, ia, ib, metric)
    assert 0 < len(pairs) < 55
    assert set(zip(res.index_a.tolist(), res.index_b.tolist())) == pairs
    np.testing.assert_allclose(W_a @ res.alignment, mapped, atol=1e-10)
    np.testing.assert_allclose(res.distance, np.linalg.norm(mapped[res.index_a] - W_b[res.index_b], axis=1), atol=1e-10)
    np.testing.assert_allclose(
        res.cosine, np.einsum("ij,ij->i", unit(mapped[res.index_a]), unit(W_b[res.index_b])), atol=1e-12
    )
    assert res.filtered["not_mutual_a"] == 70 - len(res)
    assert list(np.diff(res.index_a) > 0) == [True] * (len(res) - 1) and len(set(res.index_b.tolist())) == len(res)


def test_invariant_to_a_rotation_of_either_space():
    rng = np.random.default_rng(5)
    W_a, W_b, perm, _ = planted(rng, n=120, d=16, noise=0.6)  # noisy: only some pairs are mutual
    anchors = true_anchor_matching(perm, np.arange(40))
    base = decoder_mutual_neighbours(W_a, W_b, anchors=anchors)
    moved = decoder_mutual_neighbours(
        W_a @ ortho_group.rvs(16, random_state=6), 3.0 * W_b @ ortho_group.rvs(16, random_state=7), anchors=anchors
    )
    assert 10 < len(base) < 120
    np.testing.assert_array_equal(moved.index_a, base.index_a)
    np.testing.assert_array_equal(moved.index_b, base.index_b)
    np.testing.assert_allclose(moved.cosine, base.cosine, atol=1e-10)


def test_zero_rows_are_never_paired_and_same_basis_mode():
    rng = np.random.default_rng(8)
    W_a = unit(rng.standard_normal((50, 8)))
    perm = rng.permutation(50)
    W_b = W_a[perm] + 0.01 * rng.standard_normal((50, 8))
    W_a[3] = 0.0
    W_b[np.flatnonzero(perm == 7)[0]] = 0.0
    res = decoder_mutual_neighbours(
        FeatureWeights(W_a, provenance=Provenance(model="a")), FeatureWeights(W_b, provenance=Provenance(model="b")),
        align=None,
    )
    assert res.filtered["zero_a"] == 1 and res.filtered["zero_b"] == 1
    assert 3 not in res.index_a and len(res) == 48 and (perm[res.index_b] == res.index_a).all()
    assert res.alignment is None and res.provenance_a.model == "a" and res.provenance_b.model == "b"


def test_to_matching_and_save_load(tmp_path):
    rng = np.random.default_rng(9)
    W_a, W_b, perm, _ = planted(rng, n=60, d=8)
    res = decoder_mutual_neighbours(W_a, W_b, anchors=true_anchor_matching(perm, np.arange(20)))
    m = res.to_matching()
    assert isinstance(m, FeatureMatching) and len(m) == len(res) and m.config["mode"] == "decoder-mnn"
    np.testing.assert_allclose(m.correlation, res.cosine, atol=1e-6)
    back = DecoderNeighbours.load(res.save(tmp_path / "mnn"))
    np.testing.assert_array_equal(back.index_b, res.index_b)
    np.testing.assert_array_equal(back.alignment, res.alignment)
    assert back.config == res.config and back.filtered == res.filtered
    with pytest.raises(ValueError, match="is not saved decoder neighbours"):
        DecoderNeighbours.load(tmp_path)


def test_underdetermined_alignment_is_logged(caplog):
    rng = np.random.default_rng(10)
    W_a, W_b, perm, _ = planted(rng, n=40, d=16)
    with caplog.at_level(logging.WARNING, logger="featgeom_tda.analyses.matching.decoder_mnn"):
        res = decoder_mutual_neighbours(W_a, W_b, anchors=true_anchor_matching(perm, np.arange(5)))
    assert res.config["anchor_rank"] == 5 and "underdetermined" in caplog.text


def test_validation_errors_name_the_argument():
    rng = np.random.default_rng(11)
    W_a, W_b = rng.standard_normal((20, 6)), rng.standard_normal((15, 7))
    with pytest.raises(ValueError, match="align='procrustes' needs anchors"):
        decoder_mutual_neighbours(W_a, W_b)
    with pytest.raises(ValueError, match="W_a has 6 columns but W_b has 7; align=None"):
        decoder_mutual_neighbours(W_a, W_b, align=None)
    with pytest.raises(ValueError, match="anchors are only used by align='procrustes'"):
        decoder_mutual_neighbours(W_a, W_a, align=None, anchors=([0], [0]))
    with pytest.raises(ValueError, match="metric must be one of 'cosine', 'euclidean'"):
        decoder_mutual_neighbours(W_a, W_b, metric="l1", anchors=([0], [0]))
    with pytest.raises(ValueError, match="align must be one of 'procrustes', None"):
        decoder_mutual_neighbours(W_a, W_b, align="orthogonal", anchors=([0], [0]))
    with pytest.raises(ValueError, match="anchors index_b holds 15, outside the 15 rows of W_b"):
        decoder_mutual_neighbours(W_a, W_b, anchors=([0, 1], [2, 15]))
    with pytest.raises(ValueError, match="anchors index_a has 2 entries but index_b has 1"):
        decoder_mutual_neighbours(W_a, W_b, anchors=([0, 1], [2]))
    with pytest.raises(ValueError, match="anchors hold no pairs"):
        decoder_mutual_neighbours(W_a, W_b, anchors=np.zeros((0, 2), dtype=int))
    with pytest.raises(ValueError, match="anchors must be a FeatureMatching"):
        decoder_mutual_neighbours(W_a, W_b, anchors=np.arange(6))
    with pytest.raises(ValueError, match="integer row indices"):
        decoder_mutual_neighbours(W_a, W_b, anchors=([0.5], [1.0]))
    with pytest.raises(ValueError, match="W_b contains 1 NaN"):
        decoder_mutual_neighbours(W_a, np.where(np.arange(7) == 3, np.nan, W_b[:1]), align=None)

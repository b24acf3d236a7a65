"""Feature splitting across SAE widths: planted families recovered exactly, against float64 references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.analyses.matching.splitting import SplitFamilies, split_families
from featgeom_tda.core.types import FeatureActivations, FeatureWeights, Provenance


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _sparse_acts(rng, n_tokens, n_features, p):
    fire = rng.random((n_tokens, n_features)) < p
    return np.where(fire, rng.uniform(0.5, 2.0, (n_tokens, n_features)), 0.0)


def _planted(seed=5, n_tokens=6000, d=64, n_narrow=40, n_unrelated=20):
    """Narrow feature i = sum of its 1-3 wide children's activations; decoder row = normalised mean of theirs.

    Also: one dead narrow feature (last column), one dead wide feature, ``n_unrelated`` independent wide
    features, and two decoys for narrow feature 0 (same activation but an orthogonal direction; the
    parent's direction but independent activations). Wide columns are shuffled.
    Returns (acts_narrow, acts_wide, W_narrow, W_wide, families {narrow: set(wide)}, decoys).
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_narrow)
    sizes[:3] = [1, 2, 3]
    n_children = int(sizes.sum())
    child_acts = _sparse_acts(rng, n_tokens, n_children, 0.03)
    child_dirs = _unit(rng.normal(size=(n_children, d)))
    owner = np.repeat(np.arange(n_narrow), sizes)

    narrow_acts = np.zeros((n_tokens, n_narrow + 1))
    narrow_dirs = np.zeros((n_narrow + 1, d))
    for i in range(n_narrow):
        narrow_acts[:, i] = child_acts[:, owner == i].sum(axis=1)
        narrow_dirs[i] = _unit(child_dirs[owner == i].mean(axis=0))
    narrow_dirs[n_narrow] = _unit(rng.normal(size=d))  # dead narrow feature: zero activations

    unrelated_acts = _sparse_acts(rng, n_tokens, n_unrelated, 0.03)
    unrelated_dirs = _unit(rng.normal(size=(n_unrelated, d)))
    # decoy 1: fires exactly like narrow 0 but writes a direction orthogonal to it
    v = rng.normal(size=d)
    v -= (v @ narrow_dirs[0]) * narrow_dirs[0]
    decoy_acts = np.stack([narrow_acts[:, 0], _sparse_acts(rng, n_tokens, 1, 0.03)[:, 0]], axis=1)
    decoy_dirs = np.stack([_unit(v), narrow_dirs[0]])
    dead_acts = np.zeros((n_tokens, 1))
    dead_dirs = _unit(rng.normal(size=(1, d)))

    wide_acts = np.hstack([child_acts, unrelated_acts, decoy_acts, dead_acts])
    wide_dirs = np.vstack([child_dirs, unrelated_dirs, decoy_dirs, dead_dirs])
    perm = rng.permutation(wide_acts.shape[1])  # new column j = old column perm[j]
    inv = np.argsort(perm)
    wide_acts, wide_dirs = wide_acts[:, perm], wide_dirs[perm]
    families = {i: {int(inv[c]) for c in np.flatnonzero(owner == i)} for i in range(n_narrow)}
    decoys = {
        "orthogonal": int(inv[n_children + n_unrelated]),
        "independent": int(inv[n_children + n_unrelated + 1]),
        "dead": int(inv[n_children + n_unrelated + 2]),
        "unrelated": [int(inv[n_children + j]) for j in range(n_unrelated)],
    }
    return narrow_acts, wide_acts, narrow_dirs, wide_dirs, families, decoys


def _corr64(a, b):
    """float64 Pearson correlation matrix (columns of a x columns of b), NaN for constant columns."""
    with np.errstate(invalid="ignore", divide="ignore"):
        za = (a - a.mean(0)) / a.std(0)
        zb = (b - b.mean(0)) / b.std(0)
        return za.T @ zb / a.shape[0]


def _families(res: SplitFamilies) -> dict[int, set[int]]:
    return {p: set(c.tolist()) for p, c in res.families().items()}


@pytest.fixture(scope="module")
def planted():
    return _planted()


@pytest.fixture(scope="module")
def planted_result(planted):
    a_n, a_w, w_n, w_w, _, _ = planted
    return split_families(sp.csr_matrix(a_n), sp.csr_matrix(a_w), w_n, w_w)


def test_planted_families_recovered_exactly(planted, planted_result):
    _, _, _, _, families, decoys = planted
    res = planted_result
    assert _families(res) == families
    sizes = np.array([len(families[i]) for i in range(len(families))] + [0])
    np.testing.assert_array_equal(res.family_size, sizes)
    assert res.n_families == len(families)
    assert res.n_split == int((sizes >= 2).sum())
    # the dead narrow feature is excluded from the denominator
    assert res.split_fraction == pytest.approx((sizes >= 2).sum() / len(families))
    dist = res.size_distribution()
    assert dist == {0: 0, 1: int((sizes == 1).sum()), 2: int((sizes == 2).sum()), 3: int((sizes == 3).sum())}
    for name in ("orthogonal", "independent", "dead"):
        assert not res.in_family[decoys[name]]
    assert not res.in_family[decoys["unrelated"]].any()


def test_planted_correlations_and_cosines_match_float64(planted, planted_result):
    a_n, a_w, w_n, w_w, _, decoys = planted
    res = planted_result
    corr = _corr64(a_w, a_n)  # (wide, narrow)
    corr[:, -1] = -np.inf  # dead narrow column is never a parent
    live = np.flatnonzero(~res.dead_wide)
    best = np.argmax(corr[live], axis=1)
    np.testing.assert_array_equal(res.parent[live], best)
    np.testing.assert_allclose(res.correlation[live], corr[live, best], atol=1e-5)
    cos = np.einsum("ij,ij->i", _unit(w_w[live]), _unit(w_n[best]))
    np.testing.assert_allclose(res.cosine[live], cos, atol=1e-6)
    # the orthogonal decoy is the best match of narrow 0 by activation (correlation 1) but fails on cosine
    o = decoys["orthogonal"]
    assert res.parent[o] == 0 and res.correlation[o] == pytest.approx(1.0, abs=1e-6)
    assert abs(res.cosine[o]) < 1e-6


def test_planted_reconstruction_is_exact(planted, planted_result):
    _, _, w_n, w_w, families, _ = planted
    res = planted_result
    for p, kids in families.items():
        kids = sorted(kids)
        # parent = normalised mean of unit children, so the normalised sum gives cosine 1 exactly
        assert res.reconstruction_cosine[p] == pytest.approx(1.0, abs=1e-6)
        expected_best = max(float(_unit(w_w[c]) @ _unit(w_n[p])) for c in kids)
        assert res.best_child_cosine[p] == pytest.approx(expected_best, abs=1e-6)
    assert res.reconstructed_fraction == 1.0
    assert np.isnan(res.reconstruction_cosine[-1]) and np.isnan(res.best_child_cosine[-1])


def test_children_ordered_by_correlation(planted_result):
    res = planted_result
    for p in res.families():
        kids = res.children(p)
        c = res.correlation[kids]
        assert np.all(np.diff(c) <= 0)
        assert (res.parent[kids] == p).all()


def test_dead_features_never_assigned(planted, planted_result):
    _, _, _, _, _, decoys = planted
    res = planted_result
    assert res.dead_narrow.tolist() == [False] * (res.n_narrow - 1) + [True]
    assert np.flatnonzero(res.dead_wide).tolist() == [decoys["dead"]]
    assert res.parent[decoys["dead"]] == -1
    assert np.isnan(res.correlation[decoys["dead"]]) and np.isnan(res.cosine[decoys["dead"]])
    assert res.family_size[-1] == 0 and not (res.parent == res.n_narrow - 1).any()
    s = res.summary()
    assert s["n_dead_narrow"] == 1 and s["n_dead_wide"] == 1
    # unrelated features, the two decoys: live, assigned a parent, but in no family
    assert s["n_unassigned_wide"] == len(decoys["unrelated"]) + 2


def test_permuting_columns_permutes_families(planted, planted_result):
    a_n, a_w, w_n, w_w, _, _ = planted
    rng = np.random.default_rng(99)
    pn = rng.permutation(a_n.shape[1])
    pw = rng.permutation(a_w.shape[1])
    res = split_families(a_n[:, pn], a_w[:, pw], w_n[pn], w_w[pw])
    inv_n, inv_w = np.argsort(pn), np.argsort(pw)
    expected = {int(inv_n[p]): {int(inv_w[c]) for c in kids} for p, kids in _families(planted_result).items()}
    assert _families(res) == expected
    np.testing.assert_array_equal(res.family_size, planted_result.family_size[pn])
    np.testing.assert_allclose(res.correlation, planted_result.correlation[pw], atol=1e-6)
    np.testing.assert_allclose(res.reconstruction_cosine, planted_result.reconstruction_cosine[pn], atol=1e-6)
    assert res.summary() == planted_result.summary()


def test_unrelated_features_form_no_family():
    rng = np.random.default_rng(3)
    a_n = _sparse_acts(rng, 5000, 30, 0.03)
    a_w = _sparse_acts(rng, 5000, 90, 0.03)
    w_n = rng.normal(size=(30, 48))
    w_w = rng.normal(size=(90, 48))
    res = split_families(a_n, a_w, w_n, w_w)
    assert res.n_families == 0 and not res.in_family.any()
    assert res.split_fraction == 0.0
    assert np.isnan(res.reconstructed_fraction)
    assert res.size_distribution() == {0: 30}
    assert (res.parent >= 0).all()  # every live wide feature still has a most correlated parent
    assert np.nanmax(res.correlation) < 0.3


def test_cosine_threshold_keeps_only_exact_singletons(planted):
    a_n, a_w, w_n, w_w, families, _ = planted
    # a lone child has cosine 1 with its parent; children of a 2- or 3-way split have cosine < 0.99
    res = split_families(a_n, a_w, w_n, w_w, min_cosine=0.99)
    assert _families(res) == {p: kids for p, kids in families.items() if len(kids) == 1}
    assert res.n_split == 0


def test_correlation_threshold(planted, planted_result):
    a_n, a_w, w_n, w_w, _, _ = planted
    res = split_families(a_n, a_w, w_n, w_w, min_correlation=0.65, min_cosine=-1.0)
    with np.errstate(invalid="ignore"):
        kept = planted_result.correlation >= 0.65  # NaN (dead) compares False
    np.testing.assert_array_equal(res.in_family, kept)
    # 3-way children (correlation about 1/sqrt(3)) drop out; singletons (correlation 1) stay, and with
    # min_cosine=-1 the orthogonal decoy (correlation 1 with narrow 0) joins them
    assert res.family_size.max() <= 2 and (res.family_size[planted_result.family_size == 1] >= 1).all()


def test_max_children_keeps_the_most_correlated(planted, planted_result):
    a_n, a_w, w_n, w_w, families, _ = planted
    res = split_families(a_n, a_w, w_n, w_w, max_children=2)
    n_three = sum(len(k) == 3 for k in families.values())
    assert res.n_capped == n_three
    assert res.family_size.max() == 2
    for p, kids in families.items():
        ranked = sorted(kids, key=lambda c: (-planted_result.correlation[c], c))
        assert set(res.children(p).tolist()) == set(ranked[:2])
    # reconstruction now uses only the two kept children: independent float64 check
    for p, kids in families.items():
        if len(kids) == 3:
            kept = res.children(p)
            s = _unit(w_w[kept]).sum(0)
            assert res.reconstruction_cosine[p] == pytest.approx(float(_unit(s) @ _unit(w_n[p])), abs=1e-6)


def test_typed_inputs_provenance_and_to_dict(planted, planted_result):
    a_n, a_w, w_n, w_w, _, _ = planted
    pn, pw = Provenance(sae_id="narrow-41"), Provenance(sae_id="wide-138")
    res = split_families(
        FeatureActivations(a_n, provenance=pn), FeatureActivations(a_w, provenance=pw),
        FeatureWeights(w_n), FeatureWeights(w_w), method="scipy",
    )
    assert _families(res) == _families(planted_result)
    assert res.provenance_narrow == pn and res.provenance_wide == pw
    d = json.loads(json.dumps(res.to_dict()))
    assert d["summary"]["n_families"] == res.n_families
    assert d["config"]["min_correlation"] == 0.3 and d["config"]["method"] == "scipy"
    assert d["provenance_wide"]["sae_id"] == "wide-138"
    assert set(d["families"]) == {str(p) for p in res.families()}
    some = next(iter(res.families()))
    assert d["families"][str(some)]["children"] == res.children(some).tolist()
    assert "SplitFamilies(" in repr(res)


def test_zero_decoder_rows_never_join():
    rng = np.random.default_rng(0)
    child = _sparse_acts(rng, 3000, 2, 0.05)
    a_n = child.sum(1, keepdims=True)
    w_w = _unit(rng.normal(size=(2, 8)))
    w_w[1] = 0.0
    w_n = _unit(w_w[:1] + 0.1)
    res = split_families(a_n, child, w_n, w_w)
    assert res.in_family.tolist() == [True, False]
    assert np.isnan(res.cosine[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_correlation": 1.5}, "min_correlation"),
        ({"min_cosine": float("nan")}, "min_cosine"),
        ({"max_children": 0}, "max_children"),
        ({"reconstruction_threshold": "high"}, "reconstruction_threshold"),
        ({"method": "magic"}, "method"),
    ],
)
def test_bad_options(kwargs, match):
    rng = np.random.default_rng(1)
    a = _sparse_acts(rng, 100, 3, 0.2)
    w = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match=match):
        split_families(a, a, w, w, **kwargs)


def test_bad_shapes():
    rng = np.random.default_rng(2)
    a_n, a_w = _sparse_acts(rng, 100, 3, 0.2), _sparse_acts(rng, 100, 5, 0.2)
    w_n, w_w = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match="acts_wide has 3 features but acts_narrow has 5"):
        split_families(a_w, a_n, w_w, w_n)
    with pytest.raises(ValueError, match="W_narrow has 5 rows"):
        split_families(a_n, a_w, w_w, w_w)
    with pytest.raises(ValueError, match="W_wide has 3 rows"):
        split_families(a_n, a_w, w_n, w_n)
    with pytest.raises(ValueError, match="dimension 4 but W_wide rows have 6"):
        split_families(a_n, a_w, w_n, rng.normal(size=(5, 6)))
    with pytest.raises(ValueError, match="acts_narrow has 100 rows but acts_wide has 99|99 rows"):
        split_families(a_n, a_w[:99], w_n, w_w)
    with pytest.raises(ValueError, match="W_wide"):
        split_families(a_n, a_w, w_n, np.full((5, 4), np.nan))

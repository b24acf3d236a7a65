"""Several metrics' nulls at once: the same permutations and subset draws as one call per metric, the same numbers
to float rounding, with the nulls of SVCCA and PWCCA of the same kept components read from one CCA."""

import importlib

import numpy as np
import pytest

from featgeom_tda.analyses.geometry import (
    permutation_test,
    permutation_tests,
    random_subset_baseline,
    random_subset_baselines,
)
pw = importlib.import_module("featgeom_tda.analyses.geometry.pwcca")  # the module (the package exports a function of that name)

METRICS = {"svcca": {"variance": 0.95}, "pwcca": {"variance": 0.95}, "cka": {}, "rsa": {"rdm": "cosine"},
           "procrustes": {}, "mutual_knn": {"k": 5}}


def _pair(n=60, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = X @ rng.standard_normal((d, d)) + 0.5 * rng.standard_normal((n, d))
    return X, Y


@pytest.mark.parametrize("metrics", [METRICS, {**METRICS, "svcca": {"variance": 0.8}}], ids=["shared", "not-shared"])
def test_joint_nulls_equal_one_call_per_metric(metrics):
    X, Y = _pair()
    joint = permutation_tests(metrics, X, Y, n_permutations=40, seed=3)
    assert list(joint) == list(metrics)
    for name, opts in metrics.items():
        alone = permutation_test(name, X, Y, n_permutations=40, seed=3, **opts)
        assert joint[name].score == alone.score and joint[name].p_value == alone.p_value, name
        np.testing.assert_allclose(joint[name].null, alone.null, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("metrics", [METRICS, {**METRICS, "pwcca": {"variance": 0.8}}], ids=["shared", "not-shared"])
def test_joint_subsets_equal_one_call_per_metric(metrics):
    X, Y = _pair(n=80, seed=1)
    joint = random_subset_baselines(metrics, X, Y, 50, n_draws=6, seed=5)
    for name, opts in metrics.items():
        alone = random_subset_baseline(name, X, Y, 50, n_draws=6, seed=5, **opts)
        np.testing.assert_allclose(joint[name].scores, alone.scores, rtol=0, atol=1e-12, err_msg=name)
        assert joint[name].n == alone.n and joint[name].options == alone.options


def test_pwcca_and_svcca_share_bases_only_with_the_same_component_rule():
    assert pw.shares_svcca_bases({"variance": 0.99}, {"variance": 0.99, "side": "mean"})
    assert pw.shares_svcca_bases({}, {"variance": 0.99})  # the defaults
    assert not pw.shares_svcca_bases({"variance": 0.9}, {"variance": 0.99})
    assert not pw.shares_svcca_bases({"n_components": 3}, {})


@pytest.mark.parametrize("metrics, match", [({}, "must map metric names"), ([], "must map metric names"),
                                            ({"cka": None}, "dict of options"), ({"nope": {}}, "nope")])
def test_bad_metric_maps_are_refused(metrics, match):
    X, Y = _pair()
    with pytest.raises(ValueError, match=match):
        permutation_tests(metrics, X, Y, n_permutations=5)


def test_subset_draws_read_svcca_and_pwcca_from_one_cca_only_when_they_share_bases(monkeypatch):
    calls = []
    real = pw.pwcca_and_svcca
    monkeypatch.setattr(pw, "pwcca_and_svcca", lambda X, Y, **o: calls.append(X.shape) or real(X, Y, **o))
    X, Y = _pair(n=80, seed=2)
    random_subset_baselines(METRICS, X, Y, 40, n_draws=3, seed=0)
    assert calls == [(40, 12)] * 3
    random_subset_baselines({**METRICS, "pwcca": {"variance": 0.8}}, X, Y, 40, n_draws=3, seed=0)
    assert len(calls) == 3  # different kept components: each metric on its own

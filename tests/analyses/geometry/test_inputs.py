"""Every similarity metric and baseline takes FeatureWeights, half-precision input (converted to float64) and
refuses meta-device tensors naming the argument."""

import numpy as np
import pytest
import torch

from featgeom_tda.analyses.geometry import (
    knn_jaccard,
    linear_cka,
    mutual_knn,
    permutation_test,
    procrustes,
    random_subset_baseline,
    rsa,
    svcca,
)
from featgeom_tda.core.types import FeatureWeights

RNG = np.random.default_rng(7)
X = RNG.normal(size=(24, 6))
Y = X @ RNG.normal(size=(6, 5)) + 0.3 * RNG.normal(size=(24, 5))

METRICS = {
    "svcca": lambda a, b: svcca(a, b),
    "linear_cka": lambda a, b: linear_cka(a, b),
    "linear_cka_debiased": lambda a, b: linear_cka(a, b, debiased=True),
    "rsa": lambda a, b: rsa(a, b),
    "procrustes": lambda a, b: procrustes(a, b),
    "knn_jaccard": lambda a, b: knn_jaccard(a, b, k=4),
    "mutual_knn": lambda a, b: mutual_knn(a, b, k=4),
    "permutation_test": lambda a, b: permutation_test("cka", a, b, n_permutations=20, seed=1).null.tolist(),
    "permutation_test_svcca": lambda a, b: permutation_test("svcca", a, b, n_permutations=10).score,
    "random_subset_baseline": lambda a, b: random_subset_baseline("rsa", a, b, 10, n_draws=10, seed=2).scores.tolist(),
}


def _as64(a):
    """The float64 numpy matrix an input stands for."""
    if isinstance(a, FeatureWeights):
        return a.weights.astype(np.float64)
    if isinstance(a, torch.Tensor):
        return a.to(torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


CONVERSIONS = {
    "FeatureWeights": lambda z: FeatureWeights(z),
    "torch_float16": lambda z: torch.tensor(z, dtype=torch.float16),
    "torch_bfloat16": lambda z: torch.tensor(z, dtype=torch.bfloat16),
    "numpy_float16": lambda z: z.astype(np.float16),
}


@pytest.mark.parametrize("conversion", list(CONVERSIONS))
@pytest.mark.parametrize("metric", list(METRICS))
def test_input_equals_its_float64_result(metric, conversion):
    f, convert = METRICS[metric], CONVERSIONS[conversion]
    Xc, Yc = convert(X), convert(Y)
    assert f(Xc, Yc) == f(_as64(Xc), _as64(Yc))
    assert f(Xc, Y) == f(_as64(Xc), Y)


@pytest.mark.parametrize("metric", list(METRICS))
def test_float64_and_float32_numpy_results_are_unchanged_by_the_wrappers(metric):
    f = METRICS[metric]
    assert f(FeatureWeights(X.astype(np.float32)), Y) == f(X.astype(np.float32), Y)


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("which", ["X", "Y"])
def test_meta_tensor_is_refused_naming_the_argument(metric, which):
    meta = torch.empty(24, 6, device="meta")
    args = (meta, Y) if which == "X" else (X, meta)
    name = which
    if metric == "random_subset_baseline":
        name = f"{which}_full"
    with pytest.raises(ValueError, match=rf"^{name} is on the meta device; it has no values$"):
        METRICS[metric](*args)


def test_feature_weights_rows_select_like_arrays():
    fw = FeatureWeights(X)
    assert random_subset_baseline("cka", fw, fw, 8, n_draws=5, paired=True).scores.tolist() == (
        random_subset_baseline("cka", fw.weights.astype(np.float64), fw.weights, 8, n_draws=5, paired=True).scores.tolist()
    )


def test_callable_metric_receives_float64_from_half_input():
    seen = []

    def metric(a, b):
        seen.append((a.dtype, b.dtype))
        return float(np.sum(a[:, 0] * b[:, 0]))

    permutation_test(metric, torch.tensor(X, dtype=torch.bfloat16), X.astype(np.float16), n_permutations=3)
    assert set(seen) == {(np.dtype(np.float64), np.dtype(np.float64))}

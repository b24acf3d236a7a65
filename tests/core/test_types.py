import numpy as np
import pytest
import scipy.sparse as sp
import torch

from featgeom_tda.core.types import (
    FeatureActivations,
    FeatureMatching,
    FeatureWeights,
    Provenance,
    as_activations,
)


def _random_sparse(n=50, f=20, density=0.1, seed=0):
    return sp.random(n, f, density=density, random_state=np.random.default_rng(seed), dtype=np.float32, format="csr")


def test_activations_roundtrip_scipy_numpy_torch():
    m = _random_sparse()
    dense = m.toarray()
    from_scipy = FeatureActivations.from_scipy(m)
    from_numpy = FeatureActivations.from_numpy(dense)
    from_torch_dense = FeatureActivations.from_torch(torch.from_numpy(dense))
    from_torch_coo = FeatureActivations.from_torch(torch.from_numpy(dense).to_sparse())
    from_torch_csr = FeatureActivations.from_torch(torch.from_numpy(dense).to_sparse_csr())
    for acts in (from_scipy, from_numpy, from_torch_dense, from_torch_coo, from_torch_csr):
        assert acts.matrix.dtype == np.float32
        assert isinstance(acts.matrix, sp.csr_matrix)
        np.testing.assert_array_equal(acts.to_numpy(), dense)
        np.testing.assert_array_equal(acts.to_torch(sparse=False).numpy(), dense)
        np.testing.assert_array_equal(acts.to_torch(sparse=True).to_dense().numpy(), dense)
        assert (acts.to_scipy() != m).nnz == 0


def test_activations_metadata_and_provenance():
    m = _random_sparse(n=10)
    prov = Provenance(model="m", hook_name="blocks.0.hook_resid_post", sae_id="s", dataset="d", seed=3)
    acts = FeatureActivations(m, token_ids=np.arange(10), doc_index=np.repeat([0, 1], 5), position=np.tile(np.arange(5), 2), provenance=prov)
    part = acts.rows(3, 7)
    np.testing.assert_array_equal(part.token_ids, [3, 4, 5, 6])
    np.testing.assert_array_equal(part.doc_index, [0, 0, 1, 1])
    np.testing.assert_array_equal(part.position, [3, 4, 0, 1])
    assert part.provenance == prov
    assert Provenance.from_dict(prov.to_dict()) == prov
    default = FeatureActivations(m)
    assert (default.token_ids == -1).all()


def test_activations_dead_features_and_counts():
    dense = np.zeros((6, 4), dtype=np.float32)
    dense[:, 1] = 2.0  # constant: zero variance, dead
    dense[[0, 3], 2] = [1.0, 5.0]
    acts = FeatureActivations(dense)
    np.testing.assert_array_equal(acts.dead_features(), [True, True, False, True])
    np.testing.assert_array_equal(acts.firing_counts(), [0, 6, 2, 0])


def test_activations_concatenate_and_select():
    a = FeatureActivations(_random_sparse(seed=1), token_ids=np.arange(50))
    b = FeatureActivations(_random_sparse(seed=2), token_ids=np.arange(50, 100))
    both = FeatureActivations.concatenate([a, b])
    assert both.shape == (100, 20)
    np.testing.assert_array_equal(both.token_ids, np.arange(100))
    sel = both.select_features([3, 1])
    np.testing.assert_array_equal(sel.to_numpy(), both.to_numpy()[:, [3, 1]])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros(5), r"matrix must be 2-D, got 1-D shape \(5,\)"),
        (np.zeros((2, 2, 2)), r"matrix must be 2-D, got 3-D"),
        (np.zeros((0, 4)), r"matrix must not be empty, got shape \(0, 4\)"),
        (np.array([[1.0, np.nan]]), r"matrix contains 1 NaN or inf values"),
        (np.array([[1.0, np.inf]]), r"matrix contains 1 NaN or inf values"),
        (np.array([["a", "b"]]), r"matrix must hold real numbers"),
    ],
)
def test_activations_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        FeatureActivations(bad)


def test_activations_metadata_length_mismatch():
    with pytest.raises(ValueError, match=r"token_ids has 3 entries but the activations have 50 rows"):
        FeatureActivations(_random_sparse(), token_ids=np.arange(3))
    with pytest.raises(ValueError, match=r"position must hold integers"):
        FeatureActivations(_random_sparse(), position=np.zeros(50))


def test_as_activations_passthrough():
    acts = FeatureActivations(_random_sparse())
    assert as_activations(acts) is acts
    assert as_activations(acts.to_numpy()).shape == acts.shape


def test_weights_roundtrip_and_errors():
    w = np.random.default_rng(0).normal(size=(8, 3))
    fw = FeatureWeights(torch.from_numpy(w), provenance=Provenance(model="m"))
    assert fw.weights.dtype == np.float32 and fw.shape == (8, 3)
    np.testing.assert_allclose(fw.to_torch().numpy(), w, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fw.normalized(), axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"weights must be 2-D"):
        FeatureWeights(np.zeros(3))
    with pytest.raises(ValueError, match=r"weights contains 1 NaN"):
        FeatureWeights(np.array([[0.0, np.nan]]))


def test_matching_save_load(tmp_path):
    m = FeatureMatching(
        [0, 2, 5], [1, 1, 3], [0.9, 0.5, 0.7], filtered={"dead_a": 2}, config={"mode": "one-to-one"},
        provenance_a=Provenance(model="a"), provenance_b=Provenance(model="b"),
    )
    m.save(tmp_path / "m")
    back = FeatureMatching.load(tmp_path / "m")
    np.testing.assert_array_equal(back.index_a, m.index_a)
    np.testing.assert_array_equal(back.correlation, m.correlation)
    assert back.filtered == {"dead_a": 2} and back.provenance_b.model == "b"
    np.testing.assert_array_equal(m.sorted().index_a, [0, 5, 2])
    with pytest.raises(ValueError, match="index_a has 2 rows but index_b has 1"):
        FeatureMatching([0, 1], [0], [0.1, 0.2])
    with pytest.raises(ValueError, match="not a saved matching"):
        FeatureMatching.load(tmp_path / "missing")

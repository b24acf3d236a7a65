"""Crosscoder and matching scored against synthetic ground truth, with oracle crosscoders and SAEs."""

import numpy as np
import pytest
import torch
from synthetic_pairs import _one_torch_thread, oracle_sae  # noqa: F401  (fixture)

from featgeom_tda.analyses.crosscoder_truth import crosscoder_truth, latent_labels, matching_truth
from featgeom_tda.pipeline.selfcheck import check_pipeline
from featgeom_tda.sources.crosscoders import Crosscoder
from featgeom_tda.sources.synthetic import make_synthetic_pair


@pytest.fixture(scope="module")
def pair():
    # no superposition: an exact linear read-out of every feature exists
    return make_synthetic_pair(n_shared=6, n_private_a=3, n_private_b=3, d_a=14, d_b=12, n_samples=3000, seed=3)


def oracle_crosscoder(pair, *, swap_b_of=None):
    """Crosscoder whose latents are the union features: decoder blocks = true directions times magnitudes."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    d_a, d_b = pair.acts_a.shape[1], pair.acts_b.shape[1]
    sa = float(np.sqrt((pair.acts_a.astype(np.float64) ** 2).sum(axis=1).mean()))
    sb = float(np.sqrt((pair.acts_b.astype(np.float64) ** 2).sum(axis=1).mean()))
    w = np.zeros((pair.n_union, d_a + d_b))
    for i, u in enumerate(pair.union_index_a):
        w[u, :d_a] = pair.directions_a[i] * pair.magnitudes_a[i] / sa
    for i, u in enumerate(pair.union_index_b):
        w[u, d_a:] = pair.directions_b[i] * pair.magnitudes_b[i] / sb
    if swap_b_of is not None:  # latent s writes shared feature s in A but feature t in B
        s, t = swap_b_of
        w[s, d_a:] = w[t, d_a:]
    with torch.random.fork_rng(devices=[]):
        sae = StandardSAE(StandardSAEConfig(d_in=d_a + d_b, d_sae=pair.n_union))
    enc = np.zeros((d_a + d_b, pair.n_union))
    enc[:d_a] = np.linalg.pinv(w[:, :d_a])
    # read every feature from the model that has it: A for shared and A-private, B for B-private
    b_only = pair.n_shared + pair.n_private_a + np.arange(pair.n_private_b)
    pinv_b = np.linalg.pinv(w[:, d_a:])
    enc[:d_a, b_only] = 0
    enc[d_a:, b_only] = pinv_b[:, b_only]
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(w))
        sae.W_enc.copy_(torch.from_numpy(enc))
        sae.b_enc.fill_(-1e-4)
        sae.b_dec.zero_()
    sae.eval()
    return Crosscoder(sae=sae, scale_a=sa, scale_b=sb, d_a=d_a, d_b=d_b)


def test_oracle_crosscoder_scores_perfectly(pair):
    cc = oracle_crosscoder(pair)
    m = cc.metrics(pair.acts_a, pair.acts_b)
    assert m["fvu_a"] < 1e-3 and m["fvu_b"] < 1e-3
    s = crosscoder_truth(cc, pair)
    assert (s.precision_shared, s.recall_shared, s.precision_exclusive, s.recall_exclusive) == (1.0, 1.0, 1.0, 1.0)
    assert s.counts["n_shared_predicted"] == 6 and s.counts["n_exclusive_predicted"] == 6
    assert s.counts["n_exclusive_on_shared_feature"] == 0 and s.counts["n_flagged_by_scaling"] == 0
    assert s.to_dict()["method"] == "crosscoder"


def test_a_latent_pairing_two_different_features_is_a_false_shared(pair):
    s = crosscoder_truth(oracle_crosscoder(pair, swap_b_of=(0, 1)), pair, scaling=False)
    assert s.precision_shared == pytest.approx(5 / 6)
    assert s.recall_shared == pytest.approx(5 / 6)
    assert s.precision_exclusive == 1.0 and "n_flagged_by_scaling" not in s.counts


def test_matching_truth_agrees_with_the_scorecard_on_oracle_saes(pair):
    saes = (oracle_sae(pair.directions_a), oracle_sae(pair.directions_b))
    mt = matching_truth(pair, *saes)
    card = check_pipeline(pair, saes=saes, n_permutations=5, metrics=("cka",))
    assert mt.precision_shared == card.precision and mt.recall_shared == card.recall
    assert mt.precision_shared == 1.0 and mt.recall_shared == 1.0
    # private features match nothing above 0.5: every one is predicted exclusive, correctly
    assert mt.precision_exclusive == 1.0 and mt.recall_exclusive == 1.0


def test_latent_labels_and_bad_inputs(pair):
    labels = latent_labels(pair.directions_a, pair.directions_a, pair.union_index_a, 0.9)
    np.testing.assert_array_equal(labels, pair.union_index_a)
    assert (latent_labels(-pair.directions_a, pair.directions_a, pair.union_index_a, 0.9) == -1).all()
    with pytest.raises(ValueError, match="decoder has 12 columns"):
        latent_labels(pair.directions_b, pair.directions_a, pair.union_index_a, 0.9)
    with pytest.raises(ValueError, match="cosine_threshold"):
        latent_labels(pair.directions_a, pair.directions_a, pair.union_index_a, 1.5)
    cc = oracle_crosscoder(pair)
    with pytest.raises(ValueError, match="pair must be a SyntheticPair"):
        crosscoder_truth(cc, object())
    with pytest.raises(ValueError, match="sae_b must be an SAE with d_in = 12"):
        matching_truth(pair, oracle_sae(pair.directions_a), oracle_sae(pair.directions_a))
    with pytest.raises(ValueError, match="mode must be one of"):
        matching_truth(pair, oracle_sae(pair.directions_a), oracle_sae(pair.directions_b), mode="best")

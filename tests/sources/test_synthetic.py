import itertools
import math

import numpy as np
import pytest
import torch

from featgeom_tda.core.types import FeatureActivations
from featgeom_tda.sources.saes import train_sae
from featgeom_tda.sources.synthetic import (
    SyntheticPair,
    decoder_directions,
    encode_synthetic,
    hungarian_mcc,
    make_synthetic_pair,
    sae_recovery,
)

from synthetic_pairs import PAIR_ARGS, _one_torch_thread, oracle_sae, pair, small_pair  # noqa: F401  (fixtures)



def _corr_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of a with every column of b (float64)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    a = a / np.linalg.norm(a, axis=0)
    b = b / np.linalg.norm(b, axis=0)
    return a.T @ b




def _train(acts, *, width, architecture="topk", k=None, steps=1000, batch_size=2048, seed=0):
    """The synthetic self-check's training options: rows with replacement, no warm-up, no input scaling."""
    return train_sae(
        acts, width=width, architecture=architecture, k=k, l1_coefficient=0.3, steps=steps, batch_size=batch_size,
        lr=1e-2, lr_warm_up_steps=0, normalize=False, init_b_dec_to_mean=False, dead_feature_window=100,
        feature_sampling_window=max(steps + 1, 2), sampling="replacement", inference=False, seed=seed,
        progress=False,
    )


# ------------------------------------------------------------------------------------------------------
# generator
# ------------------------------------------------------------------------------------------------------


def test_generator_is_deterministic_for_a_seed(small_pair):
    again = make_synthetic_pair(n_shared=8, n_private_a=4, n_private_b=4, d_a=20, d_b=16, n_samples=4000, seed=3)
    other = make_synthetic_pair(n_shared=8, n_private_a=4, n_private_b=4, d_a=20, d_b=16, n_samples=4000, seed=4)
    for name in ("acts_a", "acts_b", "directions_a", "directions_b", "union_index_a", "union_index_b",
                 "magnitudes_a", "magnitudes_b", "firing_probabilities"):  # fmt: skip
        np.testing.assert_array_equal(getattr(small_pair, name), getattr(again, name))
    assert (small_pair.latents != again.latents).nnz == 0
    assert not np.array_equal(small_pair.acts_a, other.acts_a)
    assert small_pair.config == again.config


def test_generator_leaves_torch_global_rng_alone():
    state = torch.random.get_rng_state()
    make_synthetic_pair(n_shared=3, n_private_a=2, n_private_b=1, d_a=8, d_b=6, n_samples=100, seed=1, correlated=True)
    assert torch.equal(state, torch.random.get_rng_state())


def test_truth_indices_are_consistent(pair):
    n_shared = pair.n_shared
    # A and B hold exactly their own union features, each once
    assert sorted(pair.union_index_a) == list(range(n_shared)) + list(range(n_shared, n_shared + pair.n_private_a))
    assert sorted(pair.union_index_b) == list(range(n_shared)) + list(
        range(n_shared + pair.n_private_a, pair.n_union)
    )
    np.testing.assert_array_equal(pair.union_index_a[pair.shared_a], np.arange(n_shared))
    np.testing.assert_array_equal(pair.union_index_b[pair.shared_b], np.arange(n_shared))
    assert pair.is_shared_a.sum() == n_shared and pair.is_shared_b.sum() == n_shared
    both = np.sort(np.concatenate([pair.shared_a, pair.private_a]))
    np.testing.assert_array_equal(both, np.arange(pair.n_features_a))
    # A is ordered by decreasing firing probability, B is not in A's order
    probs_a = pair.firing_probabilities[pair.union_index_a]
    assert np.all(np.diff(probs_a) <= 0)
    assert not np.array_equal(pair.shared_a, pair.shared_b)
    # the two models scale their features differently
    assert not np.allclose(pair.magnitudes_a[pair.shared_a], pair.magnitudes_b[pair.shared_b])


def test_shared_features_fire_on_the_same_rows_and_private_ones_independently(pair):
    la = pair.latents_a().toarray().astype(np.float64)
    lb = pair.latents_b().toarray().astype(np.float64)
    np.testing.assert_array_equal(la[:, pair.shared_a] > 0, lb[:, pair.shared_b] > 0)
    # the value of a shared feature is the same latent value up to each model's scale
    ratio = pair.magnitudes_b[pair.shared_b] / pair.magnitudes_a[pair.shared_a]
    np.testing.assert_allclose(lb[:, pair.shared_b], la[:, pair.shared_a] * ratio, rtol=1e-5, atol=1e-6)
    corr = _corr_columns(la, lb)
    np.testing.assert_allclose(corr[pair.shared_a, pair.shared_b], 1.0, atol=1e-6)
    # independent firing: |r| of private A features with anything in B is at the sampling-noise level
    assert np.abs(corr[pair.private_a]).max() < 5 / math.sqrt(pair.n_samples)


def test_activations_are_the_embedded_latents(pair):
    la = pair.latents_a().toarray().astype(np.float64)
    lb = pair.latents_b().toarray().astype(np.float64)
    np.testing.assert_allclose(pair.acts_a, la @ pair.directions_a.astype(np.float64), atol=1e-5)
    np.testing.assert_allclose(pair.acts_b, lb @ pair.directions_b.astype(np.float64), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pair.directions_a, axis=1), 1.0, atol=1e-6)
    # each model embeds the common geometry with its own isometry
    for emb in (pair.embedding_a, pair.embedding_b):
        np.testing.assert_allclose(emb @ emb.T, np.eye(emb.shape[0]), atol=1e-5)
    base_a = pair.base_directions[pair.union_index_a]
    np.testing.assert_allclose(pair.directions_a @ pair.embedding_a.T, base_a, atol=1e-5)
    # so shared features have the same Gram matrix in both models
    ga = pair.directions_a[pair.shared_a] @ pair.directions_a[pair.shared_a].T
    gb = pair.directions_b[pair.shared_b] @ pair.directions_b[pair.shared_b].T
    np.testing.assert_allclose(ga, gb, atol=1e-5)
    assert np.abs(ga - np.eye(pair.n_shared)).max() > 0.1  # in superposition: a non-trivial geometry


def test_firing_rates_follow_the_firing_probabilities(pair):
    n = pair.n_samples
    rates = np.bincount(pair.latents.indices, minlength=pair.n_union) / n
    p = pair.firing_probabilities
    assert np.all(np.abs(rates - p) < 5 * np.sqrt(p * (1 - p) / n))
    assert p.min() == pytest.approx(0.02) and p.max() == pytest.approx(0.06)
    assert pair.expected_l0("a") == pytest.approx(p[pair.union_index_a].sum())


def test_projecting_activations_on_the_true_directions_recovers_the_stated_permutation(pair):
    proj_a = pair.acts_a.astype(np.float64) @ pair.directions_a.T.astype(np.float64)
    proj_b = pair.acts_b.astype(np.float64) @ pair.directions_b.T.astype(np.float64)
    corr = _corr_columns(proj_a, proj_b)
    np.testing.assert_array_equal(corr[pair.shared_a].argmax(axis=1), pair.shared_b)
    # in superposition a projection also picks up interfering features, but less than its shared partner
    assert corr[pair.private_a].max() < corr[pair.shared_a, pair.shared_b].min()


def test_correlated_firing_keeps_shared_rows_identical():
    p = make_synthetic_pair(n_shared=6, n_private_a=3, n_private_b=3, d_a=10, d_b=12, n_samples=20_000, seed=2,
                            correlated=0.8, firing_prob=0.1)  # fmt: skip
    la, lb = p.latents_a().toarray(), p.latents_b().toarray()
    np.testing.assert_array_equal(la[:, p.shared_a] > 0, lb[:, p.shared_b] > 0)
    firing = (p.latents.toarray() > 0).astype(np.float64)
    off = np.abs(np.corrcoef(firing.T) - np.eye(p.n_union))
    assert off.max() > 0.1  # independent firing would give |r| ~ 0.007 here
    assert p.config["correlated"] == 0.8


def test_generator_rejects_bad_input():
    base = dict(n_shared=2, n_private_a=1, n_private_b=1, d_a=4, d_b=4, n_samples=10)
    with pytest.raises(ValueError, match=r"n_shared \+ n_private_a"):
        make_synthetic_pair(**{**base, "n_shared": 0, "n_private_a": 0})
    with pytest.raises(ValueError, match="d_latent must be <= min"):
        make_synthetic_pair(**base, d_latent=5)
    with pytest.raises(ValueError, match="firing_prob"):
        make_synthetic_pair(**base, firing_prob=(0.5, 0.1))
    with pytest.raises(ValueError, match="correlated"):
        make_synthetic_pair(**base, correlated=1.5)
    with pytest.raises(ValueError, match="magnitude"):
        make_synthetic_pair(**base, magnitude=(-1.0, 1.0))
    with pytest.raises(ValueError, match="n_private_b"):
        make_synthetic_pair(**{**base, "n_private_b": -1})
    with pytest.raises(ValueError, match="noise"):
        make_synthetic_pair(**base, noise=float("nan"))


# ------------------------------------------------------------------------------------------------------
# recovery scoring (closed forms, no training)
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5), (4, 6), (6, 4)])
def test_hungarian_mcc_equals_brute_force(shape):
    c = np.random.default_rng(sum(shape)).uniform(-1, 1, size=shape)
    mcc, pairs = hungarian_mcc(c)
    n = min(shape)
    best = -np.inf
    if shape[0] <= shape[1]:
        for cols in itertools.permutations(range(shape[1]), n):
            best = max(best, c[np.arange(n), list(cols)].mean())
    else:
        for rows in itertools.permutations(range(shape[0]), n):
            best = max(best, c[list(rows), np.arange(n)].mean())
    assert mcc == pytest.approx(best, abs=1e-12)
    assert pairs.shape == (n, 2)
    assert len(set(pairs[:, 0])) == n and len(set(pairs[:, 1])) == n


def test_recovery_of_an_oracle_sae_is_perfect(small_pair):
    dirs = small_pair.directions_a.astype(np.float64)
    perm = np.random.default_rng(0).permutation(dirs.shape[0])
    sae = oracle_sae(dirs[perm] * 3.0)  # permuted and rescaled decoder rows
    rep = sae_recovery(sae, dirs, small_pair.acts_a)
    assert rep.mcc == pytest.approx(1.0, abs=1e-6)
    assert rep.mean_max_cosine == pytest.approx(1.0, abs=1e-6)
    assert rep.recovered_fraction == 1.0
    np.testing.assert_array_equal(rep.latent_to_true, perm)
    np.testing.assert_array_equal(rep.true_to_latent[perm], np.arange(perm.size))
    true_l0 = small_pair.latents_a().nnz / small_pair.n_samples
    assert rep.l0 == pytest.approx(true_l0)
    assert rep.dead_fraction == 0.0
    assert rep.explained_variance > 0.999


def test_recovery_counts_dead_latents_and_wrong_directions(small_pair):
    dirs = small_pair.directions_a.astype(np.float64)
    extra = np.vstack([dirs, -dirs[:2]])  # two latents pointing away from every feature's firing side
    sae = oracle_sae(extra)
    with torch.no_grad():  # encoder of the last two latents reads -x on the true coefficients: never positive
        sae.W_enc[:, -2:] = -torch.from_numpy(np.linalg.pinv(dirs)[:, :2])
    rep = sae_recovery(sae, dirs, small_pair.acts_a)
    assert rep.dead_fraction == pytest.approx(2 / extra.shape[0])
    assert rep.mcc == pytest.approx(1.0, abs=1e-6)  # the Hungarian assignment ignores the extra latents
    assert np.all(rep.latent_cosine[-2:] < 0.5)


def test_encode_synthetic_returns_feature_activations(small_pair):
    sae = oracle_sae(small_pair.directions_b)
    codes = encode_synthetic(sae, small_pair.acts_b, batch_size=1000)
    assert isinstance(codes, FeatureActivations)
    assert codes.shape == (small_pair.n_samples, small_pair.n_features_b)
    np.testing.assert_allclose(codes.to_numpy(), small_pair.latents_b().toarray() - 1e-4 * (codes.to_numpy() > 0),
                               atol=1e-4)  # fmt: skip
    with pytest.raises(ValueError, match="columns but the SAE expects"):
        encode_synthetic(sae, small_pair.acts_a)


def test_recovery_rejects_bad_input(small_pair):
    sae = oracle_sae(small_pair.directions_a)
    with pytest.raises(ValueError, match="true_directions has 16 columns"):
        sae_recovery(sae, small_pair.directions_b, small_pair.acts_a)
    with pytest.raises(ValueError, match="zero rows"):
        sae_recovery(sae, np.zeros((2, 20)), small_pair.acts_a)
    with pytest.raises(ValueError, match="threshold"):
        sae_recovery(sae, small_pair.directions_a, small_pair.acts_a, threshold=1.5)


# ------------------------------------------------------------------------------------------------------
# training with the self-check's options (sae_lens, through sources.saes.train_sae)
# ------------------------------------------------------------------------------------------------------


def test_training_is_deterministic_and_leaves_global_rng_alone(small_pair):
    state = torch.random.get_rng_state()
    a = _train(small_pair.acts_a, width=12, k=3, steps=20, batch_size=64, seed=5)
    b = _train(small_pair.acts_a, width=12, k=3, steps=20, batch_size=64, seed=5)
    c = _train(small_pair.acts_a, width=12, k=3, steps=20, batch_size=64, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(decoder_directions(a), decoder_directions(b))
    assert not np.array_equal(decoder_directions(a), decoder_directions(c))


def test_training_with_replacement_accepts_fewer_rows_than_a_batch(small_pair):
    sae = _train(small_pair.acts_a[:40], width=12, k=3, steps=5, batch_size=64, seed=0)
    assert tuple(sae.W_dec.shape) == (12, small_pair.acts_a.shape[1])
    assert not sae.training


def test_training_rejects_bad_input(small_pair):
    with pytest.raises(ValueError, match="k=9 must be at most width=8"):
        _train(small_pair.acts_a, width=8, k=9)
    with pytest.raises(ValueError, match="architecture"):
        _train(small_pair.acts_a, width=8, k=2, architecture="gated")
    with pytest.raises(ValueError, match="2-D"):
        _train(small_pair.acts_a[0], width=8, k=2)
    with pytest.raises(ValueError, match="sampling"):
        train_sae(small_pair.acts_a, width=8, k=2, sampling="bootstrap", progress=False)


def test_standard_sae_recovers_the_features(pair):
    sae = _train(pair.acts_a, width=pair.n_features_a, architecture="standard", steps=1000, seed=0)
    rep = sae_recovery(sae, pair.directions_a, pair.acts_a)
    assert rep.mcc >= 0.9
    assert rep.dead_fraction == 0.0

import json
import math

import numpy as np
import pytest
import torch

from featgeom_tda.pipeline.selfcheck import Scorecard, check_pipeline
from featgeom_tda.pipeline.selfcheck_sweep import scorecard_sweep, sweep_markdown
from featgeom_tda.sources.synthetic import SyntheticPair, make_synthetic_pair

from synthetic_pairs import PAIR_ARGS, _one_torch_thread, oracle_sae, pair, small_pair  # noqa: F401  (fixtures)

@pytest.fixture(scope="module")
def card(pair) -> Scorecard:
    return check_pipeline(pair, n_permutations=200, seed=0)


# ------------------------------------------------------------------------------------------------------
# scoring of the pipeline with oracle SAEs (exact answers)
# ------------------------------------------------------------------------------------------------------


def test_pipeline_with_oracle_saes_is_exact(small_pair):
    saes = (oracle_sae(small_pair.directions_a), oracle_sae(small_pair.directions_b))
    card = check_pipeline(small_pair, saes=saes, n_permutations=50)
    assert card.precision == 1.0 and card.recall == 1.0 and card.recall_recovered == 1.0
    assert card.private_fp_rate == 0.0
    assert card.counts["n_pairs"] == small_pair.n_shared
    order = np.argsort(card.matching.index_a)
    expected = dict(zip(small_pair.shared_a.tolist(), small_pair.shared_b.tolist()))
    assert {int(a): int(b) for a, b in zip(card.matching.index_a[order], card.matching.index_b[order])} == expected
    # shared decoder rows are the same geometry up to rotation
    assert card.geometry["shared"]["cka"]["score"] == pytest.approx(1.0, abs=1e-6)
    assert card.geometry["shared"]["rsa"]["score"] > 0.99  # near-orthogonal rows: float32 noise reorders ties
    assert card.geometry["private"]["cka"]["n_rows"] == 4 and math.isnan(card.geometry["private"]["cka"]["score"])


def test_pipeline_scoring_counts_mislabelled_pairs(small_pair):
    dirs_b = small_pair.directions_b.astype(np.float64)
    sae_b = oracle_sae(dirs_b)
    s0, s1 = small_pair.shared_b[:2]
    with torch.no_grad():  # decoder rows of two shared latents swapped: their pairs become wrong
        sae_b.W_dec[[s0, s1]] = torch.from_numpy(dirs_b[[s1, s0]]).float()
    card = check_pipeline(small_pair, saes=(oracle_sae(small_pair.directions_a), sae_b), n_permutations=20)
    n = small_pair.n_shared
    assert card.counts["n_pairs"] == n
    assert card.counts["n_correct"] == n - 2 and card.counts["n_wrong_shared"] == 2
    assert card.counts["n_same_feature"] == n - 2
    assert card.precision == pytest.approx((n - 2) / n)
    assert card.recall == pytest.approx((n - 2) / n)


def test_pipeline_strict_and_same_feature_precision_differ_on_an_imperfect_latent(small_pair):
    dirs_b = small_pair.directions_b.astype(np.float64)
    sae_b = oracle_sae(dirs_b)
    s0 = small_pair.shared_b[0]
    other = np.random.default_rng(1).standard_normal(dirs_b.shape[1])
    other -= (other @ dirs_b[s0]) * dirs_b[s0]
    other /= np.linalg.norm(other)
    with torch.no_grad():  # one decoder row at cosine 0.8 to its feature: still its best feature, below 0.9
        sae_b.W_dec[s0] = torch.from_numpy(0.8 * dirs_b[s0] + 0.6 * other).float()
    card = check_pipeline(small_pair, saes=(oracle_sae(small_pair.directions_a), sae_b), n_permutations=20)
    n = small_pair.n_shared
    assert card.recovery_b.latent_cosine[s0] == pytest.approx(0.8, abs=1e-6)
    assert card.counts["n_correct"] == n - 1 and card.counts["n_same_feature"] == n
    assert card.precision == pytest.approx((n - 1) / n) and card.precision_same_feature == 1.0


def test_pipeline_threshold_zero_matches_private_features(small_pair):
    saes = (oracle_sae(small_pair.directions_a), oracle_sae(small_pair.directions_b))
    card = check_pipeline(small_pair, saes=saes, threshold=0.0, mode="many-to-one", n_permutations=20)
    # many-to-one without a threshold gives every A latent a partner, private ones included
    assert card.counts["n_private_matched"] >= small_pair.n_private_a
    assert card.private_fp_rate >= small_pair.n_private_a / card.counts["n_private_latents"]
    assert card.precision < 1.0


def test_pipeline_rejects_bad_input(small_pair):
    saes = (oracle_sae(small_pair.directions_a), oracle_sae(small_pair.directions_b))
    with pytest.raises(ValueError, match="pair must be a SyntheticPair"):
        check_pipeline(small_pair.acts_a, saes=saes)
    with pytest.raises(ValueError, match=r"saes\[0\] has d_in 16"):
        check_pipeline(small_pair, saes=saes[::-1])
    with pytest.raises(ValueError, match="width_multiple"):
        check_pipeline(small_pair, saes=saes, width_multiple=0)
    with pytest.raises(ValueError, match="mode"):
        check_pipeline(small_pair, saes=saes, mode="best")


# ------------------------------------------------------------------------------------------------------
# training (sae_lens)
# ------------------------------------------------------------------------------------------------------


def test_topk_pipeline_recovers_and_matches_shared_features(card):
    assert card.recovery_a.mcc >= 0.9 and card.recovery_b.mcc >= 0.9
    assert card.precision >= 0.95
    assert card.precision_same_feature >= card.precision
    assert card.recall >= 0.8
    assert card.private_fp_rate <= 0.05
    assert card.counts["n_private_latents"] >= 10  # the rate is measured on enough private latents


def test_shared_subspace_is_far_above_null_and_private_is_not(card):
    for metric in ("svcca", "cka", "rsa"):
        shared = card.geometry["shared"][metric]
        assert shared["n_rows"] >= 20
        assert shared["p_value"] < 0.01
        assert shared["z_score"] > 5
        assert shared["score"] > shared["null_mean"] + 5 * shared["null_std"]
        # an arbitrary pairing is one draw from the null: not far above it
        private = card.geometry["private"][metric]
        assert private["n_rows"] >= 5
        assert private["z_score"] < 4
        matched = card.geometry["matched"][metric]
        assert matched["p_value"] < 0.01


def test_scorecard_serialises(card):
    d = card.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["counts"]["n_shared"] == PAIR_ARGS["n_shared"]
    md = card.to_markdown()
    assert "| precision (both latents at cosine >= threshold) |" in md
    assert "| shared | cka |" in md and "| private | rsa |" in md


@pytest.mark.slow
def test_sweep_rows_and_tables():
    rows = scorecard_sweep(
        shared_fractions=(0.0, 1.0), width_multiples=(2.0,), width_shared_fraction=1.0, n_features=12, d_a=10,
        d_b=10, n_samples=4000, steps=300, n_permutations=50,
    )  # fmt: skip
    assert [r["sweep"] for r in rows] == ["shared_fraction", "shared_fraction", "width"]
    none_shared, all_shared, wide = rows
    assert none_shared["n_shared"] == 0 and math.isnan(none_shared["recall"])
    assert none_shared["n_correct"] == 0
    assert all_shared["n_shared"] == 12 and all_shared["n_correct"] > 0
    assert math.isnan(all_shared["private_fp_rate"])  # no private features at 100% shared
    assert wide["width_multiple"] == 2.0
    md = sweep_markdown(rows)
    assert "Shared fraction sweep" in md and "SAE width sweep" in md and "| 0% |" in md
    with pytest.raises(ValueError, match="pair_options must not set"):
        scorecard_sweep(pair_options={"seed": 1})


# Kept last: the compiled parallel matching kernel leaves OpenMP threads that slow later torch training.
def test_pipeline_scores_the_same_with_every_matching_method(small_pair):
    saes = (oracle_sae(small_pair.directions_a), oracle_sae(small_pair.directions_b))
    cards = [
        check_pipeline(small_pair, saes=saes, n_permutations=20, matching_options={"method": method})
        for method in ("scipy", "dense", "auto")
    ]
    for other in cards[1:]:
        np.testing.assert_array_equal(other.matching.index_a, cards[0].matching.index_a)
        np.testing.assert_array_equal(other.matching.index_b, cards[0].matching.index_b)
        assert other.counts == cards[0].counts
    with pytest.raises(ValueError, match="matching_options must not set"):
        check_pipeline(small_pair, saes=saes, matching_options={"threshold": 0.1})

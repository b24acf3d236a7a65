"""Transfer of a steering feature to its matched partner in another model."""

from __future__ import annotations

import numpy as np
import pytest

from analyses.steering.helpers import HOOK_A, HOOK_B
from featgeom_tda.analyses.steering import alpha_sweep, decoder_direction, partner_of, success_rate, transfer_comparison
from featgeom_tda.core.types import FeatureMatching


# -------------------------------------------------------------------------------------------- transfer


def test_transfer_comparison(model_a, sae_a, model_b, sae_b, task, prompts):
    matching = FeatureMatching(index_a=np.array([2, 5]), index_b=np.array([7, 11]), correlation=np.array([0.9, 0.8]))
    assert partner_of(matching, 5) == 11
    with pytest.raises(ValueError, match="no partner"):
        partner_of(matching, 3)
    alphas = [0.0, 50.0]
    rows = transfer_comparison(model_a, sae_a, HOOK_A, model_b, sae_b, HOOK_B, 5, 11, task, alphas,
                               control_seed=0, unrelated_tokens=prompts)
    ref_a = alpha_sweep(model_a, task, decoder_direction(sae_a, 5), alphas, hook_name=HOOK_A)
    ref_b = alpha_sweep(model_b, task, decoder_direction(sae_b, 11), alphas, hook_name=HOOK_B)
    for row, ra, rb in zip(rows, ref_a, ref_b):
        assert row["success_a"] == ra["success_rate"] and row["success_b"] == rb["success_rate"]
        assert row["logprob_change_b"] == pytest.approx(rb["desired_logprob_change"])
        assert row["control_b"] != 11 and 0 <= row["success_b_control"] <= 1
    assert rows[0]["kl_a"] == 0.0 and rows[1]["kl_b"] > 0
    normed = transfer_comparison(model_a, sae_a, HOOK_A, model_b, sae_b, HOOK_B, 5, 11, task, [0.0], alpha_units="norm")
    assert normed[0]["success_a"] == rows[0]["success_a"]

"""Choosing a steering feature by logit effect or by activation, on planted features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.steering.fixtures import _sae
from analyses.steering.helpers import HOOK_A
from featgeom_tda.analyses.steering import (
    alpha_sweep,
    decoder_direction,
    find_steering_feature,
    hook_activations,
    success_rate,
)
from featgeom_tda.core.types import FeatureActivations


# ---------------------------------------------------------------------------------------- feature choice


def test_find_steering_feature_logit_finds_planted_feature(model_a, task):
    sae = _sae(16, 32, HOOK_A, seed=21)
    w_u = model_a.W_U.detach().double().numpy()
    target = (w_u[:, task.desired_id] - w_u[:, task.baseline_ids[0]]) * model_a.ln_final.w.detach().double().numpy()
    target -= target.mean()
    with torch.no_grad():
        sae.W_dec[17] = torch.tensor(target / np.linalg.norm(target) * 3.0, dtype=torch.float32)
    found = find_steering_feature(model_a, HOOK_A, sae, task)
    assert found.feature == 17 and found.method == "logit"
    assert found.ranking[0] == (17, pytest.approx(found.score)) and len(found.ranking) == 10
    assert all(a[1] >= b[1] for a, b in zip(found.ranking, found.ranking[1:]))
    verified = find_steering_feature(model_a, HOOK_A, sae, task, verify_top=3, alpha=[0.0, 300.0])
    assert verified.feature == 17 and len(verified.config["verified"]) == 3
    for entry in verified.config["verified"]:
        rows = alpha_sweep(model_a, task, decoder_direction(sae, entry["feature"]), [0.0, 300.0], hook_name=HOOK_A)
        assert entry["success_rate"] == max(r["success_rate"] for r in rows)
    rates = [e["success_rate"] for e in verified.config["verified"]]
    assert rates == sorted(rates, reverse=True)
    with pytest.raises(ValueError, match="alpha is required"):
        find_steering_feature(model_a, HOOK_A, sae, task, verify_top=2)


def test_find_steering_feature_activation(model_a, sae_a, task):
    n = 40
    tok = np.full(n, 5)
    tok[:10] = task.desired_id
    tok[10:20] = task.baseline_ids[0]
    dense = np.zeros((n, 32), dtype=np.float32)
    dense[:10, 9] = 2.0
    dense[10:20, 9] = 0.5
    dense[:, 3] = 1.0
    acts = FeatureActivations(dense, token_ids=tok)
    found = find_steering_feature(model_a, HOOK_A, sae_a, task, method="activation", acts=acts)
    assert found.feature == 9 and found.score == pytest.approx(1.5)
    contrast = find_steering_feature(model_a, HOOK_A, sae_a, task, method="activation")
    with torch.no_grad():
        diffs = []
        for toks, b in zip(task.prompt_tokens, task.baseline_ids):
            fa = sae_a.encode(hook_activations(model_a, HOOK_A, [toks + [task.desired_id]])[0][-1])
            fb = sae_a.encode(hook_activations(model_a, HOOK_A, [toks + [b]])[0][-1])
            diffs.append((fa - fb).double().numpy())
    assert contrast.feature == int(np.argmax(np.mean(diffs, axis=0)))
    with pytest.raises(ValueError, match="token_ids"):
        find_steering_feature(model_a, HOOK_A, sae_a, task, method="activation", acts=FeatureActivations(dense))

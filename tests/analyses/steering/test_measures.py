"""Log-prob, top-k, KL side effects, success rates, alpha sweeps and feature changes against hand computations."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from analyses.steering.helpers import _active_feature, _hand_logits, HOOK_A, HOOK_B, _log_softmax, _resid
from featgeom_tda.analyses.steering import (
    FeatureChange,
    ablate,
    alpha_sweep,
    baseline_rate,
    feature_activation_change,
    hook_activations,
    kl_side_effects,
    logprob_change,
    rows_to_markdown,
    steer,
    success_rate,
    task_predictions,
    top_k_next,
)


# ----------------------------------------------------------------------------------------- measurements


def test_logprob_change_and_top_k_against_hand(model_a, prompts):
    d = np.random.default_rng(5).normal(size=16) * 3
    resid = _resid(model_a, prompts, HOOK_A)
    before = _log_softmax(_hand_logits(model_a, resid)[:, -1])
    after = _log_softmax(_hand_logits(model_a, resid + d)[:, -1])
    interv = functools.partial(steer, model_a, HOOK_A, d, alpha=1.0)
    targets = [3, 10, 20]
    got = logprob_change(model_a, prompts, targets, interv)
    np.testing.assert_allclose(got, after[np.arange(3), targets] - before[np.arange(3), targets], atol=1e-4)
    got_one = logprob_change(model_a, prompts, 5, interv)
    np.testing.assert_allclose(got_one, after[:, 5] - before[:, 5], atol=1e-4)
    top = top_k_next(model_a, prompts, 4, intervention=interv)
    for row, lp in zip(top, after):
        assert [t for t, _ in row] == list(np.argsort(-lp)[:4])
        np.testing.assert_allclose([p for _, p in row], np.exp(np.sort(lp)[::-1][:4]), atol=1e-5)
    with pytest.raises(ValueError, match="3 prompts"):
        logprob_change(model_a, prompts, [1, 2], interv)
    with pytest.raises(ValueError, match="zero-argument callable"):
        logprob_change(model_a, prompts, 1, 3.0)


def test_kl_side_effects_against_hand(model_a, prompts):
    d = np.random.default_rng(6).normal(size=16) * 2
    resid = _resid(model_a, prompts, HOOK_A)
    p = _log_softmax(_hand_logits(model_a, resid))
    q = _log_softmax(_hand_logits(model_a, resid + d))
    kl = (np.exp(p) * (p - q)).sum(axis=-1)  # (batch, pos)
    interv = functools.partial(steer, model_a, HOOK_A, d, alpha=1.0)
    np.testing.assert_allclose(kl_side_effects(model_a, prompts, interv), kl[:, -1].mean(), rtol=1e-3)
    np.testing.assert_allclose(kl_side_effects(model_a, prompts, interv, positions="all"), kl.mean(), rtol=1e-3)
    # prompts of two lengths: each prompt's last position, each weighted once
    mixed = [prompts[0].tolist(), prompts[1, :4].tolist()]
    r2 = _resid(model_a, prompts[1:2, :4], HOOK_A)
    p2 = _log_softmax(_hand_logits(model_a, r2)[:, -1])
    q2 = _log_softmax(_hand_logits(model_a, r2 + d)[:, -1])
    kl2 = (np.exp(p2) * (p2 - q2)).sum()
    np.testing.assert_allclose(kl_side_effects(model_a, mixed, interv), (kl[0, -1] + kl2) / 2, rtol=1e-3)
    assert kl_side_effects(model_a, prompts, None) == 0.0
    assert kl_side_effects(model_a, prompts, functools.partial(steer, model_a, HOOK_A, d, alpha=0.0)) == 0.0


def test_success_rate_against_hand(model_a, tokenizer, task):
    w_u = model_a.W_U.detach().double().numpy()
    push = w_u[:, task.desired_id] - w_u.mean(axis=1)
    for alpha in (0.0, 2.0, 200.0):
        interv = functools.partial(steer, model_a, HOOK_A, push, alpha=alpha)
        hand = []
        for toks in task.prompt_tokens:
            resid = _resid(model_a, [toks], HOOK_A)[0, -1]
            hand.append(np.argmax(_hand_logits(model_a, resid + alpha * push)) == task.desired_id)
        assert success_rate(model_a, task, interv) == pytest.approx(np.mean(hand))
    assert success_rate(model_a, task, functools.partial(steer, model_a, HOOK_A, push, alpha=200.0)) == 1.0
    preds = task_predictions(model_a, task)
    assert baseline_rate(model_a, task) == pytest.approx(np.mean(preds == np.asarray(task.baseline_ids)))


def test_alpha_sweep_rows(model_a, task, prompts):
    w_u = model_a.W_U.detach().double().numpy()
    push = w_u[:, task.desired_id] - w_u.mean(axis=1)
    rows = alpha_sweep(model_a, task, push, [0.0, 5.0, 500.0], hook_name=HOOK_A, unrelated_tokens=prompts)
    assert [r["alpha"] for r in rows] == [0.0, 5.0, 500.0]
    assert rows[0]["success_rate"] == success_rate(model_a, task, None)
    assert rows[0]["desired_logprob_change"] == 0.0 and rows[0]["kl_unrelated"] == 0.0
    assert rows[2]["success_rate"] == 1.0 and rows[2]["desired_logprob_change"] > 0
    assert rows[1]["success_rate"] == success_rate(model_a, task, functools.partial(steer, model_a, HOOK_A, push, alpha=5.0))
    rb = logprob_change(model_a, task.prompt_tokens, task.baseline_ids,
                        functools.partial(steer, model_a, HOOK_A, push, alpha=5.0))
    assert rows[1]["baseline_logprob_change"] == pytest.approx(rb.mean())
    table = rows_to_markdown(rows)
    assert table.splitlines()[0].startswith("| alpha | success_rate") and len(table.splitlines()) == 5


def test_feature_activation_change(model_a, sae_a, prompts):
    feat = _active_feature(model_a, sae_a, prompts)
    change = feature_activation_change(model_a, HOOK_A, sae_a, prompts, ablate(model_a, HOOK_A, sae_a, [feat]), top_n=5)
    assert isinstance(change, FeatureChange) and change.features.shape == (5,)
    with torch.no_grad():
        f = sae_a.encode(torch.stack(hook_activations(model_a, HOOK_A, prompts))).double().mean(dim=0).numpy()
    np.testing.assert_allclose(change.before, f[:, change.features], atol=1e-6)
    assert feat in change.features.tolist()
    i = change.features.tolist().index(feat)
    np.testing.assert_allclose(change.after[:, i], 0.0, atol=1e-5)
    none = feature_activation_change(model_a, HOOK_A, sae_a, prompts, None, top_n=3)
    assert none.total_abs_change == 0.0


def test_feature_change_measured_at_later_hook(model_b, sae_b, prompts):
    """The change at a later hook equals the SAE codes of runs with the vector added by a plain hook."""
    vector = np.ones(24) * 3
    interv = steer(model_b, "blocks.0.hook_resid_post", vector, alpha=1.0)
    change = feature_activation_change(model_b, HOOK_B, sae_b, prompts, interv, top_n=4)
    assert change.hook_name == HOOK_B

    def codes(add: bool) -> np.ndarray:
        seen = {}

        def add_vector(act, hook):
            return act + torch.as_tensor(vector, dtype=act.dtype)

        def grab(act, hook):
            seen["act"] = act.detach()

        hooks = ([("blocks.0.hook_resid_post", add_vector)] if add else []) + [(HOOK_B, grab)]
        with torch.no_grad():
            model_b.run_with_hooks(prompts, fwd_hooks=hooks, return_type=None)
            return sae_b.encode(seen["act"]).double().mean(dim=0).numpy()

    before, after = codes(False), codes(True)
    diff = np.abs(after - before)
    assert change.total_abs_change == pytest.approx(float(diff.sum()), rel=1e-6)
    assert change.total_abs_change > 1.0  # a shift of norm 3 * sqrt(24) moves the codes visibly
    expected = np.argsort(-diff.max(axis=0), kind="stable")[:4]
    np.testing.assert_array_equal(np.sort(change.features), np.sort(expected))
    np.testing.assert_allclose(change.before, before[:, change.features], atol=1e-6)
    np.testing.assert_allclose(change.after, after[:, change.features], atol=1e-6)

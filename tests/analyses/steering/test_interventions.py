"""Hook lifetimes, steering, ablation and patching against float64 hand computations of the last layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.steering.helpers import HOOK_A, HOOK_B, _active_feature, _hand_logits, _logits, _resid
from featgeom_tda.analyses.steering import (
    ablate,
    decoder_direction,
    feature_means,
    hook_activations,
    mean_difference,
    naive_clamp_with_error,
    patch,
    steer,
)
from featgeom_tda.core.types import FeatureWeights


# ----------------------------------------------------------------------------------------- hook removal


def _n_hooks(model) -> int:
    return sum(len(hp.fwd_hooks) for hp in model.hook_dict.values())


@pytest.mark.parametrize("kind", ["steer", "ablate", "patch", "naive"])
def test_hooks_removed_even_when_body_raises(model_a, sae_a, prompts, kind):
    clean = _logits(model_a, prompts)
    make = {
        "steer": lambda: steer(model_a, HOOK_A, np.ones(16), alpha=3.0),
        "ablate": lambda: ablate(model_a, HOOK_A, sae_a, [0, 1, 2]),
        "patch": lambda: patch(model_a, HOOK_A, sae_a, [0, 1], source_tokens=prompts[:1].flip(1)),
        "naive": lambda: naive_clamp_with_error(model_a, HOOK_A, sae_a, [0]),
    }[kind]
    with pytest.raises(RuntimeError, match="boom"):
        with make():
            assert _n_hooks(model_a) == 1
            raise RuntimeError("boom")
    assert _n_hooks(model_a) == 0
    with make():
        pass
    assert _n_hooks(model_a) == 0
    assert torch.equal(_logits(model_a, prompts), clean)


def test_nested_interventions_compose_and_unwind(model_a, prompts):
    d = np.random.default_rng(0).normal(size=16)
    with steer(model_a, HOOK_A, d, alpha=1.0):
        with steer(model_a, HOOK_A, d, alpha=2.0):
            both = _logits(model_a, prompts)
        assert _n_hooks(model_a) == 1
    with steer(model_a, HOOK_A, d, alpha=3.0):
        once = _logits(model_a, prompts)
    torch.testing.assert_close(both, once, atol=1e-5, rtol=1e-5)
    assert _n_hooks(model_a) == 0


def test_intervention_cannot_be_entered_twice(model_a):
    s = steer(model_a, HOOK_A, np.zeros(16), alpha=1.0)
    with s:
        with pytest.raises(ValueError, match="already active"):
            s.__enter__()
    assert _n_hooks(model_a) == 0


# -------------------------------------------------------------------------------------------- steering


def test_steer_alpha_zero_changes_nothing(model_a, prompts):
    clean = _logits(model_a, prompts)
    with steer(model_a, HOOK_A, np.random.default_rng(1).normal(size=16), alpha=0.0):
        assert torch.equal(_logits(model_a, prompts), clean)


def test_steer_matches_hand_computation(model_a, prompts):
    d = np.random.default_rng(2).normal(size=16)
    resid = _resid(model_a, prompts, HOOK_A)
    expected = _hand_logits(model_a, resid + 2.5 * d)
    with steer(model_a, HOOK_A, torch.tensor(d, dtype=torch.float32), alpha=2.5):
        got = _logits(model_a, prompts).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_steer_positions_int_negative_slice_list(model_a, prompts):
    d = np.random.default_rng(3).normal(size=16) * 5
    resid = _resid(model_a, prompts, HOOK_A)
    for positions, chosen in [(2, [2]), (-1, [6]), (slice(1, 3), [1, 2]), ([0, -2], [0, 5])]:
        steered = resid.copy()
        steered[:, chosen] += d
        with steer(model_a, HOOK_A, d, alpha=1.0, positions=positions):
            got = _logits(model_a, prompts).double().numpy()
        np.testing.assert_allclose(got, _hand_logits(model_a, steered), atol=1e-4)


def test_steer_accepts_feature_weights_row_and_mean_difference(model_a, prompts):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 16)) + 1.0, rng.normal(size=(7, 16))
    md = mean_difference(a, b)
    np.testing.assert_allclose(md, a.mean(0) - b.mean(0))
    np.testing.assert_allclose(mean_difference(a.reshape(5, 1, 16), torch.tensor(b)), md)
    w = FeatureWeights(np.stack([md, -md]))
    with steer(model_a, HOOK_A, w.select([0]), alpha=1.0):
        via_weights = _logits(model_a, prompts)
    with steer(model_a, HOOK_A, md, alpha=1.0):
        via_vector = _logits(model_a, prompts)
    torch.testing.assert_close(via_weights, via_vector)
    with pytest.raises(ValueError, match="select one row"):
        steer(model_a, HOOK_A, w, alpha=1.0)
    with pytest.raises(ValueError, match="same d"):
        mean_difference(a, b[:, :5])


def test_decoder_direction(sae_a):
    d = decoder_direction(sae_a, 3)
    np.testing.assert_allclose(np.linalg.norm(d), 1.0)
    raw = sae_a.W_dec[3].detach().double().numpy()
    np.testing.assert_allclose(decoder_direction(sae_a, 3, normalize=False), raw)
    with pytest.raises(ValueError, match="outside"):
        decoder_direction(sae_a, 32)


def test_bad_hook_and_wrong_width_errors(model_a, sae_a, sae_b, prompts):
    with pytest.raises(ValueError, match="blocks.9.hook_resid_post.*does not exist"):
        steer(model_a, "blocks.9.hook_resid_post", np.zeros(16), alpha=1.0)
    with pytest.raises(ValueError, match="direction has width 7 .*expected width 16"):
        steer(model_a, HOOK_A, np.zeros(7), alpha=1.0)
    with pytest.raises(ValueError, match=r"\(batch, pos, d\)"):
        steer(model_a, "blocks.0.attn.hook_pattern", np.zeros(7), alpha=1.0)
    with pytest.raises(ValueError, match="alpha must be finite"):
        steer(model_a, HOOK_A, np.zeros(16), alpha=float("nan"))
    with pytest.raises(ValueError, match="d_in=24"):
        ablate(model_a, HOOK_A, sae_b, [0])
    with pytest.raises(ValueError, match="does not exist"):
        ablate(model_a, "blocks.0.hook_nope", sae_a, [0])
    with pytest.raises(ValueError, match="outside"):
        ablate(model_a, HOOK_A, sae_a, [40])
    with pytest.raises(ValueError, match="mode must be one of"):
        ablate(model_a, HOOK_A, sae_a, [0], mode="resample")
    with pytest.raises(ValueError, match="means is required"):
        ablate(model_a, HOOK_A, sae_a, [0], mode="mean")
    with pytest.raises(ValueError, match="position 9"):
        with steer(model_a, HOOK_A, np.ones(16), alpha=1.0, positions=9):
            _logits(model_a, prompts)
    assert _n_hooks(model_a) == 0


# -------------------------------------------------------------------------------------------- ablation


def test_ablate_difference_method_works_and_naive_clamp_does_not(model_a, sae_a, prompts):
    feat = _active_feature(model_a, sae_a, prompts)
    clean = _logits(model_a, prompts)
    with naive_clamp_with_error(model_a, HOOK_A, sae_a, [feat]):
        naive = _logits(model_a, prompts)
    with ablate(model_a, HOOK_A, sae_a, [feat]):
        ablated = _logits(model_a, prompts)
    torch.testing.assert_close(naive, clean, atol=1e-5, rtol=0)  # the pitfall: nothing happens
    assert (ablated - clean).abs().max() > 1e-2  # the difference method: the edit takes effect

    resid = _resid(model_a, prompts, HOOK_A)
    with torch.no_grad():
        f = sae_a.encode(torch.tensor(resid, dtype=torch.float32)).double().numpy()
    w_dec = sae_a.W_dec.detach().double().numpy()
    expected = resid - f[..., feat : feat + 1] * w_dec[feat]
    np.testing.assert_allclose(ablated.double().numpy(), _hand_logits(model_a, expected), atol=1e-4)


def test_ablate_inactive_feature_changes_nothing(model_a, sae_a, prompts):
    with torch.no_grad():
        f = sae_a.encode(torch.stack(hook_activations(model_a, HOOK_A, prompts)))
    dead = np.flatnonzero((f == 0).all(dim=1).all(dim=0).numpy())
    assert dead.size > 0
    clean = _logits(model_a, prompts)
    with ablate(model_a, HOOK_A, sae_a, dead.tolist()):
        assert torch.equal(_logits(model_a, prompts), clean)


def test_ablate_mean_mode_and_feature_means(model_a, sae_a, prompts):
    means = feature_means(model_a, HOOK_A, sae_a, prompts)
    resid = _resid(model_a, prompts, HOOK_A)
    with torch.no_grad():
        f = sae_a.encode(torch.tensor(resid, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(means, f.reshape(-1, 32).mean(axis=0), atol=1e-6)
    feats = [1, 4]
    w_dec = sae_a.W_dec.detach().double().numpy()
    expected = resid + (means[feats] - f[..., feats]) @ w_dec[feats]
    for m in (means, means[feats]):
        with ablate(model_a, HOOK_A, sae_a, feats, mode="mean", means=m):
            got = _logits(model_a, prompts).double().numpy()
        np.testing.assert_allclose(got, _hand_logits(model_a, expected), atol=1e-4)


def test_ablate_topk_sae_at_earlier_layer(model_b, sae_b, prompts):
    feat = _active_feature(model_b, sae_b, prompts, hook=HOOK_B)
    clean = _logits(model_b, prompts)
    with naive_clamp_with_error(model_b, HOOK_B, sae_b, [feat]):
        torch.testing.assert_close(_logits(model_b, prompts), clean, atol=1e-5, rtol=0)
    with ablate(model_b, HOOK_B, sae_b, [feat]):
        assert (_logits(model_b, prompts) - clean).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------- patching


def test_patch_into_itself_changes_nothing(model_a, sae_a, prompts):
    clean = _logits(model_a, prompts)
    with patch(model_a, HOOK_A, sae_a, list(range(32)), source_tokens=prompts):
        assert torch.equal(_logits(model_a, prompts), clean)


def test_patch_from_other_prompt_matches_hand_computation(model_a, sae_a, prompts):
    target, source = prompts[:1], prompts[1:2]
    resid_t = _resid(model_a, target, HOOK_A)
    resid_s = _resid(model_a, source, HOOK_A)
    with torch.no_grad():
        f_t = sae_a.encode(torch.tensor(resid_t, dtype=torch.float32)).double().numpy()
        f_s = sae_a.encode(torch.tensor(resid_s, dtype=torch.float32)).double().numpy()
    feats = [_active_feature(model_a, sae_a, source), 7]
    w_dec = sae_a.W_dec.detach().double().numpy()
    expected = resid_t.copy()
    expected[:, -1] += (f_s[:, -1, feats] - f_t[:, -1, feats]) @ w_dec[feats]
    with patch(model_a, HOOK_A, sae_a, feats, source_tokens=source, positions=-1):
        got = _logits(model_a, target).double().numpy()
    np.testing.assert_allclose(got, _hand_logits(model_a, expected), atol=1e-4)
    assert np.abs(expected - resid_t).max() > 1e-3


def test_patch_alignment_errors(model_a, sae_a, prompts):
    short = prompts[:1, :4]
    with pytest.raises(ValueError, match="pass positions="):
        with patch(model_a, HOOK_A, sae_a, [0], source_tokens=short):
            _logits(model_a, prompts[:1])
    with pytest.raises(ValueError, match="one length"):
        patch(model_a, HOOK_A, sae_a, [0], source_tokens=[[2, 3], [2, 3, 4]])
    with patch(model_a, HOOK_A, sae_a, [0], source_tokens=short, positions=[-1, -2]):
        _logits(model_a, prompts[:1])  # aligned from the end: runs
    assert _n_hooks(model_a) == 0

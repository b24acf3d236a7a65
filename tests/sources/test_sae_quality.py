"""The CE-loss evaluation of an SAE: spliced reconstruction against the clean model and zero-ablation."""

import numpy as np
import pytest
import torch

from conftest import TINY_HOOK_2L
from featgeom_tda.sources.saes import collect_activations_at, collect_hook_activations, sae_ce_loss


class _MapSAE(torch.nn.Module):
    """A stand-in SAE whose reconstruction is ``fn(x)``."""

    def __init__(self, d, fn):
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.zeros(1, d))
        self.fn = fn

    def encode(self, x):
        return x

    def decode(self, f):
        return self.fn(f)


def _tokens(seed=0, n=6, seq=10, vocab=40):
    rng = np.random.default_rng(seed)
    toks = rng.integers(4, vocab, size=(n, seq))
    toks[:, 0] = 1  # BOS
    return toks


def _manual_ce(model, toks, mask, hook=None, replace=None):
    """float64 next-token CE over positions t with mask[t] and t < seq - 1, one row at a time."""
    total, count = 0.0, 0
    for row, keep in zip(toks, mask):
        t = torch.as_tensor(row)[None]
        hooks = []
        if replace is not None:
            def fn(act, hook, keep=keep):
                out = act.clone()
                idx = torch.as_tensor(np.flatnonzero(keep))
                out[0, idx] = replace(act[0, idx])
                return out
            hooks = [(hook, fn)]
        with torch.no_grad():
            logits = model.run_with_hooks(t, fwd_hooks=hooks)[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        for pos in range(len(row) - 1):
            if keep[pos]:
                total -= float(logp[pos, row[pos + 1]])
                count += 1
    return total / count, count


def test_identity_reconstruction_costs_nothing_and_zero_costs_the_ablation(tiny_model_2l):
    toks = _tokens()
    mask = np.ones(toks.shape, dtype=bool)
    mask[:, 0] = False
    ident = _MapSAE(24, lambda f: f)
    res = sae_ce_loss(tiny_model_2l, ident, toks, hook_name=TINY_HOOK_2L, mask=mask, batch_size=4)
    clean, n = _manual_ce(tiny_model_2l, toks, mask)
    zero, _ = _manual_ce(tiny_model_2l, toks, mask, TINY_HOOK_2L, lambda a: torch.zeros_like(a))
    assert res["n_scored"] == n == 6 * 8
    assert res["ce_clean"] == pytest.approx(clean, abs=1e-5)
    assert res["ce_spliced"] == pytest.approx(clean, abs=1e-5)
    assert res["ce_zero_ablation"] == pytest.approx(zero, abs=1e-5)
    assert res["ce_loss_increase"] == pytest.approx(0.0, abs=1e-5)
    # a random model may do better with its last residual zeroed (uniform logits): no gap, no recovered share
    assert zero < clean and np.isnan(res["ce_recovered"])

    zero_sae = _MapSAE(24, lambda f: torch.zeros_like(f))
    res0 = sae_ce_loss(tiny_model_2l, zero_sae, toks, hook_name=TINY_HOOK_2L, mask=mask)
    assert res0["ce_spliced"] == pytest.approx(zero, abs=1e-5)


def test_recovered_share_where_zero_ablation_hurts(tiny_model_2l):
    toks = _tokens(seed=3)
    mask = np.ones(toks.shape, dtype=bool)
    mask[:, 0] = False
    hook = "blocks.0.hook_resid_post"
    half = _MapSAE(24, lambda f: 0.5 * f)
    res = sae_ce_loss(tiny_model_2l, half, toks, hook_name=hook, mask=mask)
    clean, _ = _manual_ce(tiny_model_2l, toks, mask)
    zero, _ = _manual_ce(tiny_model_2l, toks, mask, hook, lambda a: torch.zeros_like(a))
    spliced, _ = _manual_ce(tiny_model_2l, toks, mask, hook, lambda a: 0.5 * a)
    assert zero > clean  # zeroing the first residual stream hurts even this random model
    assert res["ce_recovered"] == pytest.approx((zero - spliced) / (zero - clean), abs=1e-4)


def test_a_real_sae_is_scored_against_an_independent_float64_splice(tiny_model_2l, tiny_sae_2l):
    toks = _tokens(seed=1)
    mask = np.ones(toks.shape, dtype=bool)
    mask[:, :2] = False  # an outlier position keeps its clean activation and is not scored
    res = sae_ce_loss(tiny_model_2l, tiny_sae_2l, toks, hook_name=TINY_HOOK_2L, mask=mask, batch_size=2)
    spliced, n = _manual_ce(tiny_model_2l, toks, mask, TINY_HOOK_2L,
                            lambda a: tiny_sae_2l.decode(tiny_sae_2l.encode(a)))
    assert res["n_scored"] == n
    assert res["ce_spliced"] == pytest.approx(spliced, abs=1e-5)
    assert res["ce_loss_increase"] == pytest.approx(res["ce_spliced"] - res["ce_clean"], abs=1e-12)


def test_ce_loss_refuses_what_it_cannot_score(tiny_model_2l, tiny_sae_2l):
    toks = _tokens()
    with pytest.raises(ValueError, match="hook_name"):
        sae_ce_loss(tiny_model_2l, tiny_sae_2l, toks, hook_name="blocks.9.hook_resid_post")
    with pytest.raises(ValueError, match="no position is scored"):
        sae_ce_loss(tiny_model_2l, tiny_sae_2l, toks, hook_name=TINY_HOOK_2L, mask=np.zeros(toks.shape, bool))
    with pytest.raises(ValueError, match="mask has shape"):
        sae_ce_loss(tiny_model_2l, tiny_sae_2l, toks, hook_name=TINY_HOOK_2L, mask=np.ones((2, 2), bool))


def test_one_pass_over_several_hooks_equals_one_pass_per_hook(tiny_model_2l):
    toks = _tokens(seed=2)
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.0.hook_mlp_out"]
    together = collect_activations_at(tiny_model_2l, toks, hooks, batch_size=4)
    for hook in hooks:
        alone = collect_hook_activations(tiny_model_2l, toks, hook, batch_size=3)
        assert torch.equal(together[hook], alone)
    with pytest.raises(ValueError, match="hook_names"):
        collect_activations_at(tiny_model_2l, toks, "blocks.0.hook_resid_post")

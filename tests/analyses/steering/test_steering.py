"""Steering, ablation and patching on tiny random HookedTransformers with tiny sae_lens SAEs.

Numbers are checked against independent float64 numpy computations of the last layer (LayerNorm and
unembedding written out by hand), never against the functions under test.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.special
import torch

from featgeom_tda.sources.concepts import load_concept_groups
from featgeom_tda.analyses.steering import (
    FeatureChange,
    SteeringTask,
    ablate,
    alpha_sweep,
    baseline_rate,
    decoder_direction,
    feature_activation_change,
    feature_means,
    find_steering_feature,
    hook_activations,
    kl_side_effects,
    logprob_change,
    make_task,
    mean_difference,
    month_task,
    naive_clamp_with_error,
    number_task,
    partner_of,
    patch,
    plot_alpha_sweep,
    plot_before_after,
    pronoun_task,
    restrict_to_baseline,
    rows_to_markdown,
    steer,
    success_rate,
    task_predictions,
    top_k_next,
    transfer_comparison,
)
from featgeom_tda.core.types import FeatureActivations, FeatureMatching, FeatureWeights

HOOK_A = "blocks.0.hook_resid_post"
HOOK_B = "blocks.1.hook_resid_post"

_EXTRA_WORDS = (
    "The the a and then so smiled laughed nodded that In looked at was very found old sat down One of year "
    "are months we said "
    "children counted Then , : \" . it"
).split()


# ------------------------------------------------------------------------------------------------ fixtures


def _vocab() -> dict[str, int]:
    vocab = {"[UNK]": 0, "[BOS]": 1}
    groups = load_concept_groups()
    for w in _EXTRA_WORDS + [w for words in groups.values() for w in words]:
        vocab.setdefault(w, len(vocab))
    return vocab


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab=_vocab(), unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def _model(n_layers: int, d_model: int, seed: int):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers, d_model=d_model, n_heads=2, d_head=d_model // 2, d_mlp=2 * d_model, n_ctx=32,
        d_vocab=len(_vocab()), act_fn="gelu", normalization_type="LN", device="cpu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HookedTransformer(cfg)
    model.eval()
    return model


def _sae(d_in: int, d_sae: int, hook: str, seed: int, k: int | None = None):
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if k is None:
            sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook)))
        else:
            sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=hook)))
    sae.eval()
    return sae


@pytest.fixture(scope="module")
def model_a():
    return _model(1, 16, seed=11)


@pytest.fixture(scope="module")
def model_b():
    return _model(2, 24, seed=12)


@pytest.fixture(scope="module")
def sae_a():
    return _sae(16, 32, HOOK_A, seed=13)


@pytest.fixture(scope="module")
def sae_b():
    return _sae(24, 48, HOOK_B, seed=14, k=4)


@pytest.fixture(scope="module")
def prompts():
    g = torch.Generator().manual_seed(0)
    return torch.randint(2, len(_vocab()), (3, 7), generator=g)


@pytest.fixture(scope="module")
def task(tokenizer):
    return pronoun_task(tokenizer, n_prompts=12)


def _logits(model, tokens):
    with torch.no_grad():
        return model(tokens, return_type="logits")


def _resid(model, tokens, hook):
    return torch.stack(hook_activations(model, hook, tokens)).double().numpy()


def _hand_logits(model, resid: np.ndarray) -> np.ndarray:
    """Final LayerNorm and unembedding of a last-layer residual stream, in float64 numpy."""
    x = resid - resid.mean(axis=-1, keepdims=True)
    x = x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + model.cfg.eps)
    x = x * model.ln_final.w.detach().double().numpy() + model.ln_final.b.detach().double().numpy()
    return x @ model.W_U.detach().double().numpy() + model.b_U.detach().double().numpy()


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - scipy.special.logsumexp(z, axis=-1, keepdims=True)


def _active_feature(model, sae, tokens, hook=HOOK_A) -> int:
    with torch.no_grad():
        f = sae.encode(torch.stack(hook_activations(model, hook, tokens)))
    return int(f[:, -1].sum(dim=0).argmax())


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


# ------------------------------------------------------------------------------------------------- tasks


def test_pronoun_task(tokenizer, task):
    assert len(task) == 12 and task.desired == "she" and set(task.baselines) == {"he"}
    assert task.desired_id == tokenizer.token_to_id("she")
    assert all(b == tokenizer.token_to_id("he") for b in task.baseline_ids)
    assert all(any(f" {s}" in p for s in ("king", "prince", "father", "brother", "grandpa")) for p in task.prompts)
    for p, toks in zip(task.prompts, task.prompt_tokens):
        assert toks == tokenizer.encode(p).ids and 0 not in toks
    again = pronoun_task(tokenizer, n_prompts=12)
    assert again.prompts == task.prompts
    assert pronoun_task(tokenizer, n_prompts=12, seed=5).prompts != task.prompts
    she = pronoun_task(tokenizer, desired="he", baseline="she", n_prompts=6)
    assert all(any(f" {s}" in p for s in ("queen", "princess", "mother", "sister", "grandma")) for p in she.prompts)
    with pytest.raises(ValueError, match="subjects is required"):
        pronoun_task(tokenizer, baseline="it")


def test_month_and_number_tasks(tokenizer):
    months = load_concept_groups()["months"]
    t = month_task(tokenizer, "July", n_prompts=20)
    assert len(t) == 20 and t.desired == "July"
    for p, b in zip(t.prompts, t.baselines):
        words = [w.strip(' ",:') for w in p.split(",") if w.strip(' ",:')]
        last = words[-1].split()[-1]
        assert b == months[(months.index(last) + 1) % 12] and b != "July"
    n = number_task(tokenizer, "seven", n_prompts=10)
    assert all(b != "seven" for b in n.baselines)
    assert any(p.startswith('"One') or p.startswith('"Two') or "counted" in p for p in n.prompts)
    with pytest.raises(ValueError, match="not one of the months"):
        month_task(tokenizer, "Smarch")


def test_make_task_drops_unknown_and_rejects_bad_words(tokenizer):
    t = make_task(tokenizer, "t", ["The king smiled, and then", "The zebra smiled, and then"], "she", "he")
    assert t.prompts == ["The king smiled, and then"] and t.config["n_dropped"] == 1
    t2 = make_task(tokenizer, "t", ["The king smiled, and then"], "she", "he", prepend_bos=1)
    assert t2.prompt_tokens[0][0] == 1
    with pytest.raises(ValueError, match="'zebra' is not a single known token"):
        make_task(tokenizer, "t", ["The king smiled"], "zebra", "he")
    with pytest.raises(ValueError, match="no prompt encodes"):
        make_task(tokenizer, "t", ["zebra"], "she", "he")
    with pytest.raises(ValueError, match="must differ"):
        SteeringTask("t", ["a"], "she", ["she"], [[2]], 5, [5])
    sub = t2.subset([0])
    assert sub.prompts == t2.prompts and sub.to_dict()["desired_id"] == t2.desired_id


def test_restrict_to_baseline(model_a, task):
    preds = task_predictions(model_a, task)
    keep = preds == np.asarray(task.baseline_ids)
    if keep.any():
        assert len(restrict_to_baseline(model_a, task)) == int(keep.sum())
    else:
        with pytest.raises(ValueError, match="predicts the baseline token on none"):
            restrict_to_baseline(model_a, task)


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


# ------------------------------------------------------------------------------ feature change and plots


def test_feature_activation_change_and_plot(model_a, sae_a, prompts, tmp_path):
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
    out = plot_before_after(change, tmp_path / "fig" / "before_after.png")
    assert out.exists() and out.stat().st_size > 1000
    rows = [{"alpha": 0.0, "success_rate": 0.0, "kl_unrelated": 0.0}, {"alpha": 1.0, "success_rate": 0.5, "kl_unrelated": 0.1}]
    assert plot_alpha_sweep(rows, tmp_path / "sweep.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="token_labels has 2"):
        plot_before_after(change, tmp_path / "x.png", token_labels=["a", "b"])


def test_feature_change_measured_at_later_hook(model_b, sae_b, prompts):
    interv = steer(model_b, "blocks.0.hook_resid_post", np.ones(24) * 3, alpha=1.0)
    change = feature_activation_change(model_b, HOOK_B, sae_b, prompts, interv, top_n=4)
    assert change.total_abs_change > 0 and change.hook_name == HOOK_B


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


def test_pronoun_task_template_slots(tokenizer):
    t = pronoun_task(tokenizer, templates=["In {month}, the {subject} was so {emotion} that"], n_prompts=4)
    months = load_concept_groups()["months"]
    assert all(p.split(",")[0].split()[-1] in months for p in t.prompts)
    with pytest.raises(ValueError, match="unknown slot 'weather'"):
        pronoun_task(tokenizer, templates=["The {subject} saw the {weather}"])

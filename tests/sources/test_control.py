"""The randomised-model control: a reinitialised copy equals what TransformerLens builds from the same seed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from featgeom_tda.sources.control import reinitialised_copy


def _fresh(cfg, seed, tokenizer=None):
    """TransformerLens' own initialisation: a new HookedTransformer built right after seeding (RNG restored)."""
    from transformer_lens import HookedTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HookedTransformer(copy.deepcopy(cfg), tokenizer=tokenizer)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_params(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name


def _trained_looking(model, seed=0):
    """A copy of ``model`` with every parameter (biases and norm gains too) moved off its initial value."""
    m = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def test_equals_transformer_lens_init_from_the_same_seed(tiny_model_2l, tiny_tokenizer):
    trained = _trained_looking(tiny_model_2l)
    new = reinitialised_copy(trained, seed=7)
    _assert_same_params(new, _fresh(tiny_model_2l.cfg, 7, tiny_tokenizer))
    # biases 0 and LayerNorm gains 1 again, nothing of the "training" left
    for name, p in new.named_parameters():
        if name.endswith(".w"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif "W_" not in name:
            assert torch.equal(p, torch.zeros_like(p)), name


@pytest.mark.parametrize(
    "extra",
    [
        {"normalization_type": "RMS", "gated_mlp": True, "act_fn": "silu", "positional_embedding_type": "rotary",
         "n_key_value_heads": 1, "init_mode": "xavier_normal"},
        {"normalization_type": "LNPre", "init_mode": "kaiming_uniform", "final_rms": False},
        {"attn_only": True, "init_mode": "muP"},
    ],
    ids=["rms-gated-rotary-gqa", "lnpre-kaiming", "attn-only-mup"],
)
def test_other_architectures_and_init_modes(extra):
    from transformer_lens import HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=8, d_vocab=20,
                                  device="cpu", **{"act_fn": "gelu", **extra})
    model = _trained_looking(_fresh(cfg, 0))
    new = reinitialised_copy(model, seed=3)
    _assert_same_params(new, _fresh(cfg, 3))
    assert not torch.equal(new.W_E, model.W_E)


def test_same_architecture_and_hooks_different_weights(tiny_model_1l):
    new = reinitialised_copy(tiny_model_1l, seed=0)
    assert type(new) is type(tiny_model_1l)
    assert list(new.hook_dict) == list(tiny_model_1l.hook_dict)
    assert new.tokenizer is tiny_model_1l.tokenizer
    assert new.cfg.model_name == "tiny-1l-reinit-seed0"
    a, b = new.cfg.to_dict(), tiny_model_1l.cfg.to_dict()
    a.pop("model_name"), b.pop("model_name")
    assert a == b
    old = dict(tiny_model_1l.named_parameters())
    for name, p in new.named_parameters():
        assert p.shape == old[name].shape and p.dtype == old[name].dtype and p.device == old[name].device
        if "W_" in name:  # every weight matrix re-drawn, embeddings included
            assert not torch.equal(p, old[name]), name
    assert new.cfg is not tiny_model_1l.cfg
    tokens = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(new(tokens), tiny_model_1l(tokens))
    assert not new.training


def test_init_scale_is_the_configured_range(tiny_model_2l):
    # init_mode "gpt2": every W_ entry ~ N(0, initializer_range^2), initializer_range = 0.8 / sqrt(d_model)
    new = reinitialised_copy(tiny_model_2l, seed=11)
    assert new.cfg.init_mode == "gpt2"
    values = torch.cat([p.detach().ravel() for n, p in new.named_parameters() if "W_" in n]).double().numpy()
    expected = 0.8 / np.sqrt(tiny_model_2l.cfg.d_model)
    assert values.std() == pytest.approx(expected, rel=0.03)
    assert abs(values.mean()) < 5 * expected / np.sqrt(values.size)


def test_deterministic_per_seed(tiny_model_1l):
    a = reinitialised_copy(tiny_model_1l, seed=5)
    b = reinitialised_copy(tiny_model_1l, seed=5)
    c = reinitialised_copy(tiny_model_1l, seed=6)
    _assert_same_params(a, b)
    assert not torch.equal(a.W_E, c.W_E)


def test_original_and_global_rng_untouched(tiny_model_1l):
    before = _state(tiny_model_1l)
    name, seed_before = tiny_model_1l.cfg.model_name, tiny_model_1l.cfg.seed
    rng = torch.get_rng_state()
    reinitialised_copy(tiny_model_1l, seed=123)
    assert torch.equal(torch.get_rng_state(), rng)
    after = _state(tiny_model_1l)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert tiny_model_1l.cfg.model_name == name and tiny_model_1l.cfg.seed == seed_before


def test_cfg_seed_does_not_override_the_seed(tiny_model_1l):
    m = copy.deepcopy(tiny_model_1l)
    m.cfg.seed = 42
    new = reinitialised_copy(m, seed=1, model_name="control")
    _assert_same_params(new, reinitialised_copy(tiny_model_1l, seed=1))
    assert new.cfg.seed == 42 and new.cfg.model_name == "control"


def test_bad_arguments(tiny_model_1l):
    with pytest.raises(ValueError, match="seed"):
        reinitialised_copy(tiny_model_1l, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        reinitialised_copy(tiny_model_1l, seed=1.5)
    with pytest.raises(ValueError, match="model must be a transformer_lens HookedTransformer"):
        reinitialised_copy(torch.nn.Linear(2, 2), seed=0)
    with pytest.raises(ValueError, match="model_name"):
        reinitialised_copy(tiny_model_1l, seed=0, model_name="")
    m = copy.deepcopy(tiny_model_1l)
    m.blocks[0].register_parameter("scale", torch.nn.Parameter(torch.ones(3)))
    with pytest.raises(ValueError, match="blocks.0.scale"):
        reinitialised_copy(m, seed=0)

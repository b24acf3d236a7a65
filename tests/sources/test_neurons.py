"""Raw units of a model (MLP neurons, residual dimensions) against a manual run_with_cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featgeom_tda.core.types import FeatureActivations
from featgeom_tda.sources.neurons import (
    RawUnits,
    mlp_neuron_directions,
    mlp_neuron_units,
    residual_directions,
    residual_units,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokens(tiny_tokenizer, tiny_texts):
    """(n_texts, max_len) ids: <bos> + words, right-padded with <pad>=0."""
    ids = [tiny_tokenizer(t)["input_ids"] for t in tiny_texts]
    width = max(map(len, ids))
    out = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        out[i, : len(row)] = row
    assert (out[:, 0] == 1).all() and (out == 0).any()
    return out


def _cache(model, tokens):
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.from_numpy(tokens))
    return cache


def _default_keep(tokens):
    return (tokens != 0) & (tokens != 1)  # no padding, no BOS


@pytest.mark.parametrize("model_name, layer", [("tiny_model_1l", 0), ("tiny_model_2l", 0), ("tiny_model_2l", 1)])
def test_mlp_neurons_match_run_with_cache(request, tokens, model_name, layer):
    model = request.getfixturevalue(model_name)
    units = mlp_neuron_units(model, tokens, layer, batch_size=3)
    keep = _default_keep(tokens)
    cache = _cache(model, tokens)
    expected = cache[f"blocks.{layer}.mlp.hook_post"].numpy()[keep]
    assert isinstance(units, RawUnits) and units.kind == "mlp_neurons"
    assert units.hook_name == f"blocks.{layer}.mlp.hook_post"
    assert units.activations.dtype == np.float32
    assert units.activations.shape == (int(keep.sum()), model.cfg.d_mlp)
    np.testing.assert_allclose(units.activations, expected, rtol=1e-5, atol=1e-6)
    # directions are W_out rows ...
    assert units.weights.shape == (model.cfg.d_mlp, model.cfg.d_model)
    np.testing.assert_array_equal(units.weights.weights, model.W_out[layer].detach().numpy())
    # ... so activations @ directions + b_out is the MLP's output (float64 check)
    out = units.activations.astype(np.float64) @ units.weights.weights.astype(np.float64)
    out += model.blocks[layer].mlp.b_out.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(out, cache[f"blocks.{layer}.hook_mlp_out"].numpy()[keep], atol=1e-5)


def test_row_metadata_follows_the_mask(tiny_model_1l, tokens):
    units = mlp_neuron_units(tiny_model_1l, tokens, 0)
    rows, cols = np.nonzero(_default_keep(tokens))
    np.testing.assert_array_equal(units.doc_index, rows)
    np.testing.assert_array_equal(units.position, cols)
    np.testing.assert_array_equal(units.token_ids, tokens[rows, cols])
    assert not np.isin(units.token_ids, [0, 1]).any()


def test_keep_bos_and_custom_mask(tiny_model_2l, tokens):
    cache = _cache(tiny_model_2l, tokens)
    with_bos = residual_units(tiny_model_2l, tokens, "blocks.1.hook_resid_post", keep_bos=True)
    keep = tokens != 0
    assert with_bos.n_tokens == int(keep.sum())
    np.testing.assert_allclose(with_bos.activations, cache["blocks.1.hook_resid_post"].numpy()[keep], atol=1e-5)
    assert (with_bos.token_ids == 1).sum() == tokens.shape[0]

    rng = np.random.default_rng(0)
    custom = rng.random(tokens.shape) < 0.4  # includes padding and BOS positions: the mask is obeyed as given
    units = mlp_neuron_units(tiny_model_2l, tokens, 1, mask=custom)
    np.testing.assert_allclose(units.activations, cache["blocks.1.mlp.hook_post"].numpy()[custom], atol=1e-5)
    rows, cols = np.nonzero(custom)
    np.testing.assert_array_equal(units.doc_index, rows)
    np.testing.assert_array_equal(units.position, cols)


def test_residual_units_are_the_identity_basis(tiny_model_1l, tokens):
    hook = "blocks.0.hook_resid_mid"
    units = residual_units(tiny_model_1l, torch.from_numpy(tokens), hook)
    d = tiny_model_1l.cfg.d_model
    assert units.kind == "residual_dims" and units.weights.shape == (d, d)
    np.testing.assert_array_equal(units.weights.weights, np.eye(d, dtype=np.float32))
    keep = _default_keep(tokens)
    np.testing.assert_allclose(units.activations, _cache(tiny_model_1l, tokens)[hook].numpy()[keep], atol=1e-5)
    assert units.activations.shape == (int(keep.sum()), d)


def test_provenance_and_to_activations(tiny_model_2l, tokens):
    units = mlp_neuron_units(tiny_model_2l, tokens, 1)
    p = units.provenance
    assert p.model == "tiny-2l" and p.hook_name == "blocks.1.mlp.hook_post"
    assert p.sae_id == f"mlp_neurons-{tiny_model_2l.cfg.d_mlp}" and p.extra["layer"] == 1
    fa = units.to_activations()
    assert isinstance(fa, FeatureActivations) and fa.shape == units.activations.shape
    np.testing.assert_array_equal(fa.to_numpy(), units.activations)
    np.testing.assert_array_equal(fa.token_ids, units.token_ids)
    assert fa.provenance == p
    r = residual_directions(tiny_model_2l, "blocks.0.hook_resid_pre")
    assert r.provenance.sae_id == "residual_dims-24" and r.provenance.hook_name == "blocks.0.hook_resid_pre"
    assert "RawUnits(kind='mlp_neurons'" in repr(units)


def test_directions_do_not_run_on_tokens(tiny_model_1l):
    w = mlp_neuron_directions(tiny_model_1l, 0)
    np.testing.assert_array_equal(w.weights, tiny_model_1l.W_out[0].detach().numpy())
    assert w.provenance.extra["matrix"] == "blocks.0.mlp.W_out"


def test_bad_arguments(tiny_model_1l, tokens):
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 0\]"):
        mlp_neuron_units(tiny_model_1l, tokens, 1)
    with pytest.raises(ValueError, match="layer"):
        mlp_neuron_directions(tiny_model_1l, True)
    with pytest.raises(ValueError, match="hook_name 'blocks.0.mlp.hook_post' has width 32"):
        residual_units(tiny_model_1l, tokens, "blocks.0.mlp.hook_post")
    with pytest.raises(ValueError, match="hook_name 'blocks.0.hook_resid_pots' does not exist"):
        residual_directions(tiny_model_1l, "blocks.0.hook_resid_pots")
    with pytest.raises(ValueError, match="mask has shape"):
        mlp_neuron_units(tiny_model_1l, tokens, 0, mask=np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="mask must be boolean"):
        mlp_neuron_units(tiny_model_1l, tokens, 0, mask=np.ones(tokens.shape))
    with pytest.raises(ValueError, match="batch_size"):
        mlp_neuron_units(tiny_model_1l, tokens, 0, batch_size=0)
    with pytest.raises(ValueError, match="keep_bos"):
        residual_units(tiny_model_1l, tokens, "blocks.0.hook_resid_post", keep_bos="yes")
    with pytest.raises(ValueError, match="tokens"):
        residual_units(tiny_model_1l, np.array([[0.5, 1.0]]), "blocks.0.hook_resid_post")


def test_attention_only_model_has_no_neurons():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=8, d_vocab=10,
                                  attn_only=True, act_fn="relu", device="cpu")
    with torch.random.fork_rng(devices=[]):
        model = HookedTransformer(cfg)
    with pytest.raises(ValueError, match="attention-only"):
        mlp_neuron_units(model, np.array([[1, 2, 3]]), 0)
    units = residual_units(model, np.array([[1, 2, 3]]), "blocks.0.hook_resid_post")
    assert units.activations.shape == (3, 8)  # no tokenizer: every position is kept

"""Weight matrices as FeatureWeights: SAE decoder rows and MLP output rows."""

import numpy as np
import pytest
import torch

from featgeom_tda.sources.models import ModelSpec, build_model
from featgeom_tda.sources.saes import train_sae
from featgeom_tda.sources.weights import decoder_weights, mlp_out_weights
from featgeom_tda.core.types import FeatureWeights, Provenance


@pytest.fixture(scope="module")
def model():
    return build_model(ModelSpec(n_layers=2, d_model=16, n_heads=2, d_mlp=40, n_ctx=8, d_vocab=12, name="m2"), seed=0)


@pytest.fixture(scope="module")
def sae():
    acts = torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    return train_sae(acts, width=24, k=3, steps=5, batch_size=64, hook_name="blocks.1.hook_resid_post",
                     model_name="m2", seed=2, progress=False)


def test_decoder_weights_are_w_dec_rows(sae):
    fw = decoder_weights(sae)
    assert isinstance(fw, FeatureWeights)
    assert fw.shape == (24, 16) and fw.weights.dtype == np.float32
    np.testing.assert_array_equal(fw.weights, sae.W_dec.detach().numpy())
    p = fw.provenance
    assert (p.model, p.hook_name, p.sae_id, p.seed) == ("m2", "blocks.1.hook_resid_post", "topk-24", 2)
    # the rows are the directions the decoder adds: decode(e_i) - decode(0) == W_dec[i]
    with torch.no_grad():
        basis = torch.eye(24)
        diff = sae.decode(basis) - sae.decode(torch.zeros(1, 24))
    np.testing.assert_allclose(diff.numpy(), fw.weights, atol=1e-6)


def test_decoder_weights_explicit_provenance(sae):
    prov = Provenance(model="x", sae_id="mine")
    assert decoder_weights(sae, provenance=prov).provenance is prov


def test_mlp_out_weights(model):
    for layer in (0, 1):
        fw = mlp_out_weights(model, layer)
        assert fw.shape == (40, 16)
        np.testing.assert_array_equal(fw.weights, model.blocks[layer].mlp.W_out.detach().numpy())
        assert fw.provenance.model == "m2"
        assert fw.provenance.hook_name == f"blocks.{layer}.mlp.hook_post"
    # row i is what neuron i adds to the residual stream per unit of activation
    w_out = model.blocks[1].mlp.W_out.detach()
    post = torch.zeros(1, 40)
    post[0, 7] = 1.0
    np.testing.assert_allclose((post @ w_out)[0].numpy(), mlp_out_weights(model, 1).weights[7], atol=1e-7)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="layer"):
        mlp_out_weights(model, 2)
    with pytest.raises(ValueError, match="layer"):
        mlp_out_weights(model, -1)
    with pytest.raises(ValueError, match="W_dec"):
        decoder_weights(object())

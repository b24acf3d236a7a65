"""Fixtures of the steering tests (shared with tests/viz/test_steering.py).

Tiny random HookedTransformers, tiny sae_lens SAEs, a word-level tokenizer, prompts and a pronoun task.
"""

from __future__ import annotations

import pytest
import torch

from analyses.steering.helpers import HOOK_A, HOOK_B, _vocab
from featgeom_tda.analyses.steering import pronoun_task

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


"""Shared test fixtures: a tiny word-level tokenizer, two tiny HookedTransformers and SAEs fitting their hooks.

Everything is random-initialised, offline and session-scoped (built once, a few seconds in all). The
objects are shared between tests: do not train, move or otherwise modify them; copy them first
(``copy.deepcopy``) if a test needs to.

Fixtures:
    tiny_vocab       dict word -> id; ids 0..3 are <pad>, <bos>, <eos>, <unk>.
    tiny_tokenizer   transformers.PreTrainedTokenizerFast over ``tiny_vocab`` (lower-cases, splits on
                     whitespace; pad id 0, bos id 1, eos id 2; ``tokenizer(text)`` prepends <bos>).
    tiny_texts       a list of short sentences of different lengths using only vocabulary words.
    tiny_model_1l    HookedTransformer: 1 layer, d_model 16, 2 heads of 8, d_mlp 32, n_ctx 32, with
                     ``tiny_tokenizer`` attached. Hook of its SAE: ``TINY_HOOK_1L``.
    tiny_model_2l    HookedTransformer: 2 layers, d_model 24, 3 heads of 8, d_mlp 48, n_ctx 32, with
                     ``tiny_tokenizer`` attached. Hook of its SAE: ``TINY_HOOK_2L``.
    tiny_sae_1l      sae_lens StandardSAE, d_in 16, d_sae 32, metadata.hook_name = TINY_HOOK_1L.
    tiny_sae_2l      sae_lens TopKSAE (k=4), d_in 24, d_sae 48, metadata.hook_name = TINY_HOOK_2L.
"""

from __future__ import annotations

import pytest

TINY_HOOK_1L = "blocks.0.hook_resid_post"
TINY_HOOK_2L = "blocks.1.hook_resid_post"

TINY_SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
TINY_WORDS = (
    "the a an king queen prince princess man woman boy girl mother father sister brother cat dog bird "
    "sat ran saw is was and on in of to big small red blue green one two three four five happy sad "
    "day night january may june"
).split()

TINY_TEXTS = [
    "the king saw the queen",
    "a cat sat on the mat",
    "the small red bird ran to the big green tree in may",
    "one two three",
    "the mother and the father saw a happy dog on a sad day",
    "queen",
    "the prince is a boy and the princess is a girl",
    "five blue cats sat in the night",
    "",
    "the sister of the brother was happy in june and january",
]


def make_word_tokenizer(words, *, name: str = "tiny-wordlevel"):
    """A word-level PreTrainedTokenizerFast: specials <pad>=0, <bos>=1, <eos>=2, <unk>=3, then ``words``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(TINY_SPECIAL)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,  # so transformer_lens keeps this tokenizer as is (no hub lookup)
        name_or_path=name,
    )


def make_tiny_model(tokenizer, *, n_layers: int, d_model: int, n_heads: int, seed: int, name: str):
    """A random-initialised HookedTransformer over ``tokenizer``'s vocabulary (global RNG left untouched)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=2 * d_model,
        n_ctx=32,
        d_vocab=len(tokenizer.get_vocab()),
        act_fn="gelu",
        normalization_type="LN",
        model_name=name,
        device="cpu",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.eval()
    return model


def make_tiny_sae(*, d_in: int, d_sae: int, hook_name: str, seed: int, k: int | None = None, model_name: str = ""):
    """A random sae_lens SAE (StandardSAE, or TopKSAE when ``k`` is given) recording ``hook_name``."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    meta = SAEMetadata(hook_name=hook_name, model_name=model_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if k is None:
            sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=meta))
            with torch.no_grad():  # a negative encoder bias makes the codes sparse
                sae.b_enc.fill_(-0.5)
        else:
            sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=meta))
    sae.eval()
    return sae


@pytest.fixture(scope="session")
def tiny_vocab() -> dict[str, int]:
    vocab = {tok: i for i, tok in enumerate(TINY_SPECIAL)}
    for w in TINY_WORDS:
        vocab.setdefault(w, len(vocab))
    return vocab


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_word_tokenizer(TINY_WORDS)


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    return list(TINY_TEXTS)


@pytest.fixture(scope="session")
def tiny_model_1l(tiny_tokenizer):
    return make_tiny_model(tiny_tokenizer, n_layers=1, d_model=16, n_heads=2, seed=1, name="tiny-1l")


@pytest.fixture(scope="session")
def tiny_model_2l(tiny_tokenizer):
    return make_tiny_model(tiny_tokenizer, n_layers=2, d_model=24, n_heads=3, seed=2, name="tiny-2l")


@pytest.fixture(scope="session")
def tiny_sae_1l():
    return make_tiny_sae(d_in=16, d_sae=32, hook_name=TINY_HOOK_1L, seed=3, model_name="tiny-1l")


@pytest.fixture(scope="session")
def tiny_sae_2l():
    return make_tiny_sae(d_in=24, d_sae=48, hook_name=TINY_HOOK_2L, seed=4, k=4, model_name="tiny-2l")

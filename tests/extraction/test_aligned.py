"""Extraction over a token alignment: identity for one tokenizer, per-unit reductions by hand otherwise."""

import numpy as np
import pytest

from conftest import TINY_HOOK_1L, TINY_WORDS, make_tiny_model, make_tiny_sae, make_word_tokenizer
from featgeom_tda.extraction.activations import ActivationSource, extract_activations, load_activations, tokenize_documents
from featgeom_tda.extraction.aligned import extract_aligned_activations
from featgeom_tda.extraction.alignment import align_tokens

TEXTS = ["the king saw the queen", "a big red bird ran to the green tree in may", "one two three four five",
         "the mother and the father saw a happy dog on a sad day"]


def test_identical_tokenizers_give_the_plain_path_exactly(tmp_path, tiny_tokenizer, tiny_model_1l, tiny_sae_1l):
    alignment = align_tokens(tiny_tokenizer, tiny_tokenizer, TEXTS)
    assert alignment.is_identity()
    a = ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    b = ActivationSource("b", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    extract_aligned_activations([a], [b], alignment, tmp_path / "aligned", batch_size=2, progress=False)
    plain_ds = tokenize_documents(tiny_tokenizer, TEXTS, max_length=32)
    extract_activations([ActivationSource("p", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)], plain_ds, tmp_path / "plain",
                        batch_size=2, progress=False)
    plain = load_activations(tmp_path / "plain", "p")
    for name in ("a", "b"):
        aligned = load_activations(tmp_path / "aligned", name)
        assert aligned.n_tokens == plain.n_tokens == sum(len(t.split()) for t in TEXTS)
        assert np.array_equal(aligned.matrix.toarray(), plain.matrix.toarray())
        assert np.array_equal(aligned.token_ids, plain.token_ids)
        assert np.array_equal(aligned.doc_index, plain.doc_index)


@pytest.fixture(scope="module")
def subword_tokenizer():
    """A small BPE (vocabulary 48) that cuts most words into several pieces: multi-token units on its side."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=48, special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"])
    backend.train_from_iterator([" ".join(TINY_WORDS)] * 3 + TEXTS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", add_bos_token=True, name_or_path="subword")


@pytest.mark.parametrize("mode", ["max", "last", "mean"])
def test_each_reduction_agrees_with_a_per_token_computation(tmp_path, tiny_tokenizer, tiny_model_1l, tiny_sae_1l,
                                                           subword_tokenizer, mode):
    import torch

    from featgeom_tda.extraction.encoding import encode_batch

    model_b = make_tiny_model(subword_tokenizer, n_layers=1, d_model=16, n_heads=2, seed=7, name="b")
    sae_b = make_tiny_sae(d_in=16, d_sae=24, hook_name=TINY_HOOK_1L, seed=8)
    alignment = align_tokens(tiny_tokenizer, subword_tokenizer, TEXTS)
    assert (alignment.b_stop - alignment.b_start).max() >= 2  # units of several subword tokens exist
    a = ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    b = ActivationSource("b", model_b, TINY_HOOK_1L, sae_b)
    extract_aligned_activations([a], [b], alignment, tmp_path / "s", reduce=mode, batch_size=3, progress=False)
    got_a, got_b = load_activations(tmp_path / "s", "a"), load_activations(tmp_path / "s", "b")
    assert got_a.n_tokens == got_b.n_tokens == len(alignment)  # both tokenizers prepend BOS: every unit kept
    # by hand: per-token codes of each document (BOS first), reduced over each unit's tokens
    rows = []
    for d in range(len(TEXTS)):
        ids = [subword_tokenizer.bos_token_id, *alignment.tokens_b[d].tolist()]
        with torch.no_grad():
            _, cache = model_b.run_with_cache(torch.tensor([ids]), names_filter=TINY_HOOK_1L)
        codes = encode_batch(sae_b, cache[TINY_HOOK_1L]).toarray()
        for u in np.flatnonzero(alignment.doc == d):
            seg = codes[1 + alignment.b_start[u]: 1 + alignment.b_stop[u]]
            rows.append({"max": seg.max(axis=0), "last": seg[-1], "mean": seg.mean(axis=0)}[mode])
    assert np.allclose(got_b.matrix.toarray(), np.array(rows), atol=1e-5)
    assert np.array_equal(got_b.position, alignment.char_start) and np.array_equal(got_a.doc_index, alignment.doc)
    last_b = [alignment.tokens_b[d][alignment.b_stop[u] - 1] for u, d in enumerate(alignment.doc)]
    assert np.array_equal(got_b.token_ids, last_b)


def test_a_store_from_another_alignment_is_refused_and_kept(tmp_path, tiny_tokenizer, tiny_model_1l, tiny_sae_1l):
    from featgeom_tda.core.store import StoreError

    a = ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    b = ActivationSource("b", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    first = align_tokens(tiny_tokenizer, tiny_tokenizer, TEXTS)
    extract_aligned_activations([a], [b], first, tmp_path / "s", progress=False)
    before = load_activations(tmp_path / "s", "a").matrix.toarray()
    again = extract_aligned_activations([a], [b], first, tmp_path / "s", progress=False)  # reused
    assert again["a"].complete
    other = align_tokens(tiny_tokenizer, tiny_tokenizer, TEXTS[:2])
    with pytest.raises(StoreError, match="other inputs"):
        extract_aligned_activations([a], [b], other, tmp_path / "s", progress=False)
    assert np.array_equal(load_activations(tmp_path / "s", "a").matrix.toarray(), before)
    with pytest.raises(ValueError, match="reduce"):
        extract_aligned_activations([a], [b], first, tmp_path / "t", reduce="median", progress=False)


def test_unit_row_ids_name_the_same_units_in_both_stores(tmp_path, tiny_tokenizer, tiny_model_1l, tiny_sae_1l,
                                                          subword_tokenizer):
    from featgeom_tda.extraction.aligned import aligned_units, unit_vocabulary, units_dataset

    texts = ["the king  saw the queen", "a big red bird ran to the green tree in may"]
    model_b = make_tiny_model(subword_tokenizer, n_layers=1, d_model=16, n_heads=2, seed=7, name="b")
    sae_b = make_tiny_sae(d_in=16, d_sae=24, hook_name=TINY_HOOK_1L, seed=8)
    alignment = align_tokens(tiny_tokenizer, subword_tokenizer, texts)
    vocab, ids = unit_vocabulary(alignment)
    # one leading space where text precedes a unit without touching it; the first unit of a document has none
    strings = [vocab[i] for i in ids]
    assert strings[:4] == ["the", " king", " saw", " the"] and vocab == sorted(set(vocab))
    a = ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    b = ActivationSource("b", model_b, TINY_HOOK_1L, sae_b)
    extract_aligned_activations([a], [b], alignment, tmp_path / "u", row_ids="unit", batch_size=1, progress=False)
    got_a, got_b = load_activations(tmp_path / "u", "a"), load_activations(tmp_path / "u", "b")
    keep = aligned_units(alignment, bos_a=True, bos_b=True)
    for got in (got_a, got_b):
        assert np.array_equal(got.token_ids, ids[keep])
        assert np.array_equal(got.doc_index, alignment.doc[keep])
    # the units dataset lays the stores' rows out in order: row_mask picks them, tokens[doc, position] = unit id
    ds = units_dataset(alignment, keep)
    assert ds.row_mask().sum() == got_a.n_tokens
    assert np.array_equal(ds.tokens[got_a.doc_index, got_a.position], got_a.token_ids)
    assert np.array_equal(ds.tokens[ds.row_mask()], got_a.token_ids)
    with pytest.raises(ValueError, match="row_ids"):
        extract_aligned_activations([a], [b], alignment, tmp_path / "v", row_ids="tokens", progress=False)


@pytest.mark.parametrize("mode", ["last", "mean"])
def test_aligned_hook_activations_reduce_each_units_tokens_in_the_stores_rows(tmp_path, tiny_tokenizer, tiny_model_1l,
                                                                             tiny_sae_1l, subword_tokenizer, mode):
    import torch

    from featgeom_tda.extraction.aligned import aligned_hook_activations

    model_b = make_tiny_model(subword_tokenizer, n_layers=1, d_model=16, n_heads=2, seed=7, name="b")
    sae_b = make_tiny_sae(d_in=16, d_sae=24, hook_name=TINY_HOOK_1L, seed=8)
    alignment = align_tokens(tiny_tokenizer, subword_tokenizer, TEXTS)
    bos = (False, True)  # side A without BOS: its position-0 units are left out, as in the stores
    raw = aligned_hook_activations(tiny_model_1l, [TINY_HOOK_1L], model_b, [TINY_HOOK_1L], alignment, reduce=mode,
                                   batch_size=3, prepend_bos=bos, progress=False)
    extract_aligned_activations([ActivationSource("a", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)],
                                [ActivationSource("b", model_b, TINY_HOOK_1L, sae_b)], alignment, tmp_path / "s",
                                batch_size=3, progress=False, prepend_bos=bos)
    store_b = load_activations(tmp_path / "s", "b")
    xa, xb = raw["a"][TINY_HOOK_1L], raw["b"][TINY_HOOK_1L]
    assert xa.shape == (store_b.n_tokens, 16) and xb.shape == (store_b.n_tokens, 16) and xb.dtype == np.float32
    assert store_b.n_tokens < len(alignment)  # the units holding A's position 0 are gone on both sides
    kept = np.flatnonzero(alignment.a_start >= 1)
    assert np.array_equal(store_b.position, alignment.char_start[kept])
    for side, model, toks, prefix in (("a", tiny_model_1l, alignment.tokens_a, []),
                                      ("b", model_b, alignment.tokens_b, [subword_tokenizer.bos_token_id])):
        expected = []
        start, stop = (alignment.a_start, alignment.a_stop) if side == "a" else (alignment.b_start, alignment.b_stop)
        for u in kept:  # by hand: each document alone, unpadded, float64 reduction
            ids = [*prefix, *toks[alignment.doc[u]].tolist()]
            with torch.no_grad():
                _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=TINY_HOOK_1L)
            seg = cache[TINY_HOOK_1L][0].double().numpy()[len(prefix) + start[u]: len(prefix) + stop[u]]
            expected.append(seg[-1] if mode == "last" else seg.mean(axis=0))
        assert np.allclose(raw[side][TINY_HOOK_1L], np.array(expected), atol=1e-4)


def test_aligned_hook_activations_refuse_max_and_bad_hooks(tiny_tokenizer, tiny_model_1l):
    from featgeom_tda.extraction.aligned import aligned_hook_activations

    alignment = align_tokens(tiny_tokenizer, tiny_tokenizer, TEXTS)
    with pytest.raises(ValueError, match="reduce"):
        aligned_hook_activations(tiny_model_1l, [TINY_HOOK_1L], tiny_model_1l, [TINY_HOOK_1L], alignment, reduce="max")
    with pytest.raises(ValueError, match="both empty"):
        aligned_hook_activations(tiny_model_1l, [], tiny_model_1l, [], alignment)
    with pytest.raises(ValueError, match="hooks_b"):
        aligned_hook_activations(tiny_model_1l, [TINY_HOOK_1L], tiny_model_1l, [3], alignment)

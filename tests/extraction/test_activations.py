"""Tests for featgeom_tda.extraction.activations: tokenization, two-model extraction, resume, refusals."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import (
    TINY_HOOK_1L,
    TINY_HOOK_2L,
    TINY_WORDS,
    make_tiny_model,
    make_tiny_sae,
    make_word_tokenizer,
)

from featgeom_tda.extraction.activations import (
    ActivationSource,
    TokenizedDataset,
    encode_batch,
    extract_activations,
    load_activations,
    tokenize_documents,
    tokenizer_fingerprint,
)
from featgeom_tda.core.store import ActivationStore, StoreError

PAD, BOS, UNK = 0, 1, 3


class Killed(Exception):
    """Stands for the process dying in the middle of an extraction."""


@pytest.fixture(scope="module")
def dataset(tiny_tokenizer, tiny_texts):
    return tokenize_documents(tiny_tokenizer, tiny_texts, max_length=12, dataset_name="tiny")


@pytest.fixture(scope="module")
def sources(tiny_model_1l, tiny_sae_1l, tiny_model_2l, tiny_sae_2l):
    return [
        ActivationSource("one", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l),
        ActivationSource("two", tiny_model_2l, TINY_HOOK_2L, tiny_sae_2l),
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sources, dataset):
    """An uninterrupted extraction (BOS dropped, batch_size 3) to compare other runs against."""
    out = tmp_path_factory.mktemp("reference")
    stores = extract_activations(sources, dataset, out, batch_size=3, progress=False)
    return out, stores


def _expected_ids(vocab, text, max_length, bos=True):
    ids = ([BOS] if bos else []) + [vocab.get(w, UNK) for w in text.lower().split()]
    return ids[:max_length]


def _arrays(acts):
    m = acts.matrix
    return {
        "indptr": m.indptr,
        "indices": m.indices,
        "data": m.data,
        "token_ids": acts.token_ids,
        "doc_index": acts.doc_index,
        "position": acts.position,
    }


def _assert_same_store(path_a, path_b):
    a, b = ActivationStore.open(path_a), ActivationStore.open(path_b)
    assert a.complete and b.complete
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]
    assert [s.meta for s in a.shards] == [s.meta for s in b.shards]
    xa, xb = _arrays(a.read()), _arrays(b.read())
    for key in xa:
        np.testing.assert_array_equal(xa[key], xb[key], err_msg=key)


# ------------------------------------------------------------------------------------------------------
# tokenization
# ------------------------------------------------------------------------------------------------------
def test_tokenize_right_pads_prepends_bos_and_truncates(tiny_tokenizer, tiny_vocab, tiny_texts):
    data = tokenize_documents(tiny_tokenizer, tiny_texts, max_length=8)
    expected = [_expected_ids(tiny_vocab, t, 8) for t in tiny_texts]
    assert data.tokens.dtype == np.int64 and data.attention_mask.dtype == bool
    assert data.tokens.shape == (len(tiny_texts), max(len(e) for e in expected))
    assert data.bos and data.pad_token_id == PAD
    for i, ids in enumerate(expected):
        n = len(ids)
        assert data.tokens[i, :n].tolist() == ids
        assert data.attention_mask[i, :n].all() and not data.attention_mask[i, n:].any()
        assert (data.tokens[i, n:] == PAD).all()
    np.testing.assert_array_equal(data.lengths, [len(e) for e in expected])
    assert data.tokenizer_hash == tokenizer_fingerprint(tiny_tokenizer)


def test_tokenize_without_bos_and_an_empty_document(tiny_tokenizer, tiny_vocab):
    texts = ["the king", "", "a queen saw the dog"]
    data = tokenize_documents(tiny_tokenizer, texts, max_length=32, prepend_bos=False)
    assert not data.bos and data.seq_len == 5
    assert data.tokens[0, :2].tolist() == _expected_ids(tiny_vocab, "the king", 32, bos=False)
    assert not data.attention_mask[1].any()
    assert data.n_rows(keep_bos=False) == data.n_rows(keep_bos=True) == 7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"texts": "the king", "max_length": 4}, "texts must be a list"),
        ({"texts": [], "max_length": 4}, "at least one document"),
        ({"texts": ["the", 3], "max_length": 4}, r"texts\[1\]"),
        ({"texts": ["the"], "max_length": 0}, "max_length"),
        ({"texts": ["", ""], "max_length": 4, "prepend_bos": False}, "no tokens"),
    ],
)
def test_tokenize_rejects_bad_input(tiny_tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tokenize_documents(tiny_tokenizer, **kwargs)


def test_dataset_save_load_roundtrip_and_corruption(tmp_path, dataset):
    dataset.save(tmp_path / "ds")
    back = TokenizedDataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(back.tokens, dataset.tokens)
    np.testing.assert_array_equal(back.attention_mask, dataset.attention_mask)
    assert (back.bos, back.tokenizer_hash, back.dataset_name, back.pad_token_id, back.max_length) == (
        dataset.bos,
        dataset.tokenizer_hash,
        dataset.dataset_name,
        dataset.pad_token_id,
        dataset.max_length,
    )
    assert back.fingerprint == dataset.fingerprint
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    info["bos"] = not info["bos"]
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="corrupt"):
        TokenizedDataset.load(tmp_path / "ds")
    with pytest.raises(ValueError, match="is missing"):
        TokenizedDataset.load(tmp_path / "nowhere")


def test_dataset_validation():
    tokens = np.array([[1, 5, 6], [1, 7, 0]])
    with pytest.raises(ValueError, match="right-padded"):
        TokenizedDataset(tokens, np.array([[1, 1, 1], [1, 0, 1]], dtype=bool), True, "t", "h")
    with pytest.raises(ValueError, match="shape"):
        TokenizedDataset(tokens, np.ones((2, 2), dtype=bool), True, "t", "h")
    with pytest.raises(ValueError, match="integers"):
        TokenizedDataset(tokens.astype(float), np.ones((2, 3), dtype=bool), True, "t", "h")


def test_tokenizer_fingerprint(tiny_tokenizer, tiny_model_1l):
    assert tokenizer_fingerprint(tiny_model_1l.tokenizer) == tokenizer_fingerprint(tiny_tokenizer)
    assert tokenizer_fingerprint(make_word_tokenizer(TINY_WORDS)) == tokenizer_fingerprint(tiny_tokenizer)
    other = make_word_tokenizer(list(reversed(TINY_WORDS)))
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tiny_tokenizer)


# ------------------------------------------------------------------------------------------------------
# rows: padding, BOS, positions, alignment
# ------------------------------------------------------------------------------------------------------
def test_padding_never_becomes_a_row_and_bos_is_dropped(reference, dataset):
    out, stores = reference
    lengths = dataset.lengths
    for name in ("one", "two"):
        acts = load_activations(out, name)
        assert acts.n_tokens == int(lengths.sum()) - dataset.n_docs  # every document has one BOS
        assert not np.isin(acts.token_ids, [PAD, BOS]).any()
        assert (acts.position >= 1).all()
        meta = stores[name].meta
        assert meta["n_tokens"] == acts.n_tokens and meta["n_docs"] == dataset.n_docs
        assert meta["keep_bos"] is False


def test_positions_doc_index_and_token_ids_match_the_dataset(reference, dataset):
    acts = load_activations(reference[0], "one")
    expected = [(d, p, dataset.tokens[d, p]) for d in range(dataset.n_docs) for p in range(1, dataset.lengths[d])]
    got = list(zip(acts.doc_index.tolist(), acts.position.tolist(), acts.token_ids.tolist()))
    assert got == [(int(d), int(p), int(t)) for d, p, t in expected]


def test_keep_bos(tmp_path, sources, dataset):
    stores = extract_activations(sources[:1], dataset, tmp_path, batch_size=4, keep_bos=True, progress=False)
    acts = stores["one"].read()
    assert acts.n_tokens == int(dataset.lengths.sum())
    first = acts.position == 0
    assert first.sum() == dataset.n_docs
    assert (acts.token_ids[first] == BOS).all() and not (acts.token_ids[~first] == PAD).any()
    np.testing.assert_array_equal(acts.doc_index[first], np.arange(dataset.n_docs))
    assert stores["one"].meta["keep_bos"] is True


def test_rows_are_aligned_between_sources(reference):
    a, b = load_activations(reference[0], "one"), load_activations(reference[0], "two")
    assert a.n_tokens == b.n_tokens
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    np.testing.assert_array_equal(a.doc_index, b.doc_index)
    np.testing.assert_array_equal(a.position, b.position)
    assert (a.n_features, b.n_features) == (32, 48)
    assert a.provenance.hook_name == TINY_HOOK_1L and b.provenance.hook_name == TINY_HOOK_2L


# ------------------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------------------
def _direct_codes(model, hook, sae, ids):
    """SAE codes of one unpadded document from a full forward pass, shape (len(ids), d_sae)."""
    import torch

    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=hook)
        x = cache[hook][0]
        return x.double().numpy(), sae.encode(x).numpy()


@pytest.mark.parametrize("name", ["one", "two"])
def test_values_equal_a_direct_computation(reference, sources, dataset, name):
    src = {s.name: s for s in sources}[name]
    acts = load_activations(reference[0], name)
    dense = acts.to_numpy()
    for doc in (0, 2, 4, 8):
        n = int(dataset.lengths[doc])
        _, codes = _direct_codes(src.model, src.hook_name, src.sae, dataset.tokens[doc, :n].tolist())
        rows = acts.doc_index == doc
        np.testing.assert_allclose(dense[rows], codes[1:], rtol=1e-5, atol=1e-5)
        assert acts.matrix[np.flatnonzero(rows)].nnz == np.count_nonzero(codes[1:])


def test_standard_sae_values_equal_float64_numpy(reference, sources, dataset):
    src = sources[0]
    sae = src.sae
    w_enc, b_enc, b_dec = (p.detach().double().numpy() for p in (sae.W_enc, sae.b_enc, sae.b_dec))
    acts = load_activations(reference[0], "one")
    dense = acts.to_numpy()
    for doc in (1, 6):
        n = int(dataset.lengths[doc])
        x, _ = _direct_codes(src.model, src.hook_name, sae, dataset.tokens[doc, :n].tolist())
        expected = np.maximum((x - b_dec) @ w_enc + b_enc, 0.0)[1:]
        got = dense[acts.doc_index == doc]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_two_hooks_of_one_model_share_a_forward_pass(tmp_path, tiny_model_2l, tiny_sae_2l, dataset):
    sae0 = make_tiny_sae(d_in=24, d_sae=20, hook_name="blocks.0.hook_resid_post", seed=7)
    srcs = [
        ActivationSource("early", tiny_model_2l, "blocks.0.hook_resid_post", sae0),
        ActivationSource("late", tiny_model_2l, TINY_HOOK_2L, tiny_sae_2l),
    ]
    extract_activations(srcs, dataset, tmp_path, batch_size=4, progress=False)
    for src in srcs:
        acts = load_activations(tmp_path, src.name)
        n = int(dataset.lengths[2])
        _, codes = _direct_codes(tiny_model_2l, src.hook_name, src.sae, dataset.tokens[2, :n].tolist())
        np.testing.assert_allclose(acts.to_numpy()[acts.doc_index == 2], codes[1:], rtol=1e-5, atol=1e-5)


def test_encode_batch_chunks_and_mask(sources):
    import torch

    src = sources[0]
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(3, 5, 16, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    whole = encode_batch(src.sae, acts, token_mask=mask)
    chunked = encode_batch(src.sae, acts, token_mask=mask, chunk_rows=2)
    with torch.no_grad():
        direct = src.sae.encode(acts[mask]).numpy()
    assert whole.shape == (9, 32) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole.toarray(), direct)
    np.testing.assert_allclose(chunked.toarray(), direct, rtol=1e-6, atol=1e-6)  # other matmul shapes
    assert whole.nnz == np.count_nonzero(direct)
    with pytest.raises(ValueError, match="token_mask"):
        encode_batch(src.sae, acts, token_mask=mask[:, :4])


# ------------------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------------------
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, reference, sources, dataset):
    def kill_at(name, batch):
        def callback(n, b):
            if (n, b) == (name, batch):
                raise Killed

        return callback

    # killed after "one" wrote batch 1 but before "two" did: the stores stop at different batches
    with pytest.raises(Killed):
        extract_activations(sources, dataset, tmp_path, batch_size=3, progress=False, on_shard=kill_at("one", 1))
    assert ActivationStore.open(tmp_path / "one").n_shards == 2
    assert ActivationStore.open(tmp_path / "two").n_shards == 1
    assert not ActivationStore.open(tmp_path / "one").complete

    done = []
    stores = extract_activations(
        sources, dataset, tmp_path, batch_size=3, progress=False, on_shard=lambda n, b: done.append((n, b))
    )
    assert done == [("two", 1), ("one", 2), ("two", 2), ("one", 3), ("two", 3)]  # each resumes from its own point
    assert stores["one"].complete and stores["two"].complete
    for name in ("one", "two"):
        _assert_same_store(tmp_path / name, reference[0] / name)

    # a finished store is not recomputed
    done.clear()
    extract_activations(sources, dataset, tmp_path, batch_size=3, progress=False, on_shard=lambda n, b: done.append(b))
    assert done == []


def test_resume_after_max_batches_a_deleted_tail_and_stray_files(tmp_path, reference, sources, dataset):
    stores = extract_activations(sources, dataset, tmp_path, batch_size=3, progress=False, max_batches=3)
    assert all(s.n_shards == 3 and not s.complete for s in stores.values())
    with pytest.raises(StoreError, match="unfinished"):
        load_activations(tmp_path, "one")
    assert load_activations(tmp_path, "one", allow_partial=True).n_tokens == stores["one"].n_rows

    # the last shard of "one" vanished; a half-written shard of "two" was left behind
    (tmp_path / "one" / stores["one"].shards[-1].file).unlink()
    (tmp_path / "two" / "shard_00003.safetensors.tmp").write_bytes(b"half a shard")
    (tmp_path / "two" / "shard_00003.safetensors").write_bytes(b"renamed but never listed")
    extract_activations(sources, dataset, tmp_path, batch_size=3, progress=False)
    for name in ("one", "two"):
        _assert_same_store(tmp_path / name, reference[0] / name)


def test_resume_recomputes_a_corrupt_last_shard(tmp_path, reference, sources, dataset):
    stores = extract_activations(sources[:1], dataset, tmp_path, batch_size=3, progress=False, max_batches=2)
    last = tmp_path / "one" / stores["one"].shards[-1].file
    last.write_bytes(last.read_bytes()[:-7])
    extract_activations(sources[:1], dataset, tmp_path, batch_size=3, progress=False)
    _assert_same_store(tmp_path / "one", reference[0] / "one")


def test_a_damaged_manifest_is_refused_then_repaired_and_resumed_to_the_same_store(tmp_path, reference, sources, dataset):
    stores = extract_activations(sources[:1], dataset, tmp_path, batch_size=3, progress=False, max_batches=3)
    kept = {f.name: f.read_bytes() for f in (tmp_path / "one").glob("shard_*.safetensors")}
    manifest = tmp_path / "one" / "manifest.json"
    raw = manifest.read_bytes()
    manifest.write_bytes(raw[:10] + b"#" + raw[10:])  # one stray byte
    with pytest.raises(StoreError, match="featgeom store-repair"):
        extract_activations(sources[:1], dataset, tmp_path, batch_size=3, progress=False)
    assert {f.name: f.read_bytes() for f in (tmp_path / "one").glob("shard_*.safetensors")} == kept

    report = ActivationStore.rebuild_manifest(tmp_path / "one")
    assert report.n_shards == stores["one"].n_shards == 3 and report.skipped == []
    calls = []
    extract_activations(sources[:1], dataset, tmp_path, batch_size=3, progress=False, on_shard=lambda n, b: calls.append(b))
    assert calls[0] == 3  # the three intact shards were kept, not recomputed
    _assert_same_store(tmp_path / "one", reference[0] / "one")
    for name, data in kept.items():
        assert (tmp_path / "one" / name).read_bytes() == data


def test_other_keep_bos_is_refused_and_overwrite_equals_a_fresh_run(tmp_path, sources, dataset):
    extract_activations(sources[:1], dataset, tmp_path / "x", batch_size=3, progress=False)
    with pytest.raises(StoreError, match=r"other inputs; it differs in keep_bos .*false in the store, true asked for"):
        extract_activations(sources[:1], dataset, tmp_path / "x", batch_size=3, keep_bos=True, progress=False)
    extract_activations(sources[:1], dataset, tmp_path / "x", batch_size=3, keep_bos=True, progress=False,
                        overwrite=True)
    extract_activations(sources[:1], dataset, tmp_path / "y", batch_size=3, keep_bos=True, progress=False)
    _assert_same_store(tmp_path / "x" / "one", tmp_path / "y" / "one")


def test_another_batch_size_reuses_a_finished_store_and_refuses_to_resume_an_unfinished_one(
    tmp_path, sources, dataset
):
    extract_activations(sources[:1], dataset, tmp_path / "x", batch_size=3, progress=False)
    before = {f.name: f.read_bytes() for f in (tmp_path / "x" / "one").glob("*.safetensors")}
    calls = []
    stores = extract_activations(sources[:1], dataset, tmp_path / "x", batch_size=5, progress=False,
                                 on_shard=lambda n, b: calls.append(b))
    assert calls == [] and stores["one"].complete and stores["one"].meta["batch_size"] == 3
    assert {f.name: f.read_bytes() for f in (tmp_path / "x" / "one").glob("*.safetensors")} == before

    extract_activations(sources[:1], dataset, tmp_path / "u", batch_size=3, progress=False, max_batches=1)
    with pytest.raises(StoreError, match=r"unfinished extraction written with batch_size=3; resume it with that"):
        extract_activations(sources[:1], dataset, tmp_path / "u", batch_size=5, progress=False)
    assert ActivationStore.open(tmp_path / "u" / "one").n_shards == 1


def test_batches_without_rows_are_skipped(tmp_path, tiny_tokenizer, sources):
    data = tokenize_documents(tiny_tokenizer, ["", "the king saw", "", "", "a dog"], max_length=8)
    stores = extract_activations(sources, data, tmp_path, batch_size=1, progress=False, max_batches=3)
    assert stores["one"].n_shards == 1
    stores = extract_activations(sources, data, tmp_path, batch_size=1, progress=False)
    acts = stores["two"].read()
    assert acts.doc_index.tolist() == [1, 1, 1, 4, 4] and acts.position.tolist() == [1, 2, 3, 1, 2]
    assert [s.meta["batch"] for s in stores["one"].shards] == [1, 4]


# ------------------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------------------
def test_different_tokenizers_are_refused(tmp_path, tiny_sae_1l, sources, dataset, tiny_tokenizer):
    other_tok = make_word_tokenizer(list(reversed(TINY_WORDS)), name="other")
    other = make_tiny_model(other_tok, n_layers=1, d_model=16, n_heads=2, seed=1, name="other-1l")
    src = ActivationSource("other", other, TINY_HOOK_1L, tiny_sae_1l)
    with pytest.raises(ValueError, match="different tokenizers"):
        extract_activations([sources[0], src], dataset, tmp_path, progress=False)
    with pytest.raises(NotImplementedError, match="alignment"):
        extract_activations([sources[0], src], dataset, tmp_path, progress=False, alignment="by-characters")
    with pytest.raises(ValueError, match="tokenize the texts"):
        extract_activations([src], dataset, tmp_path, progress=False)
    assert not (tmp_path / "one").exists()


def test_wrong_hook_or_sae_width_is_refused(tiny_model_1l, tiny_sae_1l, tiny_sae_2l):
    with pytest.raises(ValueError, match="does not exist"):
        ActivationSource("x", tiny_model_1l, "blocks.3.hook_resid_post", tiny_sae_1l)
    with pytest.raises(ValueError, match="d_in=24"):
        ActivationSource("x", tiny_model_1l, TINY_HOOK_1L, tiny_sae_2l)
    with pytest.raises(ValueError, match="trained on hook"):
        ActivationSource("x", tiny_model_1l, "blocks.0.hook_resid_pre", tiny_sae_1l)
    with pytest.raises(ValueError, match="name must be"):
        ActivationSource("../escape", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)


def test_bad_extraction_arguments(tmp_path, sources, dataset, tiny_tokenizer):
    with pytest.raises(ValueError, match="at least one ActivationSource"):
        extract_activations([], dataset, tmp_path, progress=False)
    with pytest.raises(ValueError, match="names must differ.*'one' is given more than once"):
        extract_activations(sources + sources[:1], dataset, tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_activations(sources, dataset, tmp_path, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="TokenizedDataset"):
        extract_activations(sources, dataset.tokens, tmp_path, progress=False)
    long = tokenize_documents(tiny_tokenizer, [" ".join(TINY_WORDS)], max_length=64)
    with pytest.raises(ValueError, match="n_ctx=32"):
        extract_activations(sources, long, tmp_path, progress=False)
    with pytest.raises(ValueError, match="device"):
        extract_activations(sources, dataset, tmp_path, progress=False, device="meta")


def test_store_meta_fingerprints_the_weights(reference, sources):
    meta = reference[1]["one"].meta
    h = hashlib.sha256()
    assert len(meta["model_fingerprint"]) == len(meta["sae_fingerprint"]) == h.digest_size * 2
    assert meta["model_fingerprint"] != reference[1]["two"].meta["model_fingerprint"]
    assert meta["hook_name"] == TINY_HOOK_1L and meta["batch_size"] == 3 and meta["d_sae"] == 32


def test_documents_without_bos_and_an_all_padding_row(tmp_path, tiny_tokenizer, sources):
    data = tokenize_documents(tiny_tokenizer, ["the king saw", "", "a dog"], max_length=8, prepend_bos=False)
    stores = extract_activations(sources, data, tmp_path, batch_size=3, progress=False)
    for src in sources:
        acts = stores[src.name].read()
        assert acts.doc_index.tolist() == [0, 0, 0, 2, 2] and acts.position.tolist() == [0, 1, 2, 0, 1]
        _, codes = _direct_codes(src.model, src.hook_name, src.sae, data.tokens[0, :3].tolist())
        np.testing.assert_allclose(acts.to_numpy()[:3], codes, rtol=1e-5, atol=1e-5)

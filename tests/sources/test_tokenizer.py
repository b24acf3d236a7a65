"""Byte-level BPE tokenizer: exact round trips, concept words as single tokens, TransformerLens use."""

import numpy as np
import pytest

from featgeom_tda.sources.corpus import generate_corpus
from featgeom_tda.sources.tokenizer import (
    BOS,
    EOS,
    PAD,
    encode_corpus,
    load_tokenizer,
    missing_single_tokens,
    pack_documents,
    train_tokenizer,
    word_forms,
    word_token_ids,
)


@pytest.fixture(scope="module")
def texts():
    return generate_corpus(n_stories=150, seed=1)


@pytest.fixture(scope="module")
def tok(texts, tmp_path_factory):
    return train_tokenizer(texts, path=tmp_path_factory.mktemp("tok"))


def test_round_trip_is_exact(tok, texts):
    samples = texts[:20] + ["Zebras at the café cost 1,234.50 €!\n\tNew line  two spaces.", ""]
    for text in samples:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == text
        assert tok.decode(ids[1:]) == text


def test_special_tokens(tok):
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == (PAD, BOS, EOS)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok("", add_special_tokens=True)["input_ids"] == [1]
    assert tok("", add_special_tokens=False)["input_ids"] == []


def test_concept_words_are_single_tokens(tok):
    from featgeom_tda.sources.concepts import load_concept_groups

    words = [w for ws in load_concept_groups().values() for w in ws]
    assert missing_single_tokens(tok, words) == []
    king = word_token_ids(tok, "king")
    assert set(king) == {" king", "king", " King", "King"}
    assert len(set(king.values())) == 4
    assert set(word_token_ids(tok, "January")) == {" January", "January"}
    assert set(word_token_ids(tok, "5")) == {" 5", "5"}
    ids = tok(" king", add_special_tokens=False)["input_ids"]
    assert ids == [king[" king"]]
    # digits are split one by one
    assert tok.convert_ids_to_tokens(tok("12", add_special_tokens=False)["input_ids"]) == ["1", "2"]


def test_word_forms():
    assert word_forms("king") == [" king", "king", " King", "King"]
    assert word_forms("May") == [" May", "May"]


def test_save_load_gives_same_ids(tok, texts, tmp_path):
    from featgeom_tda.sources.tokenizer import save_tokenizer

    file = save_tokenizer(tok, tmp_path / "t")
    assert file.name == "tokenizer.json" and file.exists()
    again = load_tokenizer(tmp_path / "t")
    assert again(texts[:5])["input_ids"] == tok(texts[:5])["input_ids"]
    assert load_tokenizer(file).get_vocab() == tok.get_vocab()


def test_transformer_lens_uses_it(tok):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=1, d_model=16, n_ctx=32, d_head=8, n_heads=2, d_mlp=32,
                                  d_vocab=len(tok), act_fn="gelu")
    model = HookedTransformer(cfg, tokenizer=tok)
    text = "The queen saw 3 owls in March."
    toks = model.to_tokens(text)
    assert toks[0, 0].item() == tok.bos_token_id
    assert model.to_string(toks[0, 1:]) == text
    assert model.to_tokens(text, prepend_bos=False)[0].tolist() == toks[0, 1:].tolist()
    batch = model.to_tokens(["a king", "The king and the queen"])
    assert batch.shape[0] == 2 and batch[0, -1].item() == tok.pad_token_id


def test_pack_documents_closed_form():
    rows = pack_documents([[5, 6, 7], [8]], n_ctx=3, bos_id=1, eos_id=2)
    # stream 5 6 7 <eos> 8 <eos>, two tokens per row after <bos>
    assert rows.tolist() == [[1, 5, 6], [1, 7, 2], [1, 8, 2]]
    assert rows.dtype == np.int64
    # an incomplete last row is dropped
    assert pack_documents([[5, 6, 7, 9]], n_ctx=3, bos_id=1, eos_id=2).tolist() == [[1, 5, 6], [1, 7, 9]]


def test_encode_corpus_concatenates_documents(tok, texts):
    rows = encode_corpus(tok, texts[:10], n_ctx=16)
    assert rows.shape[1] == 16 and (rows[:, 0] == tok.bos_token_id).all()
    stream = rows[:, 1:].reshape(-1)
    expected = []
    for t in texts[:10]:
        expected += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert stream.tolist() == expected[: stream.size]


def test_bad_arguments(texts, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(texts[:20], vocab_size=10)
    with pytest.raises(ValueError, match="vocab_size=300 is too small"):
        train_tokenizer(texts[:20], vocab_size=300)
    with pytest.raises(ValueError, match="texts"):
        train_tokenizer("not a list")
    with pytest.raises(ValueError, match="texts"):
        train_tokenizer([])
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path / "nothing")
    with pytest.raises(ValueError, match="n_ctx"):
        pack_documents([[1, 2]], n_ctx=1, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="fewer than one row"):
        pack_documents([[1]], n_ctx=8, bos_id=1, eos_id=2)
    with pytest.raises(ValueError, match="word"):
        word_token_ids(None, "  ")

"""Real text as unpadded fixed-length windows: the token stream cut exactly, BOS by the tokenizer's own
convention, position 0 left out of the activation rows, and the option surviving head / save / load."""

import numpy as np
import pytest

from featgeom_tda.extraction.dataset import TokenizedDataset, tokenize_documents, window_documents
from featgeom_tda.sources.checkpoints import tokenizer_adds_bos

from conftest import TINY_WORDS, make_word_tokenizer

BOS, EOS = 1, 2
TEXTS = [
    "the king saw the queen and the prince",          # 8 words
    "a cat sat on the mat",                           # 6 (mat is <unk>)
    "",                                               # empty: no tokens, no separator
    "one two three four five",                        # 5
    "the mother and the father saw a happy dog on a sad day",  # 13
]


@pytest.fixture(scope="module")
def no_bos_tokenizer():
    """The tiny word-level vocabulary with SmolLM2's convention: a BOS id exists but texts do not start with it."""
    tokenizer = make_word_tokenizer(TINY_WORDS, name="tiny-nobos")
    tokenizer.add_bos_token = False
    return tokenizer


def _ids(tokenizer, texts):
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _stream(tokenizer, texts, sep=(EOS,)):
    """All documents' ids joined by ``sep`` (empty documents skipped): what packed windows are cut from."""
    out: list[int] = []
    for ids in _ids(tokenizer, texts):
        if ids:
            if out:
                out.extend(sep)
            out.extend(ids)
    return out


def test_the_tokenizer_convention_is_detected(tiny_tokenizer, no_bos_tokenizer):
    assert tokenizer_adds_bos(tiny_tokenizer) is True
    assert tokenizer_adds_bos(no_bos_tokenizer) is False


@pytest.mark.parametrize("length", [2, 5, 7])
def test_packed_windows_are_consecutive_slices_of_the_stream(no_bos_tokenizer, length):
    data = window_documents(no_bos_tokenizer, TEXTS, length=length)
    stream = _stream(no_bos_tokenizer, TEXTS)
    n = len(stream) // length
    assert data.tokens.shape == (n, length) and data.tokens.dtype == np.int64
    assert data.attention_mask.all()  # no padding anywhere
    np.testing.assert_array_equal(data.tokens.ravel(), stream[: n * length])  # the tail shorter than a window is dropped
    assert not data.bos and data.exclude_first and data.max_length == length


def test_windows_follow_the_bos_convention(tiny_tokenizer, no_bos_tokenizer):
    with_bos = window_documents(tiny_tokenizer, TEXTS, length=6)  # the tokenizer adds BOS: every window starts with it
    stream = _stream(tiny_tokenizer, TEXTS)
    assert with_bos.bos and (with_bos.tokens[:, 0] == BOS).all()
    np.testing.assert_array_equal(with_bos.tokens[:, 1:].ravel(), stream[: with_bos.n_docs * 5])
    assert len(stream) // 5 == with_bos.n_docs
    forced = window_documents(no_bos_tokenizer, TEXTS, length=6, prepend_bos=True)
    np.testing.assert_array_equal(forced.tokens, with_bos.tokens)
    plain = window_documents(tiny_tokenizer, TEXTS, length=6, prepend_bos=False)
    assert not plain.bos and BOS not in plain.tokens


def test_separator_none_joins_documents_directly(no_bos_tokenizer):
    data = window_documents(no_bos_tokenizer, TEXTS, length=4, separator=None)
    stream = _stream(no_bos_tokenizer, TEXTS, sep=())
    np.testing.assert_array_equal(data.tokens.ravel(), stream[: data.n_docs * 4])
    assert EOS not in data.tokens


def test_unpacked_windows_never_cross_a_document(no_bos_tokenizer):
    data = window_documents(no_bos_tokenizer, TEXTS, length=4, pack=False)
    expected = [ids[i:i + 4] for ids in _ids(no_bos_tokenizer, TEXTS) for i in range(0, len(ids) - 3, 4)]
    # 8 words -> 2 windows, 6 -> 1, 0 -> 0, 5 -> 1, 13 -> 3
    assert len(expected) == 7
    np.testing.assert_array_equal(data.tokens, expected)
    assert EOS not in data.tokens


def test_max_windows_stops_early(no_bos_tokenizer):
    full = window_documents(no_bos_tokenizer, TEXTS, length=3)
    for pack in (True, False):
        some = window_documents(no_bos_tokenizer, TEXTS, length=3, max_windows=2, pack=pack)
        assert some.n_docs == 2
    np.testing.assert_array_equal(window_documents(no_bos_tokenizer, TEXTS, length=3, max_windows=2).tokens,
                                  full.tokens[:2])
    # chunked tokenization gives the same windows as one pass
    np.testing.assert_array_equal(window_documents(no_bos_tokenizer, TEXTS, length=3, chunk_docs=1).tokens,
                                  full.tokens)


def test_exclude_first_masks_position_zero_and_bos(tiny_tokenizer, no_bos_tokenizer):
    data = window_documents(no_bos_tokenizer, TEXTS, length=5)
    mask = data.row_mask()
    assert not mask[:, 0].any() and mask[:, 1:].all()
    assert data.n_rows() == data.n_docs * 4
    rows = data.rows()
    assert (rows["position"] >= 1).all()
    np.testing.assert_array_equal(rows["token_ids"], data.tokens[:, 1:].ravel())
    np.testing.assert_array_equal(rows["doc_index"], np.repeat(np.arange(data.n_docs), 4))
    # keep_bos does not bring position 0 back while exclude_first holds
    assert data.n_rows(keep_bos=True) == data.n_docs * 4
    with_bos = window_documents(tiny_tokenizer, TEXTS, length=5)
    assert with_bos.n_rows(keep_bos=True) == with_bos.n_docs * 4
    # exclude_first=False: without BOS every position is a row; with BOS only keep_bos brings it back
    kept = window_documents(no_bos_tokenizer, TEXTS, length=5, exclude_first=False)
    assert kept.row_mask().all()
    bos_kept = window_documents(tiny_tokenizer, TEXTS, length=5, exclude_first=False)
    assert bos_kept.n_rows() == bos_kept.n_docs * 4 and bos_kept.n_rows(keep_bos=True) == bos_kept.n_docs * 5


def test_head_keeps_every_option(no_bos_tokenizer):
    data = window_documents(no_bos_tokenizer, TEXTS, length=3, dataset_name="tiny")
    head = data.head(2)
    assert head.n_docs == 2
    np.testing.assert_array_equal(head.tokens, data.tokens[:2])
    for attr in ("bos", "exclude_first", "tokenizer_name", "tokenizer_hash", "dataset_name", "pad_token_id",
                 "max_length"):
        assert getattr(head, attr) == getattr(data, attr), attr
    assert data.head(10_000).fingerprint == data.fingerprint
    with pytest.raises(ValueError, match="n_docs"):
        data.head(0)


def test_exclude_first_is_part_of_the_identity_and_survives_save_load(no_bos_tokenizer, tmp_path):
    on = window_documents(no_bos_tokenizer, TEXTS, length=4)
    off = window_documents(no_bos_tokenizer, TEXTS, length=4, exclude_first=False)
    assert on.fingerprint != off.fingerprint
    loaded = TokenizedDataset.load(on.save(tmp_path / "windows"))
    assert loaded.exclude_first and loaded.fingerprint == on.fingerprint
    np.testing.assert_array_equal(loaded.tokens, on.tokens)


def test_padded_documents_keep_their_fingerprint(tiny_tokenizer):
    """Datasets made before exclude_first existed hash as they did (exclude_first=False adds nothing)."""
    import json

    from featgeom_tda.core._cache import Hasher

    data = tokenize_documents(tiny_tokenizer, ["the king", "a cat sat"], max_length=8)
    assert data.exclude_first is False
    h = Hasher()
    h.update_bytes(json.dumps([list(data.tokens.shape), data.bos, data.tokenizer_hash]).encode())
    h.update_bytes(data.tokens.tobytes())
    h.update_bytes(np.packbits(data.attention_mask).tobytes())
    assert data.fingerprint == h.hexdigest()


def test_from_token_windows_checks_its_input(tiny_tokenizer):
    ok = TokenizedDataset.from_token_windows(np.array([[1, 4, 5], [1, 6, 7]]), tokenizer=tiny_tokenizer, bos=True)
    assert ok.exclude_first and ok.bos and ok.max_length == 3
    with pytest.raises(ValueError, match=r"window 1 does not start with the BOS id 1"):
        TokenizedDataset.from_token_windows(np.array([[1, 4], [4, 1]]), tokenizer=tiny_tokenizer, bos=True)
    with pytest.raises(ValueError, match="integer token ids"):
        TokenizedDataset.from_token_windows(np.ones((2, 3)), tokenizer=tiny_tokenizer, bos=False)
    with pytest.raises(ValueError, match="tokens"):
        TokenizedDataset.from_token_windows(np.arange(3), tokenizer=tiny_tokenizer, bos=False)
    with pytest.raises(ValueError, match="at least one window"):
        TokenizedDataset.from_token_windows(np.zeros((0, 3), dtype=np.int64), tokenizer=tiny_tokenizer, bos=False)
    with pytest.raises(ValueError, match="exclude_first must be True or False"):
        TokenizedDataset.from_token_windows(np.array([[4, 5]]), tokenizer=tiny_tokenizer, bos=False,
                                            exclude_first="yes")


@pytest.mark.parametrize("kwargs, message", [
    (dict(length=1), "length"),
    (dict(length=4, separator="newline"), "separator must be 'eos' or None"),
    (dict(length=4, pack="yes"), "pack must be True or False"),
    (dict(length=4, max_windows=0), "max_windows"),
    (dict(length=100), r"texts hold 3\d tokens in all, fewer than one window of length=100"),
    (dict(length=20, pack=False), r"no document of texts is as long as one window of length=20.*pack=True"),
])
def test_window_documents_refuses_bad_arguments(no_bos_tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        window_documents(no_bos_tokenizer, TEXTS, **kwargs)


def test_window_documents_refuses_texts_that_are_not_a_list_of_strings(no_bos_tokenizer):
    with pytest.raises(ValueError, match="texts must be a list of strings"):
        window_documents(no_bos_tokenizer, "the king", length=2)
    with pytest.raises(ValueError, match=r"texts\[1\] is int"):
        window_documents(no_bos_tokenizer, ["the king", 3], length=2)

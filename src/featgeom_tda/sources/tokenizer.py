"""A small byte-level BPE tokenizer trained on the corpus, usable by TransformerLens.

Text round-trips exactly (byte-level BPE, no lower-casing). Digits are split one by one (" 12" -> " 1",
"2"), and every concept word becomes a single token in the forms " king", "king", " King", "King", so
features and steering can address a concept word by one token id. Special tokens: ``<pad>`` (id 0),
``<bos>`` (id 1, prepended to every encoding) and ``<eos>`` (id 2, the document separator).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int

__all__ = [
    "PAD", "BOS", "EOS",
    "train_tokenizer", "load_tokenizer", "save_tokenizer", "word_forms", "word_token_ids",
    "missing_single_tokens", "pack_documents", "encode_corpus",
]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
_SPECIAL = (PAD, BOS, EOS)
_BOOST = 64  # extra occurrences of every required word form in the BPE training data
_NAME = "featgeom-embedded-bpe"


def word_forms(word: str) -> list[str]:
    """The single-token forms a required word gets: with/without a leading space, lower/capitalised."""
    variants = dict.fromkeys([word, word[:1].upper() + word[1:]])
    return [p + v for v in variants for p in (" ", "")]


def _check_texts(texts: Any, name: str = "texts") -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise ValueError(f"{name} must be a list of strings; got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} must not be empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"{name} must be a list of strings; item {i} is {type(t).__name__}")
    return texts


def _tokenizer_file(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / "tokenizer.json"


def _wrap(backend: Any, name_or_path: str) -> Any:
    from transformers import PreTrainedTokenizerFast

    # add_bos_token=True and name_or_path tell TransformerLens that this tokenizer already prepends
    # BOS, so it does not try to reload it from a hub.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        add_bos_token=True,
        name_or_path=name_or_path,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 4096,
    path: str | Path | None = None,
    required_words: Iterable[str] | None = None,
    min_frequency: int = 2,
) -> Any:
    """Train a byte-level BPE tokenizer on ``texts``; return a ``transformers.PreTrainedTokenizerFast``.

    Args:
        texts: training documents.
        vocab_size: upper bound on the vocabulary (the trainer stops earlier when every word is merged).
        path: if given, save ``tokenizer.json`` there (a directory, or a file path ending in ``.json``).
        required_words: words that must each be one token in all :func:`word_forms`; default: every word
            of the concept groups. Raises ``ValueError`` if ``vocab_size`` is too small for them.
        min_frequency: merges need at least this many occurrences.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = _check_texts(texts)
    vocab_size = check_positive_int(vocab_size, "vocab_size", minimum=300)
    min_frequency = check_positive_int(min_frequency, "min_frequency")
    if required_words is None:
        from featgeom_tda.sources.concepts import load_concept_groups

        required_words = [w for ws in load_concept_groups().values() for w in ws]
    required = _check_texts(list(required_words), "required_words") if required_words else []

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?\d"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    boost = [form * _BOOST for w in required for form in word_forms(w) if form.startswith(" ")]
    boost += [form for w in required for form in word_forms(w) if not form.startswith(" ")] * _BOOST
    backend.train_from_iterator(list(texts) + boost, trainer)
    bos_id, eos_id = backend.token_to_id(BOS), backend.token_to_id(EOS)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {EOS} $B:1", special_tokens=[(BOS, bos_id), (EOS, eos_id)]
    )
    tok = _wrap(backend, str(_tokenizer_file(path)) if path is not None else _NAME)
    missing = missing_single_tokens(tok, required)
    if missing:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: {len(missing)} required word forms are not single tokens "
            f"(first: {missing[:5]}); raise vocab_size"
        )
    if path is not None:
        save_tokenizer(tok, path)
    return tok


def save_tokenizer(tokenizer: Any, path: str | Path) -> Path:
    """Write ``tokenizer.json`` (a directory ``path``, or a file path ending in ``.json``); return the file."""
    file = _tokenizer_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.backend_tokenizer.save(str(file))
    return file


def load_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer saved by :func:`train_tokenizer` (directory or ``tokenizer.json`` path)."""
    from tokenizers import Tokenizer

    file = _tokenizer_file(path)
    if not file.exists():
        raise ValueError(f"path {str(path)!r} holds no tokenizer.json; expected a file written by train_tokenizer")
    backend = Tokenizer.from_file(str(file))
    for special in _SPECIAL:
        if backend.token_to_id(special) is None:
            raise ValueError(f"tokenizer at {str(file)!r} has no special token {special!r}")
    return _wrap(backend, str(file))


def _single_id(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


def missing_single_tokens(tokenizer: Any, words: Iterable[str]) -> list[str]:
    """Forms (see :func:`word_forms`) of ``words`` that are not a single token."""
    return [f for w in words for f in word_forms(w) if _single_id(tokenizer, f) is None]


def word_token_ids(tokenizer: Any, word: str) -> dict[str, int]:
    """Form -> token id for every form of ``word`` that is a single token (e.g. {" king": 412, "King": 980})."""
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"word must be a non-empty string; got {word!r}")
    out = {}
    for form in word_forms(word.strip()):
        tid = _single_id(tokenizer, form)
        if tid is not None:
            out[form] = tid
    return out


def pack_documents(
    token_lists: Sequence[Sequence[int]], *, n_ctx: int, bos_id: int, eos_id: int
) -> np.ndarray:
    """Pack documents into rows of length ``n_ctx``, each ``[bos] + n_ctx - 1`` tokens of the stream.

    The stream is every document followed by ``eos``; documents continue across rows, nothing is padded and
    the last incomplete row is dropped. Returns int64 of shape (n_rows, n_ctx).
    """
    n_ctx = check_positive_int(n_ctx, "n_ctx", minimum=2)
    if len(token_lists) == 0:
        raise ValueError("token_lists must not be empty")
    parts = []
    for ids in token_lists:
        parts.append(np.asarray(ids, dtype=np.int64))
        parts.append(np.array([eos_id], dtype=np.int64))
    stream = np.concatenate(parts)
    body = n_ctx - 1
    n_rows = stream.shape[0] // body
    if n_rows == 0:
        raise ValueError(f"the documents hold {stream.shape[0]} tokens, fewer than one row of n_ctx={n_ctx}")
    rows = stream[: n_rows * body].reshape(n_rows, body)
    return np.concatenate([np.full((n_rows, 1), bos_id, dtype=np.int64), rows], axis=1)


def encode_corpus(tokenizer: Any, texts: Iterable[str], *, n_ctx: int) -> np.ndarray:
    """Tokenize ``texts`` (no special tokens) and :func:`pack_documents` them: int64 (n_rows, n_ctx)."""
    texts = _check_texts(texts)
    from tokenizers import Tokenizer

    # a fresh copy: the wrapper leaves truncation / padding settings on its backend after a call
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    return pack_documents(ids, n_ctx=n_ctx, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id)

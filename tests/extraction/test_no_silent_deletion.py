"""extract_activations never deletes a finished store made from other inputs unless overwrite=True."""

from __future__ import annotations

import pytest
from conftest import TINY_HOOK_1L

from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.extraction.activations import ActivationSource, extract_activations, tokenize_documents


def _snapshot(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.name != ".lock"}


@pytest.fixture(scope="module")
def source(tiny_model_1l, tiny_sae_1l):
    return ActivationSource("one", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)


def test_other_texts_are_refused_and_the_store_untouched(tmp_path, source, tiny_tokenizer, tiny_texts):
    first = tokenize_documents(tiny_tokenizer, tiny_texts, max_length=12, dataset_name="tiny")
    other = tokenize_documents(tiny_tokenizer, list(reversed(tiny_texts))[:4], max_length=12, dataset_name="tiny")
    assert first.fingerprint != other.fingerprint
    extract_activations([source], first, tmp_path, batch_size=3, progress=False)
    before = _snapshot(tmp_path / "one")
    calls = []
    with pytest.raises(StoreError, match=r"finished extraction from other inputs.*dataset fingerprint") as info:
        extract_activations([source], other, tmp_path, batch_size=3, progress=False, on_shard=lambda n, b: calls.append(b))
    assert "overwrite=True" in str(info.value) and "'one'" in str(info.value)
    assert calls == [] and _snapshot(tmp_path / "one") == before
    kept = ActivationStore.open(tmp_path / "one")
    assert kept.complete and kept.meta["dataset_fingerprint"] == first.fingerprint and not kept.holds_lock

    # the same inputs still resume (a finished store is returned as is)
    again = extract_activations([source], first, tmp_path, batch_size=3, progress=False, on_shard=lambda n, b: calls.append(b))
    assert calls == [] and _snapshot(tmp_path / "one") == before and again["one"].complete

    # overwrite=True rebuilds it from the new inputs
    stores = extract_activations([source], other, tmp_path, batch_size=3, progress=False, overwrite=True)
    rebuilt = ActivationStore.open(tmp_path / "one")
    assert rebuilt.complete and rebuilt.meta["dataset_fingerprint"] == other.fingerprint
    assert rebuilt.n_rows == int(other.lengths.sum()) - other.n_docs  # BOS dropped
    assert stores["one"].n_rows == rebuilt.n_rows and not stores["one"].holds_lock
    rebuilt.verify()


def test_other_sae_weights_are_refused_before_any_store_is_touched(
    tmp_path, source, tiny_model_1l, tiny_sae_1l, tiny_tokenizer, tiny_texts
):
    import copy

    import torch

    data = tokenize_documents(tiny_tokenizer, tiny_texts, max_length=12, dataset_name="tiny")
    extract_activations([source], data, tmp_path, batch_size=3, progress=False)
    before = _snapshot(tmp_path / "one")
    sae = copy.deepcopy(tiny_sae_1l)
    with torch.no_grad():
        next(iter(sae.parameters())).add_(0.5)
    changed = ActivationSource("one", tiny_model_1l, TINY_HOOK_1L, sae)
    fresh = ActivationSource("fresh", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l)
    # "fresh" is listed first but no store is created or written before the refusal
    with pytest.raises(StoreError, match=r"SAE weights"):
        extract_activations([fresh, changed], data, tmp_path, batch_size=3, progress=False)
    assert _snapshot(tmp_path / "one") == before and not (tmp_path / "fresh").exists()

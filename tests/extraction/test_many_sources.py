"""Extraction of N sources over fewer models: one forward pass per model and batch, same stores as alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_HOOK_1L, TINY_HOOK_2L, make_tiny_sae

from featgeom_tda.core.store import ActivationStore
from featgeom_tda.extraction.activations import ActivationSource, extract_activations, tokenize_documents

BATCH = 3


class Killed(Exception):
    """Stands for the process dying in the middle of an extraction."""


@pytest.fixture(scope="module")
def dataset(tiny_tokenizer, tiny_texts):
    return tokenize_documents(tiny_tokenizer, tiny_texts, max_length=12, dataset_name="tiny")


@pytest.fixture(scope="module")
def three(tiny_model_1l, tiny_sae_1l, tiny_model_2l, tiny_sae_2l):
    """Three sources over two models; the 2-layer model has two hooks."""
    sae0 = make_tiny_sae(d_in=24, d_sae=20, hook_name="blocks.0.hook_resid_post", seed=7)
    return [
        ActivationSource("one", tiny_model_1l, TINY_HOOK_1L, tiny_sae_1l),
        ActivationSource("early", tiny_model_2l, "blocks.0.hook_resid_post", sae0),
        ActivationSource("late", tiny_model_2l, TINY_HOOK_2L, tiny_sae_2l),
    ]


@pytest.fixture(scope="module")
def alone(tmp_path_factory, three, dataset):
    """Each source extracted by itself, in its own directory."""
    out = {}
    for src in three:
        path = tmp_path_factory.mktemp(f"alone-{src.name}")
        extract_activations([src], dataset, path, batch_size=BATCH, progress=False)
        out[src.name] = path / src.name
    return out


class _ForwardCounter:
    """Counts forward passes of a HookedTransformer (calls of its token embedding; a hook removed on exit)."""

    def __init__(self, model):
        self.module, self.calls = model.embed, 0

    def __enter__(self):
        self._handle = self.module.register_forward_pre_hook(self._count)
        return self

    def _count(self, module, args):
        self.calls += 1

    def __exit__(self, *exc):
        self._handle.remove()


def _assert_same_store(path_a, path_b):
    a, b = ActivationStore.open(path_a), ActivationStore.open(path_b)
    assert a.complete and b.complete
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]  # bitwise identical shard files
    assert [s.meta for s in a.shards] == [s.meta for s in b.shards]
    assert a.meta == b.meta
    xa, xb = a.read(), b.read()
    for key in ("token_ids", "doc_index", "position"):
        np.testing.assert_array_equal(getattr(xa, key), getattr(xb, key), err_msg=key)
    for key in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(xa.matrix, key), getattr(xb.matrix, key), err_msg=key)


def test_three_sources_over_two_models_equal_each_source_alone(tmp_path, three, alone, dataset):
    stores = extract_activations(three, dataset, tmp_path, batch_size=BATCH, progress=False)
    assert list(stores) == ["one", "early", "late"]
    for src in three:
        _assert_same_store(tmp_path / src.name, alone[src.name])


def test_a_model_with_two_hooks_runs_once_per_batch(tmp_path, three, dataset, tiny_model_1l, tiny_model_2l):
    n_batches = -(-dataset.n_docs // BATCH)
    with _ForwardCounter(tiny_model_2l) as two, _ForwardCounter(tiny_model_1l) as one:
        extract_activations(three, dataset, tmp_path / "together", batch_size=BATCH, progress=False)
    assert two.calls == n_batches  # one forward pass a batch for both hooks
    assert one.calls == n_batches
    with _ForwardCounter(tiny_model_2l) as separate:
        for src in three[1:]:
            extract_activations([src], dataset, tmp_path / "apart", batch_size=BATCH, progress=False)
    assert separate.calls == 2 * n_batches  # one call per hook runs the model once per hook


def test_resume_after_a_kill_with_three_sources(tmp_path, three, alone, dataset):
    def kill(name, batch):
        if (name, batch) == ("early", 1):
            raise Killed

    with pytest.raises(Killed):
        extract_activations(three, dataset, tmp_path, batch_size=BATCH, progress=False, on_shard=kill)
    # "one" and "early" finished batch 1, "late" (same model as "early", after it) did not
    assert [ActivationStore.open(tmp_path / n).n_shards for n in ("one", "early", "late")] == [2, 2, 1]
    done = []
    stores = extract_activations(
        three, dataset, tmp_path, batch_size=BATCH, progress=False, on_shard=lambda n, b: done.append((n, b))
    )
    assert done[0] == ("late", 1)  # each store resumes from its own point
    assert sorted(set(b for n, b in done if n == "one")) == [2, 3]
    assert all(s.complete for s in stores.values())
    for src in three:
        _assert_same_store(tmp_path / src.name, alone[src.name])


def test_resume_after_max_batches_with_three_sources(tmp_path, three, alone, dataset):
    stores = extract_activations(three, dataset, tmp_path, batch_size=BATCH, progress=False, max_batches=2)
    assert not any(s.complete for s in stores.values())
    stores = extract_activations(three, dataset, tmp_path, batch_size=BATCH, progress=False)
    for src in three:
        _assert_same_store(tmp_path / src.name, alone[src.name])


def test_source_list_refusals(tmp_path, three, dataset):
    with pytest.raises(ValueError, match="at least one ActivationSource"):
        extract_activations([], dataset, tmp_path, progress=False)
    renamed = ActivationSource("early", three[0].model, three[0].hook_name, three[0].sae)
    with pytest.raises(ValueError, match="'early' is given more than once"):
        extract_activations([*three, renamed], dataset, tmp_path, progress=False)

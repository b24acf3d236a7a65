"""The recipe's SAE spec is honoured: the embedded default's SAE stands in only when it is the SAE asked for."""

import json
from types import SimpleNamespace

import pytest

from featgeom_tda.pipeline.recipe import SAESpec
from featgeom_tda.pipeline.sources import _matches_embedded_sae, describe_sae_spec
from featgeom_tda.sources.embedded import EmbeddedConfig


@pytest.fixture()
def embedded():
    return SimpleNamespace(config=EmbeddedConfig())  # topk, k 16, 4x d_model, L1 5.0


def test_the_embedded_sae_stands_in_for_the_same_spec(embedded):
    """Pins the private spec comparison on purpose: it decides whether a recipe's SAE is trained."""
    assert _matches_embedded_sae(SAESpec(architecture="topk", width_multiple=4, k=16), embedded)


@pytest.mark.parametrize("spec", [
    SAESpec(architecture="topk", width_multiple=4, k=4),
    SAESpec(architecture="topk", width_multiple=8, k=16),
    SAESpec(architecture="standard", width_multiple=4, l1_coefficient=5.0),
])
def test_another_spec_is_not_replaced_by_the_embedded_sae(embedded, spec):
    assert not _matches_embedded_sae(spec, embedded)


def test_spec_description_names_what_was_asked():
    assert describe_sae_spec(SAESpec(architecture="topk", width_multiple=4, k=4)) == "topk k=4, 4x d_model"
    assert describe_sae_spec(SAESpec(architecture="standard", width_multiple=2, l1_coefficient=3.0)) == "standard l1=3, 2x d_model"
    assert describe_sae_spec(SAESpec(kind="disk", path="x")) == "disk"


def test_ce_loss_is_kept_in_the_cache_and_keyed_by_model_sae_and_rows(tmp_path, tiny_model_2l, tiny_sae_2l,
                                                                      tiny_tokenizer, tiny_texts, monkeypatch):
    """The CE-loss evaluation of an SAE runs once per (model weights, SAE weights, rows): a rebuilt sources stage
    reads it back; another SAE, model or set of rows evaluates again."""
    import copy

    import torch

    import featgeom_tda.sources.saes as saes_mod
    from featgeom_tda.extraction.dataset import tokenize_documents
    from featgeom_tda.pipeline.sources import _ce_loss, model_digest
    from tests.conftest import TINY_HOOK_2L

    recipe = SimpleNamespace(cache_dir=str(tmp_path), batch_size=4)
    rows = tokenize_documents(tiny_tokenizer, [t for t in tiny_texts if t], max_length=16)
    digest = model_digest(tiny_model_2l)
    first = _ce_loss(recipe, tiny_model_2l, digest, tiny_sae_2l, TINY_HOOK_2L, rows)
    direct = saes_mod.sae_ce_loss(tiny_model_2l, tiny_sae_2l, rows.head(32).tokens, hook_name=TINY_HOOK_2L,
                                  mask=rows.head(32).row_mask(keep_bos=False), batch_size=4)
    assert json.dumps(first) == json.dumps(direct)  # NaN-safe equality (ce_recovered is NaN on random models)
    assert len(list((tmp_path / "ce_loss").glob("*.json"))) == 1

    calls = []
    real = saes_mod.sae_ce_loss
    monkeypatch.setattr(saes_mod, "sae_ce_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = _ce_loss(recipe, tiny_model_2l, digest, tiny_sae_2l, TINY_HOOK_2L, rows)
    assert json.dumps(again) == json.dumps(first) and not calls

    other_sae = copy.deepcopy(tiny_sae_2l)
    with torch.no_grad():
        other_sae.W_dec[0, 0] += 1.0
    _ce_loss(recipe, tiny_model_2l, digest, other_sae, TINY_HOOK_2L, rows)
    other_model = copy.deepcopy(tiny_model_2l)
    with torch.no_grad():
        next(other_model.parameters()).flatten()[0] += 1.0
    assert model_digest(other_model) != digest
    _ce_loss(recipe, other_model, model_digest(other_model), tiny_sae_2l, TINY_HOOK_2L, rows)
    _ce_loss(recipe, tiny_model_2l, digest, tiny_sae_2l, TINY_HOOK_2L, rows.head(2))
    assert len(calls) == 3 and len(list((tmp_path / "ce_loss").glob("*.json"))) == 4

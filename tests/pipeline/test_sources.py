"""The recipe's SAE spec is honoured: the embedded default's SAE stands in only when it is the SAE asked for."""

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

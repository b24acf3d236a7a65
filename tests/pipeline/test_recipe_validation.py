"""Broken recipes are refused at load, each with a message naming the field, its allowed range and the value."""

import time
from pathlib import Path

import pytest
import yaml

from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import RecipeError, load_recipe, recipe_from_dict

DATA_RECIPES = Path(__file__).resolve().parents[2] / "data_recipes"


def _embedded():
    return yaml.safe_load(packaged_recipe("embedded").read_text())


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    node[path[-1]] = value


# (path into the embedded recipe, value, the pattern the error must match)
BROKEN = [
    (("matching", "threshold"), 1.5, r"matching\.threshold must be in \[-1, 1\] or null, got 1\.5"),
    (("matching", "threshold"), -2, r"matching\.threshold must be in \[-1, 1\] or null, got -2"),
    (("matching", "threshold"), float("nan"), r"matching\.threshold must be in \[-1, 1\] or null, got nan"),
    (("matching", "threshold"), True, r"recipe\.matching\.threshold: expected a number, got True"),
    (("matching", "top_k"), 0, r"matching\.top_k must be >= 1, got 0"),
    (("matching", "top_k"), False, r"recipe\.matching\.top_k: expected an integer, got False"),
    (("geometry", "n_permutations"), 0, r"geometry\.n_permutations must be >= 1, got 0"),
    (("geometry", "n_subset_draws"), -3, r"geometry\.n_subset_draws must be >= 1, got -3"),
    (("geometry", "knn_k"), 0, r"geometry\.knn_k must be >= 1, got 0"),
    (("geometry", "min_concept_features"), 1, r"geometry\.min_concept_features must be >= 2, got 1"),
    (("geometry", "random_model_training_tokens"), 0,
     r"geometry\.random_model_training_tokens must be >= 1 or null, got 0"),
    (("geometry", "random_model_seeds"), [], r"geometry\.random_model_seeds must list distinct integers >= 0"),
    (("geometry", "random_model_seeds"), [1, 1], r"geometry\.random_model_seeds must list distinct integers >= 0"),
    (("geometry", "random_model_seeds"), [-1], r"geometry\.random_model_seeds must list distinct integers >= 0"),
    (("splitting", "width_multiples"), [8, 4], r"splitting\.width_multiples must be strictly ascending"),
    (("splitting", "min_cosine"), 2, r"splitting\.min_cosine must be"),
    (("steering", "steer"), "c", r"steering\.steer: must be one of 'a', 'b'"),
    (("topology", "n_cubes"), 0, r"topology\.n_cubes must be >= 1, got 0"),
    (("topology", "overlap"), 0, r"topology\.overlap must be in \(0, 1\), got 0\.0"),
    (("topology", "overlap"), 1.0, r"topology\.overlap must be in \(0, 1\), got 1\.0"),
    (("topology", "overlap"), True, r"recipe\.topology\.overlap: expected a number, got True"),
    (("topology", "maxdim"), 3, r"topology\.maxdim must be one of 0, 1, 2, got 3"),
    (("topology", "maxdim"), -1, r"topology\.maxdim must be one of 0, 1, 2, got -1"),
    (("topology", "n_landmarks"), 1, r"topology\.n_landmarks must be >= 2, got 1"),
    (("topology", "n_top_tokens"), 0, r"topology\.n_top_tokens must be >= 1, got 0"),
    (("interpretation", "n_pairs"), 0, r"interpretation\.n_pairs must be >= 1, got 0"),
    (("interpretation", "n_examples"), 0, r"interpretation\.n_examples must be >= 1, got 0"),
    (("interpretation", "window"), -1, r"interpretation\.window must be >= 0, got -1"),
    (("interpretation", "n_same_token_baseline"), 0, r"interpretation\.n_same_token_baseline must be >= 1, got 0"),
    (("batch_size",), 0, r"recipe\.batch_size must be >= 1, got 0"),
    (("batch_size",), True, r"recipe\.batch_size: expected an integer, got True"),
    (("dataset", "max_length"), 1, r"dataset\.max_length must be >= 2, got 1"),
    (("dataset", "n_documents"), 0, r"dataset\.n_documents must be >= 1, got 0"),
    (("models", 0, "dtype"), "float64", r"recipe\.models\[0\]\.dtype: must be one of 'float32', 'float16', 'bfloat16'; got 'float64'"),
    (("models", 1, "dtype"), "half", r"recipe\.models\[1\]\.dtype: must be one of .*; got 'half'"),
    (("models", 0, "layers", 0, "sae", "l1_coefficient"), -1.0, r"sae\.l1_coefficient must be >= 0, got -1\.0"),
]


@pytest.mark.parametrize("path, value, match", BROKEN, ids=lambda x: x if isinstance(x, str) else None)
def test_broken_recipe_is_refused_naming_the_field(path, value, match):
    data = _embedded()
    _set(data, path, value)
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(data)


def test_broken_value_in_a_file_is_refused_at_load(tmp_path):
    data = _embedded()
    data["topology"]["overlap"] = 1.5
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=r"r\.yaml\.topology: topology\.overlap must be in \(0, 1\), got 1\.5"):
        load_recipe(tmp_path / "r.yaml")


def test_edge_values_in_range_are_accepted():
    data = _embedded()
    data["matching"]["threshold"] = None
    data["matching"]["top_k"] = 1
    data["topology"].update(maxdim=0, overlap=0.99, n_landmarks=2, n_cubes=1, n_top_tokens=1)
    data["interpretation"].update(window=0, n_pairs=1, n_examples=1, n_same_token_baseline=1)
    data["geometry"].update(min_concept_features=2, knn_k=1, n_permutations=1, n_subset_draws=1)
    data["dataset"]["max_length"] = 2
    data["batch_size"] = 1
    for dtype in ("float32", "float16", "bfloat16"):
        data["models"][0]["dtype"] = dtype
        recipe = recipe_from_dict(data)
        assert recipe.models[0].dtype == dtype
    data["matching"]["threshold"] = -1
    assert recipe_from_dict(data).matching.threshold == -1.0


def test_duplicate_keys_are_refused_naming_key_and_line(tmp_path):
    text = packaged_recipe("embedded").read_text()
    (tmp_path / "top.yaml").write_text(text + "seed: 3\n")
    line = len(text.splitlines()) + 1
    with pytest.raises(RecipeError, match=rf"duplicate key 'seed' at line {line} \(first given at line 4\)"):
        load_recipe(tmp_path / "top.yaml")
    nested = text.replace("matching: {mode: one-to-one,", "matching: {mode: one-to-one, top_k: 2,")
    assert nested != text
    (tmp_path / "nested.yaml").write_text(nested)
    with pytest.raises(RecipeError, match=r"duplicate key 'top_k' at line \d+"):
        load_recipe(tmp_path / "nested.yaml")
    deep = text.replace(
        "sae: {kind: train, architecture: topk, width_multiple: 4, k: 16}",
        "sae: {kind: train, k: 8, architecture: topk, width_multiple: 4, k: 16}",
        1,
    )
    (tmp_path / "deep.yaml").write_text(deep)
    with pytest.raises(RecipeError, match=r"duplicate key 'k' at line 12"):
        load_recipe(tmp_path / "deep.yaml")


def test_alias_bomb_is_refused_fast(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(RecipeError, match=r"recipe uses YAML aliases \(&/\*\), which are not allowed"):
        load_recipe(tmp_path / "bomb.yaml")
    assert time.perf_counter() - start < 1.0


def test_anchors_and_aliases_are_refused_even_when_harmless(tmp_path):
    text = packaged_recipe("embedded").read_text()
    anchored = text.replace("sae: {kind: train, architecture: topk, width_multiple: 4, k: 16}", "sae: &s {kind: train}", 1)
    (tmp_path / "anchor.yaml").write_text(anchored)
    with pytest.raises(RecipeError, match=r"recipe uses YAML aliases \(&/\*\), which are not allowed \(line 12\)"):
        load_recipe(tmp_path / "anchor.yaml")
    (tmp_path / "alias.yaml").write_text("x: *missing\n")
    with pytest.raises(RecipeError, match=r"not allowed|not valid YAML"):
        load_recipe(tmp_path / "alias.yaml")


def test_disk_sae_path_must_exist(tmp_path):
    data = _embedded()
    missing = str(tmp_path / "no_such_sae")
    data["models"][1]["layers"][1]["sae"] = {"kind": "disk", "path": missing}
    with pytest.raises(RecipeError, match=rf"recipe\.models\[1\]\.layers\[1\]\.sae\.path: SAE directory '.*no_such_sae' does not exist"):
        recipe_from_dict(data)
    (tmp_path / "no_such_sae").mkdir()
    recipe = recipe_from_dict(data)
    assert recipe.models[1].layers[1].sae.path == missing


def test_packaged_recipe_still_loads():
    recipe = load_recipe(packaged_recipe("embedded"))
    assert recipe.name == "embedded" and len(recipe.models) == 2


@pytest.mark.parametrize("path", sorted(DATA_RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_still_loads(path):
    recipe = load_recipe(path)
    assert len(recipe.models) == 2 or len(recipe.models[0].layers) >= 2

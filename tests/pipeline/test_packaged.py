"""Packaged recipes and concept groups: found through importlib.resources, not through the repository."""

import os
from pathlib import Path

import pytest
import yaml

from featgeom_tda.pipeline.packaged import packaged_recipe, packaged_recipe_names, recipe_path
from featgeom_tda.sources.concepts import load_concept_groups

REPO = Path(__file__).resolve().parents[2]


def test_embedded_recipe_is_packaged():
    assert "embedded" in packaged_recipe_names()
    path = packaged_recipe("embedded")
    assert path.is_file() and path.name == "embedded.yaml"
    assert yaml.safe_load(path.read_text())["name"] == "embedded"


def test_unknown_packaged_recipe_lists_the_names():
    with pytest.raises(ValueError, match=r"no packaged recipe named 'nope'; packaged recipes: .*embedded"):
        packaged_recipe("nope")


def test_recipe_path_prefers_an_existing_file(tmp_path, monkeypatch):
    assert recipe_path("embedded") == packaged_recipe("embedded")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embedded").write_text("name: local\n")
    assert recipe_path("embedded") == Path("embedded")
    assert recipe_path("missing.yaml") == Path("missing.yaml")  # the recipe loader reports the missing file


def test_data_recipes_embedded_is_the_packaged_file():
    link = REPO / "data_recipes" / "embedded.yaml"
    assert link.is_symlink()
    assert os.path.samefile(link, packaged_recipe("embedded"))


def test_concept_groups_are_packaged():
    groups = load_concept_groups()
    assert {"royalty", "months", "pronouns"} <= set(groups)
    assert all(words and all(isinstance(w, str) for w in words) for words in groups.values())
    assert not (REPO / "data_recipes" / "concepts.yaml").exists()


def test_concept_groups_from_a_file_are_checked(tmp_path):
    good = tmp_path / "g.yaml"
    good.write_text("groups:\n  pets: [cat, dog]\n")
    assert load_concept_groups(good) == {"pets": ["cat", "dog"]}
    bad = tmp_path / "b.yaml"
    bad.write_text("groups: {}\nextra: 1\n")
    with pytest.raises(ValueError, match="exactly one top-level key 'groups'"):
        load_concept_groups(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_concept_groups(tmp_path / "missing.yaml")


def test_cli_validate_accepts_a_packaged_name(capsys):
    from featgeom_tda.cli import main

    assert main(["validate", "embedded"]) == 0
    assert "embedded: valid" in capsys.readouterr().out

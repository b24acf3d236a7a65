"""The recipe's ``device`` is checked when the recipe loads, and ``steering.alphas`` may not be empty."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.pipeline.recipe import RecipeError, check_device_available, load_recipe, recipe_from_dict

DATA_RECIPES = Path(__file__).resolve().parents[2] / "data_recipes"


def _embedded():
    return yaml.safe_load(packaged_recipe("embedded").read_text())


def _with(**fields):
    data = _embedded()
    data.update(fields)
    return data


@pytest.mark.parametrize("device", ["quantum", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", " cpu", "tpu"])
def test_unknown_device_is_refused_naming_the_value(device):
    with pytest.raises(RecipeError, match=r"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got " + re.escape(repr(device))):
        recipe_from_dict(_with(device=device))


def test_unknown_device_in_a_file_is_refused_at_load(tmp_path):
    data = _with(device="quantum")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=r"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'quantum'"):
        load_recipe(tmp_path / "r.yaml")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    match = rf"device: {device} but CUDA is not available here; use device: cpu"
    with pytest.raises(RecipeError, match=match):
        recipe_from_dict(_with(device=device), check_device=True)
    with pytest.raises(RecipeError, match=match):
        check_device_available(device)


def test_cuda_without_cuda_in_a_file_is_refused_at_load(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(_with(device="cuda")))
    with pytest.raises(RecipeError, match=r"device: cuda but CUDA is not available here; use device: cpu"):
        load_recipe(tmp_path / "r.yaml", check_device=True)


def test_shipped_cuda_recipe_still_loads_for_validation_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = DATA_RECIPES / "pythia_70m_vs_160m.yaml"
    assert load_recipe(path).device == "cuda"
    with pytest.raises(RecipeError, match=r"CUDA is not available here; use device: cpu"):
        load_recipe(path, check_device=True)


def test_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(RecipeError, match=r"device: cuda:2 but this machine has 2 CUDA device\(s\)"):
        recipe_from_dict(_with(device="cuda:2"), check_device=True)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_is_accepted_when_available(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert recipe_from_dict(_with(device=device), check_device=True).device == device


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_cpu_and_mps_are_accepted(device):
    assert recipe_from_dict(_with(device=device), check_device=True).device == device


def test_device_must_be_a_string():
    with pytest.raises(RecipeError, match=r"expected a string, got 0"):
        recipe_from_dict(_with(device=0))


@pytest.mark.parametrize("alphas", [[]])
def test_empty_steering_alphas_are_refused(alphas):
    data = _embedded()
    data.setdefault("steering", {})["alphas"] = alphas
    with pytest.raises(RecipeError, match=r"steering: 'alphas' must list at least one value"):
        recipe_from_dict(data)


def test_empty_steering_alphas_in_a_file_are_refused_at_load(tmp_path):
    data = _embedded()
    data.setdefault("steering", {})["alphas"] = []
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=r"steering: 'alphas' must list at least one value"):
        load_recipe(tmp_path / "r.yaml")


def test_running_a_cuda_recipe_here_is_refused_before_any_work(monkeypatch, tmp_path):
    """`featgeom run` checks the device when it loads the recipe; `validate` does not."""
    import torch

    from featgeom_tda import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = Path(__file__).resolve().parents[2] / "data_recipes" / "pythia_70m_vs_160m.yaml"
    assert cli.main(["run", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()

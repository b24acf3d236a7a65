"""Recipes shipped inside the package (``pipeline/data/*.yaml``), found by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["packaged_recipe", "packaged_recipe_names", "recipe_path"]


def _data_dir():
    return resources.files(__package__).joinpath("data")


def packaged_recipe_names() -> list[str]:
    """Sorted names (file stems) of the packaged recipes."""
    return sorted(p.name[: -len(".yaml")] for p in _data_dir().iterdir() if p.name.endswith(".yaml"))


def packaged_recipe(name: str) -> Path:
    """Path of the packaged recipe ``name`` (e.g. ``"embedded"``); ValueError for an unknown name."""
    names = packaged_recipe_names()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"no packaged recipe named {name!r}; packaged recipes: {', '.join(names)}")
    return Path(str(_data_dir().joinpath(f"{name}.yaml")))


def recipe_path(recipe: str | Path) -> Path:
    """``recipe`` as a path: an existing file, else the packaged recipe of that name, else the path as given."""
    path = Path(recipe)
    if path.exists() or not isinstance(recipe, str) or recipe not in packaged_recipe_names():
        return path
    return packaged_recipe(recipe)

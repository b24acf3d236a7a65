"""Concept groups (royalty, family, pronouns, months, ...) loaded from ``data_recipes/concepts.yaml``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_RECIPES", "load_concept_groups"]

DATA_RECIPES = Path(__file__).resolve().parents[3] / "data_recipes"


def load_concept_groups(path: str | Path | None = None) -> dict[str, list[str]]:
    """Concept name -> list of words, from a YAML file with a top-level ``groups`` mapping."""
    import yaml

    path = Path(path) if path is not None else DATA_RECIPES / "concepts.yaml"
    if not path.exists():
        raise ValueError(f"path {str(path)!r} does not exist; expected a concept-groups YAML file")
    data = yaml.safe_load(path.read_text()) or {}
    if set(data) != {"groups"}:
        raise ValueError(f"{path} must hold exactly one top-level key 'groups'; got {sorted(data)}")
    groups = data["groups"]
    if not isinstance(groups, dict) or not groups:
        raise ValueError(f"{path}: 'groups' must be a non-empty mapping of concept -> list of words")
    out: dict[str, list[str]] = {}
    for name, words in groups.items():
        if not isinstance(words, list) or not words:
            raise ValueError(f"{path}: group {name!r} must be a non-empty list of words")
        out[str(name)] = [str(w) for w in words]
    return out

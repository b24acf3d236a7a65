"""Concept groups (royalty, family, pronouns, months, ...) shipped as package data (``sources/data/concepts.yaml``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["load_concept_groups"]


def _read_groups(path: str | Path | None) -> tuple[str, str]:
    """(text, label) of the given YAML file, or of the packaged concept groups."""
    if path is None:
        return resources.files(__package__).joinpath("data", "concepts.yaml").read_text(encoding="utf-8"), "concepts.yaml"
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path {str(path)!r} does not exist; expected a concept-groups YAML file")
    return path.read_text(encoding="utf-8"), str(path)


def load_concept_groups(path: str | Path | None = None) -> dict[str, list[str]]:
    """Concept name -> list of words, from a YAML file with a top-level ``groups`` mapping.

    Without ``path`` the packaged groups are read.
    """
    import yaml

    text, label = _read_groups(path)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or set(data) != {"groups"}:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{label} must hold exactly one top-level key 'groups'; got {got}")
    groups = data["groups"]
    if not isinstance(groups, dict) or not groups:
        raise ValueError(f"{label}: 'groups' must be a non-empty mapping of concept -> list of words")
    out: dict[str, list[str]] = {}
    for name, words in groups.items():
        if not isinstance(words, list) or not words:
            raise ValueError(f"{label}: group {name!r} must be a non-empty list of words")
        out[str(name)] = [str(w) for w in words]
    return out

"""Which (model, hook) layers a recipe compares, and the pairs of them."""

from __future__ import annotations

from dataclasses import dataclass

from featgeom_tda.pipeline.recipe import Recipe

__all__ = ["Layer", "layers_of", "layer_pairs", "main_pair", "pair_key"]


@dataclass(frozen=True)
class Layer:
    """One (model, hook) with its SAE: a source of feature activations."""

    model: str
    hook: str

    @property
    def key(self) -> str:
        return f"{self.model}__{self.hook}"

    @property
    def label(self) -> str:
        return f"{self.model} {self.hook}"


def layers_of(recipe: Recipe, side: int) -> list[Layer]:
    """The layers of model A (``side=0``) or B (``side=1``), in recipe order."""
    spec = recipe.models[side]
    return [Layer(spec.name, layer.hook) for layer in spec.layers]


def layer_pairs(recipe: Recipe) -> list[tuple[Layer, Layer]]:
    """Every layer of A against every layer of B (the layer-by-layer grid)."""
    return [(a, b) for a in layers_of(recipe, 0) for b in layers_of(recipe, 1)]


def main_pair(recipe: Recipe) -> tuple[Layer, Layer]:
    """The pair studied in depth: the last listed layer of each model."""
    return layers_of(recipe, 0)[-1], layers_of(recipe, 1)[-1]


def pair_key(a: Layer, b: Layer) -> str:
    return f"{a.key}--{b.key}"

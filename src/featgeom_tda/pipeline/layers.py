"""Which (model, hook) layers a recipe compares, and the pairs of them.

A recipe of two models compares every layer of A with every layer of B. A recipe of one model compares its
layers with each other (universality across depth): each unordered pair once, earlier layer first.
"""

from __future__ import annotations

from dataclasses import dataclass

from featgeom_tda.pipeline.recipe import Recipe

__all__ = ["Layer", "layers_of", "all_layers", "layer_pairs", "main_pair", "pair_key", "single_model"]


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


def single_model(recipe: Recipe) -> bool:
    """Whether the recipe compares the layers of one model with each other."""
    return len(recipe.models) == 1


def layers_of(recipe: Recipe, side: int) -> list[Layer]:
    """The layers of model A (``side=0``) or B (``side=1``), in recipe order; one model is both sides."""
    spec = recipe.models[0 if single_model(recipe) else side]
    return [Layer(spec.name, layer.hook) for layer in spec.layers]


def all_layers(recipe: Recipe) -> list[Layer]:
    """Every distinct layer of the recipe, A's first (each gets one SAE and one activation store)."""
    return list(dict.fromkeys(layers_of(recipe, 0) + layers_of(recipe, 1)))


def layer_pairs(recipe: Recipe) -> list[tuple[Layer, Layer]]:
    """Every layer of A against every layer of B; for one model, every pair of its layers once."""
    if single_model(recipe):
        layers = layers_of(recipe, 0)
        return [(a, b) for i, a in enumerate(layers) for b in layers[i + 1:]]
    return [(a, b) for a in layers_of(recipe, 0) for b in layers_of(recipe, 1)]


def main_pair(recipe: Recipe) -> tuple[Layer, Layer]:
    """The pair studied in depth: the last listed layer of each model (of one model: its last two)."""
    if single_model(recipe):
        layers = layers_of(recipe, 0)
        return layers[-2], layers[-1]
    return layers_of(recipe, 0)[-1], layers_of(recipe, 1)[-1]


def pair_key(a: Layer, b: Layer) -> str:
    return f"{a.key}--{b.key}"

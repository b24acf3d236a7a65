"""Where a run's heavy steps execute: ``engine: local`` (this process, the default) or another registered engine.

An engine is three functions with the signatures of the local ones: ``match_features``, ``permutation_test`` and
``extract_activations`` (and optionally ``permutation_tests``, several metrics at once); it returns the same objects
with the same numbers, so recipe fingerprints ignore it.
Engines above the pipeline register themselves here (``featgeom_tda.distributed`` registers ``ray`` when it is
imported; the ``featgeom`` command imports it for a recipe that asks for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Engine", "local_engine", "register_engine", "engine_for", "ENGINE_NAMES"]

ENGINE_NAMES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    name: str
    match_features: Callable[..., Any]
    permutation_test: Callable[..., Any]
    extract_activations: Callable[..., Any]
    # several metrics' nulls on the same rows at once (``permutation_tests``); None: one permutation_test each
    permutation_tests: Callable[..., Any] | None = None

    def nulls(self, metrics: dict[str, dict[str, Any]], X: Any, Y: Any, *, n_permutations: int, seed: int) -> dict:
        """metric name -> PermutationResult of each of ``metrics`` (name -> options) on the rows of X and Y."""
        if self.permutation_tests is not None:
            return self.permutation_tests(metrics, X, Y, n_permutations=n_permutations, seed=seed)
        return {name: self.permutation_test(name, X, Y, n_permutations=n_permutations, seed=seed, **options)
                for name, options in metrics.items()}


def local_engine() -> Engine:
    from featgeom_tda.analyses.geometry import permutation_test, permutation_tests
    from featgeom_tda.analyses.matching import match_features
    from featgeom_tda.extraction.activations import extract_activations

    return Engine("local", match_features, permutation_test, extract_activations, permutation_tests)


_FACTORIES: dict[str, Callable[[Any], Engine]] = {}


def register_engine(name: str, factory: Callable[[Any], Engine]) -> None:
    """Make ``engine: <name>`` available; ``factory(recipe)`` builds the engine for one run."""
    if name not in ENGINE_NAMES or name == "local":
        raise ValueError(f"name must be one of {', '.join(n for n in ENGINE_NAMES if n != 'local')}; got {name!r}")
    _FACTORIES[name] = factory


def engine_for(recipe: Any) -> Engine:
    """The engine the recipe asks for; ValueError when it is not registered in this process."""
    name = getattr(recipe, "engine", "local")
    if name == "local":
        return local_engine()
    if name not in _FACTORIES:
        raise ValueError(
            f"engine: {name} is not loaded in this process; import featgeom_tda.distributed first (the featgeom "
            "command does it for you), with the ray extra installed (pip install 'featgeom_tda[ray]')"
        )
    return _FACTORIES[name](recipe)

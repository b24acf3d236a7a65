"""Ray execution of matching, permutation nulls and extraction (optional extra ``featgeom_tda[ray]``).

The single-machine functions stay the default; these are drop-in engines for a Ray cluster (a local one is
started when none is running and no ``address`` is given) that return the same objects with the same
numbers:

- :func:`ray_top_correlations` / :func:`ray_match_features`: correlation matching sharded by blocks of A's
  features, each task holding B whole; merged into the :class:`~featgeom_tda.analyses.matching.TopCorrelations`
  and :class:`~featgeom_tda.core.types.FeatureMatching` of the local path (identical indices and values).
- :func:`ray_permutation_test`: the random-pairing null sharded by blocks of permutations, each block
  continuing the run seed's one permutation stream, so the null equals the local one for any number of
  workers.
- :func:`ray_extract_activations`: document batches over Ray actors that hold the models and SAEs; the
  driver writes the shards in order into the same stores (bitwise equal to the local path), resumable per
  shard, with failed actor calls retried by Ray.

Ray is imported only when one of these runs; ``import featgeom_tda.distributed`` works without it.
"""

from __future__ import annotations

from featgeom_tda.distributed.extraction import ray_extract_activations
from featgeom_tda.distributed.matching import ray_match_features, ray_top_correlations
from featgeom_tda.distributed.nulls import ray_permutation_test

__all__ = ["ray_top_correlations", "ray_match_features", "ray_permutation_test", "ray_extract_activations"]


def _ray_engine(recipe):
    """``engine: ray`` of a recipe run: the three Ray functions joined to the recipe's ``ray_address``."""
    from functools import partial

    from featgeom_tda.pipeline.engines import Engine

    address = getattr(recipe, "ray_address", None)
    return Engine("ray", partial(ray_match_features, address=address), partial(ray_permutation_test, address=address),
                  partial(ray_extract_activations, address=address))


def _register() -> None:
    from featgeom_tda.pipeline.engines import register_engine

    register_engine("ray", _ray_engine)


_register()

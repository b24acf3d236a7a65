"""Fixtures of the steering tests, defined in :mod:`fixtures`."""

from analyses.steering.fixtures import tokenizer, model_a, model_b, sae_a, sae_b, prompts, task  # noqa: F401

"""The typed run context: what the stages of one run share, each piece loaded on first use.

A stage asks the context for what it needs (``ctx.sources``, ``ctx.activations()``, ``ctx.dataset()``,
``ctx.matchings()``); each is built or read from the earlier stages' outputs on disk the first time, so any
stage can run after its predecessors came from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.pipeline.layers import Layer, all_layers, layer_pairs, pair_key
from featgeom_tda.pipeline.recipe import Recipe
from featgeom_tda.pipeline.sources import Sources, build_sources
from featgeom_tda.results import StageResult

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """Recipe, output directory, and the lazily loaded sources, token rows, activations and matchings."""

    recipe: Recipe
    out_dir: Path
    stage_results: dict[str, StageResult] = field(default_factory=dict)  # of the stages run so far
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _sources: Sources | None = field(default=None, repr=False)
    _dataset: Any = field(default=None, repr=False)
    _activations: dict[str, Any] | None = field(default=None, repr=False)
    _matchings: dict[str, Any] | None = field(default=None, repr=False)
    _token_strings: list[str] | None = field(default=None, repr=False)
    _engine: Any = field(default=None, repr=False)
    _hook_activations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def engine(self) -> Any:
        """Where matching, permutation nulls and extraction run (:mod:`featgeom_tda.pipeline.engines`)."""
        if self._engine is None:
            from featgeom_tda.pipeline.engines import engine_for

            self._engine = engine_for(self.recipe)
        return self._engine

    def stage_dir(self, name: str) -> Path:
        d = Path(self.out_dir) / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def sources(self) -> Sources:
        if self._sources is None:
            self._sources = build_sources(self.recipe)
        return self._sources

    @property
    def stores_dir(self) -> Path:
        return Path(self.out_dir) / "extraction" / "stores"

    @property
    def tokens_dir(self) -> Path:
        return Path(self.out_dir) / "extraction" / "tokens"

    @property
    def alignment_dir(self) -> Path:
        return Path(self.out_dir) / "extraction" / "alignment"

    @property
    def units_vocabulary_path(self) -> Path:
        """Written by the extraction stage when the rows are aligned units (tokenizers differ)."""
        return Path(self.out_dir) / "extraction" / "units_vocabulary.json"

    def dataset(self) -> Any:
        """The TokenizedDataset both models read (saved by the extraction stage)."""
        if self._dataset is None:
            from featgeom_tda.extraction.activations import TokenizedDataset

            self._dataset = TokenizedDataset.load(self.tokens_dir)
        return self._dataset

    def activations(self) -> dict[str, Any]:
        """FeatureActivations per layer key, read from the extraction stores."""
        if self._activations is None:
            from featgeom_tda.extraction.activations import load_activations

            self._activations = {
                layer.key: load_activations(self.stores_dir, layer.key)
                for layer in all_layers(self.recipe)
            }
        return self._activations

    def matchings(self) -> dict[str, Any]:
        """FeatureMatching per pair key, read from the matching stage's directory."""
        if self._matchings is None:
            from featgeom_tda.core.types import FeatureMatching

            root = Path(self.out_dir) / "matching"
            self._matchings = {
                pair_key(a, b): FeatureMatching.load(root / pair_key(a, b)) for a, b in layer_pairs(self.recipe)
            }
        return self._matchings

    def set_matchings(self, matchings: dict[str, Any]) -> None:
        self._matchings = matchings

    def forget_activations(self) -> None:
        self._activations = None
        self._dataset = None
        self._hook_activations = {}

    def token_strings(self) -> list[str]:
        """Row token id -> string: the shared tokenizer's vocabulary, or the unit vocabulary of aligned rows."""
        if self._token_strings is None:
            if self.units_vocabulary_path.exists():
                import json

                self._token_strings = json.loads(self.units_vocabulary_path.read_text(encoding="utf-8"))
            else:
                self._token_strings = self.model_token_strings(self.recipe.models[0].name)
        return self._token_strings

    def rows_are_units(self) -> bool:
        """Whether the compared rows are aligned units (the two tokenizers differ)."""
        return self.units_vocabulary_path.exists()

    def model_token_strings(self, model: str) -> list[str]:
        """Token id -> vocabulary string of one model's own tokenizer (for its unembedding, its prompts)."""
        tok = self.sources.tokenizers.get(model, self.sources.tokenizer)
        vocab = tok.get_vocab()
        strings = [""] * (max(vocab.values()) + 1)
        for s, i in vocab.items():
            strings[i] = s
        return strings

    def hook_activations(self, layers: list[Layer]) -> dict[str, np.ndarray]:
        """Layer key -> float32 (n_rows, d_model) raw activations at the layer's hook on the compared rows.

        The rows are those of :meth:`activations` in the same order, so row i of both is the same token: the
        dataset's row mask (padding, BOS and a window's position 0 left out), or, when the rows are aligned
        units, each unit's activation at its last token in that model
        (:func:`~featgeom_tda.extraction.aligned.aligned_hook_activations`). Each model runs once for all its
        hooks, and a layer read once is kept for the rest of the run (crosscoder and splitting share it).
        """
        todo = [layer for layer in dict.fromkeys(layers) if layer.key not in self._hook_activations]
        if todo:
            raw = self._aligned_hook_activations(todo) if self.rows_are_units() else self._token_hook_activations(todo)
            acts = self.activations()
            for layer in todo:
                x = raw[layer.key]
                if x.shape[0] != acts[layer.key].n_tokens:
                    raise RuntimeError(f"{layer.key}: {x.shape[0]} hook rows but the extraction store has "
                                       f"{acts[layer.key].n_tokens}; the compared rows must be the same")
                self._hook_activations[layer.key] = x
        return {layer.key: self._hook_activations[layer.key] for layer in layers}

    def _token_hook_activations(self, layers: list[Layer]) -> dict[str, np.ndarray]:
        from featgeom_tda.sources.saes import collect_activations_at

        dataset, out = self.dataset(), {}
        by_model: dict[str, list[Layer]] = {}
        for layer in layers:
            by_model.setdefault(layer.model, []).append(layer)
        for model_name, group in by_model.items():
            raw = collect_activations_at(self.sources.models[model_name], dataset.tokens, [x.hook for x in group],
                                         batch_size=self.recipe.batch_size, mask=dataset.row_mask())
            out.update({x.key: raw[x.hook].numpy().astype(np.float32, copy=False) for x in group})
        return out

    def _aligned_hook_activations(self, layers: list[Layer]) -> dict[str, np.ndarray]:
        from featgeom_tda.extraction.aligned import aligned_hook_activations
        from featgeom_tda.extraction.alignment import TokenAlignment

        names = [m.name for m in self.recipe.models]
        sides = [[x for x in layers if x.model == name] for name in names]
        models = [self.sources.models[name] for name in names]
        bos = self.sources.prepend_bos(names)  # as the extraction ran
        hooks = [[x.hook for x in side] for side in sides]
        raw = aligned_hook_activations(models[0], hooks[0], models[1], hooks[1],
                                       TokenAlignment.load(self.alignment_dir), reduce="last",
                                       batch_size=self.recipe.batch_size, device=self.recipe.device, prepend_bos=bos)
        return {x.key: raw["ab"[i]][x.hook] for i, side in enumerate(sides) for x in side}

    def decoder_rows(self, layer: Layer) -> np.ndarray:
        """(n_features, d_model) decoder directions of the layer's SAE."""
        from featgeom_tda.sources.weights import decoder_weights

        return decoder_weights(self.sources.saes[layer.key]).weights

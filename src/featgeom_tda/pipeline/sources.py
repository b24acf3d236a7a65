"""The live objects a recipe compares: models, tokenizer, texts and one SAE per layer, built or loaded once.

SAEs the recipe asks to train are cached under ``cache_dir/saes`` keyed by a fingerprint of everything that
decides them (model, hook, SAE options, seed, texts, max length).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featgeom_tda.core._cache import fingerprint, text_digest
from featgeom_tda.pipeline.layers import Layer, layers_of
from featgeom_tda.pipeline.recipe import Recipe, SAESpec
from featgeom_tda.results import ModelInfo, SAEInfo

__all__ = ["Sources", "build_sources", "describe_sae_spec", "source_options", "uses_embedded"]

log = logging.getLogger(__name__)

_SAE_INFO_KEYS = ("fvu", "l0", "dead_fraction")


@dataclass
class Sources:
    """Models by name, the shared tokenizer, the compared texts and the SAE of each layer key."""

    models: dict[str, Any]
    tokenizer: Any
    texts: list[str]
    saes: dict[str, Any]
    sae_info: dict[str, SAEInfo]
    model_info: dict[str, dict[str, Any]]  # training outcome per model (embedded default) or its source
    embedded: Any = None


def uses_embedded(recipe: Recipe) -> bool:
    return any(m.source == "embedded" for m in recipe.models) or recipe.dataset.source == "embedded"


def source_options(recipe: Recipe) -> dict[str, Any]:
    """Options of the sources that the recipe does not spell out (the embedded default's), for fingerprints."""
    if not uses_embedded(recipe):
        return {}
    from featgeom_tda.sources.embedded import embedded_config

    config = embedded_config(seed=recipe.seed, small=recipe.embedded_size == "small")
    return {"embedded": dataclasses.asdict(config)}


def build_sources(recipe: Recipe) -> Sources:
    """Build (or load from the caches) every model, the tokenizer, the texts and each layer's SAE."""
    cache = Path(recipe.cache_dir)
    embedded = None
    if uses_embedded(recipe):
        from featgeom_tda.sources.embedded import build_embedded_default

        embedded = build_embedded_default(cache, seed=recipe.seed, small=recipe.embedded_size == "small")
    models, model_info, tokenizer = _models(recipe, embedded)
    texts = _dataset_texts(recipe, embedded)
    saes: dict[str, Any] = {}
    sae_info: dict[str, SAEInfo] = {}
    for side in (0, 1):
        spec = recipe.models[side]
        for layer, lspec in zip(layers_of(recipe, side), spec.layers):
            sae, report = _layer_sae(recipe, models[spec.name], layer, lspec.sae, embedded, tokenizer, texts)
            saes[layer.key] = sae
            sae_info[layer.key] = _sae_info(layer, report, describe_sae_spec(lspec.sae))
    return Sources(models, tokenizer, texts, saes, sae_info, model_info, embedded)


def model_summary(name: str, model: Any, extra: dict[str, Any]) -> ModelInfo:
    cfg = model.cfg
    return ModelInfo(
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        d_mlp=int(cfg.d_mlp) if cfg.d_mlp else None,
        n_params=int(sum(p.numel() for p in model.parameters())),
        **extra,
    )


def _models(recipe: Recipe, embedded: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]], Any]:
    models: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    tokenizer = embedded.tokenizer if embedded is not None else None
    for spec in recipe.models:
        if spec.source == "embedded":
            models[spec.name] = embedded.models[spec.name]
            rep = embedded.report.get("models", {}).get(spec.name, {})
            info[spec.name] = {
                "source": "embedded",
                "final_loss": rep.get("eval_loss"),  # next-token loss on held-out rows
                "unigram_entropy": rep.get("unigram_entropy"),
                "train_steps": rep.get("steps"),
            }
        else:
            from featgeom_tda.sources.models import load_hub_model

            models[spec.name] = load_hub_model(spec.name, device=recipe.device, dtype=spec.dtype)
            tokenizer = tokenizer or models[spec.name].tokenizer
            info[spec.name] = {"source": "hub"}
    return models, info, tokenizer


def _sae_info(layer: Layer, report: dict[str, Any], spec: str) -> SAEInfo:
    rest = {k: v for k, v in report.items() if k not in ("kind", "width", *_SAE_INFO_KEYS)}
    return SAEInfo(
        model=layer.model, hook=layer.hook, kind=report["kind"], width=int(report["width"]),
        **{k: report.get(k) for k in _SAE_INFO_KEYS}, spec=spec, training=rest,
    )


def _dataset_texts(recipe: Recipe, embedded: Any) -> list[str]:
    ds = recipe.dataset
    if ds.source == "embedded":
        # the comparison reads the stories at the end of the corpus; the same texts for both models
        return list(embedded.texts)[-ds.n_documents :]
    from datasets import load_dataset  # network: Hugging Face hub

    texts = []
    for row in load_dataset(ds.name, split=ds.split, streaming=True):
        if ds.text_field not in row:
            raise ValueError(f"dataset {ds.name!r} has no field {ds.text_field!r}; fields are {sorted(row)}")
        texts.append(row[ds.text_field])
        if len(texts) >= ds.n_documents:
            break
    return texts


def _layer_sae(recipe: Recipe, model: Any, layer: Layer, sspec: SAESpec, embedded: Any, tokenizer: Any,
               texts: list[str]) -> tuple[Any, dict[str, Any]]:
    """The SAE for one layer: the embedded one, a cached trained one, a pretrained one or one from disk."""
    from featgeom_tda.sources import saes as sae_mod

    if sspec.kind == "pretrained":
        sae = sae_mod.load_pretrained_sae(sspec.release, sspec.sae_id, device=recipe.device)
        return sae, {"kind": "pretrained", "release": sspec.release, "sae_id": sspec.sae_id, "width": int(sae.cfg.d_sae)}
    if sspec.kind == "disk":
        sae = sae_mod.load_sae(sspec.path)
        return sae, {"kind": "disk", "path": sspec.path, "width": int(sae.cfg.d_sae)}
    if embedded is not None and layer.model in embedded.saes and embedded.hooks.get(layer.model) == layer.hook:
        if _matches_embedded_sae(sspec, embedded):
            report = dict(embedded.report.get("saes", {}).get(layer.model, {}))
            sae = embedded.saes[layer.model]
            return sae, {"kind": "train (embedded default)", "width": int(sae.cfg.d_sae), **report}
        log.warning("%s: the recipe's SAE (%s) differs from the embedded default's; training it", layer.label,
                    describe_sae_spec(sspec))
    return _train_or_load_sae(recipe, model, layer, sspec, tokenizer, texts)


def describe_sae_spec(sspec: SAESpec) -> str:
    """A short description of an SAE spec, e.g. ``topk k=16, 4x d_model``."""
    if sspec.kind != "train":
        return sspec.kind
    shape = f"k={sspec.k}" if sspec.architecture == "topk" else f"l1={sspec.l1_coefficient:g}"
    return f"{sspec.architecture} {shape}, {sspec.width_multiple}x d_model"


def _matches_embedded_sae(sspec: SAESpec, embedded: Any) -> bool:
    """Whether the embedded default's SAE is the one the spec asks for (architecture, width, k or L1)."""
    cfg = embedded.config
    if sspec.architecture != cfg.sae_architecture or sspec.width_multiple != cfg.sae_multiple:
        return False
    if sspec.architecture == "topk":
        return sspec.k == cfg.sae_k
    return sspec.l1_coefficient == cfg.sae_l1_coefficient


def _train_or_load_sae(recipe: Recipe, model: Any, layer: Layer, sspec: SAESpec, tokenizer: Any,
                       texts: list[str]) -> tuple[Any, dict[str, Any]]:
    """Train an SAE at ``layer.hook`` on the recipe's texts, or load it from the cache if trained before."""
    from featgeom_tda.extraction.activations import tokenize_documents
    from featgeom_tda.sources import saes as sae_mod

    key = {"model": layer.model, "hook": layer.hook, "sae": vars(sspec), "seed": recipe.seed,
           "texts": text_digest(texts), "max_length": recipe.dataset.max_length}
    digest = fingerprint(key, length=12, compact=False)  # the key recipe of caches written before
    directory = Path(recipe.cache_dir) / "saes" / f"{layer.model}__{layer.hook}__{digest}"
    report_path = directory / "featgeom_report.json"
    if report_path.exists():
        return sae_mod.load_sae(directory, device=recipe.device), json.loads(report_path.read_text())
    dataset = tokenize_documents(tokenizer, texts, max_length=recipe.dataset.max_length)
    acts = sae_mod.collect_hook_activations(
        model, dataset.tokens, layer.hook, mask=dataset.row_mask(keep_bos=False), batch_size=recipe.batch_size
    )
    sae = sae_mod.train_sae(
        acts, width=int(acts.shape[1]) * sspec.width_multiple, architecture=sspec.architecture, k=sspec.k,
        l1_coefficient=sspec.l1_coefficient, hook_name=layer.hook, model_name=layer.model, model=model,
        training_tokens=sspec.training_tokens, seed=recipe.seed, device=recipe.device,
    )
    report = {"kind": "train", "architecture": sspec.architecture, "width": int(sae.cfg.d_sae),
              **sae_mod.sae_metrics(sae, acts)}
    sae_mod.save_sae(sae, directory)
    report_path.write_text(json.dumps(report))
    return sae, report

"""The live objects a recipe compares: models, tokenizer, texts and one SAE per layer, built or loaded once.

SAEs the recipe asks to train are cached under ``cache_dir/saes`` keyed by a fingerprint of everything that
decides them (model, hook, SAE options, seed, texts, max length, and for text files the training windows).
Checkpoints on disk (GGUF, HF folders) are dequantised once into ``cache_dir/checkpoints``.

Token rows: the embedded corpus and Hugging Face datasets are padded documents (SAEs train on the compared
texts, as the embedded default always has). Text files become unpadded fixed-length windows whose position 0
is never a row; SAEs train on the first windows and the models are compared on the windows after them.

Two models with different tokenizers: each model's SAEs train on its own windows, exactly as in a recipe of
that model alone (so they are shared through the cache). The comparison reads ``compare_texts``: the documents
after both models' training windows, cut into chunks that fit one window of either model; the extraction stage
aligns them into character units (:func:`~featgeom_tda.extraction.alignment.align_tokens`).
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

__all__ = ["Sources", "build_sources", "describe_sae_spec", "source_options", "uses_embedded", "recipe_tokens",
           "RecipeTokens", "aligned_compare_texts", "sae_at_widths"]

log = logging.getLogger(__name__)

_SAE_INFO_KEYS = ("fvu", "l0", "dead_fraction")
_CE_KEYS = ("ce_clean", "ce_spliced", "ce_zero_ablation", "ce_loss_increase", "ce_recovered")
N_CE_ROWS = 32  # compared rows (windows or documents) the CE-loss evaluation of each SAE reads


@dataclass
class RecipeTokens:
    """The token rows of a run: ``train`` for SAE training, ``compare`` for extraction and everything after."""

    train: Any  # TokenizedDataset
    compare: Any  # TokenizedDataset


@dataclass
class Sources:
    """Models by name, their tokenizers, the texts, token rows and the SAE of each layer key.

    ``tokenizer`` and ``tokens`` are model A's; ``model_tokens`` holds every model's own. ``compare_texts`` is
    set when the tokenizers differ: the texts the comparison aligns (see the module docstring)."""

    models: dict[str, Any]
    tokenizer: Any
    texts: list[str]
    tokens: RecipeTokens
    saes: dict[str, Any]
    sae_info: dict[str, SAEInfo]
    model_info: dict[str, dict[str, Any]]  # training outcome per model (embedded default) or its source
    embedded: Any = None
    tokenizers: dict[str, Any] = dataclasses.field(default_factory=dict)
    model_tokens: dict[str, RecipeTokens] = dataclasses.field(default_factory=dict)
    compare_texts: list[str] | None = None

    @property
    def aligned(self) -> bool:
        """Whether the models' tokenizers differ, so that the comparison runs on aligned units."""
        return self.compare_texts is not None

    def prepend_bos(self, names: list[str]) -> tuple[bool, ...]:
        """Whether each named model's windows start with BOS, as its checkpoint's own tokenizer has it (SmolLM2
        without, Gemma with): the convention its SAEs trained under and every aligned forward pass uses."""
        from featgeom_tda.extraction.dataset import tokenizer_adds_bos

        return tuple(tokenizer_adds_bos(self.tokenizers[name]) for name in names)


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
    models, model_info, tokenizers = _models(recipe, embedded)
    _check_layer_hooks(recipe, models)  # before any SAE is trained
    texts = _dataset_texts(recipe, embedded)
    names = [spec.name for spec in recipe.models]
    model_tokens = {}
    for name in names:  # one tokenization per distinct tokenizer
        same = next((n for n in model_tokens if tokenizers[n] is tokenizers[name]), None)
        model_tokens[name] = model_tokens[same] if same else recipe_tokens(recipe, tokenizers[name], texts)
    compare_texts = None
    if len(names) == 2 and _tokenizers_differ(tokenizers[names[0]], tokenizers[names[1]]):
        compare_texts = aligned_compare_texts(recipe, [tokenizers[n] for n in names], texts)
        log.info("the tokenizers differ: comparing on aligned units of %d text chunks", len(compare_texts))
    saes: dict[str, Any] = {}
    sae_info: dict[str, SAEInfo] = {}
    for side, spec in enumerate(recipe.models):
        layers = layers_of(recipe, side)
        own = model_tokens[spec.name]
        digest = model_digest(models[spec.name])
        trained = _train_or_load_saes(recipe, models[spec.name], layers, [x.sae for x in spec.layers], embedded,
                                      texts, own)
        for layer, lspec, (sae, report) in zip(layers, spec.layers, trained):
            report = {**report, **_ce_loss(recipe, models[spec.name], digest, sae, layer.hook, own.compare)}
            saes[layer.key] = sae
            sae_info[layer.key] = _sae_info(layer, report, describe_sae_spec(lspec.sae))
    return Sources(models, tokenizers[names[0]], texts, model_tokens[names[0]], saes, sae_info, model_info, embedded,
                   tokenizers=tokenizers, model_tokens=model_tokens, compare_texts=compare_texts)


def _tokenizers_differ(a: Any, b: Any) -> bool:
    from featgeom_tda.extraction.dataset import tokenizer_fingerprint

    return a is not b and tokenizer_fingerprint(a) != tokenizer_fingerprint(b)


def _texts_in_training_windows(recipe: Recipe, tokenizer: Any, texts: list[str]) -> int:
    """How many of ``texts`` (from the first) the SAE-training windows of ``tokenizer`` read, in part or whole."""
    from featgeom_tda.extraction.dataset import tokenizer_adds_bos

    ds = recipe.dataset
    if ds.source != "text":
        return 0  # padded documents: SAEs train on the compared texts themselves
    content = ds.max_length - (1 if tokenizer_adds_bos(tokenizer) else 0)
    per_window = ds.max_length - 1
    needed = -(-max([1, *_training_tokens(recipe)]) // per_window) * content
    sep = 1 if getattr(tokenizer, "eos_token_id", None) is not None else 0
    total = 0
    for start in range(0, len(texts), 256):
        for i, ids in enumerate(tokenizer(texts[start:start + 256], add_special_tokens=False)["input_ids"]):
            if ids:
                total += len(ids) + sep
            if total >= needed:
                return start + i + 1
    return len(texts)


def aligned_compare_texts(recipe: Recipe, tokenizers: list[Any], texts: list[str]) -> list[str]:
    """The texts two models with different tokenizers are compared on: chunks of the documents after every
    model's SAE-training windows, each of at most ``alignment.chunk_chars`` characters cut at whitespace and
    short enough for one window (``dataset.max_length`` tokens, BOS included) of every tokenizer, until model
    A's tokens reach ``token_budget``."""
    spec, limit = recipe.alignment, recipe.dataset.max_length
    start = max(_texts_in_training_windows(recipe, tok, texts) for tok in tokenizers)
    if start >= len(texts):
        raise ValueError(
            f"no text is left after the SAE-training windows ({len(texts)} documents, all read for training); add "
            "text (dataset.n_documents, files) or lower training_tokens"
        )
    room = [limit - 1] * len(tokenizers)  # a BOS may be prepended on either side
    chunks: list[str] = []
    n_tokens = 0
    for text in texts[start:]:
        for piece in _chunks(text, spec.chunk_chars):
            for fitted in _fit(piece, tokenizers, room):
                chunks.append(fitted)
                n_tokens += len(tokenizers[0](fitted, add_special_tokens=False)["input_ids"])
            if n_tokens >= recipe.token_budget:
                return chunks
    if n_tokens < recipe.token_budget:
        log.warning("the aligned comparison reads %d tokens of model A (token_budget asks for %d)", n_tokens,
                    recipe.token_budget)
    return chunks


def _chunks(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, each cut at the last whitespace before it
    (mid-word only where a word is longer than ``size``); whitespace at the cuts is dropped."""
    out, text = [], text.strip()
    while len(text) > size:
        cut = max(text.rfind(" ", 0, size + 1), text.rfind("\n", 0, size + 1))
        cut = cut if cut > 0 else size
        out.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        out.append(text)
    return [t for t in out if t]


def _fit(piece: str, tokenizers: list[Any], room: list[int]) -> list[str]:
    """``piece``, halved at whitespace until every tokenizer reads each part in at most its ``room`` tokens."""
    if all(len(tok(piece, add_special_tokens=False)["input_ids"]) <= r for tok, r in zip(tokenizers, room)):
        return [piece]
    if len(piece) < 2:
        return []  # one character that does not fit: nothing to compare
    return [p for half in _chunks(piece, max(1, len(piece) // 2)) for p in _fit(half, tokenizers, room)]


def recipe_tokens(recipe: Recipe, tokenizer: Any, texts: list[str]) -> RecipeTokens:
    """Tokenize the recipe's texts once into the SAE-training and the compared rows (see the module docstring)."""
    from featgeom_tda.extraction.dataset import tokenize_documents, window_documents

    ds = recipe.dataset
    name = ds.name or ds.source
    if ds.source != "text":
        compare = tokenize_documents(tokenizer, texts, max_length=ds.max_length, dataset_name=name)
        return RecipeTokens(train=compare, compare=_limit_tokens(compare, recipe.token_budget))
    per_window = ds.max_length - 1  # position 0 of a window is never a row
    n_train = -(-max([1, *_training_tokens(recipe)]) // per_window)
    n_compare = -(-recipe.token_budget // per_window)
    windows = window_documents(tokenizer, texts, length=ds.max_length, max_windows=n_train + n_compare,
                               dataset_name=", ".join(ds.files))
    if windows.n_docs < n_train + 1:
        raise ValueError(
            f"dataset {', '.join(ds.files)!r} gives {windows.n_docs} windows of {ds.max_length} tokens, but the SAEs "
            f"train on {n_train} and at least one more is compared; add text or lower training_tokens"
        )
    if windows.n_docs < n_train + n_compare:
        log.warning("%d windows after the SAE training windows are compared (token_budget asks for %d)",
                    windows.n_docs - n_train, n_compare)
    return RecipeTokens(train=_row_slice(windows, 0, n_train), compare=_row_slice(windows, n_train, None))


def _training_tokens(recipe: Recipe) -> list[int]:
    return [layer.sae.training_tokens for m in recipe.models for layer in m.layers if layer.sae.kind == "train"]


def _row_slice(ds: Any, start: int, stop: int | None) -> Any:
    return dataclasses.replace(ds, tokens=ds.tokens[start:stop], attention_mask=ds.attention_mask[start:stop])


def _limit_tokens(dataset: Any, budget: int) -> Any:
    """The first documents whose real tokens fit in ``budget`` (at least one document)."""
    import numpy as np

    n = int(max(1, np.searchsorted(np.cumsum(dataset.lengths), budget, side="right")))
    return dataset if n >= dataset.n_docs else _row_slice(dataset, 0, n)


def _check_layer_hooks(recipe: Recipe, models: dict[str, Any]) -> None:
    from featgeom_tda.sources.hooks import check_hook_name

    for i, spec in enumerate(recipe.models):
        for j, layer in enumerate(spec.layers):
            check_hook_name(models[spec.name], layer.hook, field=f"models[{i}].layers[{j}].hook",
                            model_name=f"model {spec.name!r}")


def model_digest(model: Any) -> str:
    """sha256 over every parameter of a torch module (name, dtype, shape and bytes), in registration order."""
    import torch

    from featgeom_tda.core._cache import Hasher

    h = Hasher()
    for name, p in model.named_parameters():
        t = p.detach().cpu()
        h.update_text(f"{name} {t.dtype}")
        h.update_array((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy())  # numpy has no bfloat16
    return h.hexdigest()


def _ce_loss(recipe: Recipe, model: Any, digest: str, sae: Any, hook: str, compare: Any) -> dict[str, Any]:
    """CE-loss of the model with the SAE spliced in, on the first compared rows (see ``saes.sae_ce_loss``);
    kept under ``cache_dir/ce_loss`` keyed by the model's weights, the SAE's and the rows, so that a run whose
    sources are rebuilt (any stage after them rerunning) does not evaluate it again."""
    from featgeom_tda.core._cache import array_digest
    from featgeom_tda.sources.saes import sae_ce_loss

    rows = compare.head(N_CE_ROWS)
    mask = rows.row_mask(keep_bos=False)
    key = fingerprint({"hook": hook, "model": digest, "sae": model_digest(sae),
                       "tokens": array_digest(rows.tokens, mask)})
    path = Path(recipe.cache_dir) / "ce_loss" / f"{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("unreadable CE-loss cache %s; evaluating again", path)
    result = sae_ce_loss(model, sae, rows.tokens, hook_name=hook, mask=mask, batch_size=min(recipe.batch_size, 8))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def model_summary(name: str, model: Any, extra: dict[str, Any]) -> ModelInfo:
    cfg = model.cfg
    return ModelInfo(
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        d_mlp=int(cfg.d_mlp) if cfg.d_mlp else None,
        n_params=int(sum(p.numel() for p in model.parameters())),
        **extra,
    )


def _models(recipe: Recipe, embedded: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """Models, what to report of each, and each model's tokenizer, by model name."""
    models: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    tokenizers: dict[str, Any] = {}
    for spec in recipe.models:
        if spec.source == "embedded":
            models[spec.name] = embedded.models[spec.name]
            tokenizers[spec.name] = embedded.tokenizer
            rep = embedded.report.get("models", {}).get(spec.name, {})
            info[spec.name] = {
                "source": "embedded",
                "final_loss": rep.get("eval_loss"),  # next-token loss on held-out rows
                "unigram_entropy": rep.get("unigram_entropy"),
                "train_steps": rep.get("steps"),
            }
        elif spec.source == "hub":
            from featgeom_tda.sources.models import load_hub_model

            models[spec.name] = load_hub_model(spec.name, device=recipe.device, dtype=spec.dtype)
            tokenizers[spec.name] = models[spec.name].tokenizer
            info[spec.name] = {"source": "hub"}
        else:
            from featgeom_tda.sources import checkpoints

            options = dict(n_ctx=recipe.dataset.max_length, dtype=spec.dtype, device=recipe.device, model_name=spec.name)
            if spec.source == "gguf":
                loaded = checkpoints.load_gguf_model(spec.path, cache_dir=cache_dir_of(recipe), **options)
            else:
                loaded = checkpoints.load_hf_folder_model(spec.path, **options)
            models[spec.name] = loaded.model
            tokenizers[spec.name] = loaded.tokenizer
            info[spec.name] = {"source": f"{spec.source}: {spec.path}"}
    return models, info, tokenizers


def cache_dir_of(recipe: Recipe) -> Path:
    """Where dequantised checkpoints of the recipe's models are kept."""
    return Path(recipe.cache_dir) / "checkpoints"


def _sae_info(layer: Layer, report: dict[str, Any], spec: str) -> SAEInfo:
    rest = {k: v for k, v in report.items() if k not in ("kind", "width", *_SAE_INFO_KEYS, *_CE_KEYS)}
    return SAEInfo(
        model=layer.model, hook=layer.hook, kind=report["kind"], width=int(report["width"]),
        **{k: report.get(k) for k in (*_SAE_INFO_KEYS, *_CE_KEYS)}, spec=spec, training=rest,
    )


def _dataset_texts(recipe: Recipe, embedded: Any) -> list[str]:
    ds = recipe.dataset
    if ds.source == "embedded":
        # the comparison reads the stories at the end of the corpus; the same texts for both models
        return list(embedded.texts)[-ds.n_documents :]
    if ds.source == "text":
        from featgeom_tda.sources.texts import load_documents

        return list(load_documents(ds.files, min_chars=ds.min_chars, max_documents=ds.n_documents).texts)
    from datasets import load_dataset  # network: Hugging Face hub

    texts = []
    for row in load_dataset(ds.name, split=ds.split, streaming=True):
        if ds.text_field not in row:
            raise ValueError(f"dataset {ds.name!r} has no field {ds.text_field!r}; fields are {sorted(row)}")
        texts.append(row[ds.text_field])
        if len(texts) >= ds.n_documents:
            break
    return texts


def sae_at_widths(recipe: Recipe, sources: Sources, layer: Layer, specs: list[SAESpec]) -> list[tuple[Any, dict[str, Any]]]:
    """The SAE of each ``spec`` at ``layer`` (``kind: train`` specs, e.g. one SAE spec at several widths), trained
    on that model's SAE-training rows exactly as a recipe layer with that spec is, so both share the cache."""
    if any(spec.kind != "train" for spec in specs):
        raise ValueError("sae_at_widths trains SAEs: every spec must have kind 'train'")
    own = sources.model_tokens.get(layer.model, sources.tokens)
    return _train_or_load_saes(recipe, sources.models[layer.model], [layer] * len(specs), specs, sources.embedded,
                               sources.texts, own, warn_embedded=False)


def _train_or_load_saes(recipe: Recipe, model: Any, layers: list[Layer], sspecs: list[SAESpec], embedded: Any,
                        texts: list[str], tokens: RecipeTokens, *,
                        warn_embedded: bool = True) -> list[tuple[Any, dict[str, Any]]]:
    """The SAE of each (layer, spec) of one model, in order: the embedded one, a cached or newly trained one, a
    pretrained one or one from disk. The activations of every hook to train are collected in one forward pass."""
    from featgeom_tda.sources import saes as sae_mod

    out: list[tuple[Any, dict[str, Any]] | None] = []
    to_train: list[tuple[int, Layer, SAESpec, Path]] = []
    for layer, sspec in zip(layers, sspecs):
        if sspec.kind == "pretrained":
            sae = sae_mod.load_pretrained_sae(sspec.release, sspec.sae_id, device=recipe.device)
            out.append((sae, {"kind": "pretrained", "release": sspec.release, "sae_id": sspec.sae_id,
                              "width": int(sae.cfg.d_sae)}))
        elif sspec.kind == "disk":
            sae = sae_mod.load_sae(sspec.path)
            out.append((sae, {"kind": "disk", "path": sspec.path, "width": int(sae.cfg.d_sae)}))
        elif embedded is not None and layer.model in embedded.saes and embedded.hooks.get(layer.model) == layer.hook \
                and _matches_embedded_sae(sspec, embedded):
            report = dict(embedded.report.get("saes", {}).get(layer.model, {}))
            sae = embedded.saes[layer.model]
            out.append((sae, {"kind": "train (embedded default)", "width": int(sae.cfg.d_sae), **report}))
        else:
            if warn_embedded and embedded is not None and layer.model in embedded.saes \
                    and embedded.hooks.get(layer.model) == layer.hook:
                log.warning("%s: the recipe's SAE (%s) differs from the embedded default's; training it",
                            layer.label, describe_sae_spec(sspec))
            directory = _sae_cache_dir(recipe, layer, sspec, texts, tokens)
            if (directory / "featgeom_report.json").exists():
                out.append((sae_mod.load_sae(directory, device=recipe.device),
                            json.loads((directory / "featgeom_report.json").read_text())))
            else:
                out.append(None)
                to_train.append((len(out) - 1, layer, sspec, directory))
    if to_train:
        ds = tokens.train
        hooks = list(dict.fromkeys(layer.hook for _, layer, _, _ in to_train))
        acts = sae_mod.collect_activations_at(model, ds.tokens, hooks, mask=ds.row_mask(keep_bos=False),
                                              batch_size=recipe.batch_size, progress=True)
        for n, (i, layer, sspec, directory) in enumerate(to_train):
            out[i] = _train_sae(recipe, model, layer, sspec, acts[layer.hook], directory)
            if all(other.hook != layer.hook for _, other, _, _ in to_train[n + 1:]):
                del acts[layer.hook]  # no later SAE reads this hook
    return [entry for entry in out if entry is not None]


def _sae_cache_dir(recipe: Recipe, layer: Layer, sspec: SAESpec, texts: list[str], tokens: RecipeTokens) -> Path:
    key = {"model": layer.model, "hook": layer.hook, "sae": vars(sspec), "seed": recipe.seed,
           "texts": text_digest(texts), "max_length": recipe.dataset.max_length}
    if recipe.dataset.source == "text":  # SAEs on windows: the training windows decide the SAE
        key["tokens"] = tokens.train.fingerprint
    spec = next(m for m in recipe.models if m.name == layer.model)
    if spec.path is not None:  # a checkpoint on disk: its path and dtype decide the activations
        key["model_source"] = {"source": spec.source, "path": spec.path, "dtype": spec.dtype}
    digest = fingerprint(key, length=12, compact=False)  # the key recipe of caches written before
    return Path(recipe.cache_dir) / "saes" / f"{layer.model}__{layer.hook}__{digest}"


def _train_sae(recipe: Recipe, model: Any, layer: Layer, sspec: SAESpec, acts: Any,
               directory: Path) -> tuple[Any, dict[str, Any]]:
    """Train an SAE on ``acts`` (n, d) of ``layer.hook`` and keep it in the cache ``directory``."""
    from featgeom_tda.sources import saes as sae_mod

    sae = sae_mod.train_sae(
        acts, width=int(acts.shape[1]) * sspec.width_multiple, architecture=sspec.architecture, k=sspec.k,
        l1_coefficient=sspec.l1_coefficient, hook_name=layer.hook, model_name=layer.model, model=model,
        training_tokens=sspec.training_tokens, seed=recipe.seed, device=recipe.device,
    )
    report = {"kind": "train", "architecture": sspec.architecture, "width": int(sae.cfg.d_sae),
              **sae_mod.sae_metrics(sae, acts)}
    sae_mod.save_sae(sae, directory)
    (directory / "featgeom_report.json").write_text(json.dumps(report))
    return sae, report


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

"""The embedded default: a generated corpus, its tokenizer, a 1-layer and a 2-layer model, and one SAE each.

Nothing is downloaded: :func:`build_embedded_default` generates the stories, trains the tokenizer, the
two TransformerLens models ("tiny-1L", "tiny-2L") and a TopK SAE on the last residual stream of each,
and caches every stage under ``cache_dir/embedded-<key>/``. The key is a hash of all options (seed, sizes,
steps), so other options never reuse stale files, and a second call with the same options only loads.
A stage that is missing (for example after an interrupted build) is rebuilt on its own.

The full default (12,000 stories, about 2 million tokens; d_model 128 models trained 320 steps of 16 x 128
tokens; 512-wide TopK SAEs with k = 16) costs about 2 CPU-minutes on one core; ``small=True`` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core._cache import fingerprint
from featgeom_tda.core._validation import check_choice, check_positive_int

__all__ = ["EmbeddedConfig", "EmbeddedDefault", "embedded_config", "build_embedded_default", "MODEL_NAMES", "embedded_hook_names"]

log = logging.getLogger(__name__)

_CACHE_VERSION = 1
MODEL_NAMES = ("tiny-1L", "tiny-2L")
_LAYERS = {"tiny-1L": 1, "tiny-2L": 2}


@dataclass(frozen=True)
class EmbeddedConfig:
    """Every size and training option of the embedded default (all of them enter the cache key)."""

    seed: int = 0
    n_stories: int = 12_000
    vocab_size: int = 4096
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 128
    steps_1l: int = 320
    steps_2l: int = 320
    batch_size: int = 16
    lr: float = 6e-3
    eval_rows: int = 100
    sae_architecture: str = "topk"
    sae_multiple: int = 4
    sae_k: int = 16
    sae_l1_coefficient: float = 5.0
    sae_steps: int = 400
    sae_batch_size: int = 1024
    sae_lr: float = 3e-3
    sae_rows: int = 1000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "seed":
                check_positive_int(value, "seed", minimum=0)
            elif f.name == "sae_architecture":
                check_choice(value, "sae_architecture", ("topk", "standard"))
            elif f.type in ("float", float):
                if not (isinstance(value, (int, float)) and value > 0):
                    raise ValueError(f"{f.name} must be a positive number; got {value!r}")
            else:
                check_positive_int(value, f.name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Short hash of every option and the cache format version."""
        return fingerprint({"version": _CACHE_VERSION, **self.to_dict()}, length=12, compact=False)

    def steps_for(self, name: str) -> int:
        return self.steps_1l if _LAYERS[name] == 1 else self.steps_2l


def embedded_config(*, seed: int = 0, n_stories: int | None = None, small: bool = False, **overrides: Any) -> EmbeddedConfig:
    """The default options (``small=True``: a tiny variant that builds in seconds, for tests)."""
    base: dict[str, Any] = {"seed": seed}
    if small:
        base.update(
            n_stories=300, d_model=32, n_heads=2, d_mlp=64, n_ctx=32, steps_1l=30, steps_2l=30, batch_size=16,
            eval_rows=20, sae_multiple=4, sae_k=4, sae_steps=100, sae_batch_size=256, sae_rows=150,
        )
    if n_stories is not None:
        base["n_stories"] = n_stories
    unknown = set(overrides) - {f.name for f in dataclasses.fields(EmbeddedConfig)}
    if unknown:
        raise ValueError(f"unknown embedded options {sorted(unknown)}")
    base.update(overrides)
    return EmbeddedConfig(**base)


@dataclass
class EmbeddedDefault:
    """The built (or loaded) embedded default.

    Attributes:
        texts: the corpus, one story per item.
        tokenizer: ``transformers.PreTrainedTokenizerFast`` (BOS prepended; pad/bos/eos set).
        models: "tiny-1L" / "tiny-2L" -> HookedTransformer.
        hooks: model name -> the hook its SAE reads (the last layer's ``hook_resid_post``).
        saes: model name -> sae_lens SAE trained at ``hooks[name]``.
        report: numbers (losses, unigram entropy, FVU / L0 / dead fraction, sizes, timings).
        paths: where each part lives on disk.
        tokens: int64 (n_rows, n_ctx) packed token rows ([bos] + stream); the last ``eval_rows`` are held out.
        config: the options it was built with.
    """

    texts: list[str]
    tokenizer: Any
    models: dict[str, Any]
    hooks: dict[str, str]
    saes: dict[str, Any]
    report: dict[str, Any]
    paths: dict[str, str]
    tokens: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    config: EmbeddedConfig | None = None

    @property
    def eval_tokens(self) -> np.ndarray:
        """The held-out token rows (not used to train the models or the SAEs)."""
        n = self.config.eval_rows if self.config is not None else 0
        return self.tokens[-n:] if n else self.tokens[:0]


# --------------------------------------------------------------------------------------------------
# small file helpers: every stage is written to a temporary name and renamed when complete
# --------------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _publish_dir(tmp: Path, final: Path) -> None:
    if final.exists():  # someone else finished the same stage first; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
        return
    os.replace(tmp, final)


def _tmp_dir(final: Path) -> Path:
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _hook_for(name: str) -> str:
    return f"blocks.{_LAYERS[name] - 1}.hook_resid_post"


# --------------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------------
def _stage_corpus(root: Path, cfg: EmbeddedConfig, timings: dict, cached: dict) -> list[str]:
    from featgeom_tda.sources.corpus import generate_corpus

    path = root / "corpus.json"
    if path.exists():
        cached["corpus"] = True
        return json.loads(path.read_text())["texts"]
    t0 = time.perf_counter()
    texts = generate_corpus(n_stories=cfg.n_stories, seed=cfg.seed)
    _write_json(path, {"seed": cfg.seed, "n_stories": cfg.n_stories, "texts": texts})
    timings["corpus"] = time.perf_counter() - t0
    cached["corpus"] = False
    return texts


def _stage_tokenizer(root: Path, cfg: EmbeddedConfig, texts: list[str], timings: dict, cached: dict) -> Any:
    from featgeom_tda.sources.tokenizer import load_tokenizer, train_tokenizer

    path = root / "tokenizer.json"
    if path.exists():
        cached["tokenizer"] = True
        return load_tokenizer(path)
    t0 = time.perf_counter()
    tmp = path.with_name(f"tokenizer.tmp-{os.getpid()}.json")
    train_tokenizer(texts, vocab_size=cfg.vocab_size, path=tmp)
    os.replace(tmp, path)
    timings["tokenizer"] = time.perf_counter() - t0
    cached["tokenizer"] = False
    return load_tokenizer(path)


def _stage_tokens(root: Path, cfg: EmbeddedConfig, texts: list[str], tokenizer: Any, timings: dict,
                  cached: dict) -> np.ndarray:
    from safetensors.numpy import load_file, save_file

    from featgeom_tda.sources.tokenizer import encode_corpus

    path = root / "tokens.safetensors"
    if path.exists():
        cached["tokens"] = True
        return load_file(str(path))["tokens"]
    t0 = time.perf_counter()
    tokens = encode_corpus(tokenizer, texts, n_ctx=cfg.n_ctx)
    need = cfg.eval_rows + max(cfg.batch_size, cfg.sae_rows // 2)
    if tokens.shape[0] <= need:
        raise ValueError(
            f"n_stories={cfg.n_stories} gives {tokens.shape[0]} token rows, too few for eval_rows={cfg.eval_rows} "
            f"plus training; raise n_stories"
        )
    tmp = path.with_name(f"tokens.tmp-{os.getpid()}.safetensors")
    save_file({"tokens": tokens}, str(tmp))
    os.replace(tmp, path)
    timings["tokens"] = time.perf_counter() - t0
    cached["tokens"] = False
    return tokens


def _stage_model(root: Path, cfg: EmbeddedConfig, name: str, tokens: np.ndarray, tokenizer: Any,
                 progress: bool, timings: dict, cached: dict) -> tuple[Any, dict]:
    from featgeom_tda.sources.models import eval_loss, load_model, save_model, train_model

    final = root / "models" / name
    if (final / "train.json").exists():
        cached[f"model:{name}"] = True
        return load_model(final, tokenizer), json.loads((final / "train.json").read_text())
    train_rows = tokens[: -cfg.eval_rows]
    t0, c0 = time.perf_counter(), time.process_time()
    model, losses = train_model(
        train_rows, tokenizer, n_layers=_LAYERS[name], d_model=cfg.d_model, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp,
        n_ctx=cfg.n_ctx, steps=cfg.steps_for(name), batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
        progress=progress, name=name,
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    held = eval_loss(model, tokens[-cfg.eval_rows:])
    tail = losses[-max(1, min(10, len(losses))):]
    meta = {
        "n_layers": _LAYERS[name], "d_model": cfg.d_model, "n_heads": cfg.n_heads, "d_mlp": cfg.d_mlp,
        "n_ctx": cfg.n_ctx, "d_vocab": int(model.cfg.d_vocab),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "steps": cfg.steps_for(name), "batch_size": cfg.batch_size, "lr": cfg.lr,
        "train_tokens_seen": int(cfg.steps_for(name) * cfg.batch_size * cfg.n_ctx),
        "first_loss": float(losses[0]), "final_train_loss": float(np.mean(tail)), "eval_loss": float(held),
        "train_seconds": seconds, "seconds_per_step": seconds / len(losses), "train_cpu_seconds": cpu,
        "loss_log": [float(x) for x in losses],
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_dir(final)
    save_model(model, tmp)
    _write_json(tmp / "train.json", meta)
    _publish_dir(tmp, final)
    timings[f"model:{name}"] = seconds
    cached[f"model:{name}"] = False
    return model, meta


def _stage_sae(root: Path, cfg: EmbeddedConfig, name: str, model: Any, tokens: np.ndarray, progress: bool,
               timings: dict, cached: dict) -> tuple[Any, dict]:
    from featgeom_tda.sources.hooks import check_sae_matches_hook
    from featgeom_tda.sources.saes import collect_hook_activations, load_sae, sae_metrics, save_sae, train_sae

    hook = _hook_for(name)
    final = root / "saes" / name
    if (final / "train.json").exists():
        cached[f"sae:{name}"] = True
        sae = load_sae(final, model=model, hook_name=hook)
        return sae, json.loads((final / "train.json").read_text())
    t0 = time.perf_counter()
    train_rows = tokens[: -cfg.eval_rows]
    rng = np.random.default_rng(cfg.seed + 1)
    pick = np.sort(rng.choice(train_rows.shape[0], size=min(cfg.sae_rows, train_rows.shape[0]), replace=False))
    acts = collect_hook_activations(model, train_rows[pick], hook, batch_size=64)
    eval_acts = collect_hook_activations(model, tokens[-cfg.eval_rows:], hook, batch_size=64)
    collect_seconds = time.perf_counter() - t0
    batch = min(cfg.sae_batch_size, acts.shape[0])
    t1, c1 = time.perf_counter(), time.process_time()
    sae = train_sae(
        acts, width=cfg.sae_multiple * cfg.d_model, architecture=cfg.sae_architecture, k=cfg.sae_k,
        l1_coefficient=cfg.sae_l1_coefficient, hook_name=hook, model_name=name, model=model, steps=cfg.sae_steps,
        batch_size=batch, lr=cfg.sae_lr, seed=cfg.seed, progress=progress,
    )
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
    check_sae_matches_hook(model, hook, sae)
    metrics = sae_metrics(sae, eval_acts)
    train_metrics = sae_metrics(sae, acts[: min(acts.shape[0], 20_000)])
    meta = {
        "hook_name": hook, "architecture": cfg.sae_architecture, "width": int(sae.cfg.d_sae),
        "k": cfg.sae_k if cfg.sae_architecture == "topk" else None,
        "steps": cfg.sae_steps, "batch_size": batch, "lr": cfg.sae_lr,
        "n_train_tokens": int(acts.shape[0]), "n_eval_tokens": int(eval_acts.shape[0]),
        "fvu": metrics["fvu"], "l0": metrics["l0"], "dead_fraction": metrics["dead_fraction"],
        "train_fvu": train_metrics["fvu"], "train_dead_fraction": train_metrics["dead_fraction"],
        "collect_seconds": collect_seconds, "train_seconds": seconds, "seconds_per_step": seconds / cfg.sae_steps,
        "train_cpu_seconds": cpu,
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_dir(final)
    save_sae(sae, tmp)
    _write_json(tmp / "train.json", meta)
    _publish_dir(tmp, final)
    timings[f"sae:{name}"] = collect_seconds + seconds
    cached[f"sae:{name}"] = False
    return sae, meta


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def embedded_hook_names(name: str, *, small: bool = False) -> list[str]:
    """Hook names of the embedded model ``name`` ("tiny-1L" / "tiny-2L"), without building the embedded default."""
    from featgeom_tda.sources.hooks import config_hook_names
    from featgeom_tda.sources.models import ModelSpec

    if name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")
    cfg = embedded_config(small=small)
    spec = ModelSpec(
        n_layers=_LAYERS[name], d_model=cfg.d_model, n_heads=cfg.n_heads, d_mlp=cfg.d_mlp,
        n_ctx=cfg.n_ctx, name=name,
    )
    return config_hook_names(spec.to_config(d_vocab=cfg.vocab_size))


def build_embedded_default(
    cache_dir: str | Path = "featgeom_cache",
    *,
    seed: int = 0,
    n_stories: int | None = None,
    progress: bool = True,
    small: bool = False,
    config: EmbeddedConfig | None = None,
) -> EmbeddedDefault:
    """Build (or load from ``cache_dir``) the embedded default corpus, tokenizer, models and SAEs.

    Args:
        cache_dir: cache root (relative paths are relative to the working directory); everything goes to
            ``cache_dir/embedded-<key>/`` where the key hashes all options.
        seed: fixes the corpus, the initial weights and the batch orders.
        n_stories: corpus size (default 12,000 stories, about 1.5 million words; 300 when ``small``).
        progress: show tqdm bars while training.
        small: a tiny variant that builds in seconds (tests, smoke runs).
        config: explicit options (then ``seed``, ``n_stories`` and ``small`` must be left at their defaults).
    """
    from featgeom_tda.sources.concepts import load_concept_groups
    from featgeom_tda.sources.corpus import concept_counts
    from featgeom_tda.sources.models import unigram_entropy

    if config is None:
        config = embedded_config(seed=seed, n_stories=n_stories, small=small)
    elif not isinstance(config, EmbeddedConfig):
        raise ValueError(f"config must be an EmbeddedConfig; got {type(config).__name__}")
    elif (seed, n_stories, small) != (0, None, False):
        raise ValueError("pass either config or seed / n_stories / small, not both")
    if not isinstance(cache_dir, (str, os.PathLike)) or str(cache_dir) == "":
        raise ValueError(f"cache_dir must be a non-empty path; got {cache_dir!r}")
    cfg = config
    root = Path(cache_dir) / f"embedded-{cfg.key()}"
    root.mkdir(parents=True, exist_ok=True)
    opts = root / "options.json"
    if opts.exists():
        stored = json.loads(opts.read_text())
        if stored != cfg.to_dict():
            raise ValueError(f"{opts} holds other options than requested; remove {root} and build again")
    else:
        _write_json(opts, cfg.to_dict())

    start = time.perf_counter()
    timings: dict[str, float] = {}
    cached: dict[str, bool] = {}
    texts = _stage_corpus(root, cfg, timings, cached)
    tokenizer = _stage_tokenizer(root, cfg, texts, timings, cached)
    tokens = _stage_tokens(root, cfg, texts, tokenizer, timings, cached)
    models: dict[str, Any] = {}
    saes: dict[str, Any] = {}
    model_meta: dict[str, dict] = {}
    sae_meta: dict[str, dict] = {}
    for name in MODEL_NAMES:
        models[name], model_meta[name] = _stage_model(root, cfg, name, tokens, tokenizer, progress, timings, cached)
    for name in MODEL_NAMES:
        saes[name], sae_meta[name] = _stage_sae(root, cfg, name, models[name], tokens, progress, timings, cached)
    this_call = time.perf_counter() - start

    report_path = root / "report.json"
    previous = json.loads(report_path.read_text()) if report_path.exists() else {}
    build_timings = {**previous.get("build_timings", {}), **timings}
    targets = tokens[: -cfg.eval_rows, 1:]
    entropy = previous.get("unigram_entropy")
    if entropy is None:
        entropy = unigram_entropy(targets)
    counts = previous.get("corpus", {}).get("concept_counts") or concept_counts(texts, load_concept_groups())
    report = {
        "key": cfg.key(),
        "options": cfg.to_dict(),
        "corpus": {
            "n_stories": len(texts),
            "n_words": previous.get("corpus", {}).get("n_words") or int(sum(len(t.split()) for t in texts)),
            "n_token_rows": int(tokens.shape[0]),
            "n_tokens": int(tokens.size),
            "concept_counts": counts,
        },
        "tokenizer": {"vocab_size": int(len(tokenizer))},
        "unigram_entropy": float(entropy),
        "models": {
            name: {**{k: v for k, v in meta.items() if k != "loss_log"}, "hook_name": _hook_for(name),
                   "unigram_entropy": float(entropy)}
            for name, meta in model_meta.items()
        },
        "saes": sae_meta,
        "build_timings": build_timings,
        "build_seconds": float(sum(build_timings.values())),
        "this_call_seconds": this_call,
        "cached": cached,
    }
    _write_json(report_path, report)
    paths = {
        "root": str(root),
        "corpus": str(root / "corpus.json"),
        "tokenizer": str(root / "tokenizer.json"),
        "tokens": str(root / "tokens.safetensors"),
        "report": str(report_path),
        **{f"model:{n}": str(root / "models" / n) for n in MODEL_NAMES},
        **{f"sae:{n}": str(root / "saes" / n) for n in MODEL_NAMES},
    }
    log.info("embedded default at %s: %.1f s this call (%.1f s to build)", root, this_call, report["build_seconds"])
    return EmbeddedDefault(
        texts=texts, tokenizer=tokenizer, models=models, hooks={n: _hook_for(n) for n in MODEL_NAMES}, saes=saes,
        report=report, paths=paths, tokens=tokens, config=cfg,
    )

"""Small TransformerLens models: build from a :class:`ModelSpec`, train on a corpus, save/load, evaluate.

Models are plain ``HookedTransformer`` objects built from a ``HookedTransformerConfig``, so every hook name
(``blocks.0.hook_resid_post`` ...) works as on a pretrained model. They are saved as ``config.json`` plus
``model.safetensors`` (no pickle); :func:`load_hub_model` loads a pretrained model where a network is there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_choice, check_positive_int, to_numpy

__all__ = [
    "ModelSpec",
    "build_model",
    "train_model",
    "save_model",
    "load_model",
    "load_hub_model",
    "unigram_entropy",
    "eval_loss",
    "as_token_array",
]

log = logging.getLogger(__name__)

_FORMAT = "featgeom-hooked-transformer"
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a small HookedTransformer (``d_head = d_model // n_heads``; ``d_mlp=None`` means 4 x d_model)."""

    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int | None = None
    n_ctx: int = 128
    d_vocab: int = -1
    act_fn: str = "gelu"
    normalization_type: str | None = "LN"
    positional_embedding_type: str = "standard"
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string; got {self.name!r}")
        for name in ("n_layers", "d_model", "n_heads", "n_ctx"):
            check_positive_int(getattr(self, name), name)
        if self.d_mlp is not None:
            check_positive_int(self.d_mlp, "d_mlp")
        if self.d_vocab != -1:
            check_positive_int(self.d_vocab, "d_vocab", minimum=2)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        check_choice(self.act_fn, "act_fn", ("gelu", "gelu_new", "relu", "silu", "gelu_fast"))
        check_choice(self.normalization_type, "normalization_type", ("LN", "LNPre", "RMS", "RMSPre", None))
        check_choice(self.positional_embedding_type, "positional_embedding_type", ("standard", "shortformer"))

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model spec has unknown keys {sorted(unknown)}; valid keys are {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_model(cls, model: Any) -> "ModelSpec":
        c = model.cfg
        return cls(
            n_layers=c.n_layers, d_model=c.d_model, n_heads=c.n_heads, d_mlp=c.d_mlp, n_ctx=c.n_ctx,
            d_vocab=c.d_vocab, act_fn=c.act_fn, normalization_type=c.normalization_type,
            positional_embedding_type=c.positional_embedding_type, name=c.model_name,
        )

    def to_config(self, *, d_vocab: int | None = None, device: str = "cpu") -> Any:
        """A ``HookedTransformerConfig`` for this spec (``d_vocab`` overrides the spec's)."""
        from transformer_lens import HookedTransformerConfig

        vocab = self.d_vocab if d_vocab is None else d_vocab
        if vocab is None or vocab < 2:
            raise ValueError(f"d_vocab must be an integer >= 2 (set it or pass a tokenizer); got {vocab}")
        return HookedTransformerConfig(
            n_layers=self.n_layers,
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_head=self.d_model // self.n_heads,
            d_mlp=self.mlp_width,
            n_ctx=self.n_ctx,
            d_vocab=vocab,
            act_fn=self.act_fn,
            normalization_type=self.normalization_type,
            positional_embedding_type=self.positional_embedding_type,
            default_prepend_bos=True,
            model_name=self.name,
            device=device,
        )


def _vocab_of(tokenizer: Any) -> int:
    return int(max(tokenizer.get_vocab().values())) + 1


def build_model(spec: ModelSpec, tokenizer: Any = None, *, seed: int = 0, device: str = "cpu") -> Any:
    """A freshly initialised ``HookedTransformer`` for ``spec``; the seed fixes the weights.

    The global torch RNG is left as it was (the initialisation runs in a forked RNG state).
    """
    import torch
    from transformer_lens import HookedTransformer

    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec; got {type(spec).__name__}")
    d_vocab = _vocab_of(tokenizer) if tokenizer is not None else None
    if d_vocab is not None and spec.d_vocab not in (-1, d_vocab):
        raise ValueError(f"spec.d_vocab={spec.d_vocab} but the tokenizer has {d_vocab} token ids")
    cfg = spec.to_config(d_vocab=d_vocab, device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    model.eval()
    return model


def as_token_array(tokens: Any, name: str = "tokens") -> np.ndarray:
    """int64 array of shape (n_rows, seq) from numpy / torch / nested lists; raises on anything else."""
    arr = to_numpy(tokens, name)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_rows, seq); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} holds negative token ids (min {int(arr.min())})")
    return arr.astype(np.int64, copy=False)


def _training_tokens(data: Any, tokenizer: Any, n_ctx: int) -> np.ndarray:
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
        if tokenizer is None:
            raise ValueError("tokenizer is required when data is a list of texts")
        from featgeom_tda.sources.tokenizer import encode_corpus

        return encode_corpus(tokenizer, data, n_ctx=n_ctx)
    arr = as_token_array(data, "data")
    if arr.shape[1] > n_ctx:
        raise ValueError(f"data rows have {arr.shape[1]} tokens but n_ctx={n_ctx}; rows must fit the context")
    if arr.shape[1] < 2:
        raise ValueError(f"data rows need at least 2 tokens for next-token training; got {arr.shape[1]}")
    return arr


def _lr_at(step: int, *, steps: int, lr: float, warmup: int, final_fraction: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def _next_token_loss(logits: Any, tokens: Any, mask: Any = None) -> Any:
    """Mean cross-entropy (nats) of predicting tokens[:, 1:] from logits[:, :-1] (mask: on targets)."""
    import torch.nn.functional as F

    lp = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1), reduction="none"
    )
    if mask is None:
        return lp.mean()
    m = mask[:, 1:].reshape(-1).float()
    return (lp * m).sum() / m.sum().clamp(min=1)


def train_model(
    data: Any,
    tokenizer: Any = None,
    *,
    n_layers: int = 1,
    d_model: int = 128,
    n_heads: int = 4,
    d_mlp: int | None = None,
    n_ctx: int = 128,
    steps: int = 320,
    batch_size: int = 16,
    lr: float = 6e-3,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    name: str = "custom",
    spec: ModelSpec | None = None,
) -> tuple[Any, list[float]]:
    """Train a fresh ``HookedTransformer`` for next-token prediction; return (model, per-step loss in nats).

    Args:
        data: a list of texts (tokenized and packed with :func:`featgeom_tda.sources.tokenizer.encode_corpus`)
            or an int array (n_rows, seq <= n_ctx) of token ids.
        tokenizer: attached to the model (``model.to_tokens`` works); sets ``d_vocab``. Required for texts.
        n_layers, d_model, n_heads, d_mlp, n_ctx: the model's shape (or pass ``spec``).
        steps, batch_size, lr, weight_decay, warmup_steps: AdamW with linear warm-up and cosine decay to
            10% of ``lr``; gradients are clipped to norm 1.
        seed: fixes the initial weights and the order of batches.
        name: the model's ``cfg.model_name`` (it appears in provenance).
    """
    import torch
    from tqdm.auto import tqdm

    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number >= 0; got {weight_decay!r}")
    if spec is None:
        spec = ModelSpec(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_mlp=d_mlp, n_ctx=n_ctx, name=name)
    tokens = _training_tokens(data, tokenizer, spec.n_ctx)
    d_vocab = _vocab_of(tokenizer) if tokenizer is not None else (spec.d_vocab if spec.d_vocab > 0 else None)
    if d_vocab is None:
        d_vocab = int(tokens.max()) + 1
        spec = dataclasses.replace(spec, d_vocab=d_vocab)
    if int(tokens.max()) >= d_vocab:
        raise ValueError(f"data holds token id {int(tokens.max())} but the vocabulary has {d_vocab} ids")
    model = build_model(spec, tokenizer, seed=seed, device=device)
    warmup = max(1, steps // 20) if warmup_steps is None else check_positive_int(warmup_steps, "warmup_steps")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.99),
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(tokens.shape[0])
    cursor = 0
    all_tokens = torch.from_numpy(tokens)
    loss_log: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc=f"train {spec.n_layers}L model", disable=not progress, leave=False)
    for step in bar:
        if cursor + batch_size > order.shape[0]:
            order = rng.permutation(tokens.shape[0])
            cursor = 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        batch = all_tokens[torch.from_numpy(idx)].to(device)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps=steps, lr=float(lr), warmup=warmup, final_fraction=0.1)
        logits = model(batch, return_type="logits")
        loss = _next_token_loss(logits, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ValueError(f"training diverged at step {step} (loss {value}); lower lr (got {lr})")
        loss_log.append(value)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    model.eval()
    log.info("trained %dL model: %d steps, final loss %.4f", spec.n_layers, steps, loss_log[-1])
    return model, loss_log


def save_model(model: Any, directory: str | Path) -> Path:
    """Write ``config.json`` (the :class:`ModelSpec`) and ``model.safetensors``; also ``tokenizer.json``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec.from_model(model)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(directory / _WEIGHTS_FILE))
    (directory / _CONFIG_FILE).write_text(json.dumps({"format": _FORMAT, "version": 1, "spec": spec.to_dict()}, indent=2))
    tok = getattr(model, "tokenizer", None)
    if tok is not None and hasattr(tok, "backend_tokenizer"):
        from featgeom_tda.sources.tokenizer import save_tokenizer

        save_tokenizer(tok, directory)
    return directory


def load_model(directory: str | Path, tokenizer: Any = None, *, device: str = "cpu") -> Any:
    """Load a model written by :func:`save_model` (its tokenizer too, unless ``tokenizer`` is given)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_file = directory / _CONFIG_FILE
    if not cfg_file.exists():
        raise ValueError(f"directory {str(directory)!r} holds no {_CONFIG_FILE}; expected a model written by save_model")
    meta = json.loads(cfg_file.read_text())
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{cfg_file} is not a {_FORMAT} config (format={meta.get('format')!r})")
    spec = ModelSpec.from_dict(meta["spec"])
    if tokenizer is None and (directory / "tokenizer.json").exists():
        from featgeom_tda.sources.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(directory)
    if tokenizer is not None and _vocab_of(tokenizer) != spec.d_vocab:
        raise ValueError(f"tokenizer has {_vocab_of(tokenizer)} token ids but the model has d_vocab={spec.d_vocab}")
    model = build_model(dataclasses.replace(spec, d_vocab=-1) if tokenizer is not None else spec, tokenizer,
                        device=device)
    state = load_file(str(directory / _WEIGHTS_FILE), device=device)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def load_hub_model(name: str, *, device: str = "cpu", **kwargs: Any) -> Any:
    """A pretrained model through ``HookedTransformer.from_pretrained(name, device=device, **kwargs)``.

    Needs the model's weights (a network or a local hub cache); the embedded default does not use it.
    """
    from transformer_lens import HookedTransformer

    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty model name; got {name!r}")
    try:
        return HookedTransformer.from_pretrained(name, device=device, **kwargs)
    except OSError as exc:  # transformers / huggingface_hub: not cached and no network
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"cannot load model {name!r} here: its weights are not in the local hub cache and cannot be downloaded "
            f"({reason}); give a local path or a cached model"
        ) from exc


def unigram_entropy(tokens: Any, *, mask: Any = None) -> float:
    """Entropy (nats) of the empirical token distribution: the loss of the best context-free predictor."""
    arr = to_numpy(tokens, "tokens").reshape(-1)
    if arr.size == 0:
        raise ValueError("tokens must not be empty")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"tokens must hold integer token ids; got dtype {arr.dtype}")
    if mask is not None:
        m = to_numpy(mask, "mask").reshape(-1)
        if m.shape != arr.shape:
            raise ValueError(f"mask has {m.size} entries but tokens has {arr.size}; they need the same shape")
        arr = arr[m.astype(bool)]
        if arr.size == 0:
            raise ValueError("mask keeps no tokens")
    _, counts = np.unique(arr, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def eval_loss(model: Any, tokens: Any, *, batch_size: int = 64, mask: Any = None) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``tokens`` (n_rows, seq); ``mask`` marks targets."""
    import torch

    arr = as_token_array(tokens)
    batch_size = check_positive_int(batch_size, "batch_size")
    if arr.shape[1] < 2:
        raise ValueError(f"tokens rows need at least 2 tokens; got {arr.shape[1]}")
    if arr.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"tokens rows have {arr.shape[1]} tokens but the model's n_ctx is {model.cfg.n_ctx}")
    m_arr = None
    if mask is not None:
        m_arr = to_numpy(mask, "mask").astype(bool)
        if m_arr.shape != arr.shape:
            raise ValueError(f"mask has shape {m_arr.shape} but tokens has {arr.shape}")
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, arr.shape[0], batch_size):
            batch = torch.from_numpy(arr[start:start + batch_size]).to(device)
            logits = model(batch, return_type="logits")
            m = None if m_arr is None else torch.from_numpy(m_arr[start:start + batch_size]).to(device)
            n = float(batch[:, 1:].numel() if m is None else m[:, 1:].sum())
            if n == 0:
                continue
            total += float(_next_token_loss(logits, batch, m)) * n
            count += n
    if count == 0:
        raise ValueError("mask keeps no target tokens")
    return total / count


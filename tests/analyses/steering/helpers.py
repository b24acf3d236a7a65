"""Helpers of the steering tests: the tiny vocabulary and float64 numpy references of the last layer."""

from __future__ import annotations

import numpy as np
import scipy.special
import torch

from featgeom_tda.analyses.steering import hook_activations
from featgeom_tda.sources.concepts import load_concept_groups

HOOK_A = "blocks.0.hook_resid_post"
HOOK_B = "blocks.1.hook_resid_post"

_EXTRA_WORDS = (
    "The the a and then so smiled laughed nodded that In looked at was very found old sat down One of year "
    "are months we said "
    "children counted Then , : \" . it"
).split()



def _vocab() -> dict[str, int]:
    vocab = {"[UNK]": 0, "[BOS]": 1}
    groups = load_concept_groups()
    for w in _EXTRA_WORDS + [w for words in groups.values() for w in words]:
        vocab.setdefault(w, len(vocab))
    return vocab


def _logits(model, tokens):
    with torch.no_grad():
        return model(tokens, return_type="logits")


def _resid(model, tokens, hook):
    return torch.stack(hook_activations(model, hook, tokens)).double().numpy()


def _hand_logits(model, resid: np.ndarray) -> np.ndarray:
    """Final LayerNorm and unembedding of a last-layer residual stream, in float64 numpy."""
    x = resid - resid.mean(axis=-1, keepdims=True)
    x = x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + model.cfg.eps)
    x = x * model.ln_final.w.detach().double().numpy() + model.ln_final.b.detach().double().numpy()
    return x @ model.W_U.detach().double().numpy() + model.b_U.detach().double().numpy()


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - scipy.special.logsumexp(z, axis=-1, keepdims=True)


def _active_feature(model, sae, tokens, hook=HOOK_A) -> int:
    with torch.no_grad():
        f = sae.encode(torch.stack(hook_activations(model, hook, tokens)))
    return int(f[:, -1].sum(dim=0).argmax())

"""Encoding of hook activations by an SAE into sparse float32 rows of the selected tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import check_positive_int

__all__ = ["encode_batch"]

# SAE classes whose encoding of a token depends on the other tokens of its sequence
_SEQUENCE_SAES = ("TemporalSAE",)


def _dense_to_csr(dense: Any) -> sp.csr_matrix:
    """(n, d) torch tensor -> scipy CSR float32 via torch.nonzero (row-major, sorted columns)."""
    import torch

    n, d = dense.shape
    nz = torch.nonzero(dense, as_tuple=False)
    rows, cols = nz[:, 0], nz[:, 1]
    values = dense[rows, cols].to(torch.float32).cpu().numpy()
    counts = torch.bincount(rows, minlength=n).cpu().numpy()
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((values, cols.cpu().numpy().astype(np.int32), indptr), shape=(n, d))


def encode_batch(sae: Any, acts: Any, *, token_mask: Any = None, chunk_rows: int = 4096) -> sp.csr_matrix:
    """Encode hook activations with ``sae`` and keep the selected tokens, as sparse float32 rows.

    Args:
        sae: an sae_lens SAE.
        acts: torch tensor (batch, pos, ...) taken at the SAE's hook (``...`` is d_in, or heads x d_head).
        token_mask: bool (batch, pos); the tokens that become rows, in row-major order (default: all).
        chunk_rows: tokens encoded at once, bounding the dense (chunk_rows, d_sae) intermediate.

    Returns:
        scipy CSR float32 of shape (n_selected, d_sae).
    """
    import torch

    check_positive_int(chunk_rows, "chunk_rows")
    if acts.ndim < 3:
        raise ValueError(f"acts must be (batch, pos, ...) with at least 3 dimensions, got shape {tuple(acts.shape)}")
    if token_mask is None:
        token_mask = torch.ones(acts.shape[:2], dtype=torch.bool, device=acts.device)
    token_mask = torch.as_tensor(token_mask, dtype=torch.bool, device=acts.device)
    if tuple(token_mask.shape) != tuple(acts.shape[:2]):
        raise ValueError(f"token_mask has shape {tuple(token_mask.shape)} but acts starts with {tuple(acts.shape[:2])}")
    d_sae = int(sae.cfg.d_sae)
    parts: list[sp.csr_matrix] = []
    with torch.no_grad():
        if type(sae).__name__ in _SEQUENCE_SAES:
            # the code of a token depends on its context: encode whole sequences, then select tokens
            parts.append(_dense_to_csr(sae.encode(acts)[token_mask]))
        else:
            selected = acts[token_mask]
            for start in range(0, int(selected.shape[0]), chunk_rows):
                parts.append(_dense_to_csr(sae.encode(selected[start : start + chunk_rows])))
    if not parts:
        return sp.csr_matrix((0, d_sae), dtype=np.float32)
    out = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
    if out.shape[1] != d_sae:
        raise ValueError(f"sae.encode returned {out.shape[1]} features but sae.cfg.d_sae is {d_sae}")
    return out

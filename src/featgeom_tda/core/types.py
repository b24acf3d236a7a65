"""The tensor interface every stage takes and returns.

- :class:`Provenance`: where a tensor came from (model, hook, SAE, dataset, seed).
- :class:`FeatureActivations`: sparse (n_tokens x n_features) float32 CSR activations + per-row token id,
  document index and position.
- :class:`FeatureWeights`: dense (n_features x d) directions (SAE decoder rows or LLM weight rows).
- :class:`FeatureMatching`: pairs (index_a, index_b, correlation) + what was filtered out and why.

Per-row metadata that is unknown (for example activations built from a bare matrix) is stored as -1.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._validation import (
    _is_torch,
    as_float_matrix,
    check_finite,
    check_not_empty,
    check_rank,
    check_same_rows,
    describe,
    to_numpy,
)

__all__ = [
    "Provenance",
    "FeatureActivations",
    "FeatureWeights",
    "FeatureMatching",
    "as_activations",
    "as_weights",
]


@dataclass(frozen=True)
class Provenance:
    """Where a tensor came from. Unknown fields stay ``None``."""

    model: str | None = None
    hook_name: str | None = None
    sae_id: str | None = None
    dataset: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Provenance":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ValueError(f"provenance must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"provenance has unknown keys {sorted(unknown)}; valid keys are {sorted(known)}")
        return cls(**d)

    def label(self) -> str:
        """Human-readable one-line name, e.g. ``model1L/blocks.0.hook_resid_post/sae``."""
        parts = [p for p in (self.model, self.hook_name, self.sae_id) if p]
        return "/".join(parts) if parts else "unnamed"


def _meta_array(values: Any, name: str, n_rows: int) -> np.ndarray:
    if values is None:
        return np.full(n_rows, -1, dtype=np.int64)
    arr = to_numpy(values, name)
    check_rank(arr, name, 1)
    if arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the activations have {n_rows} rows")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class FeatureActivations:
    """Sparse SAE feature activations, one row per token.

    Attributes:
        matrix: scipy CSR, shape (n_tokens, n_features), float32.
        token_ids, doc_index, position: int64 arrays of shape (n_tokens,); -1 where unknown.
        provenance: :class:`Provenance`.
    """

    def __init__(
        self,
        matrix: Any,
        *,
        token_ids: Any = None,
        doc_index: Any = None,
        position: Any = None,
        provenance: Provenance | None = None,
        name: str = "matrix",
    ) -> None:
        csr = _to_csr(matrix, name)
        self.matrix: sp.csr_matrix = csr
        n = csr.shape[0]
        self.token_ids = _meta_array(token_ids, "token_ids", n)
        self.doc_index = _meta_array(doc_index, "doc_index", n)
        self.position = _meta_array(position, "position", n)
        self.provenance = provenance if provenance is not None else Provenance()

    # -- shape ---------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)  # type: ignore[return-value]

    @property
    def n_tokens(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return (
            f"FeatureActivations(n_tokens={self.n_tokens}, n_features={self.n_features}, "
            f"nnz={self.matrix.nnz}, source={self.provenance.label()!r})"
        )

    # -- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix, **kwargs: Any) -> "FeatureActivations":
        return cls(matrix, **kwargs)

    @classmethod
    def from_numpy(cls, array: np.ndarray, **kwargs: Any) -> "FeatureActivations":
        return cls(np.asarray(array), **kwargs)

    @classmethod
    def from_torch(cls, tensor: Any, **kwargs: Any) -> "FeatureActivations":
        return cls(tensor, **kwargs)

    # -- conversions ---------------------------------------------------------------------------------
    def to_scipy(self) -> sp.csr_matrix:
        return self.matrix

    def to_numpy(self) -> np.ndarray:
        """Dense float32 array of shape (n_tokens, n_features)."""
        return self.matrix.toarray()

    def to_torch(self, *, sparse: bool = True):
        """Torch tensor: sparse CSR (default) or dense, float32."""
        import torch

        if not sparse:
            return torch.from_numpy(self.to_numpy())
        m = self.matrix
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data.astype(np.float32)),
            size=m.shape,
        )

    # -- selection -----------------------------------------------------------------------------------
    def rows(self, start: int, stop: int) -> "FeatureActivations":
        """Rows ``start:stop`` as a new object (metadata sliced alike)."""
        sl = slice(start, stop)
        return FeatureActivations(
            self.matrix[sl],
            token_ids=self.token_ids[sl],
            doc_index=self.doc_index[sl],
            position=self.position[sl],
            provenance=self.provenance,
        )

    def select_rows(self, mask_or_index: Any) -> "FeatureActivations":
        idx = np.asarray(mask_or_index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return FeatureActivations(
            self.matrix[idx],
            token_ids=self.token_ids[idx],
            doc_index=self.doc_index[idx],
            position=self.position[idx],
            provenance=self.provenance,
        )

    def select_features(self, features: Any) -> "FeatureActivations":
        idx = np.asarray(features, dtype=np.int64)
        return FeatureActivations(
            self.matrix[:, idx].tocsr(),
            token_ids=self.token_ids,
            doc_index=self.doc_index,
            position=self.position,
            provenance=self.provenance,
        )

    @staticmethod
    def concatenate(parts: list["FeatureActivations"]) -> "FeatureActivations":
        """Stack row blocks (all with the same number of features)."""
        if not parts:
            raise ValueError("parts must hold at least one FeatureActivations, got an empty list")
        widths = {p.n_features for p in parts}
        if len(widths) != 1:
            raise ValueError(f"parts must all have the same number of features, got {sorted(widths)}")
        return FeatureActivations(
            sp.vstack([p.matrix for p in parts], format="csr"),
            token_ids=np.concatenate([p.token_ids for p in parts]),
            doc_index=np.concatenate([p.doc_index for p in parts]),
            position=np.concatenate([p.position for p in parts]),
            provenance=parts[0].provenance,
        )

    # -- statistics ----------------------------------------------------------------------------------
    def firing_counts(self) -> np.ndarray:
        """Number of rows on which each feature is non-zero, shape (n_features,)."""
        return np.bincount(self.matrix.indices, minlength=self.n_features)

    def dead_features(self) -> np.ndarray:
        """Boolean mask (n_features,) of features with zero variance over the rows (never firing, or constant)."""
        m = self.matrix
        n = m.shape[0]
        s1 = np.asarray(m.sum(axis=0), dtype=np.float64).ravel()
        s2 = np.asarray(m.multiply(m).sum(axis=0), dtype=np.float64).ravel()
        var = s2 / n - (s1 / n) ** 2
        scale = np.maximum(s2 / n, np.finfo(np.float64).tiny)
        return var <= 1e-12 * scale


def _to_csr(x: Any, name: str) -> sp.csr_matrix:
    """scipy sparse / numpy / torch (dense or sparse) -> validated float32 CSR."""
    if isinstance(x, FeatureActivations):
        return x.matrix
    if sp.issparse(x):
        check_rank(x, name, 2)
        csr = sp.csr_matrix(x, dtype=np.float32)
    elif _is_torch(x):
        import torch

        check_rank(x, name, 2)
        if x.device.type == "meta":
            raise ValueError(f"{name} is a tensor on the meta device, which holds no values; load its data first")
        if x.dtype in (torch.float16, torch.bfloat16, torch.float64):
            x = x.to(torch.float32)  # scipy.sparse holds neither half type; float32 is what the store keeps
        if x.layout == torch.sparse_csr:
            t = x.detach().cpu()
            csr = sp.csr_matrix(
                (t.values().numpy(), t.col_indices().numpy(), t.crow_indices().numpy()), shape=tuple(t.shape)
            )
        elif x.is_sparse:
            t = x.detach().cpu().coalesce()
            idx = t.indices().numpy()
            csr = sp.coo_matrix((t.values().numpy(), (idx[0], idx[1])), shape=tuple(t.shape)).tocsr()
        else:
            csr = sp.csr_matrix(x.detach().cpu().numpy())
        csr = csr.astype(np.float32)
    else:
        arr = to_numpy(x, name)
        check_rank(arr, name, 2)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        csr = sp.csr_matrix(arr.astype(np.float32, copy=False))
    check_not_empty(csr, name)
    check_finite(csr, name)
    csr.sum_duplicates()
    csr.sort_indices()
    return csr


def as_activations(x: Any, name: str = "acts") -> FeatureActivations:
    """Accept FeatureActivations, scipy sparse, torch (dense or sparse) or numpy; return FeatureActivations."""
    if isinstance(x, FeatureActivations):
        return x
    return FeatureActivations(x, name=name)


class FeatureWeights:
    """Dense feature directions, shape (n_features, d), float32, with provenance."""

    def __init__(self, weights: Any, *, provenance: Provenance | None = None, name: str = "weights") -> None:
        arr = to_numpy(weights, name)
        check_rank(arr, name, 2)
        check_not_empty(arr, name)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        check_finite(arr, name)
        self.weights = arr
        self.provenance = provenance if provenance is not None else Provenance()

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape)  # type: ignore[return-value]

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def __len__(self) -> int:
        return self.n_features

    def __repr__(self) -> str:
        return f"FeatureWeights(n_features={self.n_features}, dim={self.dim}, source={self.provenance.label()!r})"

    def to_numpy(self) -> np.ndarray:
        return self.weights

    def to_torch(self):
        import torch

        return torch.from_numpy(self.weights)

    def select(self, features: Any) -> "FeatureWeights":
        return FeatureWeights(self.weights[np.asarray(features, dtype=np.int64)], provenance=self.provenance)

    def normalized(self) -> np.ndarray:
        """Rows scaled to unit L2 norm (zero rows stay zero), shape (n_features, d)."""
        norms = np.linalg.norm(self.weights, axis=1, keepdims=True)
        return self.weights / np.where(norms > 0, norms, 1.0)


def as_weights(x: Any, name: str = "weights") -> FeatureWeights:
    """Accept FeatureWeights, numpy or torch; return FeatureWeights."""
    if isinstance(x, FeatureWeights):
        return x
    return FeatureWeights(x, name=name)


@dataclass
class FeatureMatching:
    """Pairs of features of model A and model B.

    Attributes:
        index_a, index_b: int64 arrays of shape (n_pairs,).
        correlation: float32 array of shape (n_pairs,).
        filtered: reason -> number of pairs removed for it, in the order the filters ran.
        config: the options the matching was made with.
        provenance_a, provenance_b: where the two activation sets came from.
    """

    index_a: np.ndarray
    index_b: np.ndarray
    correlation: np.ndarray
    filtered: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance_a: Provenance = field(default_factory=Provenance)
    provenance_b: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.index_a = np.asarray(self.index_a, dtype=np.int64).ravel()
        self.index_b = np.asarray(self.index_b, dtype=np.int64).ravel()
        self.correlation = np.asarray(self.correlation, dtype=np.float32).ravel()
        check_same_rows(self.index_a, "index_a", self.index_b, "index_b", what="a matching")
        check_same_rows(self.index_a, "index_a", self.correlation, "correlation", what="a matching")

    def __len__(self) -> int:
        return int(self.index_a.shape[0])

    def __repr__(self) -> str:
        return f"FeatureMatching(n_pairs={len(self)}, filtered={self.filtered})"

    def subset(self, keep: Any) -> "FeatureMatching":
        """Pairs where ``keep`` (bool mask or index array) selects, same provenance and config."""
        keep = np.asarray(keep)
        return FeatureMatching(
            self.index_a[keep],
            self.index_b[keep],
            self.correlation[keep],
            filtered=dict(self.filtered),
            config=dict(self.config),
            provenance_a=self.provenance_a,
            provenance_b=self.provenance_b,
        )

    def sorted(self) -> "FeatureMatching":
        """Pairs ordered by decreasing correlation."""
        return self.subset(np.argsort(-self.correlation, kind="stable"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_pairs": len(self),
            "filtered": dict(self.filtered),
            "config": self.config,
            "provenance_a": self.provenance_a.to_dict(),
            "provenance_b": self.provenance_b.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (a directory): ``pairs.safetensors`` + ``matching.json``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {"index_a": self.index_a, "index_b": self.index_b, "correlation": self.correlation},
            str(path / "pairs.safetensors"),
        )
        (path / "matching.json").write_text(json.dumps(self.to_dict(), indent=2, default=json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureMatching":
        from safetensors.numpy import load_file

        path = Path(path)
        for f in ("pairs.safetensors", "matching.json"):
            if not (path / f).exists():
                raise ValueError(f"path {str(path)!r} is not a saved matching: {f} is missing")
        arrays = load_file(str(path / "pairs.safetensors"))
        meta = json.loads((path / "matching.json").read_text())
        return cls(
            arrays["index_a"],
            arrays["index_b"],
            arrays["correlation"],
            filtered=meta.get("filtered", {}),
            config=meta.get("config", {}),
            provenance_a=Provenance.from_dict(meta.get("provenance_a")),
            provenance_b=Provenance.from_dict(meta.get("provenance_b")),
        )


def json_default(o: Any) -> Any:
    """``default=`` for json.dumps: numpy scalars and arrays, and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {describe(o)} to JSON")


def as_points(points: Any, name: str = "points", *, dtype: Any = np.float64, min_rows: int = 1) -> np.ndarray:
    """Dense finite 2-D float matrix (n, d) from numpy / torch / FeatureWeights."""
    if isinstance(points, FeatureWeights):
        points = points.weights
    return as_float_matrix(points, name, dtype=dtype, min_rows=min_rows)


def unit_rows(x: np.ndarray, name: str = "points") -> np.ndarray:
    """(n, d) rows scaled to unit L2 norm, same dtype; all-zero rows are refused (the cosine metric needs them non-zero)."""
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"{name} has {zero.size} all-zero rows (first at row {int(zero[0])}); the cosine metric needs non-zero rows"
        )
    return (x / norms[:, None]).astype(x.dtype, copy=False)

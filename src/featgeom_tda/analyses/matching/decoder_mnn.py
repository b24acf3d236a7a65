"""Cross-space mutual nearest neighbours of decoder rows, after an orthogonal Procrustes alignment.

Two SAEs (or two models) write their decoder rows in different bases, often of different widths, so a row of A
and a row of B can only be compared once the spaces are aligned. :func:`decoder_mutual_neighbours` fits a
(semi-)orthogonal map ``R`` (d_a x d_b) on anchor pairs (for example the activation-correlation
:class:`~featgeom_tda.core.types.FeatureMatching`), maps A's rows into B's space (``W_a R``), and keeps the pairs
(i, j) where B's row j is the nearest neighbour of A's mapped row i AND A's mapped row i is the nearest neighbour of
B's row j.

Different widths: ``R = U V^T`` from the thin SVD ``W_a[anchors]^T W_b[anchors] = U S V^T`` maximises
``tr(R^T W_a^T W_b)`` over maps with orthonormal rows (d_a <= d_b: an isometric embedding of A's space into B's) or
orthonormal columns (d_a > d_b: an orthogonal projection of A's space onto a d_b-dimensional subspace, then an
isometry). This is the square orthogonal Procrustes solution of both sides zero-padded to ``max(d_a, d_b)``
columns, read in B's coordinates; for d_a = d_b it is the orthogonal Procrustes map itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from featgeom_tda.core._validation import as_float_matrix, check_choice
from featgeom_tda.core.types import FeatureMatching, FeatureWeights, Provenance, json_default

__all__ = ["DecoderNeighbours", "decoder_mutual_neighbours", "DECODER_MNN_METRICS", "DECODER_ALIGNMENTS"]

logger = logging.getLogger(__name__)

DECODER_MNN_METRICS = ("cosine", "euclidean")
DECODER_ALIGNMENTS = ("procrustes", None)
# Similarity blocks hold about this many float64 entries (32 MB); no n_a x n_b matrix is ever held.
_CHUNK_ENTRIES = 4_000_000
# Rows whose (mapped) norm is at most this times the largest row norm count as zero (never paired).
_ZERO_TOL = 1e-12


@dataclass
class DecoderNeighbours:
    """Mutual nearest neighbours of two sets of decoder rows in a common space.

    Attributes:
        index_a, index_b: int64 (n_pairs,), ordered by index_a; each index appears at most once.
        cosine: float64 (n_pairs,), cosine similarity of the aligned pair (``W_a[i] R`` and ``W_b[j]``).
        distance: float64 (n_pairs,), Euclidean distance of the aligned pair.
        alignment: float64 (d_a, d_b), the map ``R`` applied to A's rows, or None when ``align=None``.
        filtered: reason -> number of rows left out: "zero_a" / "zero_b" (rows that are zero after the
            alignment; never paired), "not_mutual_a" (A rows whose nearest B row does not return the favour).
        config: the options and the alignment diagnostics (n_anchors, anchor_rank, mean anchor cosine).
        provenance_a, provenance_b: of the two weight matrices (when given as FeatureWeights).
    """

    index_a: np.ndarray
    index_b: np.ndarray
    cosine: np.ndarray
    distance: np.ndarray
    alignment: np.ndarray | None = None
    filtered: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance_a: Provenance = field(default_factory=Provenance)
    provenance_b: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.index_a = np.asarray(self.index_a, dtype=np.int64).ravel()
        self.index_b = np.asarray(self.index_b, dtype=np.int64).ravel()
        self.cosine = np.asarray(self.cosine, dtype=np.float64).ravel()
        self.distance = np.asarray(self.distance, dtype=np.float64).ravel()
        n = self.index_a.shape[0]
        for name in ("index_b", "cosine", "distance"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"index_a has {n} entries but {name} has {getattr(self, name).shape[0]}")
        if self.alignment is not None:
            self.alignment = np.asarray(self.alignment, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.index_a.shape[0])

    def __repr__(self) -> str:
        return f"DecoderNeighbours(n_pairs={len(self)}, metric={self.config.get('metric')!r}, filtered={self.filtered})"

    def to_matching(self) -> FeatureMatching:
        """The pairs as a :class:`FeatureMatching` whose ``correlation`` holds the aligned cosine similarity
        (``config["score"] == "decoder cosine"``), so they feed the geometry stages like any matching."""
        config = {**self.config, "mode": "decoder-mnn", "score": "decoder cosine"}
        return FeatureMatching(
            self.index_a, self.index_b, self.cosine.astype(np.float32), filtered=dict(self.filtered), config=config,
            provenance_a=self.provenance_a, provenance_b=self.provenance_b,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_pairs": len(self),
            "filtered": dict(self.filtered),
            "config": dict(self.config),
            "provenance_a": self.provenance_a.to_dict(),
            "provenance_b": self.provenance_b.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (a directory): ``pairs.safetensors`` (pairs and the alignment) + ``neighbours.json``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"index_a": self.index_a, "index_b": self.index_b, "cosine": self.cosine, "distance": self.distance}
        if self.alignment is not None:
            arrays["alignment"] = np.ascontiguousarray(self.alignment)
        save_file(arrays, str(path / "pairs.safetensors"))
        (path / "neighbours.json").write_text(json.dumps(self.to_dict(), indent=2, default=json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DecoderNeighbours":
        from safetensors.numpy import load_file

        path = Path(path)
        for f in ("pairs.safetensors", "neighbours.json"):
            if not (path / f).exists():
                raise ValueError(f"path {str(path)!r} is not saved decoder neighbours: {f} is missing")
        arrays = load_file(str(path / "pairs.safetensors"))
        meta = json.loads((path / "neighbours.json").read_text())
        return cls(
            arrays["index_a"], arrays["index_b"], arrays["cosine"], arrays["distance"],
            alignment=arrays.get("alignment"), filtered=meta.get("filtered", {}), config=meta.get("config", {}),
            provenance_a=Provenance.from_dict(meta.get("provenance_a")),
            provenance_b=Provenance.from_dict(meta.get("provenance_b")),
        )


def _anchor_indices(anchors: Any, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """(index_a, index_b) of the anchor pairs from a FeatureMatching, a pair of index arrays or an (m, 2) array."""
    if isinstance(anchors, FeatureMatching):
        ia, ib = anchors.index_a, anchors.index_b
    elif isinstance(anchors, (tuple, list)) and len(anchors) == 2:
        ia, ib = np.asarray(anchors[0]), np.asarray(anchors[1])
    else:
        arr = np.asarray(anchors)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(
                "anchors must be a FeatureMatching, a pair (index_a, index_b) or an (m, 2) array of index pairs; "
                f"got {type(anchors).__name__}" + (f" of shape {arr.shape}" if arr.ndim else "")
            )
        ia, ib = arr[:, 0], arr[:, 1]
    ia, ib = np.asarray(ia).ravel(), np.asarray(ib).ravel()
    for name, idx, n, side in (("anchors index_a", ia, n_a, "W_a"), ("anchors index_b", ib, n_b, "W_b")):
        if idx.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer row indices; got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise ValueError(f"{name} holds {int(bad)}, outside the {n} rows of {side}")
    if ia.shape[0] != ib.shape[0]:
        raise ValueError(f"anchors index_a has {ia.shape[0]} entries but index_b has {ib.shape[0]}")
    if ia.shape[0] == 0:
        raise ValueError("anchors hold no pairs; align='procrustes' needs at least one anchor pair")
    return ia.astype(np.int64), ib.astype(np.int64)


def _unit(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm (zero rows left zero) and the mask of zero rows (norm <= _ZERO_TOL * max norm)."""
    norms = np.linalg.norm(Z, axis=1)
    zero = norms <= _ZERO_TOL * (norms.max() if norms.size else 0.0)
    return Z / np.where(zero, 1.0, norms)[:, None], zero


def _procrustes_map(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, int]:
    """``R = U V^T`` (d_a x d_b) maximising tr(R^T A^T B) over (semi-)orthogonal maps, and the rank of A^T B."""
    U, s, Vt = np.linalg.svd(A.T @ B, full_matrices=False)
    rank = int(np.count_nonzero(s > (s[0] if s.size else 0.0) * max(A.shape[1], B.shape[1]) * np.finfo(float).eps))
    return U @ Vt, rank


def _nearest_both_ways(
    A: np.ndarray, B: np.ndarray, zero_a: np.ndarray, zero_b: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest B row of every A row and nearest A row of every B row (-1 for zero rows), by row blocks of A.

    Cosine: the largest inner product of unit rows. Euclidean: the largest ``a.b - |b|^2 / 2`` for A's rows
    and ``a.b - |a|^2 / 2`` for B's rows. Ties go to the lower index.
    """
    n_a, n_b = A.shape[0], B.shape[0]
    sq_a = 0.5 * np.einsum("ij,ij->i", A, A) if metric == "euclidean" else np.zeros(n_a)
    sq_b = 0.5 * np.einsum("ij,ij->i", B, B) if metric == "euclidean" else np.zeros(n_b)
    sq_a = np.where(zero_a, np.inf, sq_a)
    sq_b = np.where(zero_b, np.inf, sq_b)
    nn_b = np.full(n_a, -1, dtype=np.int64)
    best_for_b = np.full(n_b, -np.inf)
    nn_a = np.full(n_b, -1, dtype=np.int64)
    block = max(1, min(n_a, _CHUNK_ENTRIES // max(n_b, 1)))
    for s in range(0, n_a, block):
        e = min(s + block, n_a)
        G = A[s:e] @ B.T
        row = G - sq_b[None, :]
        nn_b[s:e] = np.argmax(row, axis=1)
        col = G - sq_a[s:e, None]
        arg = np.argmax(col, axis=0)
        val = col[arg, np.arange(n_b)]
        better = val > best_for_b  # strict: an earlier block (lower index) keeps a tie
        best_for_b[better] = val[better]
        nn_a[better] = s + arg[better]
    nn_b[zero_a] = -1
    nn_a[zero_b] = -1
    return nn_b, nn_a


def decoder_mutual_neighbours(
    W_a: Any,
    W_b: Any,
    *,
    metric: Literal["cosine", "euclidean"] = "cosine",
    align: Literal["procrustes"] | None = "procrustes",
    anchors: Any = None,
) -> DecoderNeighbours:
    """Pairs (i, j) of decoder rows that are each other's nearest neighbour across two aligned spaces.

    Args:
        W_a: (n_a, d_a) decoder rows of A (numpy, torch or FeatureWeights); W_b: (n_b, d_b) those of B.
        metric: "cosine" (rows compared by direction) or "euclidean" (by position, after the alignment).
        align: "procrustes": fit the (semi-)orthogonal map ``R`` (d_a x d_b) on the anchor pairs and compare
            ``W_a R`` with ``W_b`` (see the module docstring for d_a != d_b); with metric="cosine" the anchor
            rows are scaled to unit norm for the fit, so every anchor counts once whatever its norm.
            None: compare the rows as given (the two decoders must share a basis, so d_a == d_b).
        anchors: the pairs the alignment is fitted on: a FeatureMatching (e.g. from
            :func:`~featgeom_tda.analyses.matching.match_features`), a pair ``(index_a, index_b)`` or an (m, 2)
            array. Needed by align="procrustes" and refused with align=None. With fewer than ``min(d_a, d_b)``
            independent anchors the map is underdetermined (logged as a warning; see ``config["anchor_rank"]``).
    Returns:
        :class:`DecoderNeighbours` ordered by index_a; each row appears in at most one pair. Rows that are zero
        (after the alignment) are never paired.
    """
    check_choice(metric, "metric", DECODER_MNN_METRICS)
    check_choice(align, "align", DECODER_ALIGNMENTS)
    prov_a = W_a.provenance if isinstance(W_a, FeatureWeights) else Provenance()
    prov_b = W_b.provenance if isinstance(W_b, FeatureWeights) else Provenance()
    A = as_float_matrix(W_a, "W_a")
    B = as_float_matrix(W_b, "W_b")
    (n_a, d_a), (n_b, d_b) = A.shape, B.shape
    config: dict[str, Any] = {
        "metric": metric, "align": align, "n_features_a": n_a, "n_features_b": n_b, "d_a": d_a, "d_b": d_b,
    }
    R = None
    if align is None:
        if anchors is not None:
            raise ValueError("anchors are only used by align='procrustes'; got anchors with align=None")
        if d_a != d_b:
            raise ValueError(
                f"W_a has {d_a} columns but W_b has {d_b}; align=None compares rows in one shared basis, so the "
                "widths must match (use align='procrustes' with anchors to map A's space into B's)"
            )
        mapped = A
    else:
        if anchors is None:
            raise ValueError(
                "align='procrustes' needs anchors (a FeatureMatching, (index_a, index_b) or an (m, 2) array of "
                "row pairs) to fit the map; pass align=None when the two decoders share a basis"
            )
        ia, ib = _anchor_indices(anchors, n_a, n_b)
        fit_a, fit_b = A[ia], B[ib]
        if metric == "cosine":
            fit_a, fit_b = _unit(fit_a)[0], _unit(fit_b)[0]
        R, rank = _procrustes_map(fit_a, fit_b)
        if rank < min(d_a, d_b):
            logger.warning(
                "decoder alignment: the %d anchor pairs span rank %d < min(d_a, d_b) = %d; the Procrustes map is "
                "underdetermined outside their span", ia.size, rank, min(d_a, d_b),
            )
        mapped = A @ R
        ua, ub = _unit(mapped[ia])[0], _unit(B[ib])[0]
        config.update(
            n_anchors=int(ia.size),
            anchor_rank=rank,
            anchor_cosine=float(np.mean(np.einsum("ij,ij->i", ua, ub))),
            dims=(
                "same width: orthogonal map" if d_a == d_b
                else "d_a < d_b: isometric embedding of A's space into B's (R R^T = I)" if d_a < d_b
                else "d_a > d_b: orthogonal projection of A's space onto d_b dimensions, then an isometry (R^T R = I)"
            ),
        )

    unit_a, zero_a = _unit(mapped)
    unit_b, zero_b = _unit(B)
    if metric == "cosine":
        nn_b, nn_a = _nearest_both_ways(unit_a, unit_b, zero_a, zero_b, metric)
    else:
        nn_b, nn_a = _nearest_both_ways(mapped, B, zero_a, zero_b, metric)
    has = nn_b >= 0
    mutual = has.copy()
    mutual[has] = nn_a[nn_b[has]] == np.flatnonzero(has)
    ia_out = np.flatnonzero(mutual)
    ib_out = nn_b[ia_out]
    cos = np.einsum("ij,ij->i", unit_a[ia_out], unit_b[ib_out])
    dist = np.linalg.norm(mapped[ia_out] - B[ib_out], axis=1)
    filtered = {"zero_a": int(zero_a.sum()), "zero_b": int(zero_b.sum()), "not_mutual_a": int(has.sum() - mutual.sum())}
    return DecoderNeighbours(
        ia_out, ib_out, cos, dist, alignment=R, filtered=filtered, config=config,
        provenance_a=prov_a, provenance_b=prov_b,
    )

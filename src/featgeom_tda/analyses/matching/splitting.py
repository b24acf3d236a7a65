"""Feature splitting across SAE widths: which narrow features break into several wide features.

Two SAEs trained on the same hook, a narrow one (n features) and a wide one (m >= n features), are compared
on the same token rows. Every live wide feature is assigned to the narrow feature it is most correlated
with (Pearson correlation of the token activations, :func:`~featgeom_tda.analyses.matching.top_correlations`
from the wide side with ``k=1``, so the matching is one-to-many: a narrow feature can collect several wide
children, a wide feature has at most one parent). A *family* is a narrow feature together with the wide
children whose correlation with it is at least ``min_correlation`` **and** whose decoder row has cosine at
least ``min_cosine`` with its decoder row. Both conditions are needed: correlation alone pairs features that
fire together but write different directions, cosine alone pairs look-alike directions that fire on
different tokens.

Statistics (:class:`SplitFamilies`): the family size distribution, the fraction of live narrow features that
split (two or more children), and for each family how well the children's directions add back up to the
parent: the cosine of the normalised sum of the children's unit decoder rows with the parent's row
(``reconstruction_cosine``; the sum and the mean give the same cosine), beside the cosine of the best single
child (``best_child_cosine``) as its baseline: a split is "reconstructed" when the sum explains the parent
direction at least ``reconstruction_threshold``. Dead features (zero variance over the rows) are never
assigned, on either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from featgeom_tda.analyses.matching.top import CORRELATION_METHODS, top_correlations
from featgeom_tda.core._validation import check_choice, check_number, check_positive_int
from featgeom_tda.core.types import Provenance, as_activations, as_points

__all__ = ["SplitFamilies", "split_families"]


@dataclass
class SplitFamilies:
    """Families of wide SAE features under the narrow features they split from.

    Per wide feature (arrays of shape (n_wide,)):
        parent: int64, the most correlated live narrow feature (-1 for a dead wide feature, or when every
            narrow feature is dead).
        correlation: float32, its activation correlation with ``parent`` (NaN where parent is -1).
        cosine: float32, cosine of its decoder row with the parent's (NaN where parent is -1 or a row is 0).
        in_family: bool, passes both thresholds (and the ``max_children`` cap), so it is a child of ``parent``.
    Per narrow feature (arrays of shape (n_narrow,)):
        family_size: int64, number of children (0 for dead narrow features).
        reconstruction_cosine: float32, cosine of the normalised sum of the children's unit decoder rows with
            the parent's decoder row (NaN without children; equal to the child's cosine for one child).
        best_child_cosine: float32, the largest single-child cosine (NaN without children).
    dead_narrow, dead_wide: bool masks of the features with zero variance over the rows.
    n_capped: children that passed both thresholds but were dropped by ``max_children``.
    config: the options; provenance_narrow / provenance_wide: where the activations came from.
    """

    parent: np.ndarray
    correlation: np.ndarray
    cosine: np.ndarray
    in_family: np.ndarray
    family_size: np.ndarray
    reconstruction_cosine: np.ndarray
    best_child_cosine: np.ndarray
    dead_narrow: np.ndarray
    dead_wide: np.ndarray
    n_capped: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    provenance_narrow: Provenance = field(default_factory=Provenance)
    provenance_wide: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.parent = np.asarray(self.parent, dtype=np.int64).ravel()
        self.correlation = np.asarray(self.correlation, dtype=np.float32).ravel()
        self.cosine = np.asarray(self.cosine, dtype=np.float32).ravel()
        self.in_family = np.asarray(self.in_family, dtype=bool).ravel()
        self.family_size = np.asarray(self.family_size, dtype=np.int64).ravel()
        self.reconstruction_cosine = np.asarray(self.reconstruction_cosine, dtype=np.float32).ravel()
        self.best_child_cosine = np.asarray(self.best_child_cosine, dtype=np.float32).ravel()
        self.dead_narrow = np.asarray(self.dead_narrow, dtype=bool).ravel()
        self.dead_wide = np.asarray(self.dead_wide, dtype=bool).ravel()
        n_wide, n_narrow = self.parent.shape[0], self.family_size.shape[0]
        for name in ("correlation", "cosine", "in_family", "dead_wide"):
            if getattr(self, name).shape[0] != n_wide:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} entries but parent has {n_wide}")
        for name in ("reconstruction_cosine", "best_child_cosine", "dead_narrow"):
            if getattr(self, name).shape[0] != n_narrow:
                raise ValueError(
                    f"{name} has {getattr(self, name).shape[0]} entries but family_size has {n_narrow}"
                )

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def n_narrow(self) -> int:
        return int(self.family_size.shape[0])

    @property
    def n_wide(self) -> int:
        return int(self.parent.shape[0])

    @property
    def n_live_narrow(self) -> int:
        return int((~self.dead_narrow).sum())

    @property
    def n_families(self) -> int:
        """Narrow features with at least one child."""
        return int((self.family_size >= 1).sum())

    @property
    def split_mask(self) -> np.ndarray:
        """bool (n_narrow,): narrow features that split (two or more children)."""
        return self.family_size >= 2

    @property
    def n_split(self) -> int:
        return int(self.split_mask.sum())

    # -- families ------------------------------------------------------------------------------------
    def children(self, narrow: int) -> np.ndarray:
        """The wide children of narrow feature ``narrow``, most correlated first (ties: lower index first)."""
        if isinstance(narrow, bool) or not isinstance(narrow, (int, np.integer)) or not 0 <= narrow < self.n_narrow:
            raise ValueError(f"narrow must be an integer in [0, {self.n_narrow - 1}]; got {narrow!r}")
        idx = np.flatnonzero(self.in_family & (self.parent == narrow))
        return idx[np.argsort(-self.correlation[idx].astype(np.float64), kind="stable")]

    def families(self) -> dict[int, np.ndarray]:
        """Narrow feature -> its children (most correlated first), for every narrow feature with a child."""
        return {int(i): self.children(int(i)) for i in np.flatnonzero(self.family_size >= 1)}

    # -- statistics ----------------------------------------------------------------------------------
    def size_distribution(self) -> dict[int, int]:
        """Family size -> number of live narrow features with that many children (sizes 0 to the largest)."""
        sizes = self.family_size[~self.dead_narrow]
        counts = np.bincount(sizes, minlength=1) if sizes.size else np.zeros(1, dtype=np.int64)
        return {int(s): int(c) for s, c in enumerate(counts)}

    @property
    def split_fraction(self) -> float:
        """Fraction of live narrow features with two or more children (NaN when all are dead)."""
        live = self.n_live_narrow
        return float(self.n_split / live) if live else float("nan")

    @property
    def reconstructed_mask(self) -> np.ndarray:
        """bool (n_narrow,): split features whose children's direction sum reaches ``reconstruction_threshold``."""
        threshold = float(self.config.get("reconstruction_threshold", 0.9))
        with np.errstate(invalid="ignore"):
            return self.split_mask & (self.reconstruction_cosine >= threshold)

    @property
    def reconstructed_fraction(self) -> float:
        """Fraction of the split narrow features whose children's directions sum back to the parent's
        (reconstruction cosine >= ``reconstruction_threshold``); NaN when none split."""
        n = self.n_split
        return float(self.reconstructed_mask.sum() / n) if n else float("nan")

    def summary(self) -> dict[str, Any]:
        """Counts and fractions, JSON-ready."""
        split = self.split_mask
        rec = self.reconstruction_cosine[split].astype(np.float64)
        best = self.best_child_cosine[split].astype(np.float64)
        live_wide = ~self.dead_wide
        sizes = self.family_size[self.family_size >= 1]
        return {
            "n_narrow": self.n_narrow,
            "n_wide": self.n_wide,
            "n_dead_narrow": int(self.dead_narrow.sum()),
            "n_dead_wide": int(self.dead_wide.sum()),
            "n_families": self.n_families,
            "n_split": self.n_split,
            "split_fraction": self.split_fraction,
            "mean_family_size": float(sizes.mean()) if sizes.size else float("nan"),
            "max_family_size": int(self.family_size.max()) if self.n_narrow else 0,
            "n_children": int(self.in_family.sum()),
            "n_unassigned_wide": int((live_wide & ~self.in_family).sum()),
            "n_capped": int(self.n_capped),
            "reconstructed_fraction": self.reconstructed_fraction,
            "median_reconstruction_cosine": float(np.median(rec)) if rec.size else float("nan"),
            "median_best_child_cosine": float(np.median(best)) if best.size else float("nan"),
        }

    def to_dict(self) -> dict[str, Any]:
        """Summary, size distribution, the families (parent -> children) with their cosines, config, provenance."""
        fams = self.families()
        return {
            "summary": self.summary(),
            "size_distribution": {str(k): v for k, v in self.size_distribution().items()},
            "families": {
                str(p): {
                    "children": c.tolist(),
                    "correlation": [float(x) for x in self.correlation[c]],
                    "cosine": [float(x) for x in self.cosine[c]],
                    "reconstruction_cosine": float(self.reconstruction_cosine[p]),
                    "best_child_cosine": float(self.best_child_cosine[p]),
                }
                for p, c in fams.items()
            },
            "config": dict(self.config),
            "provenance_narrow": self.provenance_narrow.to_dict(),
            "provenance_wide": self.provenance_wide.to_dict(),
        }

    def __repr__(self) -> str:
        return (
            f"SplitFamilies(n_narrow={self.n_narrow}, n_wide={self.n_wide}, n_families={self.n_families}, "
            f"n_split={self.n_split}, split_fraction={self.split_fraction:.3g})"
        )


def _unit_rows_or_zero(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 rows scaled to unit norm (zero rows stay zero) and the mask of zero rows."""
    norms = np.linalg.norm(w, axis=1)
    zero = norms == 0
    return w / np.where(zero, 1.0, norms)[:, None], zero


def split_families(
    acts_narrow: Any,
    acts_wide: Any,
    W_narrow: Any,
    W_wide: Any,
    *,
    min_correlation: float = 0.3,
    min_cosine: float = 0.3,
    max_children: int | None = None,
    reconstruction_threshold: float = 0.9,
    chunk_size: int | None = None,
    device: Any = None,
    n_jobs: int | None = None,
    method: Literal["auto", "fused", "scipy", "dense"] = "auto",
    progress: bool = False,
) -> SplitFamilies:
    """Families of wide SAE features that split from the features of a narrower SAE on the same hook.

    Args:
        acts_narrow: (n_tokens, n) activations of the narrow SAE (FeatureActivations, scipy sparse, torch or
            numpy).
        acts_wide: (n_tokens, m) activations of the wide SAE over the same token rows, m >= n.
        W_narrow: (n, d) decoder rows of the narrow SAE (FeatureWeights, numpy or torch).
        W_wide: (m, d) decoder rows of the wide SAE, same d.
        min_correlation: a child's activation correlation with its parent must be >= this (in [-1, 1]).
        min_cosine: a child's decoder cosine with its parent must be >= this (in [-1, 1]).
        max_children: keep at most this many children per family, the most correlated (ties: lower wide
            index); the others are counted in ``n_capped``. None (default): no cap.
        reconstruction_threshold: a split family counts as reconstructed when the cosine of its children's
            summed unit decoder rows with the parent's row is >= this (in [-1, 1]).
        chunk_size, device, n_jobs, method, progress: passed to
            :func:`~featgeom_tda.analyses.matching.top_correlations`.

    Returns:
        :class:`SplitFamilies`; every live wide feature gets its most correlated live narrow feature as
        ``parent`` (ties: lower narrow index), and joins its family when it passes both thresholds.
    """
    min_correlation = check_number(min_correlation, "min_correlation", low=-1.0, high=1.0)
    min_cosine = check_number(min_cosine, "min_cosine", low=-1.0, high=1.0)
    reconstruction_threshold = check_number(reconstruction_threshold, "reconstruction_threshold", low=-1.0, high=1.0)
    if max_children is not None:
        max_children = check_positive_int(max_children, "max_children")
    check_choice(method, "method", CORRELATION_METHODS)

    a_narrow = as_activations(acts_narrow, "acts_narrow")
    a_wide = as_activations(acts_wide, "acts_wide")
    n, m = a_narrow.n_features, a_wide.n_features
    if m < n:
        raise ValueError(
            f"acts_wide has {m} features but acts_narrow has {n}; pass the narrow SAE first and the wide one "
            "(at least as many features) second"
        )
    w_narrow = as_points(W_narrow, "W_narrow")
    w_wide = as_points(W_wide, "W_wide")
    if w_narrow.shape[0] != n:
        raise ValueError(f"W_narrow has {w_narrow.shape[0]} rows but acts_narrow has {n} features; they must match")
    if w_wide.shape[0] != m:
        raise ValueError(f"W_wide has {w_wide.shape[0]} rows but acts_wide has {m} features; they must match")
    if w_narrow.shape[1] != w_wide.shape[1]:
        raise ValueError(
            f"W_narrow rows have dimension {w_narrow.shape[1]} but W_wide rows have {w_wide.shape[1]}; "
            "the two SAEs must decode into the same space"
        )

    # One-to-many: from the wide side, each wide feature's single best narrow feature.
    top = top_correlations(
        a_wide, a_narrow, k=1, chunk_size=chunk_size, device=device, n_jobs=n_jobs, method=method,
        progress=progress,
    )
    parent = top.indices[:, 0].copy()
    correlation = top.values[:, 0].astype(np.float64)
    dead_wide, dead_narrow = top.dead_a, top.dead_b
    has_parent = parent >= 0

    u_narrow, zero_narrow = _unit_rows_or_zero(w_narrow)
    u_wide, zero_wide = _unit_rows_or_zero(w_wide)
    cosine = np.full(m, np.nan)
    idx = np.flatnonzero(has_parent)
    cosine[idx] = np.einsum("ij,ij->i", u_wide[idx], u_narrow[parent[idx]])
    cosine[idx[zero_wide[idx] | zero_narrow[parent[idx]]]] = np.nan

    with np.errstate(invalid="ignore"):
        passing = has_parent & (correlation >= min_correlation) & (cosine >= min_cosine)
    in_family = passing.copy()
    n_capped = 0
    if max_children is not None:
        cand = np.flatnonzero(passing)
        # by parent, then decreasing correlation, then wide index
        order = cand[np.lexsort((cand, -correlation[cand], parent[cand]))]
        p = parent[order]
        starts = np.r_[0, np.flatnonzero(p[1:] != p[:-1]) + 1] if p.size else np.zeros(0, dtype=np.int64)
        rank = np.arange(p.size) - np.repeat(starts, np.diff(np.r_[starts, p.size]))
        dropped = order[rank >= max_children]
        in_family[dropped] = False
        n_capped = int(dropped.size)

    children = np.flatnonzero(in_family)
    family_size = np.bincount(parent[children], minlength=n).astype(np.int64)
    summed = np.zeros_like(u_narrow)
    np.add.at(summed, parent[children], u_wide[children])
    best = np.full(n, -np.inf)
    np.maximum.at(best, parent[children], cosine[children])
    has_children = family_size >= 1
    s_unit, s_zero = _unit_rows_or_zero(summed)
    reconstruction = np.einsum("ij,ij->i", s_unit, u_narrow)
    reconstruction[~has_children | s_zero | zero_narrow] = np.nan
    best[~has_children] = np.nan

    config = {
        "min_correlation": min_correlation,
        "min_cosine": min_cosine,
        "max_children": max_children,
        "reconstruction_threshold": reconstruction_threshold,
        "method": top.method,
        "n_rows": top.n_rows,
    }
    return SplitFamilies(
        parent=parent,
        correlation=np.where(has_parent, correlation, np.nan),
        cosine=cosine,
        in_family=in_family,
        family_size=family_size,
        reconstruction_cosine=reconstruction,
        best_child_cosine=best,
        dead_narrow=dead_narrow,
        dead_wide=dead_wide,
        n_capped=n_capped,
        config=config,
        provenance_narrow=a_narrow.provenance,
        provenance_wide=a_wide.provenance,
    )

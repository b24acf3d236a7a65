"""The persistence-diagram type and its summaries: entropy, Betti curves.

One diagram format flows everywhere: a float64 array of shape (n_bars, 3) whose rows are
``(birth, death, dimension)``. ``death == inf`` marks a class that never dies in the computed filtration;
bars of zero length are dropped. Summaries (total / max persistence, entropy) use finite bars only and
report the number of infinite bars separately; Betti curves count infinite bars as alive for every grid
value >= birth.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featgeom_tda.core.types import json_default
from featgeom_tda.core._validation import check_positive_int, to_numpy

__all__ = ["PersistenceDiagrams", "persistence_entropy", "betti_curve"]

# ---------------------------------------------------------------------------------------------------
# result type
# ---------------------------------------------------------------------------------------------------
@dataclass
class PersistenceDiagrams:
    """Persistence diagrams of one point cloud.

    Attributes:
        bars: float64 (n_bars, 3) rows ``(birth, death, dim)``; ``death = inf`` for classes that never die
            in the computed filtration (see module notes).
        maxdim: highest homology dimension computed.
        metric: "euclidean" or "cosine".
        engine: the engine that computed the final diagram: "oineus", "giotto" or "ripser".
        n_points: number of points the filtration was built on (landmarks if any).
        n_input: number of input rows.
        landmark_indices: int64 (n_points,) rows of the input used, or None when all rows were used.
        threshold: largest filtration value computed (inf for a full run).
        exact: True when the bars equal those of the full Rips filtration.
        seconds: wall time of the engine runs (the threshold search included).
        config: the options of the run.
    """

    bars: np.ndarray
    maxdim: int
    metric: str = "euclidean"
    engine: str = "giotto"
    n_points: int = 0
    n_input: int = 0
    landmark_indices: np.ndarray | None = None
    threshold: float = math.inf
    exact: bool = True
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bars = _check_bars(self.bars, "bars")

    def __len__(self) -> int:
        return int(self.bars.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"H{k}={v}" for k, v in self.n_bars().items())
        return f"PersistenceDiagrams({counts}, n_points={self.n_points}, metric={self.metric!r}, exact={self.exact})"

    def dim(self, k: int) -> np.ndarray:
        """Bars of dimension ``k`` as a float64 (m, 2) array of (birth, death)."""
        k = check_positive_int(k, "k", minimum=0)
        return self.bars[self.bars[:, 2] == k, :2].copy()

    def finite(self, k: int) -> np.ndarray:
        """Finite bars of dimension ``k``, (m, 2)."""
        d = self.dim(k)
        return d[np.isfinite(d[:, 1])]

    def n_bars(self) -> dict[int, int]:
        return {k: int((self.bars[:, 2] == k).sum()) for k in range(self.maxdim + 1)}

    def summary(self) -> dict[str, Any]:
        """Per dimension: bars, infinite bars, total and max persistence, persistence entropy (finite bars)."""
        out: dict[str, Any] = {}
        for k in range(self.maxdim + 1):
            d = self.dim(k)
            fin = d[np.isfinite(d[:, 1])]
            life = fin[:, 1] - fin[:, 0]
            out[f"H{k}"] = {
                "n_bars": int(d.shape[0]),
                "n_infinite": int(d.shape[0] - fin.shape[0]),
                "total_persistence": float(life.sum()),
                "max_persistence": float(life.max()) if life.size else 0.0,
                "persistence_entropy": persistence_entropy(fin),
            }
        return out

    def betti_curve(self, dim: int, grid: Any) -> np.ndarray:
        return betti_curve(self, dim, grid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly metadata and summary (the bars themselves go to safetensors in :meth:`save`)."""
        return {
            "maxdim": self.maxdim,
            "metric": self.metric,
            "engine": self.engine,
            "n_points": self.n_points,
            "n_input": self.n_input,
            "threshold": None if math.isinf(self.threshold) else float(self.threshold),
            "exact": self.exact,
            "seconds": self.seconds,
            "config": self.config,
            "summary": self.summary(),
        }

    def save(self, path: str | Path) -> Path:
        """Write directory ``path`` with ``bars.safetensors`` and ``diagrams.json``."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"bars": np.ascontiguousarray(self.bars)}
        if self.landmark_indices is not None:
            arrays["landmark_indices"] = np.ascontiguousarray(self.landmark_indices, dtype=np.int64)
        save_file(arrays, str(path / "bars.safetensors"))
        (path / "diagrams.json").write_text(json.dumps(self.to_dict(), indent=2, default=json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PersistenceDiagrams":
        from safetensors.numpy import load_file

        path = Path(path)
        for f in ("bars.safetensors", "diagrams.json"):
            if not (path / f).exists():
                raise ValueError(f"path {str(path)!r} is not saved persistence diagrams: {f} is missing")
        arrays = load_file(str(path / "bars.safetensors"))
        meta = json.loads((path / "diagrams.json").read_text())
        thr = meta.get("threshold")
        return cls(
            bars=arrays["bars"],
            maxdim=int(meta["maxdim"]),
            metric=meta["metric"],
            engine=meta["engine"],
            n_points=int(meta["n_points"]),
            n_input=int(meta["n_input"]),
            landmark_indices=arrays.get("landmark_indices"),
            threshold=math.inf if thr is None else float(thr),
            exact=bool(meta["exact"]),
            seconds=float(meta.get("seconds", 0.0)),
            config=meta.get("config", {}),
        )


def _check_bars(bars: Any, name: str) -> np.ndarray:
    arr = to_numpy(bars, name, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n_bars, 3) of (birth, death, dim); got shape {arr.shape}")
    if np.isnan(arr).any() or np.isinf(arr[:, 0]).any() or np.isinf(arr[:, 2]).any():
        raise ValueError(f"{name} must hold finite births and dimensions (only deaths may be inf)")
    if (arr[:, 1] < arr[:, 0]).any():
        raise ValueError(f"{name} has bars with death < birth")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------
def diagram_of(diagrams: Any, dim: int, name: str) -> np.ndarray:
    """(m, 2) diagram of dimension ``dim`` from PersistenceDiagrams, (m, 3) canonical or (m, 2) arrays."""
    if isinstance(diagrams, PersistenceDiagrams):
        if dim > diagrams.maxdim:
            raise ValueError(f"{name} was computed up to dimension {diagrams.maxdim}; dim={dim} is not available")
        return diagrams.dim(dim)
    arr = to_numpy(diagrams, name, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim == 2 and arr.shape[1] == 3:
        return _check_bars(arr, name)[arr[:, 2] == dim, :2]
    if arr.ndim == 2 and arr.shape[1] == 2:
        if np.isnan(arr).any() or np.isinf(arr[:, 0]).any() or (arr[:, 1] < arr[:, 0]).any():
            raise ValueError(f"{name} must hold finite births and deaths >= births (deaths may be inf)")
        return arr
    raise ValueError(
        f"{name} must be PersistenceDiagrams or an array of shape (m, 2) (birth, death) or (m, 3) "
        f"(birth, death, dim); got shape {arr.shape}"
    )


def persistence_entropy(diagram: Any) -> float:
    """Shannon entropy (natural log) of the finite, positive bar lengths of an (m, 2) diagram.

    With lengths l_i and p_i = l_i / sum(l): ``-sum p_i log p_i``; 0.0 when there is no such bar.
    """
    arr = to_numpy(diagram, "diagram", dtype=np.float64)
    if arr.size == 0:
        return 0.0
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"diagram must be an (m, 2) array of (birth, death); got shape {arr.shape}")
    life = arr[:, 1] - arr[:, 0]
    life = life[np.isfinite(life) & (life > 0)]
    if life.size == 0:
        return 0.0
    p = life / life.sum()
    return float(-(p * np.log(p)).sum())


def betti_curve(diagrams: Any, dim: int, grid: Any) -> np.ndarray:
    """int64 array: number of bars of dimension ``dim`` alive at each grid value (birth <= t < death)."""
    dim = check_positive_int(dim, "dim", minimum=0)
    g = to_numpy(grid, "grid", dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all():
        raise ValueError(f"grid must be a non-empty 1-D array of finite values; got shape {g.shape}")
    d = diagram_of(diagrams, dim, "diagrams")
    alive = (d[:, 0][None, :] <= g[:, None]) & (g[:, None] < d[:, 1][None, :])
    return alive.sum(axis=1).astype(np.int64)

"""Plain outputs of a report: CSV tables and a strict results.json (NaN and inf written as null)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["write_csv", "write_results_json", "to_plain_json"]


def to_plain_json(obj: Any) -> Any:
    """Recursively convert numpy values to Python and non-finite floats to None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_plain_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_results_json(path: str | Path, results: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_plain_json(results), indent=1, allow_nan=False))
    return path


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write one table; every row must have one value per column."""
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"rows[{i}] has {len(row)} values but there are {len(columns)} columns")
            writer.writerow([to_plain_json(v) for v in row])
    return path

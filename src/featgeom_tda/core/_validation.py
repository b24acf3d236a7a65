"""Input checks that raise ``ValueError`` naming the argument, what was expected and what was received.

Every public function validates its inputs with these helpers so that bad input never turns into a deep
traceback or a silently wrong number.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp


def describe(x: Any) -> str:
    """Short description of an array-like for error messages: type, shape and dtype."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    kind = type(x).__name__
    if shape is None:
        return kind
    return f"{kind} of shape {tuple(shape)} and dtype {dtype}"


def to_numpy(x: Any, name: str, *, dtype: Any = None) -> np.ndarray:
    """Convert numpy / torch (dense) / list / FeatureWeights input to a numpy array; sparse input is refused.

    A :class:`~featgeom_tda.core.types.FeatureWeights` stands for its ``.weights`` matrix. torch float16 and
    bfloat16 tensors (which numpy cannot hold, or holds only at half precision) become float64 (exactly);
    tensors on the meta device, which have no values, are refused.
    """
    if sp.issparse(x):
        raise ValueError(f"{name} must be a dense array, got sparse {describe(x)}")
    x = _unwrap_weights(x)
    if _is_torch(x):
        _check_not_meta(x, name)
        if x.is_sparse or getattr(x, "layout", None) not in (None, _torch_strided()):
            x = x.to_dense()
        torch = _torch()
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.to(torch.float64)
        x = x.numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be array-like of numbers, got {describe(x)}: {exc}") from None
    if arr.dtype == object:
        raise ValueError(f"{name} must be array-like of numbers, got an object array")
    return arr


def check_rank(x: Any, name: str, rank: int) -> None:
    """Raise unless ``x`` has exactly ``rank`` dimensions."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != rank:
        got = "no shape" if shape is None else f"{len(shape)}-D shape {tuple(shape)}"
        raise ValueError(f"{name} must be {rank}-D, got {got}")


def check_not_empty(x: Any, name: str) -> None:
    """Raise if ``x`` has a zero-length dimension."""
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) == 0 or any(s == 0 for s in shape):
        raise ValueError(f"{name} must not be empty, got shape {shape}")


def check_finite(x: Any, name: str) -> None:
    """Raise if ``x`` (dense numpy, scipy sparse or torch) holds NaN or inf, with the count and first index."""
    if sp.issparse(x):
        values = x.data
    elif _is_torch(x):
        _check_not_meta(x, name)
        t = x.coalesce().values() if x.is_sparse else x
        bad = ~_torch().isfinite(t)
        if bool(bad.any()):
            raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf values; expected only finite numbers")
        return
    else:
        values = np.asarray(x)
    if values.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        first = np.argwhere(bad)[0].tolist() if not sp.issparse(x) else None
        where = f" (first at index {first})" if first is not None else ""
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf values{where}; expected only finite numbers")


def check_same_rows(a: Any, name_a: str, b: Any, name_b: str, *, what: str = "paired inputs") -> None:
    """Raise if two inputs do not have the same number of rows."""
    na, nb = int(a.shape[0]), int(b.shape[0])
    if na != nb:
        raise ValueError(f"{name_a} has {na} rows but {name_b} has {nb}; {what} need the same rows")


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as float, raising unless it is a real number (not a bool, not NaN) in the range.

    ``low`` / ``high`` bound the range (``None``: unbounded), closed unless ``low_open`` / ``high_open``;
    inf is refused unless ``allow_inf``; numeric strings are refused too (``float("1e3")`` is the caller's job).
    """
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    expected = (
        f"a number in {lo}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{hi}"
    )
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be {expected}" + ("" if allow_inf else " (finite)") + f"; got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return v


def check_fraction(value: Any, name: str, *, open_low: bool = True) -> float:
    """Return ``value`` as float, raising unless 0 < value <= 1 (or 0 <= value <= 1); bools are refused."""
    return check_number(value, name, low=0.0, high=1.0, low_open=open_low)


def as_float_matrix(x: Any, name: str, *, dtype: Any = np.float64, min_rows: int = 1) -> np.ndarray:
    """Dense 2-D finite float matrix from numpy / torch / FeatureWeights input, with the standard checks.

    Half-precision input (numpy float16, torch float16 / bfloat16) is converted to ``dtype`` (float64 by
    default) before any check or computation.
    """
    arr = to_numpy(x, name)
    check_rank(arr, name, 2)
    check_not_empty(arr, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(dtype, copy=False)
    check_finite(arr, name)
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows; this needs at least {min_rows}")
    return arr


def _unwrap_weights(x: Any) -> Any:
    """The ``.weights`` matrix of a :class:`~featgeom_tda.core.types.FeatureWeights`; anything else unchanged.

    Recognised by its shape (a numpy ``weights`` matrix beside ``provenance``), so this module need not import
    ``types``, which imports it.
    """
    weights = getattr(x, "weights", None)
    if isinstance(weights, np.ndarray) and hasattr(x, "provenance"):
        return weights
    return x


def _check_not_meta(x: Any, name: str) -> None:
    """Raise if the torch tensor ``x`` lives on the meta device (shape only, no values)."""
    device = getattr(x, "device", None)
    if getattr(device, "type", None) == "meta" or getattr(x, "is_meta", False):
        raise ValueError(f"{name} is on the meta device; it has no values")


def _is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach")


def _torch():
    import torch

    return torch


def _torch_strided():
    return _torch().strided


def check_output_dir(path: Any, name: str) -> None:
    """Raise ValueError unless ``path`` is a directory or can be made one: neither it nor a parent is a file."""
    from pathlib import Path

    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            where = "is a file" if q == p else f"is inside {str(q)!r}, which is a file"
            raise ValueError(f"{name} {str(p)!r} {where}; give a directory")


def to_torch_device(device: Any, name: str = "device") -> Any:
    """``device`` as a ``torch.device``; ValueError naming ``name`` for a string torch does not know."""
    torch = _torch()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from None

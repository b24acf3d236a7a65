"""The one fingerprint helper: stable short digests of JSON-able values, texts, arrays and files.

Every cache of the package (pipeline stages, the embedded default's staged build, trained SAEs, activation
stores) keys its entries with :func:`fingerprint`; store shards are checked with :func:`file_digest`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["fingerprint", "text_digest", "array_digest", "file_digest", "Hasher"]


def _plain(o: Any) -> Any:
    """JSON fallback for numpy scalars and arrays, paths and sets, so fingerprints never depend on a repr."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"cannot fingerprint a value of type {type(o).__name__}")


def fingerprint(obj: Any, *, length: int | None = 16, compact: bool = True) -> str:
    """Hex sha256 (first ``length`` characters; None: all 64) of ``obj`` as canonical JSON (sorted keys).

    ``compact=False`` uses json's default separators (``", "`` and ``": "``), the recipe of digests that
    were persisted before this helper existed.
    """
    separators = (",", ":") if compact else None
    blob = json.dumps(obj, sort_keys=True, default=_plain, separators=separators)
    digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    return digest if length is None else digest[:length]


def text_digest(texts: Iterable[str], *, length: int = 16) -> str:
    """Hex sha256 of texts joined by NUL (a NUL never occurs inside a document)."""
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:length]


class Hasher:
    """Incremental sha256 over arrays and strings: dtype and shape are part of an array's digest."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update_text(self, text: str) -> "Hasher":
        self._h.update(text.encode("utf-8"))
        self._h.update(b"\x00")
        return self

    def update_array(self, array: Any) -> "Hasher":
        a = np.ascontiguousarray(array)
        self.update_text(f"{a.dtype.str}{a.shape}")
        self._h.update(a.tobytes())
        return self

    def update_bytes(self, data: bytes) -> "Hasher":
        self._h.update(data)
        return self

    def hexdigest(self, length: int | None = None) -> str:
        d = self._h.hexdigest()
        return d if length is None else d[:length]


def array_digest(*arrays: Any, length: int | None = None) -> str:
    """Hex sha256 over arrays (dtype, shape and bytes of each)."""
    h = Hasher()
    for a in arrays:
        h.update_array(a)
    return h.hexdigest(length)


def file_digest(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Full hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

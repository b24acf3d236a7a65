"""On-disk activation store: a directory of safetensors shards + a JSON manifest.

Layout::

    store/
      manifest.json             shapes, dtypes, provenance, per-shard row ranges and sha256 checksums
      shard_00000.safetensors   one CSR row block: indptr, indices, data, token_ids, doc_index, position
      shard_00001.safetensors
      ...

Writes are crash-safe: a shard is written under a temporary name and renamed, then the manifest is rewritten
the same way. A shard that is on disk but not in the manifest (the writer died between the two renames) is
ignored and overwritten on resume, so a reader never sees half a shard. Reading a row range opens only the
shards that overlap it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._cache import file_digest
from featgeom_tda.core.types import FeatureActivations, Provenance, as_activations

__all__ = ["ActivationStore", "StoreError", "ShardInfo"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_TENSORS = ("indptr", "indices", "data", "token_ids", "doc_index", "position")


class StoreError(ValueError):
    """A store is missing, corrupt or used inconsistently; the message names the file."""


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the manifest records it."""

    file: str
    row_start: int
    n_rows: int
    nnz: int
    sha256: str
    tensors: dict[str, dict[str, Any]]
    meta: dict[str, Any]

    @property
    def row_stop(self) -> int:
        return self.row_start + self.n_rows


class ActivationStore:
    """A resumable, append-only store of :class:`FeatureActivations` row blocks.

    Use :meth:`create` for a new store, :meth:`open` to read or resume one. ``meta`` is free JSON that
    describes what the store holds (for example the extraction options); :meth:`open_or_create` refuses to
    resume a store whose ``meta`` differs from the one asked for.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self._manifest = manifest
        self.loads = 0  # number of shard files read; lets tests check that reads stay partial

    # -- creation / opening --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        n_features: int,
        provenance: Provenance | None = None,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> "ActivationStore":
        """Make a new empty store at ``path`` (refuses to overwrite an existing one unless asked)."""
        path = Path(path)
        if (path / MANIFEST).exists():
            if not overwrite:
                raise StoreError(f"path {str(path)!r} already holds a store; open it, or pass overwrite=True")
            for f in path.glob("shard_*.safetensors*"):
                f.unlink()
        if int(n_features) < 1:
            raise StoreError(f"n_features must be >= 1, got {n_features}")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "n_features": int(n_features),
            "provenance": (provenance or Provenance()).to_dict(),
            "meta": meta or {},
            "complete": False,
            "shards": [],
        }
        store = cls(path, manifest)
        store._write_manifest()
        return store

    @classmethod
    def open(cls, path: str | Path) -> "ActivationStore":
        """Open an existing store; stray temporary or unlisted shard files are ignored."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.exists():
            raise StoreError(f"path {str(path)!r} is not an activation store: {MANIFEST} is missing")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise StoreError(f"{mpath} is not valid JSON: {exc}") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{mpath} has format_version {manifest.get('format_version')!r}; this version reads {FORMAT_VERSION}"
            )
        return cls(path, manifest)

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        *,
        n_features: int,
        provenance: Provenance | None = None,
        meta: dict[str, Any] | None = None,
    ) -> "ActivationStore":
        """Resume the store at ``path`` if it was made with the same ``meta`` and width, else start anew."""
        path = Path(path)
        if (path / MANIFEST).exists():
            store = cls.open(path)
            same = store.n_features == int(n_features) and store.meta == json.loads(json.dumps(meta or {}))
            if same:
                return store
            log.info("store %s was made with other options; starting it anew", path)
        return cls.create(path, n_features=n_features, provenance=provenance, meta=meta, overwrite=True)

    # -- properties ----------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self._manifest["n_features"])

    @property
    def provenance(self) -> Provenance:
        return Provenance.from_dict(self._manifest["provenance"])

    @property
    def meta(self) -> dict[str, Any]:
        return self._manifest["meta"]

    @property
    def complete(self) -> bool:
        """True once the writer called :meth:`finalize`."""
        return bool(self._manifest["complete"])

    @property
    def shards(self) -> list[ShardInfo]:
        return [ShardInfo(**s) for s in self._manifest["shards"]]

    @property
    def n_shards(self) -> int:
        return len(self._manifest["shards"])

    @property
    def n_rows(self) -> int:
        shards = self._manifest["shards"]
        return int(shards[-1]["row_start"] + shards[-1]["n_rows"]) if shards else 0

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        state = "complete" if self.complete else "partial"
        return f"ActivationStore({str(self.path)!r}, n_rows={self.n_rows}, n_features={self.n_features}, shards={self.n_shards}, {state})"

    # -- writing -------------------------------------------------------------------------------------
    def append(self, acts: Any, *, meta: dict[str, Any] | None = None) -> ShardInfo:
        """Write one row block as the next shard. ``meta`` (JSON) is kept with the shard, e.g. a batch index."""
        if self.complete:
            raise StoreError(f"store {str(self.path)!r} is finalized; it takes no more shards")
        acts = as_activations(acts, "acts")
        if acts.n_features != self.n_features:
            raise StoreError(
                f"acts has {acts.n_features} features but store {str(self.path)!r} holds {self.n_features}"
            )
        from safetensors.numpy import save_file

        index = self.n_shards
        name = f"shard_{index:05d}.safetensors"
        final = self.path / name
        tmp = self.path / (name + ".tmp")
        m = acts.matrix
        tensors = {
            "indptr": m.indptr.astype(np.int64),
            "indices": m.indices.astype(np.int32),
            "data": m.data.astype(np.float32),
            "token_ids": acts.token_ids.astype(np.int64),
            "doc_index": acts.doc_index.astype(np.int64),
            "position": acts.position.astype(np.int64),
        }
        save_file(tensors, str(tmp))
        _fsync(tmp)
        os.replace(tmp, final)
        info = {
            "file": name,
            "row_start": self.n_rows,
            "n_rows": int(m.shape[0]),
            "nnz": int(m.nnz),
            "sha256": file_digest(final),
            "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in tensors.items()},
            "meta": meta or {},
        }
        self._manifest["shards"].append(info)
        self._write_manifest()
        return ShardInfo(**info)

    def finalize(self, **extra_meta: Any) -> None:
        """Mark the store complete (a finished extraction); ``extra_meta`` is merged into ``meta``."""
        self._manifest["meta"].update(extra_meta)
        self._manifest["complete"] = True
        self._write_manifest()

    def truncate(self, n_shards: int) -> None:
        """Forget shards ``n_shards:`` and mark the store partial; their files are overwritten by later appends."""
        if not 0 <= int(n_shards) <= self.n_shards:
            raise StoreError(f"n_shards must be in [0, {self.n_shards}], got {n_shards}")
        self._manifest["shards"] = self._manifest["shards"][: int(n_shards)]
        self._manifest["complete"] = False
        self._write_manifest()

    def _write_manifest(self) -> None:
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self._manifest, indent=1))
        _fsync(tmp)
        os.replace(tmp, self.path / MANIFEST)

    # -- reading -------------------------------------------------------------------------------------
    def read(self, start: int | None = None, stop: int | None = None, *, verify: bool = True) -> FeatureActivations:
        """Rows ``start:stop`` (default all) as :class:`FeatureActivations`, opening only overlapping shards."""
        n = self.n_rows
        start = 0 if start is None else int(start)
        stop = n if stop is None else int(stop)
        if not (0 <= start <= stop <= n):
            raise StoreError(f"row range {start}:{stop} is outside the store's {n} rows")
        if start == stop:
            raise StoreError(f"row range {start}:{stop} is empty")
        parts = []
        for info in self.shards:
            if info.row_stop <= start or info.row_start >= stop:
                continue
            acts = self._load_shard(info, verify=verify)
            lo = max(start, info.row_start) - info.row_start
            hi = min(stop, info.row_stop) - info.row_start
            parts.append(acts if (lo == 0 and hi == info.n_rows) else acts.rows(lo, hi))
        return FeatureActivations.concatenate(parts)

    def iter_shards(self, *, verify: bool = True) -> Iterator[tuple[ShardInfo, FeatureActivations]]:
        """Yield (shard info, activations) shard by shard: memory bounded by one shard."""
        for info in self.shards:
            yield info, self._load_shard(info, verify=verify)

    def verify(self) -> None:
        """Check every shard's presence and checksum; raise :class:`StoreError` naming the first bad one."""
        for info in self.shards:
            self._check_file(info)

    def verify_shard(self, info: ShardInfo) -> Path:
        """Check one shard's presence and checksum; return its path or raise :class:`StoreError` naming it."""
        return self._check_file(info)

    def _check_file(self, info: ShardInfo) -> Path:
        f = self.path / info.file
        if not f.exists():
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} is missing")
        digest = file_digest(f)
        if digest != info.sha256:
            raise StoreError(
                f"shard {info.file} of store {str(self.path)!r} is corrupt: checksum {digest[:12]}... "
                f"does not match the manifest's {info.sha256[:12]}..."
            )
        return f

    def _load_shard(self, info: ShardInfo, *, verify: bool = True) -> FeatureActivations:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        f = self._check_file(info) if verify else self.path / info.file
        try:
            t = load_file(str(f))
        except (SafetensorError, OSError) as exc:
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} cannot be read: {exc}") from None
        missing = [k for k in _TENSORS if k not in t]
        if missing:
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} lacks tensors {missing}")
        self.loads += 1
        matrix = sp.csr_matrix((t["data"], t["indices"], t["indptr"]), shape=(info.n_rows, self.n_features))
        return FeatureActivations(
            matrix,
            token_ids=t["token_ids"],
            doc_index=t["doc_index"],
            position=t["position"],
            provenance=self.provenance,
        )


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())

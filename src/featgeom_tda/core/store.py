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

Corrupt input is refused with :class:`StoreError` naming the file and the problem: the manifest is checked
against a schema when the store is opened (:func:`_validate_manifest`), and every shard's CSR structure is
checked against the manifest when it is loaded or verified (:meth:`ActivationStore._read_tensors`).
Every shard also carries its own manifest entry and its store's width, provenance and meta (safetensors
metadata ``featgeom_shard``, with a digest of its tensors), so a damaged or lost manifest is rebuilt from
the intact shards by :meth:`ActivationStore.rebuild_manifest` (``featgeom store-repair``) without deleting
anything. Completeness is one explicit state, :attr:`ActivationStore.complete`: :meth:`~ActivationStore.finalize`
records how many shards and rows the finished store holds, and a finalized manifest that lists fewer is
*incomplete* (:attr:`~ActivationStore.incomplete_reason` says why); reading it raises unless the caller
passes ``allow_partial=True``.

One writer at a time: a store opened for writing (:meth:`~ActivationStore.create`,
:meth:`~ActivationStore.open_or_create`, or the first :meth:`~ActivationStore.append` /
:meth:`~ActivationStore.truncate` / :meth:`~ActivationStore.finalize` on a store opened with
:meth:`~ActivationStore.open`) takes an OS-level exclusive lock (``flock``) on ``STORE/.lock`` and holds it
until :meth:`~ActivationStore.finalize` or :meth:`~ActivationStore.close` (or until the process dies: the OS
drops the lock even on ``kill -9``). Another process that tries to write gets :class:`StoreError` naming the
holder's pid and host, which the holder writes into the lock file. Within one process the lock belongs to
one ``ActivationStore`` object: a second object of the same process that tries to write is refused too.
Readers take no lock. Temporary files carry the
writer's pid and a random suffix, so two processes never write the same temporary file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import scipy.sparse as sp

from featgeom_tda.core._cache import Hasher, file_digest
from featgeom_tda.core.types import FeatureActivations, Provenance, as_activations

__all__ = ["ActivationStore", "StoreError", "ShardInfo", "RebuildReport"]

try:  # POSIX only; without it stores are written unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK_FILE = ".lock"
FORMAT_VERSION = 1
_TENSORS = ("indptr", "indices", "data", "token_ids", "doc_index", "position")
SHARD_RECORD = "featgeom_shard"  # safetensors metadata key: the shard's own manifest entry, as JSON
REPAIR_HINT = "rebuild it from its intact shards with `featgeom store-repair {path}` (ActivationStore.rebuild_manifest)"
_SHARD_KEYS = ("file", "row_start", "n_rows", "nnz", "sha256", "tensors", "meta")


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
        self._lock_key: str | None = None  # set while this object holds (its share of) the writer lock

    # -- the writer lock -----------------------------------------------------------------------------
    @property
    def holds_lock(self) -> bool:
        """True while this object holds the store's writer lock (between opening for writing and close)."""
        return self._lock_key is not None

    def lock(self) -> None:
        """Take the store's exclusive writer lock (a no-op if this object holds it already).

        Raises :class:`StoreError` naming the pid and host of the process that holds it.
        """
        if self._lock_key is None:
            self._lock_key = _acquire_lock(self.path)

    def close(self) -> None:
        """Release the writer lock if held; the object can still be read (and writing takes the lock again)."""
        key, self._lock_key = self._lock_key, None
        if key is not None:
            _release_lock(key)

    def __enter__(self) -> "ActivationStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

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
        if (path / MANIFEST).exists() and not overwrite:
            raise StoreError(f"path {str(path)!r} already holds a store; open it, or pass overwrite=True")
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            raise StoreError(f"n_features must be an integer >= 1, got {n_features!r}")
        path.mkdir(parents=True, exist_ok=True)
        key = _acquire_lock(path)  # before anything is removed or written
        try:
            if (path / MANIFEST).exists():
                for f in path.glob("shard_*.safetensors*"):
                    f.unlink()
                for f in path.glob(MANIFEST + ".*.tmp"):
                    f.unlink()
        except BaseException:
            _release_lock(key)
            raise
        manifest = {
            "format_version": FORMAT_VERSION,
            "n_features": int(n_features),
            "provenance": (provenance or Provenance()).to_dict(),
            "meta": meta or {},
            "complete": False,
            "shards": [],
        }
        store = cls(path, manifest)
        store._lock_key = key
        store._write_manifest()
        return store

    @classmethod
    def open(cls, path: str | Path) -> "ActivationStore":
        """Open an existing store; stray temporary or unlisted shard files are ignored."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.exists():
            hint = f"; {REPAIR_HINT.format(path=path)}" if any(_shard_files(path)) else ""
            raise StoreError(f"path {str(path)!r} is not an activation store: {MANIFEST} is missing{hint}")
        if not mpath.is_file():
            raise StoreError(f"{mpath} must be a regular file, got a {'directory' if mpath.is_dir() else 'special file'}")
        try:
            manifest = _parse_manifest(mpath)
        except StoreError as exc:
            raise StoreError(f"{exc}; {REPAIR_HINT.format(path=path)}") from None
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
        """Resume the store at ``path`` if it was made with the same ``meta`` and width, else start anew.

        Either way the store is opened for writing: it holds the writer lock until finalized or closed.
        """
        path = Path(path)
        if (path / MANIFEST).exists():
            store = cls.open(path)
            same = store.n_features == int(n_features) and store.meta == json.loads(json.dumps(meta or {}))
            if same:
                store.lock()
                try:  # re-read under the lock: another writer may have changed it meanwhile
                    store._manifest = cls.open(path)._manifest
                except BaseException:
                    store.close()
                    raise
                return store
            log.info("store %s was made with other options; starting it anew", path)
        return cls.create(path, n_features=n_features, provenance=provenance, meta=meta, overwrite=True)

    @classmethod
    def rebuild_manifest(
        cls, path: str | Path, *, on_shard: Callable[[int, str], None] | None = None
    ) -> "RebuildReport":
        """Write a new manifest for the store at ``path`` from the shards on disk; nothing is deleted.

        Every shard carries its own manifest entry (row range, nnz, a digest of its tensors) and its store's
        width, provenance and meta. Shards are taken in index order from ``shard_00000``: each must be
        readable, match its digest and CSR checks, start where the previous one stopped, and belong to the
        same store as shard 0. The first that does not ends the listing; it and the shards after it stay on
        disk, unlisted, with the reason in the report. The old manifest (if any) is kept beside the new one as
        ``manifest.json.damaged-<time>``. The rebuilt store is *unfinished* (``complete`` is False): rerun
        the extraction to finish it (intact shards are kept) or read it with ``allow_partial=True``.
        Runs under the writer lock; ``on_shard(index, file)`` is called after each shard is checked.
        """
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"path {str(path)!r} is not a directory holding an activation store")
        files = _shard_files(path)
        if not files:
            raise StoreError(f"path {str(path)!r} holds no shard files (shard_NNNNN.safetensors) to rebuild from")
        key = _acquire_lock(path)
        try:
            store, skipped = cls._scan_shards(path, files, on_shard)
            mpath = path / MANIFEST
            backup = None
            if mpath.exists() or mpath.is_symlink():
                backup = path / f"{MANIFEST}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
                os.replace(mpath, backup) if mpath.is_dir() else _copy_file(mpath, backup)
            store._write_manifest()
        finally:
            _release_lock(key)
        return RebuildReport(path=path, n_shards=store.n_shards, n_rows=store.n_rows, skipped=skipped,
                             old_manifest=None if backup is None else backup.name)

    @classmethod
    def _scan_shards(
        cls, path: Path, files: list[tuple[int, Path]], on_shard: Callable[[int, str], None] | None
    ) -> tuple["ActivationStore", list[tuple[str, str]]]:
        """The store the intact leading shards describe, and the (file, reason) of those left unlisted."""
        from safetensors import SafetensorError, safe_open

        store: ActivationStore | None = None
        skipped: list[tuple[str, str]] = []
        for pos, (index, f) in enumerate(files):
            where = f"shard {f.name} of store {str(path)!r}"
            reason = None
            if index != pos:
                reason = f"shard_{pos:05d}.safetensors before it is missing"
            else:
                try:
                    with safe_open(str(f), framework="np") as fh:
                        record_text = (fh.metadata() or {}).get(SHARD_RECORD)
                        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
                except (SafetensorError, OSError, ValueError, TypeError) as exc:
                    reason = f"cannot be read: {exc}"
                else:
                    reason, store = _check_shard_record(path, f, record_text, tensors, store, where)
            if reason is not None:
                skipped = [(g.name, reason if g is f else "an earlier shard is not intact") for _, g in files[pos:]]
                break
            if on_shard is not None:
                on_shard(index, f.name)
        if store is None:
            raise StoreError(
                f"no intact shard to rebuild store {str(path)!r} from: {skipped[0][0]} {skipped[0][1]}"
            )
        return store, skipped

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
    def finalized(self) -> bool:
        """True once the writer called :meth:`finalize` (the store takes no more shards)."""
        return bool(self._manifest["complete"])

    @property
    def incomplete_reason(self) -> str | None:
        """``None`` for a complete store, else why it is not complete (unfinished, or shards lost)."""
        if not self._manifest["complete"]:
            return f"store {str(self.path)!r} is unfinished ({self.n_shards} shards, {self.n_rows} rows so far)"
        want_shards = self._manifest.get("expected_shards")
        want_rows = self._manifest.get("expected_rows")
        if want_shards is not None and self.n_shards != want_shards:
            return (
                f"store {str(self.path)!r} is incomplete: its manifest lists {self.n_shards} shards "
                f"but the finished store held {want_shards}"
            )
        if want_rows is not None and self.n_rows != want_rows:
            return (
                f"store {str(self.path)!r} is incomplete: its manifest lists {self.n_rows} rows "
                f"but the finished store held {want_rows}"
            )
        return None

    @property
    def complete(self) -> bool:
        """True for a finalized store whose manifest still lists every shard and row it was finished with."""
        return self.incomplete_reason is None

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
        state = "complete" if self.complete else ("incomplete" if self.finalized else "partial")
        return f"ActivationStore({str(self.path)!r}, n_rows={self.n_rows}, n_features={self.n_features}, shards={self.n_shards}, {state})"

    # -- writing -------------------------------------------------------------------------------------
    def append(self, acts: Any, *, meta: dict[str, Any] | None = None) -> ShardInfo:
        """Write one row block as the next shard. ``meta`` (JSON) is kept with the shard, e.g. a batch index."""
        if self.finalized:
            raise StoreError(f"store {str(self.path)!r} is finalized; it takes no more shards")
        acts = as_activations(acts, "acts")
        if acts.n_features != self.n_features:
            raise StoreError(
                f"acts has {acts.n_features} features but store {str(self.path)!r} holds {self.n_features}"
            )
        from safetensors.numpy import save_file

        self.lock()
        index = self.n_shards
        name = f"shard_{index:05d}.safetensors"
        final = self.path / name
        tmp = _tmp_path(final)
        m = acts.matrix
        tensors = {
            "indptr": m.indptr.astype(np.int64),
            "indices": m.indices.astype(np.int32),
            "data": m.data.astype(np.float32),
            "token_ids": acts.token_ids.astype(np.int64),
            "doc_index": acts.doc_index.astype(np.int64),
            "position": acts.position.astype(np.int64),
        }
        record = {
            "index": index,
            "row_start": self.n_rows,
            "n_rows": int(m.shape[0]),
            "nnz": int(m.nnz),
            "content_sha256": _content_digest(tensors),
            "meta": meta or {},
            "store": self._store_record(),
        }
        try:
            save_file(
                tensors, str(tmp),
                # one metadata key: safetensors writes a map of several in no fixed order (files must be bitwise stable)
                metadata={SHARD_RECORD: json.dumps(record, sort_keys=True)},
            )
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
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

    def _store_record(self) -> dict[str, Any]:
        """What every shard carries of its store, so that a lost manifest can be rebuilt from the shards."""
        m = self._manifest
        return {"format_version": FORMAT_VERSION, "n_features": self.n_features,
                "provenance": m["provenance"], "meta": m["meta"]}

    def finalize(self, **extra_meta: Any) -> None:
        """Mark the store complete (a finished extraction); ``extra_meta`` is merged into ``meta``.

        Releases the writer lock: a finalized store takes no more shards.
        """
        self.lock()
        self._manifest["meta"].update(extra_meta)
        self._manifest["complete"] = True
        self._manifest["expected_shards"] = self.n_shards
        self._manifest["expected_rows"] = self.n_rows
        self._write_manifest()
        self.close()

    def truncate(self, n_shards: int) -> None:
        """Forget shards ``n_shards:`` and mark the store partial; their files are overwritten by later appends."""
        if not 0 <= int(n_shards) <= self.n_shards:
            raise StoreError(f"n_shards must be in [0, {self.n_shards}], got {n_shards}")
        self.lock()
        self._manifest["shards"] = self._manifest["shards"][: int(n_shards)]
        self._manifest["complete"] = False
        self._manifest.pop("expected_shards", None)
        self._manifest.pop("expected_rows", None)
        self._write_manifest()

    def _write_manifest(self) -> None:
        final = self.path / MANIFEST
        tmp = _tmp_path(final)
        try:
            tmp.write_text(json.dumps(self._manifest, indent=1))
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- reading -------------------------------------------------------------------------------------
    def _check_readable(self, allow_partial: bool) -> None:
        if allow_partial:
            return
        reason = self.incomplete_reason
        if reason is not None:
            raise StoreError(f"{reason}; refusing to read it (pass allow_partial=True to read what is listed)")

    def read(
        self,
        start: int | None = None,
        stop: int | None = None,
        *,
        verify: bool = True,
        allow_partial: bool = False,
    ) -> FeatureActivations:
        """Rows ``start:stop`` (default all) as :class:`FeatureActivations`, opening only overlapping shards.

        A store that is not complete (still being written, never finished, or a finalized store that lost
        shards) is refused unless ``allow_partial=True``, which reads the rows its manifest lists.
        ``start`` and ``stop`` are integers (a float such as 1.9 is refused, never rounded).
        """
        self._check_readable(allow_partial)
        n = self.n_rows
        start = 0 if start is None else _row_bound(start, "start")
        stop = n if stop is None else _row_bound(stop, "stop")
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

    def iter_shards(
        self, *, verify: bool = True, allow_partial: bool = False
    ) -> Iterator[tuple[ShardInfo, FeatureActivations]]:
        """Yield (shard info, activations) shard by shard: memory bounded by one shard."""
        self._check_readable(allow_partial)
        for info in self.shards:
            yield info, self._load_shard(info, verify=verify)

    def verify(self, *, allow_partial: bool = False) -> None:
        """Check completeness, then every listed shard's presence, checksum and CSR structure.

        Raises :class:`StoreError` naming the first problem: a store that is not complete (unless
        ``allow_partial``, which checks the shards an unfinished store lists so far), or a bad shard.
        """
        self._check_readable(allow_partial)
        for info in self.shards:
            self._read_tensors(info, verify=True)

    def verify_shard(self, info: ShardInfo) -> Path:
        """Check one shard's presence and checksum; return its path or raise :class:`StoreError` naming it."""
        return self._check_file(info)

    def _check_file(self, info: ShardInfo) -> Path:
        f = self.path / info.file
        if not f.exists():
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} is missing")
        if not f.is_file():
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} is not a regular file")
        try:
            digest = file_digest(f)
        except OSError as exc:
            raise StoreError(f"shard {info.file} of store {str(self.path)!r} cannot be read: {exc}") from None
        if digest != info.sha256:
            raise StoreError(
                f"shard {info.file} of store {str(self.path)!r} is corrupt: checksum {digest[:12]}... "
                f"does not match the manifest's {info.sha256[:12]}..."
            )
        return f

    def _read_tensors(self, info: ShardInfo, *, verify: bool = True) -> dict[str, np.ndarray]:
        """The shard's tensors after checking them against the manifest; raise :class:`StoreError` naming it."""
        from safetensors import SafetensorError, safe_open

        f = self._check_file(info) if verify else self.path / info.file
        where = f"shard {info.file} of store {str(self.path)!r}"
        if not f.is_file():
            raise StoreError(f"{where} is missing")
        try:
            with safe_open(str(f), framework="np") as fh:
                file_meta = fh.metadata() or {}
                t = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError, TypeError) as exc:
            raise StoreError(f"{where} cannot be read: {exc}") from None
        missing = [k for k in _TENSORS if k not in t]
        if missing:
            raise StoreError(f"{where} lacks tensors {missing}")
        recorded = file_meta.get("n_features")  # shards of earlier versions
        try:
            recorded = str(json.loads(file_meta[SHARD_RECORD])["store"]["n_features"])
        except (KeyError, ValueError, TypeError):
            pass
        if recorded is not None and recorded != str(self.n_features):
            raise StoreError(
                f"{where} was written with n_features={recorded} but the manifest says n_features={self.n_features}"
            )
        _check_csr(t, info, self.n_features, where)
        return t

    def _load_shard(self, info: ShardInfo, *, verify: bool = True) -> FeatureActivations:
        t = self._read_tensors(info, verify=verify)
        self.loads += 1
        matrix = sp.csr_matrix((t["data"], t["indices"], t["indptr"]), shape=(info.n_rows, self.n_features))
        return FeatureActivations(
            matrix,
            token_ids=t["token_ids"],
            doc_index=t["doc_index"],
            position=t["position"],
            provenance=self.provenance,
        )


@dataclass(frozen=True)
class RebuildReport:
    """What :meth:`ActivationStore.rebuild_manifest` listed, and which shard files it left unlisted and why."""

    path: Path
    n_shards: int
    n_rows: int
    skipped: list[tuple[str, str]]
    old_manifest: str | None

    def __str__(self) -> str:
        lines = [f"rebuilt {self.path / MANIFEST}: {self.n_shards} intact shards, {self.n_rows} rows (unfinished)"]
        if self.old_manifest:
            lines.append(f"the old manifest is kept as {self.old_manifest}")
        lines += [f"not listed: {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _shard_files(path: Path) -> list[tuple[int, Path]]:
    """(index, file) of the ``shard_NNNNN.safetensors`` files in ``path``, by index; temporary files ignored."""
    out = []
    for f in Path(path).glob("shard_*.safetensors"):
        digits = f.name[len("shard_"):-len(".safetensors")]
        if digits.isdigit() and f.is_file():
            out.append((int(digits), f))
    return sorted(out)


def _copy_file(src: Path, dst: Path) -> None:
    tmp = _tmp_path(dst)
    try:
        tmp.write_bytes(src.read_bytes())
        _fsync(tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_shard_record(
    path: Path, f: Path, record_text: str | None, tensors: dict[str, np.ndarray],
    store: "ActivationStore | None", where: str,
) -> tuple[str | None, "ActivationStore | None"]:
    """Check one shard against its embedded record; append it to ``store`` (made from shard 0's record)."""
    if record_text is None:
        return "carries no embedded record (written by an older version); it cannot be checked", store
    try:
        record = json.loads(record_text)
        rec_store = record["store"]
        info = {"file": f.name, "row_start": int(record["row_start"]), "n_rows": int(record["n_rows"]),
                "nnz": int(record["nnz"]), "meta": dict(record["meta"])}
        digest = str(record["content_sha256"])
        n_features = int(rec_store["n_features"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"has an unreadable embedded record: {exc}", store
    missing = [k for k in _TENSORS if k not in tensors]
    if missing:
        return f"lacks tensors {missing}", store
    if _content_digest(tensors) != digest:
        return "is corrupt: its tensors do not match the digest it was written with", store
    if store is None:
        manifest = {"format_version": FORMAT_VERSION, "n_features": n_features,
                    "provenance": rec_store.get("provenance"), "meta": rec_store.get("meta") or {},
                    "complete": False, "shards": []}
        try:
            _validate_manifest(manifest, path / MANIFEST)
        except StoreError as exc:
            return f"has an invalid embedded store record: {exc}", store
        store = ActivationStore(path, manifest)
    elif rec_store != store._store_record():
        return "belongs to another store (other width, provenance or meta than shard 0)", store
    if info["row_start"] != store.n_rows:
        return f"starts at row {info['row_start']} but the shards before it end at row {store.n_rows}", store
    shard = ShardInfo(**info, sha256="0" * 64, tensors={})
    try:
        _check_csr(tensors, shard, store.n_features, where)
    except StoreError as exc:
        return str(exc).replace(where + ": ", ""), store
    info["sha256"] = file_digest(f)
    info["tensors"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in tensors.items()}
    store._manifest["shards"].append({k: info[k] for k in _SHARD_KEYS})
    return None, store


def _parse_manifest(mpath: Path) -> dict[str, Any]:
    """The manifest at ``mpath``, checked against the schema; :class:`StoreError` naming the problem."""
    try:
        raw = mpath.read_bytes()
    except OSError as exc:
        raise StoreError(f"{mpath} cannot be read: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{mpath} is not UTF-8 text: {exc}") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise StoreError(f"{mpath} is not valid JSON: {exc}") from None
    _validate_manifest(manifest, mpath)
    return manifest


def _content_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over a shard's tensors (name, dtype, shape, bytes, in a fixed order): what a shard says it holds."""
    h = Hasher()
    for k in _TENSORS:
        h.update_text(k).update_array(tensors[k])
    return h.hexdigest()


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _row_bound(value: Any, name: str) -> int:
    """A row index given to :meth:`ActivationStore.read`: an integer (Python or numpy), never a bool or float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise StoreError(f"{name} must be an integer row index, got {_describe(value)}")
    return int(value)


def _need(d: dict[str, Any], key: str, where: str, what: str, ok: Any) -> Any:
    """``d[key]`` if present and ``ok(value)``; else a :class:`StoreError` naming ``where``, the key and ``what``."""
    if key not in d:
        raise StoreError(f"{where}: key {key!r} is missing; expected {what}")
    value = d[key]
    if not ok(value):
        raise StoreError(f"{where}: key {key!r} must be {what}, got {_describe(value)}")
    return value


def _validate_manifest(manifest: Any, mpath: Path) -> None:
    """Check the manifest's schema; raise :class:`StoreError` naming the file, the key, expected and received."""
    if not isinstance(manifest, dict):
        raise StoreError(f"{mpath} must hold a JSON object (mapping), got {_describe(manifest)}")
    w = str(mpath)
    version = _need(manifest, "format_version", w, "an integer", _is_int)
    if version != FORMAT_VERSION:
        raise StoreError(f"{mpath} has format_version {version!r}; this version reads {FORMAT_VERSION}")
    _need(manifest, "n_features", w, "an integer >= 1", lambda v: _is_int(v) and v >= 1)
    prov = _need(manifest, "provenance", w, "a mapping or null", lambda v: v is None or isinstance(v, dict))
    try:
        Provenance.from_dict(prov)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{w}: key 'provenance' is not a valid provenance record: {exc}") from None
    _need(manifest, "meta", w, "a mapping", lambda v: isinstance(v, dict))
    complete = _need(manifest, "complete", w, "true or false", lambda v: isinstance(v, bool))
    for key in ("expected_shards", "expected_rows"):
        if key in manifest:
            _need(manifest, key, w, "an integer >= 0 or null", lambda v: v is None or (_is_int(v) and v >= 0))
            if manifest[key] is not None and not complete:
                raise StoreError(f"{w}: key {key!r} is set but the store is not marked complete")
    shards = _need(manifest, "shards", w, "a list", lambda v: isinstance(v, list))
    row = 0
    for i, s in enumerate(shards):
        sw = f"{w}: shards[{i}]"
        if not isinstance(s, dict):
            raise StoreError(f"{sw} must be a mapping, got {_describe(s)}")
        unknown = sorted(set(s) - set(_SHARD_KEYS))
        if unknown:
            raise StoreError(f"{sw} has unknown keys {unknown}; expected only {list(_SHARD_KEYS)}")
        name = _need(
            s, "file", sw, "a shard file name like 'shard_00000.safetensors'",
            lambda v: isinstance(v, str) and v.startswith("shard_") and v.endswith(".safetensors")
            and "/" not in v and "\\" not in v and v not in (".", ".."),
        )
        start = _need(s, "row_start", sw, "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        n = _need(s, "n_rows", sw, "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        _need(s, "nnz", sw, "an integer >= 0", lambda v: _is_int(v) and v >= 0)
        _need(s, "sha256", sw, "a 64-character hex string",
              lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v))
        _need(s, "tensors", sw, "a mapping", lambda v: isinstance(v, dict))
        _need(s, "meta", sw, "a mapping", lambda v: isinstance(v, dict))
        if start != row:
            raise StoreError(
                f"{sw} ({name}): key 'row_start' must be {row} (the rows of the shards before it), got {start}"
            )
        row += n


def _check_csr(t: dict[str, np.ndarray], info: ShardInfo, n_features: int, where: str) -> None:
    """Check a shard's CSR tensors against its manifest entry before scipy ever sees them."""
    for k in _TENSORS:
        if t[k].ndim != 1:
            raise StoreError(f"{where}: tensor {k!r} must be 1-D, got shape {list(t[k].shape)}")
    for k in ("indptr", "indices", "token_ids", "doc_index", "position"):
        if t[k].dtype.kind not in "iu":
            raise StoreError(f"{where}: tensor {k!r} must hold integers, got dtype {t[k].dtype}")
    if t["data"].dtype.kind != "f":
        raise StoreError(f"{where}: tensor 'data' must hold floats, got dtype {t['data'].dtype}")
    indptr, indices, data = t["indptr"], t["indices"], t["data"]
    if indptr.shape[0] != info.n_rows + 1:
        raise StoreError(
            f"{where}: indptr has length {indptr.shape[0]} but the manifest's n_rows={info.n_rows} "
            f"needs n_rows + 1 = {info.n_rows + 1}"
        )
    if int(indptr[0]) != 0:
        raise StoreError(f"{where}: indptr must start at 0, got {int(indptr[0])}")
    if indptr.shape[0] > 1 and np.any(np.diff(indptr.astype(np.int64)) < 0):
        bad = int(np.flatnonzero(np.diff(indptr.astype(np.int64)) < 0)[0])
        raise StoreError(f"{where}: indptr must be non-decreasing, but it falls after row {bad}")
    if int(indptr[-1]) != info.nnz:
        raise StoreError(f"{where}: indptr ends at {int(indptr[-1])} but the manifest's nnz is {info.nnz}")
    if indices.shape[0] != info.nnz:
        raise StoreError(f"{where}: indices has length {indices.shape[0]} but nnz is {info.nnz}")
    if data.shape[0] != info.nnz:
        raise StoreError(f"{where}: data has length {data.shape[0]} but nnz is {info.nnz}")
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= n_features:
            raise StoreError(
                f"{where}: column indices must lie in [0, n_features={n_features}), got values in [{lo}, {hi}]; "
                "the manifest's n_features does not match the shard"
            )
    for k in ("token_ids", "doc_index", "position"):
        if t[k].shape[0] != info.n_rows:
            raise StoreError(f"{where}: {k} has {t[k].shape[0]} rows but the manifest's n_rows is {info.n_rows}")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _tmp_path(final: Path) -> Path:
    """A temporary name next to ``final`` unique to this process and call (pid + random suffix)."""
    return final.with_name(f"{final.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


# -- the writer lock: one flock per store, held by one ActivationStore object ---------------------------
# key -> (pid, fd) of the lock this process holds
_LOCKS: dict[str, tuple[int, int]] = {}


def _lock_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        info = json.loads(raw)
        return f"pid {int(info['pid'])} on host {info.get('hostname', '?')!r} (since {info.get('since', '?')})"
    except (OSError, ValueError, TypeError, KeyError):
        return "a process that has not yet recorded its pid"


def _acquire_lock(path: Path) -> str:
    """Take the exclusive writer lock of the store at ``path``; return its key.

    Raises :class:`StoreError` when another process holds it, and also when another ``ActivationStore``
    object of this process does: two writers in one process would interleave their manifests.
    """
    lock_path = Path(path) / LOCK_FILE
    key = os.path.realpath(lock_path)
    held = _LOCKS.get(key)
    if held is not None and held[0] == os.getpid():
        raise StoreError(
            f"store {str(path)!r} is being written by another writer in this process (pid {os.getpid()}): "
            "another ActivationStore object holds its lock; finalize() or close() that one first"
        )
    if fcntl is None:  # pragma: no cover - no flock on this platform
        _LOCKS[key] = (os.getpid(), -1)
        return key
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"lock file {lock_path} of store {str(path)!r} cannot be opened: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _lock_holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
        os.close(fd)
        if holder is None:
            raise StoreError(f"lock file {lock_path} of store {str(path)!r} cannot be locked: {exc}") from None
        raise StoreError(
            f"store {str(path)!r} is being written by another writer: {holder} holds its lock {lock_path}; "
            "wait for it to finish (or stop it) before writing this store"
        ) from None
    info = {"pid": os.getpid(), "hostname": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
    except OSError:  # the lock holds even if its label cannot be written
        log.warning("could not record the writer's pid in %s", lock_path)
    _LOCKS[key] = (os.getpid(), fd)
    return key


def _release_lock(key: str) -> None:
    held = _LOCKS.get(key)
    if held is None or held[0] != os.getpid():
        return
    fd = held[1]
    del _LOCKS[key]
    if fd < 0:  # pragma: no cover - no flock on this platform
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

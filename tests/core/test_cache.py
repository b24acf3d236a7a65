"""Tests for featgeom_tda.core._cache: digests checked against hashlib recipes written out by hand."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from featgeom_tda.core._cache import Hasher, array_digest, file_digest, fingerprint, text_digest


def test_fingerprint_is_sha256_of_compact_sorted_json():
    obj = {"b": [1, 2.5], "a": "x"}
    full = hashlib.sha256(b'{"a":"x","b":[1,2.5]}').hexdigest()
    assert fingerprint(obj) == full[:16]
    assert fingerprint(obj, length=None) == full
    assert fingerprint(obj, length=8) == full[:8]


def test_fingerprint_with_default_separators_keeps_older_persisted_keys():
    obj = {"version": 3, "seed": 0, "lr": 0.003}
    old = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
    assert fingerprint(obj, length=None, compact=False) == old
    assert fingerprint(obj, length=12, compact=False) == old[:12]
    assert fingerprint(obj, length=None) != old


def test_fingerprint_does_not_depend_on_key_order_or_numpy_scalars():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": np.int64(1)}) == fingerprint({"a": 1})


def test_hasher_update_bytes_is_plain_sha256():
    h = Hasher().update_bytes(b"abc").update_bytes(b"def")
    assert h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    assert h.hexdigest(10) == hashlib.sha256(b"abcdef").hexdigest()[:10]


def test_array_digest_sees_dtype_and_shape():
    a = np.arange(6, dtype=np.int64)
    assert array_digest(a) != array_digest(a.reshape(2, 3))
    assert array_digest(a) != array_digest(a.astype(np.int32))
    assert array_digest(a) == array_digest(a.copy())


def test_text_digest_and_file_digest(tmp_path):
    assert text_digest(["a", "b"]) == hashlib.sha256(b"a\x00b").hexdigest()[:16]
    f = tmp_path / "blob"
    data = bytes(range(256)) * 5000
    f.write_bytes(data)
    assert file_digest(f) == hashlib.sha256(data).hexdigest()
    assert file_digest(f, chunk=1000) == hashlib.sha256(data).hexdigest()

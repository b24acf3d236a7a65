"""A corrupt activation store is refused with a StoreError that names the problem, never a crash or wrong data.

Each case builds a small store through the public API, then damages the manifest or a shard on disk. Shard
damage is written back as a well-formed safetensors file with the manifest's checksum updated, so it is the
structural check (not the checksum) that has to catch it.
"""

import hashlib
import json

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance

N_ROWS, N_FEATURES, N_BLOCKS = 20, 16, 3


def _block(i):
    rng = np.random.default_rng(100 + i)
    m = sp.random(N_ROWS, N_FEATURES, density=0.3, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(
        m, token_ids=rng.integers(0, 50, N_ROWS), doc_index=np.full(N_ROWS, i), position=np.arange(N_ROWS)
    )


def _build(path, finalize=True):
    store = ActivationStore.create(path, n_features=N_FEATURES, provenance=Provenance(model="m", seed=3))
    for i in range(N_BLOCKS):
        store.append(_block(i), meta={"batch": i})
    if finalize:
        store.finalize(n_docs=N_BLOCKS)
    return store


def _manifest(path):
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path, m):
    (path / "manifest.json").write_text(json.dumps(m))


def _edit(fn):
    """A manifest corruption: ``fn`` edits the parsed manifest in place."""

    def apply(path):
        m = _manifest(path)
        fn(m)
        _write_manifest(path, m)

    return apply


def _rewrite_shard(path, index, change, *, metadata=True, manifest_edit=None):
    """Rewrite shard ``index`` with ``change(tensors)`` applied and its checksum updated in the manifest."""
    from safetensors.numpy import load_file, save_file

    m = _manifest(path)
    info = m["shards"][index]
    f = path / info["file"]
    t = load_file(str(f))
    change(t)
    save_file(t, str(f), metadata={"n_features": str(m["n_features"])} if metadata else None)
    info["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    if manifest_edit is not None:
        manifest_edit(m)
    _write_manifest(path, m)


def _shard(change, **kw):
    return lambda path: _rewrite_shard(path, 1, change, **kw)


def _set(key, value):
    def change(t):
        t[key] = value(t) if callable(value) else value

    return change


def _decreasing(t):
    p = t["indptr"].copy()
    p[3], p[4] = p[4] + 1, p[3]
    t["indptr"] = p


def _indptr_start(t):
    p = t["indptr"].copy()
    p[0] = 1
    t["indptr"] = p


def _bad_index(t):
    i = t["indices"].copy()
    i[0] = 99
    t["indices"] = i


def _manifest_dir(path):
    (path / "manifest.json").unlink()
    (path / "manifest.json").mkdir()


def _lower_width(m):
    m["n_features"] = 4


# (id, corruption applied to the store directory, regex that must name the problem)
MANIFEST_CASES = [
    ("not-utf8", lambda p: (p / "manifest.json").write_bytes(b'{"format_version": 1, "x": "\xff\xfe"}'), r"manifest\.json is not UTF-8"),
    ("not-json", lambda p: (p / "manifest.json").write_text("{not json"), r"manifest\.json is not valid JSON"),
    ("truncated-json", lambda p: (p / "manifest.json").write_text((p / "manifest.json").read_text()[:50]), r"is not valid JSON"),
    ("not-a-mapping", lambda p: (p / "manifest.json").write_text("[1, 2, 3]"), r"manifest\.json must hold a JSON object \(mapping\), got list"),
    ("is-a-directory", _manifest_dir, r"manifest\.json must be a regular file, got a directory"),
    ("missing-n_features", _edit(lambda m: m.pop("n_features")), r"manifest\.json: key 'n_features' is missing; expected an integer"),
    ("missing-shards", _edit(lambda m: m.pop("shards")), r"key 'shards' is missing; expected a list"),
    ("null-n_features", _edit(lambda m: m.update(n_features=None)), r"key 'n_features' must be an integer >= 1, got null"),
    ("list-n_features", _edit(lambda m: m.update(n_features=[16])), r"key 'n_features' must be an integer >= 1, got list \[16\]"),
    ("string-n_features", _edit(lambda m: m.update(n_features="16")), r"key 'n_features' must be an integer >= 1, got str '16'"),
    ("bool-n_features", _edit(lambda m: m.update(n_features=True)), r"key 'n_features' must be an integer >= 1, got bool"),
    ("zero-n_features", _edit(lambda m: m.update(n_features=0)), r"key 'n_features' must be an integer >= 1, got int 0"),
    ("wrong-format-version", _edit(lambda m: m.update(format_version=99)), r"has format_version 99; this version reads 1"),
    ("string-complete", _edit(lambda m: m.update(complete="yes")), r"key 'complete' must be true or false, got str 'yes'"),
    ("list-meta", _edit(lambda m: m.update(meta=[])), r"key 'meta' must be a mapping, got list"),
    ("bad-provenance", _edit(lambda m: m.update(provenance={"nonsense": 1})), r"key 'provenance' is not a valid provenance record"),
    ("shards-not-list", _edit(lambda m: m.update(shards={"a": 1})), r"key 'shards' must be a list, got dict"),
    ("shard-not-mapping", _edit(lambda m: m["shards"].__setitem__(1, "shard_00001")), r"shards\[1\] must be a mapping, got str"),
    ("shard-null-n_rows", _edit(lambda m: m["shards"][1].update(n_rows=None)), r"shards\[1\]: key 'n_rows' must be an integer >= 0, got null"),
    ("shard-float-nnz", _edit(lambda m: m["shards"][0].update(nnz=3.5)), r"shards\[0\]: key 'nnz' must be an integer >= 0, got float 3\.5"),
    ("shard-missing-sha", _edit(lambda m: m["shards"][2].pop("sha256")), r"shards\[2\]: key 'sha256' is missing; expected a 64-character hex string"),
    ("shard-list-sha", _edit(lambda m: m["shards"][2].update(sha256=["ab"])), r"shards\[2\]: key 'sha256' must be a 64-character hex string, got list"),
    ("shard-int-file", _edit(lambda m: m["shards"][0].update(file=7)), r"shards\[0\]: key 'file' must be a shard file name"),
    ("shard-path-escape", _edit(lambda m: m["shards"][0].update(file="../shard_x.safetensors")), r"shards\[0\]: key 'file' must be a shard file name"),
    ("shard-row-gap", _edit(lambda m: m["shards"][1].update(row_start=25)), r"shards\[1\] \(shard_00001\.safetensors\): key 'row_start' must be 20"),
    ("shard-unknown-key", _edit(lambda m: m["shards"][0].update(extra=1)), r"shards\[0\] has unknown keys \['extra'\]"),
    ("expected-without-complete", _edit(lambda m: m.update(complete=False)), r"key 'expected_shards' is set but the store is not marked complete"),
]

SHARD = r"shard shard_00001\.safetensors of store .*"
SHARD_CASES = [
    ("indptr-too-long", _shard(_set("indptr", lambda t: np.append(t["indptr"], t["indptr"][-1]))), SHARD + r"indptr has length 22 but the manifest's n_rows=20 needs n_rows \+ 1 = 21"),
    ("indptr-too-short", _shard(_set("indptr", lambda t: t["indptr"][:-1].copy())), SHARD + r"indptr has length 20"),
    ("indptr-not-from-0", _shard(_indptr_start), SHARD + r"indptr must start at 0, got 1"),
    ("indptr-decreasing", _shard(_decreasing), SHARD + r"indptr must be non-decreasing, but it falls after row 3"),
    ("indptr-end-not-nnz", _shard(lambda t: None, manifest_edit=lambda m: m["shards"][1].update(nnz=m["shards"][1]["nnz"] + 1)), SHARD + r"indptr ends at \d+ but the manifest's nnz is \d+"),
    ("indices-short", _shard(_set("indices", lambda t: t["indices"][:-1].copy())), SHARD + r"indices has length \d+ but nnz is \d+"),
    ("indices-out-of-range", _shard(_bad_index), SHARD + r"column indices must lie in \[0, n_features=16\), got values in \[\d+, 99\]"),
    ("indices-negative", _shard(_set("indices", lambda t: -t["indices"] - 1)), SHARD + r"column indices must lie in \[0, n_features=16\)"),
    ("data-short", _shard(_set("data", lambda t: t["data"][:-2].copy())), SHARD + r"data has length \d+ but nnz is \d+"),
    ("data-not-float", _shard(_set("data", lambda t: t["data"].astype(np.int32))), SHARD + r"tensor 'data' must hold floats, got dtype int32"),
    ("indptr-2d", _shard(_set("indptr", lambda t: t["indptr"].reshape(1, -1))), SHARD + r"tensor 'indptr' must be 1-D"),
    ("indptr-float", _shard(_set("indptr", lambda t: t["indptr"].astype(np.float64))), SHARD + r"tensor 'indptr' must hold integers"),
    ("token_ids-short", _shard(_set("token_ids", lambda t: t["token_ids"][:-1].copy())), SHARD + r"token_ids has 19 rows but the manifest's n_rows is 20"),
    ("tensor-missing", _shard(lambda t: t.pop("position")), SHARD + r"lacks tensors \['position'\]"),
    ("manifest-n_rows-off", _shard(lambda t: None, manifest_edit=lambda m: m["shards"][1].update(n_rows=19) or m["shards"][2].update(row_start=39) or m.update(expected_rows=59)), SHARD + r"indptr has length 21 but the manifest's n_rows=19"),
    ("not-safetensors", lambda p: _rewrite_garbage(p), SHARD + r"cannot be read"),
    ("n_features-raised", _edit(lambda m: m.update(n_features=32)), r"shard shard_00000\.safetensors of store .* was written with n_features=16 but the manifest says n_features=32"),
    ("n_features-lowered", _edit(_lower_width), r"shard shard_00000\.safetensors of store .* was written with n_features=16 but the manifest says n_features=4"),
    ("n_features-lowered-unstamped-shards", lambda p: _unstamp_all(p, _lower_width), r"shard shard_00000\.safetensors of store .*column indices must lie in \[0, n_features=4\), got values in \[0, 15\]"),
]


def _unstamp_all(path, manifest_edit):
    """Rewrite every shard without the n_features stamp (as an older writer would), then edit the manifest."""
    for i in range(N_BLOCKS):
        _rewrite_shard(path, i, lambda t: None, metadata=False)
    _edit(manifest_edit)(path)


def _rewrite_garbage(path):
    m = _manifest(path)
    f = path / m["shards"][1]["file"]
    f.write_bytes(b"\x00" * 64)
    m["shards"][1]["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
    _write_manifest(path, m)


@pytest.mark.parametrize("corrupt, pattern", [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES])
def test_corrupt_manifest_is_refused_on_open(tmp_path, corrupt, pattern):
    path = tmp_path / "s"
    _build(path)
    corrupt(path)
    with pytest.raises(StoreError, match=pattern):
        ActivationStore.open(path)


@pytest.mark.parametrize("how", ["read", "verify", "iter_shards"])
@pytest.mark.parametrize("corrupt, pattern", [c[1:] for c in SHARD_CASES], ids=[c[0] for c in SHARD_CASES])
def test_corrupt_shard_is_refused_on_read_and_verify(tmp_path, corrupt, pattern, how):
    path = tmp_path / "s"
    _build(path)
    corrupt(path)
    store = ActivationStore.open(path)
    with pytest.raises(StoreError, match=pattern):
        if how == "read":
            store.read()
        elif how == "verify":
            store.verify()
        else:
            list(store.iter_shards())


def test_unverified_read_still_checks_structure(tmp_path):
    path = tmp_path / "s"
    _build(path)
    _rewrite_shard(path, 1, _bad_index)
    with pytest.raises(StoreError, match=r"shard_00001\.safetensors .*column indices must lie in"):
        ActivationStore.open(path).read(verify=False)


def test_store_that_lost_shards_is_incomplete_and_refused(tmp_path):
    path = tmp_path / "s"
    _build(path)
    m = _manifest(path)
    m["shards"].pop()  # a finished store whose manifest lost its last shard entry
    _write_manifest(path, m)
    store = ActivationStore.open(path)
    assert store.finalized and not store.complete
    assert "lists 2 shards but the finished store held 3" in store.incomplete_reason
    assert "incomplete" in repr(store)
    msg = r"is incomplete: its manifest lists 2 shards but the finished store held 3; refusing to read"
    with pytest.raises(StoreError, match=msg):
        store.read()
    with pytest.raises(StoreError, match=msg):
        store.read(0, 10)
    with pytest.raises(StoreError, match=msg):
        list(store.iter_shards())
    with pytest.raises(StoreError, match=msg):
        store.verify()
    part = store.read(allow_partial=True)
    full = FeatureActivations.concatenate([_block(i) for i in range(2)])
    np.testing.assert_array_equal(part.to_numpy(), full.to_numpy())
    assert len(list(store.iter_shards(allow_partial=True))) == 2


def test_store_whose_row_total_disagrees_is_incomplete(tmp_path):
    path = tmp_path / "s"
    _build(path)
    m = _manifest(path)
    m["expected_rows"] = 61
    _write_manifest(path, m)
    store = ActivationStore.open(path)
    assert not store.complete
    with pytest.raises(StoreError, match=r"lists 60 rows but the finished store held 61"):
        store.read()


def test_unfinished_and_truncated_stores_report_partial(tmp_path):
    store = _build(tmp_path / "s", finalize=False)
    assert not store.complete and not store.finalized
    assert "unfinished" in store.incomplete_reason and "partial" in repr(store)
    store.finalize()
    assert store.complete and store.incomplete_reason is None
    store.truncate(2)
    store.close()
    back = ActivationStore.open(tmp_path / "s")
    assert not back.complete and not back.finalized and back.n_shards == 2
    back.append(_block(2), meta={"batch": 2})
    back.finalize()
    assert ActivationStore.open(tmp_path / "s").complete


def test_intact_store_reads_identically(tmp_path):
    path = tmp_path / "s"
    _build(path)
    store = ActivationStore.open(path)
    assert store.complete and store.incomplete_reason is None and store.finalized
    store.verify()
    acts = store.read()
    expected = FeatureActivations.concatenate([_block(i) for i in range(N_BLOCKS)])
    np.testing.assert_array_equal(acts.to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(acts.matrix.indptr, expected.matrix.indptr)
    np.testing.assert_array_equal(acts.matrix.indices, expected.matrix.indices)
    np.testing.assert_array_equal(acts.token_ids, expected.token_ids)
    np.testing.assert_array_equal(acts.doc_index, expected.doc_index)
    np.testing.assert_array_equal(acts.position, expected.position)
    np.testing.assert_array_equal(store.read(15, 45).to_numpy(), expected.to_numpy()[15:45])
    assert [info.meta["batch"] for info, _ in store.iter_shards()] == [0, 1, 2]
    assert store.provenance.model == "m" and store.meta == {"n_docs": N_BLOCKS}

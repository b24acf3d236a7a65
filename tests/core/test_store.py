import json

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance


def _block(i, n=40, f=16):
    rng = np.random.default_rng(i)
    m = sp.random(n, f, density=0.2, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(
        m, token_ids=rng.integers(0, 100, n), doc_index=np.full(n, i), position=np.arange(n)
    )


def _fill(path, n_blocks=3, **kw):
    store = ActivationStore.create(path, n_features=16, provenance=Provenance(model="m", seed=1), **kw)
    for i in range(n_blocks):
        store.append(_block(i), meta={"batch": i})
    return store


def test_append_reopen_read_all(tmp_path):
    store = _fill(tmp_path / "s")
    store.finalize(n_docs=3)
    back = ActivationStore.open(tmp_path / "s")
    assert back.complete and back.n_rows == 120 and back.n_shards == 3
    assert back.meta["n_docs"] == 3 and back.provenance.model == "m"
    acts = back.read()
    expected = FeatureActivations.concatenate([_block(i) for i in range(3)])
    np.testing.assert_array_equal(acts.to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(acts.token_ids, expected.token_ids)
    np.testing.assert_array_equal(acts.doc_index, expected.doc_index)
    assert [s.meta["batch"] for s in back.shards] == [0, 1, 2]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["shards"][0]["tensors"]["data"]["dtype"] == "float32"
    assert len(manifest["shards"][0]["sha256"]) == 64


def test_row_range_reads_only_overlapping_shards(tmp_path):
    _fill(tmp_path / "s", n_blocks=5).finalize()
    store = ActivationStore.open(tmp_path / "s")
    part = store.read(45, 75)  # inside shard 1 only (rows 40..80)
    assert store.loads == 1
    full = FeatureActivations.concatenate([_block(i) for i in range(5)])
    np.testing.assert_array_equal(part.to_numpy(), full.to_numpy()[45:75])
    store.read(70, 90)  # spans shards 1 and 2
    assert store.loads == 3
    with pytest.raises(StoreError, match=r"row range 10:500 is outside the store's 200 rows"):
        store.read(10, 500)


def test_resume_after_kill_mid_shard(tmp_path):
    path = tmp_path / "s"
    _fill(path, n_blocks=2)
    # a writer killed while writing shard 2 leaves a temporary file; one killed between the shard
    # rename and the manifest update leaves an unlisted shard. Neither may be read as whole.
    (path / "shard_00002.safetensors.tmp").write_bytes(b"half a shard")
    (path / "shard_00003.safetensors").write_bytes(b"unlisted")
    store = ActivationStore.open(path)
    assert store.n_rows == 80 and store.n_shards == 2 and not store.complete
    store.append(_block(2), meta={"batch": 2})
    store.finalize()
    resumed = ActivationStore.open(path).read()
    uninterrupted = _fill(tmp_path / "u", n_blocks=3).read(allow_partial=True)
    np.testing.assert_array_equal(resumed.to_numpy(), uninterrupted.to_numpy())
    np.testing.assert_array_equal(resumed.token_ids, uninterrupted.token_ids)


def test_open_or_create_resumes_only_same_meta(tmp_path):
    path = tmp_path / "s"
    _fill(path, n_blocks=2, meta={"hook": "a"})
    same = ActivationStore.open_or_create(path, n_features=16, meta={"hook": "a"})
    assert same.n_rows == 80
    same.close()
    other = ActivationStore.open_or_create(path, n_features=16, meta={"hook": "b"})
    assert other.n_rows == 0 and not list(path.glob("shard_*"))


def test_corrupt_and_missing_shard_named(tmp_path):
    path = tmp_path / "s"
    _fill(path).finalize()
    shard = path / "shard_00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = ActivationStore.open(path)
    store.read(0, 40)  # shard 0 is fine
    with pytest.raises(StoreError, match=r"shard shard_00001.safetensors .* is corrupt"):
        store.read()
    with pytest.raises(StoreError, match=r"shard_00001.safetensors .* is corrupt"):
        store.verify()
    shard.unlink()
    with pytest.raises(StoreError, match=r"shard shard_00001.safetensors of store .* is missing"):
        store.read(50, 60)


def test_store_errors(tmp_path):
    with pytest.raises(StoreError, match=r"is not an activation store: manifest.json is missing"):
        ActivationStore.open(tmp_path / "nothing")
    store = _fill(tmp_path / "s", n_blocks=1)
    with pytest.raises(StoreError, match=r"already holds a store"):
        ActivationStore.create(tmp_path / "s", n_features=16)
    with pytest.raises(StoreError, match=r"acts has 3 features but store .* holds 16"):
        store.append(np.ones((2, 3), dtype=np.float32))
    store.finalize()
    with pytest.raises(StoreError, match=r"is finalized"):
        store.append(_block(5))
    (tmp_path / "s" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"is not valid JSON"):
        ActivationStore.open(tmp_path / "s")


def test_no_pickle_anywhere_in_package():
    from pathlib import Path

    import featgeom_tda

    root = Path(featgeom_tda.__file__).parent
    for f in root.rglob("*.py"):
        text = f.read_text()
        assert "import pickle" not in text and "torch.load(" not in text, f


def test_truncate_and_verify_shard(tmp_path):
    store = _fill(tmp_path / "s", n_blocks=3)
    store.finalize()
    assert store.verify_shard(store.shards[0]).name == "shard_00000.safetensors"
    store.truncate(1)
    store.close()
    back = ActivationStore.open(tmp_path / "s")
    assert back.n_shards == 1 and not back.complete and back.n_rows == 40
    back.append(_block(1))
    assert back.n_rows == 80
    with pytest.raises(StoreError, match=r"n_shards must be in \[0, 2\], got 5"):
        back.truncate(5)


def test_shard_checksum_is_the_full_sha256_of_the_file(tmp_path):
    import hashlib

    store = _fill(tmp_path / "s", n_blocks=2)
    for info in store.shards:
        assert info.sha256 == hashlib.sha256((tmp_path / "s" / info.file).read_bytes()).hexdigest()

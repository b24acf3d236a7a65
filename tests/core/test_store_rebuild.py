"""ActivationStore.rebuild_manifest: a damaged or lost manifest is rebuilt from the intact, checksummed shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import featgeom_tda
from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations, Provenance

SRC = str(Path(featgeom_tda.__file__).resolve().parents[1])
TIMEOUT = 60


def _block(i, n=30, f=12):
    rng = np.random.default_rng(i)
    m = sp.random(n, f, density=0.25, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(m, token_ids=rng.integers(0, 90, n), doc_index=np.full(n, i), position=np.arange(n))


def _fill(path, n_blocks=4):
    store = ActivationStore.create(path, n_features=12, provenance=Provenance(model="m", seed=3), meta={"run": "r"})
    for i in range(n_blocks):
        store.append(_block(i), meta={"batch": i})
    return store


def _shard_bytes(path):
    return {f.name: f.read_bytes() for f in sorted(Path(path).glob("shard_*.safetensors"))}


def _expected(blocks):
    return FeatureActivations.concatenate([_block(i) for i in blocks])


def test_a_stray_byte_in_the_manifest_loses_no_shard(tmp_path):
    path = tmp_path / "s"
    _fill(path).finalize(n_docs=4)
    shards = _shard_bytes(path)
    manifest = (path / "manifest.json").read_bytes()
    (path / "manifest.json").write_bytes(manifest[:40] + b"\x07" + manifest[40:])
    with pytest.raises(StoreError, match=r"featgeom store-repair"):
        ActivationStore.open(path)

    report = ActivationStore.rebuild_manifest(path)
    assert (report.n_shards, report.n_rows, report.skipped) == (4, 120, [])
    assert (path / report.old_manifest).read_bytes()[:41] == manifest[:40] + b"\x07"  # the damaged one is kept
    assert _shard_bytes(path) == shards
    store = ActivationStore.open(path)
    assert not store.complete and not store.holds_lock  # rebuilt stores are unfinished until finalized again
    assert store.n_features == 12 and store.provenance.model == "m" and store.meta["run"] == "r"
    assert [s.meta["batch"] for s in store.shards] == [0, 1, 2, 3]
    with pytest.raises(StoreError, match="unfinished"):
        store.read()
    acts = store.read(allow_partial=True)
    np.testing.assert_array_equal(acts.to_numpy(), _expected(range(4)).to_numpy())
    np.testing.assert_array_equal(acts.doc_index, _expected(range(4)).doc_index)
    with pytest.raises(StoreError, match="unfinished"):
        store.verify()
    store.verify(allow_partial=True)
    store.finalize(n_docs=4)
    assert ActivationStore.open(path).complete


def test_a_lost_manifest_is_rebuilt_and_the_store_continues(tmp_path):
    path = tmp_path / "s"
    _fill(path, n_blocks=3).close()
    (path / "manifest.json").unlink()
    with pytest.raises(StoreError, match=r"manifest.json is missing; rebuild it .*featgeom store-repair"):
        ActivationStore.open(path)
    report = ActivationStore.rebuild_manifest(path)
    assert report.old_manifest is None and report.n_shards == 3
    store = ActivationStore.open(path)
    store.append(_block(3), meta={"batch": 3})
    store.finalize()
    np.testing.assert_array_equal(ActivationStore.open(path).read().to_numpy(), _expected(range(4)).to_numpy())


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_bad_middle_shard_ends_the_listing_and_later_shards_stay_on_disk(tmp_path, damage):
    path = tmp_path / "s"
    _fill(path, n_blocks=5).finalize()
    bad = path / "shard_00002.safetensors"
    if damage == "flip":
        raw = bytearray(bad.read_bytes())
        raw[-5] ^= 0xFF  # inside the tensor data: the embedded digest no longer matches
        bad.write_bytes(bytes(raw))
    elif damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:-20])
    else:
        bad.unlink()
    (path / "manifest.json").write_text("{ not json")
    later = _shard_bytes(path)

    report = ActivationStore.rebuild_manifest(path)
    assert report.n_shards == 2 and report.n_rows == 60
    skipped = dict(report.skipped)
    if damage == "delete":
        assert skipped["shard_00003.safetensors"] == "shard_00002.safetensors before it is missing"
    else:
        assert "shard_00002.safetensors" in skipped and skipped["shard_00003.safetensors"] == "an earlier shard is not intact"
    assert "shard_00004.safetensors" in skipped
    assert _shard_bytes(path) == later  # nothing deleted, the damaged shard included
    assert "not listed: shard_00004.safetensors" in str(report)
    np.testing.assert_array_equal(ActivationStore.open(path).read(allow_partial=True).to_numpy(),
                                  _expected(range(2)).to_numpy())


def test_shards_of_another_store_are_not_listed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _fill(a, n_blocks=2).close()
    other = ActivationStore.create(b, n_features=12, provenance=Provenance(model="other"))
    for i in range(3):
        other.append(_block(i))
    other.close()
    os.replace(b / "shard_00002.safetensors", a / "shard_00002.safetensors")
    (a / "manifest.json").unlink()
    report = ActivationStore.rebuild_manifest(a)
    assert report.n_shards == 2
    assert "another store" in dict(report.skipped)["shard_00002.safetensors"]


def test_a_shard_without_its_embedded_record_is_not_trusted(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "s"
    _fill(path, n_blocks=2).close()
    f = path / "shard_00001.safetensors"
    save_file(load_file(str(f)), str(f))  # same tensors, no record: as written by an older version
    (path / "manifest.json").unlink()
    report = ActivationStore.rebuild_manifest(path)
    assert report.n_shards == 1
    assert "no embedded record" in dict(report.skipped)["shard_00001.safetensors"]


def test_refusals_name_the_path(tmp_path):
    with pytest.raises(StoreError, match="is not a directory"):
        ActivationStore.rebuild_manifest(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="holds no shard files"):
        ActivationStore.rebuild_manifest(tmp_path / "empty")


def test_a_rebuild_killed_midway_leaves_the_old_manifest_and_every_shard(tmp_path):
    path = tmp_path / "s"
    _fill(path, n_blocks=4).finalize()
    shards = _shard_bytes(path)
    damaged = b"{" + (path / "manifest.json").read_bytes()
    (path / "manifest.json").write_bytes(damaged)
    script = textwrap.dedent(
        f"""
        import sys, time
        from featgeom_tda.core.store import ActivationStore
        def slow(index, name):
            print("SHARD", index, flush=True)
            time.sleep({TIMEOUT})
        ActivationStore.rebuild_manifest({str(path)!r}, on_shard=slow)
        """
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_WAIT_POLICY="passive")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "SHARD 0"
        with pytest.raises(StoreError, match=rf"pid {proc.pid}"):  # the rebuild holds the writer lock
            ActivationStore.rebuild_manifest(path)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
    assert (path / "manifest.json").read_bytes() == damaged and _shard_bytes(path) == shards
    assert not list(path.glob("manifest.json.damaged-*"))
    report = ActivationStore.rebuild_manifest(path)  # the dead process's lock is gone
    assert report.n_shards == 4 and report.skipped == []
    assert _shard_bytes(path) == shards

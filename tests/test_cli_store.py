"""The store commands: store-info on finished and unfinished stores, store-repair, match refusing unfinished stores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom_tda import cli
from featgeom_tda.core.store import ActivationStore
from featgeom_tda.core.types import FeatureActivations, Provenance


def _store(path, n_blocks=3, finish=True):
    store = ActivationStore.create(path, n_features=10, provenance=Provenance(model="m", seed=1))
    for i in range(n_blocks):
        rng = np.random.default_rng(i)
        m = sp.random(25, 10, density=0.3, random_state=rng, dtype=np.float32, format="csr")
        store.append(FeatureActivations(m, token_ids=rng.integers(0, 50, 25), doc_index=np.full(25, i),
                                        position=np.arange(25)))
    if finish:
        store.finalize(n_docs=n_blocks)
    return store


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err.strip()


def test_store_info_verify_on_a_finished_store(tmp_path, capsys):
    _store(tmp_path / "s")
    rc, out, err = _run(capsys, "store-info", str(tmp_path / "s"), "--verify")
    assert rc == 0 and err == ""
    assert "all 3 listed shard checksums verified" in out and "not complete" not in out


def test_store_info_verify_says_an_unfinished_store_is_unfinished(tmp_path, capsys):
    _store(tmp_path / "s", finish=False)
    rc, out, err = _run(capsys, "store-info", str(tmp_path / "s"), "--verify")
    assert rc == 0 and err == ""
    assert "not complete: " in out and "unfinished (3 shards, 75 rows so far)" in out
    assert "verified (the store is not complete)" in out


def test_store_info_verify_names_a_bad_shard(tmp_path, capsys):
    _store(tmp_path / "s")
    shard = tmp_path / "s" / "shard_00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    rc, out, err = _run(capsys, "store-info", str(tmp_path / "s"), "--verify")
    assert rc == 2 and "\n" not in err and "shard_00001" in err


def test_store_repair_rebuilds_a_lost_manifest(tmp_path, capsys):
    path = tmp_path / "s"
    _store(path)
    before = ActivationStore.open(path).read().to_numpy()
    shards = {f.name: f.read_bytes() for f in path.glob("shard_*.safetensors")}
    (path / "manifest.json").unlink()
    rc, _, err = _run(capsys, "match", str(path), str(path), "--out", str(tmp_path / "m"))
    assert rc == 2 and "\n" not in err and "store-repair" in err

    rc, out, err = _run(capsys, "store-repair", str(path))
    assert rc == 0 and err == ""
    assert "3 intact shards, 75 rows (unfinished)" in out
    assert out.count(": intact") == 3
    assert {f.name: f.read_bytes() for f in path.glob("shard_*.safetensors")} == shards
    store = ActivationStore.open(path)
    np.testing.assert_array_equal(store.read(allow_partial=True).to_numpy(), before)


def test_store_repair_lists_what_it_left_out(tmp_path, capsys):
    path = tmp_path / "s"
    _store(path)
    (path / "shard_00002.safetensors").write_bytes(b"not a shard")
    rc, out, _ = _run(capsys, "store-repair", str(path))
    assert rc == 0 and "2 intact shards, 50 rows" in out
    assert "not listed: shard_00002.safetensors: cannot be read" in out


def test_store_repair_of_a_folder_without_shards_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "store-repair", str(tmp_path / "empty"))
    assert rc == 2 and "\n" not in err and "holds no shard files" in err


def test_match_refuses_an_unfinished_store(tmp_path, capsys):
    _store(tmp_path / "a")
    _store(tmp_path / "b", finish=False)
    rc, _, err = _run(capsys, "match", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"))
    assert rc == 2 and "\n" not in err and "unfinished" in err
    assert not (tmp_path / "m").exists()


def test_match_on_ray_gives_the_local_matching(tmp_path, capsys):
    """`featgeom match --engine ray` (a local 2-CPU cluster) saves the same pairs as the local engine."""
    pytest.importorskip("ray")
    from featgeom_tda.core.types import FeatureMatching

    a, b = tmp_path / "a", tmp_path / "b"
    _store(a)
    _store(b, n_blocks=3)
    assert cli.main(["match", str(a), str(b), "--out", str(tmp_path / "local")]) == 0
    assert cli.main(["match", str(a), str(b), "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    local, ray = FeatureMatching.load(tmp_path / "local"), FeatureMatching.load(tmp_path / "ray")
    assert np.array_equal(local.index_a, ray.index_a) and np.array_equal(local.index_b, ray.index_b)
    assert np.allclose(local.correlation, ray.correlation, atol=1e-12)
    assert cli.main(["match", str(a), str(b), "--out", str(tmp_path / "x"), "--address", "auto"]) == 2

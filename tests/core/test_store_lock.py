"""The per-store writer lock (flock on STORE/.lock) and unique temporary file names."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import featgeom_tda
from featgeom_tda.core.store import ActivationStore, StoreError, _tmp_path
from featgeom_tda.core.types import FeatureActivations

SRC = str(Path(featgeom_tda.__file__).resolve().parents[1])
TIMEOUT = 60

_HELPERS = """
import sys, time
import numpy as np, scipy.sparse as sp
from featgeom_tda.core.store import ActivationStore, StoreError
from featgeom_tda.core.types import FeatureActivations

def block(i, n=10, f=8):
    rng = np.random.default_rng(i)
    m = sp.random(n, f, density=0.3, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(m, token_ids=rng.integers(0, 50, n), doc_index=np.full(n, i), position=np.arange(n))
"""


def _block(i, n=10, f=8):
    rng = np.random.default_rng(i)
    m = sp.random(n, f, density=0.3, random_state=rng, dtype=np.float32, format="csr")
    return FeatureActivations(m, token_ids=rng.integers(0, 50, n), doc_index=np.full(n, i), position=np.arange(n))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_WAIT_POLICY"] = "passive"
    return env


def _start_holder(path: Path) -> subprocess.Popen:
    """A process that creates the store at ``path``, writes two shards, says READY and waits (lock held)."""
    script = _HELPERS + textwrap.dedent(
        f"""
        store = ActivationStore.create({str(path)!r}, n_features=8)
        store.append(block(0), meta={{"batch": 0}})
        store.append(block(1), meta={{"batch": 1}})
        print("READY", flush=True)
        time.sleep({TIMEOUT})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env())
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        proc.wait(TIMEOUT)
        pytest.fail(f"lock holder did not start: {line!r}")
    return proc


def _try_write(path: Path) -> str:
    """In another process, try to append to the store at ``path``; return 'OK' or the StoreError message."""
    script = _HELPERS + textwrap.dedent(
        f"""
        try:
            s = ActivationStore.open({str(path)!r})
            s.append(block(9), meta={{"batch": 9}})
            s.close()
            print("OK")
        except StoreError as exc:
            print("REFUSED", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=TIMEOUT, check=True
    )
    return out.stdout.strip()


def test_second_writer_is_refused_with_the_holders_pid_and_readers_are_not(tmp_path):
    path = tmp_path / "s"
    proc = _start_holder(path)
    try:
        pattern = rf"being written by another writer: pid {proc.pid} on host '{socket.gethostname()}'"
        with pytest.raises(StoreError, match=pattern):
            ActivationStore.open(path).append(_block(5))
        with pytest.raises(StoreError, match=rf"pid {proc.pid}"):
            ActivationStore.open_or_create(path, n_features=8)
        with pytest.raises(StoreError, match=rf"pid {proc.pid}"):
            ActivationStore.create(path, n_features=8, overwrite=True)
        with pytest.raises(StoreError, match=rf"pid {proc.pid}"):
            ActivationStore.open(path).finalize()
        # the refused writers changed nothing; a reader takes no lock
        reader = ActivationStore.open(path)
        assert reader.n_shards == 2 and not reader.holds_lock
        assert reader.read(allow_partial=True).n_tokens == 20
        with pytest.raises(StoreError, match="unfinished"):
            reader.read()
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


def test_sigkill_releases_the_lock_and_intact_shards_still_read(tmp_path):
    path = tmp_path / "s"
    proc = _start_holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(TIMEOUT) == -signal.SIGKILL
    store = ActivationStore.open(path)
    store.verify_shard(store.shards[0])
    store.verify_shard(store.shards[1])
    acts = store.read(allow_partial=True)
    expected = FeatureActivations.concatenate([_block(0), _block(1)])
    np.testing.assert_array_equal(acts.to_numpy(), expected.to_numpy())
    np.testing.assert_array_equal(acts.token_ids, expected.token_ids)
    # the dead writer's lock is gone: this process resumes the store
    store.append(_block(2), meta={"batch": 2})
    assert store.holds_lock
    store.finalize()
    assert not store.holds_lock
    assert ActivationStore.open(path).complete and ActivationStore.open(path).n_rows == 30


def test_lock_is_held_until_close_or_finalize(tmp_path):
    path = tmp_path / "s"
    store = ActivationStore.create(path, n_features=8)
    store.append(_block(0), meta={"batch": 0})
    assert store.holds_lock and (path / ".lock").is_file()
    msg = _try_write(path)
    assert msg.startswith("REFUSED") and f"pid {os.getpid()}" in msg and socket.gethostname() in msg
    store.close()
    assert not store.holds_lock
    assert _try_write(path) == "OK"
    assert ActivationStore.open(path).n_shards == 2

    with ActivationStore.open_or_create(path, n_features=8) as again:
        assert again.holds_lock and again.n_shards == 2
        assert _try_write(path).startswith("REFUSED")
        again.finalize()
        assert not again.holds_lock
    assert ActivationStore.open(path).complete


def test_context_manager_and_garbage_collection_release_the_lock(tmp_path):
    path = tmp_path / "s"
    with ActivationStore.create(path, n_features=8) as store:
        store.append(_block(0))
    assert _try_write(path) == "OK"
    store = ActivationStore.open(path)
    store.append(_block(1))
    del store
    assert _try_write(path) == "OK"


def test_temporary_names_are_unique_per_process_and_call(tmp_path):
    final = tmp_path / "shard_00000.safetensors"
    names = {_tmp_path(final).name for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith(f"shard_00000.safetensors.{os.getpid()}.") and name.endswith(".tmp")
    # writes leave no temporary file behind
    store = ActivationStore.create(tmp_path / "s", n_features=8)
    store.append(_block(0))
    store.finalize()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [".lock", "manifest.json", "shard_00000.safetensors"]

"""Ray helpers shared by the distributed engines: import, connection, block splits, ordered results."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from featgeom_tda.core._validation import check_positive_int

log = logging.getLogger(__name__)

INSTALL_HINT = "the Ray engine needs ray: pip install 'featgeom_tda[ray]' (ray>=2.60)"


def require_ray() -> Any:
    """The ``ray`` module, or ImportError saying how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in the dev extra
        raise ImportError(INSTALL_HINT) from exc
    return ray


def connect(address: str | None) -> Any:
    """``ray``, connected: the running session if there is one, else ``ray.init(address=address)``.

    With ``address=None`` and no session, a local cluster is started (all cores of this machine); it stays
    up for the rest of the process (``ray.shutdown()`` ends it). An ``address`` different from a session
    that is already running is refused.
    """
    ray = require_ray()
    if address is not None and not isinstance(address, str):
        raise ValueError(f"address must be None or a Ray address string (e.g. 'auto', 'ray://host:10001'); got {address!r}")
    if ray.is_initialized():
        return ray
    log.info("starting Ray (address=%r)", address)
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


def cluster_cpus(ray: Any) -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def split_blocks(n: int, *, n_blocks: int | None, block_size: int | None, default_blocks: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) blocks covering range(n): ``block_size`` items each, or ``n_blocks`` near-equal
    blocks (default ``default_blocks``); never an empty block, at least one block (possibly empty when n=0)."""
    if n_blocks is not None and block_size is not None:
        raise ValueError(f"give n_blocks or block_size, not both; got n_blocks={n_blocks}, block_size={block_size}")
    if block_size is not None:
        size = check_positive_int(block_size, "block_size")
        edges = list(range(0, n, size)) + [n]
    else:
        count = default_blocks if n_blocks is None else check_positive_int(n_blocks, "n_blocks")
        count = max(1, min(count, n))
        edges = np.linspace(0, n, count + 1).round().astype(int).tolist()
    blocks = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return blocks or [(0, n)]


def task_options(*, num_cpus: float, num_gpus: float, max_retries: int) -> dict[str, Any]:
    """``.options(...)`` of a retried Ray task (system failures: a worker process that died)."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
        raise ValueError(f"max_retries must be an integer >= -1 (-1: retry forever); got {max_retries!r}")
    return {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries}

"""Extraction on Ray: document batches over actors that hold the models and SAEs; the driver writes.

Each actor holds a copy of every source's model and SAE (shipped once through the object store, moved to the
actor's ``device``) and the tokenized dataset. For batch ``b`` it runs each model once with hooks on all of its
sources (as locally: sources that share a model object share the forward pass) and returns each source's
sparse SAE codes. The driver plans, opens and resumes the stores exactly as
:func:`~featgeom_tda.extraction.activations.extract_activations` does (same refusals, same store meta and
fingerprints), and appends the shards IN BATCH ORDER with the store's public append API and the same shard
meta, so the stores are bitwise equal to those of the local path (same files, same checksums, same rows).

Failures: an actor that dies in the middle of a batch is restarted by Ray (``max_restarts``) and the call is
retried (``max_task_retries``); nothing is lost, because nothing of a batch is written until its result is
back on the driver. If the driver itself dies, the stores hold every batch written so far and a rerun (local or
Ray) resumes after the last complete shard.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from featgeom_tda.core._validation import check_output_dir, check_positive_int
from featgeom_tda.core.store import ActivationStore
from featgeom_tda.extraction import activations as _local
from featgeom_tda.extraction.dataset import TokenizedDataset
from featgeom_tda.extraction.encoding import encode_batch
from featgeom_tda.extraction.source import ActivationSource, check_device
from featgeom_tda.distributed._ray import cluster_cpus, connect

__all__ = ["ray_extract_activations", "ExtractionWorker"]

log = logging.getLogger(__name__)


def _groups(sources: list[ActivationSource]) -> list[list[str]]:
    """Names of the sources that share a model object, in the order of the local path."""
    groups: list[list[ActivationSource]] = []
    for src in sources:
        for g in groups:
            if g[0].model is src.model:
                g.append(src)
                break
        else:
            groups.append([src])
    return [[s.name for s in g] for g in groups]


class ExtractionWorker:
    """The actor: the sources (models + SAEs) on ``device`` and the dataset; :meth:`run` encodes one batch."""

    def __init__(self, sources: list[ActivationSource], dataset: TokenizedDataset, device: Any, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.sources = {s.name: s for s in sources}
        self.groups = _groups(sources)
        self.dataset = dataset
        self.device = device
        for src in sources:
            for module, what in ((src.model, "model"), (src.sae, "sae")):
                try:
                    check_device(module, what, device)
                except ValueError:
                    module.to(device)

    def run(self, start: int, stop: int, todo: list[str], keep_bos: bool) -> dict[str, Any]:
        """{source name: CSR float32 codes of documents [start, stop)} for the sources in ``todo``."""
        import torch

        d, device = self.dataset, self.device
        tokens = torch.from_numpy(d.tokens[start:stop]).to(device)
        attn = torch.from_numpy(d.attention_mask[start:stop].astype(np.int64)).to(device)
        sel = torch.from_numpy(d.row_mask(start, stop, keep_bos=keep_bos)).to(device)
        out: dict[str, Any] = {}
        for group in self.groups:
            names = [n for n in group if n in todo]
            if not names:
                continue
            model = self.sources[group[0]].model
            captured = _local._run_hooks(model, tokens, attn, [self.sources[n].hook_name for n in names])
            for name in names:
                src = self.sources[name]
                out[name] = encode_batch(src.sae, captured[src.hook_name], token_mask=sel)
            del captured
        return out


def _check_sources(sources: Any) -> list[ActivationSource]:
    if isinstance(sources, ActivationSource):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise ValueError("sources must hold at least one ActivationSource, got an empty list")
    seen: set[str] = set()
    for i, src in enumerate(sources):
        if not isinstance(src, ActivationSource):
            raise ValueError(f"sources[{i}] must be an ActivationSource, got {type(src).__name__}")
        if src.name in seen:
            raise ValueError(
                f"source names must differ (they name the store directories); {src.name!r} is given more than once"
            )
        seen.add(src.name)
    return sources


def ray_extract_activations(
    sources: Sequence[ActivationSource],
    dataset: TokenizedDataset,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    keep_bos: bool = False,
    device: Any = "cpu",
    n_workers: int | None = None,
    address: str | None = None,
    num_cpus_per_worker: float = 1,
    num_gpus_per_worker: float = 0,
    torch_threads: int | None = None,
    max_retries: int = 3,
    max_in_flight: int | None = None,
    max_batches: int | None = None,
    on_shard: Callable[[str, int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, ActivationStore]:
    """:func:`~featgeom_tda.extraction.activations.extract_activations` with the batches computed by Ray actors.

    Args:
        sources, dataset, out_dir, batch_size, keep_bos, max_batches, on_shard, overwrite: as locally; the
            stores are the local stores, bitwise (resuming, refusals and finalization included).
        device: the device of every actor's copies of the models and SAEs (e.g. "cuda" with
            ``num_gpus_per_worker=1``); the driver's objects stay where they are.
        n_workers: actors (default: cluster CPUs / ``num_cpus_per_worker``, at most the number of batches).
        address: Ray address; None uses the running session or starts a local one.
        num_cpus_per_worker, num_gpus_per_worker: resources of each actor.
        torch_threads: intra-op torch threads of each actor (default ``int(num_cpus_per_worker)``, at least 1).
            CPU float results depend on it (MKL / oneDNN split their sums by thread): the stores are bitwise
            those of a local run with the same number of torch threads (on this machine a local run with 1
            and with 2 threads differ by 1 ulp in about 3% of the values).
        max_retries: restarts of a dead actor and retries of its interrupted batch (-1: forever).
        max_in_flight: batches submitted and not yet written (default 2 per actor); bounds the driver's memory
            to that many batches of codes.

    Returns:
        {source name: ActivationStore}, as ``extract_activations``.
    """
    sources = _check_sources(sources)
    if not isinstance(dataset, TokenizedDataset):
        raise ValueError(f"dataset must be a TokenizedDataset (see tokenize_documents), got {type(dataset).__name__}")
    batch_size = check_positive_int(batch_size, "batch_size")
    if max_batches is not None:
        max_batches = check_positive_int(max_batches, "max_batches")
    if n_workers is not None:
        n_workers = check_positive_int(n_workers, "n_workers")
    if max_in_flight is not None:
        max_in_flight = check_positive_int(max_in_flight, "max_in_flight")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
        raise ValueError(f"max_retries must be an integer >= -1 (-1: forever); got {max_retries!r}")
    if torch_threads is not None:
        torch_threads = check_positive_int(torch_threads, "torch_threads")
    keep_bos = bool(keep_bos)
    _local._check_tokenizers(sources, dataset)

    check_output_dir(out_dir, "out_dir")
    out_dir = Path(out_dir)
    stores: dict[str, ActivationStore] = {}
    fingerprints: dict[int, str] = {}
    metas = {s.name: _local._store_meta(s, dataset, keep_bos, batch_size, fingerprints) for s in sources}
    plans = {s.name: _local._store_plan(out_dir / s.name, s, metas[s.name], bool(overwrite)) for s in sources}
    try:
        return _extract(sources, dataset, out_dir, stores, metas, plans, batch_size=batch_size, keep_bos=keep_bos,
                        device=device, n_workers=n_workers, address=address, cpus=num_cpus_per_worker,
                        gpus=num_gpus_per_worker, threads=torch_threads, max_retries=max_retries, max_in_flight=max_in_flight,
                        max_batches=max_batches, on_shard=on_shard)
    finally:
        for store in stores.values():
            store.close()


def _extract(
    sources: list[ActivationSource],
    dataset: TokenizedDataset,
    out_dir: Path,
    stores: dict[str, ActivationStore],
    metas: dict[str, dict[str, Any]],
    plans: dict[str, str],
    *,
    batch_size: int,
    keep_bos: bool,
    device: Any,
    n_workers: int | None,
    address: str | None,
    cpus: float,
    gpus: float,
    threads: int | None,
    max_retries: int,
    max_in_flight: int | None,
    max_batches: int | None,
    on_shard: Callable[[str, int], None] | None,
) -> dict[str, ActivationStore]:
    n_batches = -(-dataset.n_docs // batch_size)
    next_batch = _local._open_stores(sources, dataset, out_dir, stores, metas, plans, batch_size, keep_bos)

    first = min(next_batch.values())
    last = n_batches if max_batches is None else min(n_batches, first + max_batches)
    order = [n for group in _groups(sources) for n in group]  # the local path's order of writes
    todo_of = {b: [n for n in order if next_batch[n] <= b] for b in range(first, last)}
    todo_of = {b: t for b, t in todo_of.items() if t}
    if todo_of:
        ray = connect(address)
        if n_workers is None:
            n_workers = max(1, int(cluster_cpus(ray) // max(float(cpus), 1e-9)))
        n_workers = min(n_workers, len(todo_of))
        window = max_in_flight or 2 * n_workers
        actor_cls = ray.remote(ExtractionWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=max_retries, max_task_retries=max_retries
        )
        sources_ref, dataset_ref = ray.put(sources), ray.put(dataset)
        actors = [actor_cls.remote(sources_ref, dataset_ref, device, threads or max(1, int(cpus))) for _ in range(n_workers)]
        log.info("extraction on Ray: batches %d..%d of %d over %d actors", first, last - 1, n_batches, n_workers)
        try:
            pending: collections.deque = collections.deque()
            batches = iter(sorted(todo_of))
            turn = 0

            def submit() -> bool:
                nonlocal turn
                b = next(batches, None)
                if b is None:
                    return False
                start, stop = b * batch_size, min((b + 1) * batch_size, dataset.n_docs)
                actor = actors[turn % len(actors)]
                turn += 1
                pending.append((b, actor.run.remote(start, stop, todo_of[b], keep_bos)))
                return True

            while len(pending) < window and submit():
                pass
            while pending:
                b, ref = pending.popleft()
                codes = ray.get(ref)
                submit()
                start, stop = b * batch_size, min((b + 1) * batch_size, dataset.n_docs)
                rows = dataset.rows(start, stop, keep_bos=keep_bos)
                _local.append_batch(b, codes, todo_of[b], rows, (start, stop), stores, next_batch, on_shard)
        finally:
            for actor in actors:
                ray.kill(actor)
    return _local.finish_stores(stores, next_batch, n_batches)

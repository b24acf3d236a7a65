"""A recipe run stage by stage. (Stages are added as the pipeline grows.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


def run_recipe_file(path: str | Path, *, out_dir: str | Path | None = None, force: list[str] | None = None) -> int:
    """Run the stages that exist: for now, write and read back a small activation store."""
    from featgeom_tda.store import ActivationStore
    from featgeom_tda.types import FeatureActivations, Provenance

    out = Path(out_dir or "featgeom_out/embedded")
    rng = np.random.default_rng(0)
    store = ActivationStore.create(out / "store_check", n_features=64, provenance=Provenance(model="random"), overwrite=True)
    for _ in range(4):
        store.append(FeatureActivations(sp.random(256, 64, density=0.05, random_state=rng, dtype=np.float32)))
    store.finalize()
    back = ActivationStore.open(out / "store_check").read()
    print(f"demo: wrote and verified an activation store of {back.n_tokens} rows x {back.n_features} features at {out}")
    return 0

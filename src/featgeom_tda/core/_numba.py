"""Choosing numba's threading layer once, before this package's first compiled kernel runs.

numba's OpenMP and TBB threading layers keep their worker threads spinning after a parallel call; on a
machine with few (or shared) cores those spinning threads slow every later torch operation in the process
many times over. The "workqueue" layer lets its workers sleep instead. :func:`configure_numba` picks that
layer, but only when the choice is still open: when the user has not set ``NUMBA_THREADING_LAYER`` and
numba has not started its thread pool yet. The package's kernel factories call it once, before they
compile; it logs at DEBUG what it chose.

To use another layer, set the environment variable before the process starts, e.g.
``NUMBA_THREADING_LAYER=omp``; this module then leaves numba as it is.
"""

from __future__ import annotations

import logging
import os

__all__ = ["configure_numba"]

logger = logging.getLogger(__name__)


def configure_numba(*, threading_layer: str = "workqueue"):
    """Import numba, choose ``threading_layer`` if the choice is still open, and return the numba module.

    The layer is left alone when ``NUMBA_THREADING_LAYER`` is set in the environment, when numba's
    configured layer is no longer "default", or when numba's thread pool has already been launched.
    """
    import numba
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" in os.environ:
        logger.debug("numba threading layer left to NUMBA_THREADING_LAYER=%s", os.environ["NUMBA_THREADING_LAYER"])
    elif getattr(parallel, "_is_initialized", False):
        logger.debug("numba thread pool already started (layer %s); left as it is", _active_layer(numba))
    elif numba.config.THREADING_LAYER != "default":
        logger.debug("numba threading layer already set to %s; left as it is", numba.config.THREADING_LAYER)
    else:
        numba.config.THREADING_LAYER = threading_layer
        logger.debug("numba threading layer set to %s", threading_layer)
    return numba


def _active_layer(numba) -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # pragma: no cover - pool not launched
        return numba.config.THREADING_LAYER

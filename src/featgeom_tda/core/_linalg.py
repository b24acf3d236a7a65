"""An SVD that does not give up: LAPACK's divide-and-conquer driver first, the QR-iteration driver if it fails.

``np.linalg.svd`` (gesdd) occasionally raises "SVD did not converge" on ill-conditioned float64 matrices,
e.g. the activation matrix of a layer with a few huge-norm rows. ``gesvd`` converges on those; it is slower,
so it runs only after gesdd fails. Both return the same decomposition up to the signs of singular vectors.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["svd"]

log = logging.getLogger(__name__)


def svd(M: np.ndarray, *, full_matrices: bool = False, compute_uv: bool = True) -> Any:
    """``np.linalg.svd(M, full_matrices, compute_uv)``, retried with scipy's gesvd driver if it does not converge."""
    try:
        return np.linalg.svd(M, full_matrices=full_matrices, compute_uv=compute_uv)
    except np.linalg.LinAlgError:
        import scipy.linalg

        log.debug("gesdd did not converge on a %s matrix; retrying with gesvd", "x".join(map(str, M.shape)))
        return scipy.linalg.svd(M, full_matrices=full_matrices, compute_uv=compute_uv, lapack_driver="gesvd",
                                check_finite=False)

"""One place that configures numba before a kernel of this package is compiled."""

from __future__ import annotations


def configure_numba():
    """Import numba with the workqueue threading layer and return the module.

    numba's OpenMP layer keeps its worker threads spinning after a parallel call, which slows every later
    torch operation in the process many times over; the workqueue layer sleeps instead.
    """
    import numba

    if numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"
    return numba

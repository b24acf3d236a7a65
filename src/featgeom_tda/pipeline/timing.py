"""Seconds spent in the named parts of a stage, logged at INFO (``featgeom -v`` shows them)."""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

__all__ = ["PartTimes"]

log = logging.getLogger("featgeom_tda.pipeline")
T = TypeVar("T")


class PartTimes:
    """``times("grid", build)`` runs ``build()`` and adds its seconds to the part ``grid``; :meth:`log` writes
    one line ``<stage>: grid 12.3 s, controls 4.5 s`` (a part called several times is summed)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.seconds: dict[str, float] = {}

    def __call__(self, part: str, build: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return build()
        finally:
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

    def log(self) -> None:
        if self.seconds:
            log.info("%s: %s", self.stage, ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))

"""Waiting between attempts that keep failing: restarts of an out-of-process adapter, reconnects of a stream."""

from __future__ import annotations

import random


def capped_backoff_s(failures: int, base_ms: int, cap_ms: int, jitter: float) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row: ``base_ms`` doubling each time up
    to ``cap_ms``, less up to ``jitter`` of it, so peers that failed together do not all retry in one instant."""
    capped = min(base_ms * 2 ** (failures - 1), cap_ms) / 1000
    return capped * random.uniform(1.0 - jitter, 1.0)

"""Waiting between attempts that keep failing, and waiting as long as a provider asked.

One formula for every retry in pyea (provider requests, stream reconnects, restarts of an out-of-process adapter,
deliveries of asynchronous answers), so they all back off the same way and can be reasoned about together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime


def capped_backoff_s(failures: int, base_ms: int, cap_ms: int, jitter: float) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row: ``base_ms`` doubling each time up
    to ``cap_ms``, less up to ``jitter`` of it, so peers that failed together do not all retry in one instant."""
    capped = min(base_ms * 2 ** (failures - 1), cap_ms) / 1000
    return capped * random.uniform(1.0 - jitter, 1.0)


#: Retry-After beyond this is taken as this: a broken header must not silence a provider for days.
RETRY_AFTER_CAP_S = 3600.0


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110); None when absent or
    unreadable."""
    value = (headers or {}).get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)

"""One back-off for every retry, and a provider's Retry-After read as RFC 9110 defines it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.core.retry_timing import RETRY_AFTER_CAP_S, capped_backoff_s, retry_after_s


def test_back_off_doubles_up_to_the_cap_less_at_most_the_jitter():
    for failures, full in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (6, 2.0), (30, 2.0)]:
        waits = [capped_backoff_s(failures, 100, 2000, 0.5) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits), (failures, min(waits), max(waits))
        assert max(waits) - min(waits) > full / 10, "spread out, so peers that failed together do not retry together"


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), ("999999999", RETRY_AFTER_CAP_S),
                                                 ("soon", None), ("", None), ("-5", None)])
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_s({"Retry-After": header}) == seconds


def test_retry_after_as_an_http_date_and_when_absent():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after_s({"Retry-After": later}) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_s({"Retry-After": earlier}) == 0.0
    assert retry_after_s({}) is None and retry_after_s(None) is None

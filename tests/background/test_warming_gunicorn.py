"""Background work under real gunicorn: one leader among the workers, taken over when it is killed."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import wait_for
from tests.serving import gunicorn, hammer, leader_pid, max_in_any_window, post, pyea_env

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

FEEDS = 10


def test_killing_the_leader_hands_the_jobs_to_another_worker(tmp_path: Path, provider: FakeProvider) -> None:
    for i in range(FEEDS):
        provider.prices[(f"coin-{i}", "usd")] = 1.0 + i
    cache_dir = tmp_path / "cache"
    env = pyea_env(cache_dir, provider, EA_WORKERS="3", CACHE_MAX_AGE="1500", CACHE_MIN_AGE="0",
                   WARMUP_INTERVAL="250")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        for i in range(FEEDS):
            assert post(server.url, {"id": "1", "data": {"coinid": f"coin-{i}", "quote": "USD"}}).status_code == 200
        first = wait_for(lambda: leader_pid(cache_dir), 5, "a leader", 0.05)
        assert first
        provider.reset()
        provider.delay_s = 0.1
        wait_for(lambda: provider.count() >= 1, 5, "the leader refreshes the feeds in one batch", 0.05)

        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        second = wait_for(lambda: (pid := leader_pid(cache_dir)) not in (None, first) and pid, 8, "a new leader", 0.05)
        assert second and second != first
        calls_before = provider.count()
        wait_for(lambda: provider.count() > calls_before, 5, "a refresh by the new leader", 0.05)
        takeover_s = time.monotonic() - killed_at
        assert takeover_s <= 5, takeover_s

        # Values stay fresh: every feed is a hit, far younger than the 1.5 s the entries live.
        time.sleep(0.5)
        for i in range(FEEDS):
            body = post(server.url, {"id": "1", "data": {"coinid": f"coin-{i}", "quote": "USD"}}).json()
            assert body["meta"]["cacheHit"] is True and body["meta"]["staleness"] < 1.5
        calls = list(provider.calls)
    batches = [c for c in calls if len(c.query["ids"].split(",")) == FEEDS]
    assert len(batches) >= 2
    # Never two batches at once: consecutive batch calls are separated by a refresh period, not overlapping.
    assert all(b.at - a.at > provider.delay_s for a, b in itertools.pairwise(batches))


def test_sigterm_during_refresh_cycles_is_clean(tmp_path: Path, provider: FakeProvider) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="2", CACHE_MAX_AGE="600", CACHE_MIN_AGE="0",
                   WARMUP_INTERVAL="100")
    provider.delay_s = 0.2  # a refresh is in flight most of the time
    with gunicorn(env, tmp_path / "gunicorn.log") as server:  # asserts exit 0 and no traceback on exit
        assert post(server.url).status_code == 200
        wait_for(lambda: provider.count() >= 3, 5, "three refreshes", 0.05)


def test_a_60_per_minute_tier_holds_under_four_workers_hammering_500_feeds(tmp_path: Path,
                                                                            provider: FakeProvider) -> None:
    """The issue's load test: 4 workers x 8 threads, 500 distinct feeds, 60 s of load, warming on."""
    feeds = 500
    for i in range(feeds):
        provider.prices[(f"coin-{i}", "usd")] = 1.0 + i
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="4", EA_THREADS="8", RATE_LIMIT_ENABLED="true",
                   RATE_LIMIT_CAPACITY="60", WARMUP_INTERVAL="5000", CACHE_MAX_AGE="15000", CACHE_MIN_AGE="0")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        statuses = hammer([server.url], feeds, 60, 32)
        times = [c.at for c in provider.calls]
    print(f"\nrate limit 60/min: {sum(statuses.values())} requests {dict(statuses)}, {len(times)} provider calls, "
          f"at most {max_in_any_window(times, 60.0)} in any 60 s")
    assert statuses[500] == 0 and set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0 and statuses[429] > 0
    assert max_in_any_window(times, 60.0) <= 61, max_in_any_window(times, 60.0)
    assert len(times) >= 50  # the quota was used, not starved


def test_after_a_restart_subscriptions_are_refreshed_without_any_request(tmp_path: Path,
                                                                        provider: FakeProvider) -> None:
    cache_dir = tmp_path / "cache"
    env = pyea_env(cache_dir, provider, EA_WORKERS="2", CACHE_MAX_AGE="1500", CACHE_MIN_AGE="0",
                   WARMUP_INTERVAL="250")
    with gunicorn(env, tmp_path / "first.log") as first:
        assert post(first.url).status_code == 200
    provider.reset()
    with gunicorn(env, tmp_path / "second.log") as second:
        wait_for(lambda: provider.count() >= 2, 8, "a refresh from the persisted subscription alone", 0.05)
        body = post(second.url).json()
        assert body["meta"]["cacheHit"] is True
    assert all(c.query["ids"] == "ethereum" for c in provider.calls)

"""pyea's worker under real gunicorn: a request that only waits gives its thread's turn to a queued one, so a
burst of cold feeds larger than the threads joins one batch, and no wait can starve the threads it needs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.devkit.fake_http import FakeProvider
from tests.serving import assert_node_answer, gunicorn, post, pyea_env

pytestmark = pytest.mark.process  # starts gunicorn


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burst_of_cold_feeds_twenty_times_the_threads_costs_a_few_calls_not_twenty(tmp_path: Path,
                                                                                          provider: FakeProvider,
                                                                                          workers: int) -> None:
    feeds = 40
    for i in range(feeds):
        provider.prices[(f"burst-{i}", "usd")] = float(i)
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS=str(workers), EA_THREADS="2")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        provider.delay_s = 0.1
        barrier = threading.Barrier(feeds)

        def ask(i: int):
            barrier.wait()
            return post(server.url, {"id": str(i), "data": {"coinid": f"burst-{i}", "quote": "USD"}})

        with ThreadPoolExecutor(feeds) as pool:
            answers = list(pool.map(ask, range(feeds)))
    assert [a.status_code for a in answers] == [200] * feeds
    assert [a.json()["result"] for a in answers] == [float(i) for i in range(feeds)]
    # 2 threads per worker: without giving turns away, 20 (or 10) rounds of 2 requests, a call each. One or two
    # calls on a quiet machine (bench/burst.py measures it); a loaded one can split the burst once more.
    assert provider.count("/simple/price") <= 4


def test_two_hundred_requests_for_one_cold_feed_on_two_threads_all_get_it(tmp_path: Path,
                                                                          provider: FakeProvider) -> None:
    """Requests waiting for the one fetching the feed hold no turn while they wait: it gets one back to answer."""
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="1", EA_THREADS="2")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        provider.delay_s = 0.2
        with ThreadPoolExecutor(200) as pool:
            answers = list(pool.map(lambda _: post(server.url), range(200)))
    assert all(assert_node_answer(a)["result"] == 3021.5 for a in answers)
    assert provider.count("/simple/price") == 1


def test_a_lone_cold_request_is_not_held_for_the_window(tmp_path: Path, provider: FakeProvider) -> None:
    """The worker knows it has no other request: a batch's only feed goes after a few ms, not the window."""
    provider.prices[("lone", "usd")] = 1.0
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="1", FOREGROUND_BATCH_WINDOW_MS="1000")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        started = time.monotonic()
        answer = post(server.url, {"id": "1", "data": {"coinid": "lone", "quote": "USD"}})
        waited = time.monotonic() - started
    assert answer.status_code == 200 and answer.json()["result"] == 1.0
    assert waited < 0.5  # alone after a few ms: fetched then, not after the 1 s window

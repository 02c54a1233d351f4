"""Streaming under real gunicorn: requests reach any worker, the one leader holds the only provider connection,
and when the leader dies another worker reopens it with every subscription."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.devkit.fake_http import FakeProvider
from app.devkit.fake_ws import FakeTickerStream
from app.devkit.testing import wait_for
from tests.serving import gunicorn, leader_pid, post, pyea_env

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

PRODUCTS = [f"G{i:02d}-USD" for i in range(50)]


@pytest.fixture
def stream() -> Iterator[FakeTickerStream]:
    with FakeTickerStream() as fake:
        for i, product in enumerate(PRODUCTS):
            fake.prices[product] = f"{100 + i}.0"
        yield fake


def ask(url: str, product: str) -> float:
    base, quote = product.split("-")
    answer = post(url, {"id": "1", "data": {"base": base, "quote": quote}})
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]



def test_one_connection_for_every_worker_and_a_new_one_when_the_leader_dies(tmp_path: Path, provider: FakeProvider,
                                                                            stream: FakeTickerStream) -> None:
    env = pyea_env(tmp_path / "cache", provider, ADAPTERS="coinbase", WS_ENABLED="true", WS_API_ENDPOINT=stream.url,
                   CACHE_FRONT_TTL="0", CACHE_POLLING_SLEEP_MS="20", CACHE_POLLING_MAX_RETRIES="100",
                   WS_RECONNECT_BACKOFF_MS="50", WS_RECONNECT_BACKOFF_MAX_MS="200")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        with ThreadPoolExecutor(16) as pool:
            values = list(pool.map(lambda p: ask(server.url, p), PRODUCTS))
        assert values == [100.0 + i for i in range(50)]
        assert stream.opened == 1 and stream.subscribed() == [set(PRODUCTS)]

        pushed = time.monotonic()
        stream.tick("G07-USD", "777.0")
        wait_for(lambda: ask(server.url, "G07-USD") == 777.0, 1, "the pushed value is served")
        lag = time.monotonic() - pushed
        assert lag < 0.15, f"{lag * 1000:.0f} ms from push to answer"

        leader = leader_pid(tmp_path / "cache")
        os.kill(leader, signal.SIGKILL)
        wait_for(lambda: stream.opened == 2 and stream.subscribed() == [set(PRODUCTS)], 10,
                 "another worker reopened the stream with every subscription, without a request")
        stream.tick("G08-USD", "888.0")
        wait_for(lambda: ask(server.url, "G08-USD") == 888.0, 2, "values flow through the new leader")

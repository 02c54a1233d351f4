"""Crashes and bad storage: a worker killed under load loses nothing shared, and a cache directory pyea cannot
use stops the start with one clear message instead of a traceback in every worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import diskcache
import pytest
import requests

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import REPO
from tests.serving import gunicorn, post, pyea_env, worker_pids

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

FEEDS = [f"coin-{i}" for i in range(20)]


def test_a_worker_killed_under_load_loses_no_cached_value_or_subscription(tmp_path: Path,
                                                                          provider: FakeProvider) -> None:
    for i, coin in enumerate(FEEDS):
        provider.prices[(coin, "usd")] = 1.0 + i
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="2", CACHE_MAX_AGE="600000", WARMUP_INTERVAL="600000")
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        for coin in FEEDS:
            assert post(server.url, {"id": "1", "data": {"coinid": coin, "quote": "USD"}}).status_code == 200
        calls = provider.count()

        def load() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    coin = FEEDS[int(time.monotonic() * 1000) % len(FEEDS)]
                    try:
                        code = session.post(server.url, json={"id": "1", "data": {"coinid": coin, "quote": "USD"}},
                                            timeout=10).status_code
                    except requests.ConnectionError:
                        code = 0  # the connection was on the killed worker: the client sees a reset, not a 500
                    statuses[code] += 1

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        os.kill(worker_pids(tmp_path / "gunicorn.log")[0], signal.SIGKILL)
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join()
        for coin in FEEDS:  # every value is still cached: answered without the provider
            answer = post(server.url, {"id": "1", "data": {"coinid": coin, "quote": "USD"}})
            assert answer.status_code == 200 and answer.json()["meta"]["cacheHit"] is True
        assert provider.count() == calls
        with diskcache.Cache(str(tmp_path / "cache" / "pyea-subscriptions")) as subscriptions:
            assert len(list(subscriptions.iterkeys())) == len(FEEDS)
    assert statuses[500] == 0 and set(statuses) <= {0, 200}, statuses
    assert statuses[200] > 100


@pytest.mark.parametrize("damage", ["corrupt database", "file instead of directory"])
def test_an_unusable_cache_dir_stops_the_start_with_one_message(tmp_path: Path, damage: str) -> None:
    cache_dir = tmp_path / "cache"
    if damage == "corrupt database":
        (cache_dir / "pyea-subscriptions").mkdir(parents=True)
        (cache_dir / "pyea-subscriptions" / "cache.db").write_bytes(b"this is not a SQLite database" * 100)
        expected = "pyea-subscriptions/cache.db is unusable"
    else:
        cache_dir.write_text("a file where the cache directory should be")
        expected = "a directory pyea can create"
    env = {**os.environ, "CACHE_DIR": str(cache_dir), "EA_PORT": "1"}
    started = subprocess.run([sys.executable, "-m", "gunicorn"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60)
    output = started.stdout + started.stderr
    assert started.returncode == 1, output
    assert expected in output and "CACHE_DIR=" in output, output
    assert "Traceback" not in output

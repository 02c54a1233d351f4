"""Several pyea instances (separate gunicorns on separate ports) sharing one real Redis: shared values, one
provider call per herd, leader failover, one quota for all, and a Redis outage under load."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import GunicornProcess
from tests.servers import RedisServer
from tests.serving import gunicorn, hammer, max_in_any_window, post, pyea_env

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI


def instance_env(tmp_path: Path, name: str, provider: FakeProvider, redis_url: str, **settings: str) -> dict:
    return pyea_env(tmp_path / name, provider, **{"CACHE_TYPE": "redis", "CACHE_REDIS_URL": redis_url,
                                                  "REQUEST_COALESCING_ENABLED": "true", **settings})


def lease_holder_pid(redis: RedisServer) -> int | None:
    owner = redis.client().get("pyea:lease:coingecko")
    return int(owner.split(":")[1]) if owner else None


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_two_instances_share_values_and_a_cold_herd_costs_one_call(tmp_path: Path, provider: FakeProvider,
                                                                   redis_url: str) -> None:
    provider.delay_s = 0.3
    with ExitStack() as stack:
        a, b = (stack.enter_context(gunicorn(instance_env(tmp_path, n, provider, redis_url), tmp_path / f"{n}.log"))
                for n in ("a", "b"))
        assert post(a.url).json()["meta"]["cacheHit"] is False
        assert post(b.url).json()["meta"]["cacheHit"] is True
        assert provider.count("/simple/price") == 1

        cold = {"id": "7", "data": {"from": "BTC", "to": "USD"}}
        with ThreadPoolExecutor(100) as pool:
            answers = list(pool.map(lambda i: post((a, b)[i % 2].url, cold), range(100)))
        assert [r.status_code for r in answers] == [200] * 100
        assert {r.json()["result"] for r in answers} == {97000.0}
        assert provider.count("/simple/price") == 2, "100 cold requests over two instances: one provider call"


def test_the_other_instance_takes_over_the_background_when_the_leader_dies(tmp_path: Path, provider: FakeProvider,
                                                                          redis_server: RedisServer,
                                                                          redis_url: str) -> None:
    fast = {"WARMUP_INTERVAL": "500", "CACHE_MAX_AGE": "3000", "CACHE_MIN_AGE": "500"}
    a = GunicornProcess(instance_env(tmp_path, "a", provider, redis_url, **fast), log_path=tmp_path / "a.log").start()
    b = GunicornProcess(instance_env(tmp_path, "b", provider, redis_url, **fast), log_path=tmp_path / "b.log").start()
    try:
        assert post(a.url).status_code == 200  # subscribes ETH/USD
        holder = lease_holder_pid(redis_server)
        leader, survivor = (a, b) if holder in children(a.proc.pid) else (b, a)
        assert holder in children(leader.proc.pid)
        for pid in [leader.proc.pid, *children(leader.proc.pid)]:
            os.kill(pid, signal.SIGKILL)
        leader.proc.wait()
        killed_at = time.monotonic()
        calls_before = provider.count("/simple/price")
        statuses: Counter[int] = Counter()
        took_over_s = None
        while time.monotonic() - killed_at < 10 and (took_over_s is None or time.monotonic() - killed_at < 5):
            statuses[post(survivor.url).status_code] += 1
            time.sleep(0.1)
            if took_over_s is None and lease_holder_pid(redis_server) in children(survivor.proc.pid):
                took_over_s = time.monotonic() - killed_at
        print(f"\nthe surviving instance took the lease {took_over_s} s after the leader was killed")
        assert took_over_s is not None and took_over_s < 10, "the survivor took over within 10 s"
        assert statuses == Counter({200: sum(statuses.values())}), statuses
        time.sleep(3)  # a full CACHE_MAX_AGE: the value must have been refreshed, not just served
        answer = post(survivor.url).json()
        assert answer["meta"]["cacheHit"] is True
        assert time.time() * 1000 - answer["timestamps"]["providerDataReceivedUnixMs"] < 3000
        assert provider.count("/simple/price") > calls_before
    finally:
        a.stop()
        b.stop()


def test_three_instances_share_one_30_per_minute_tier(tmp_path: Path, provider: FakeProvider,
                                                      redis_url: str) -> None:
    feeds = 300
    for i in range(feeds):
        provider.prices[(f"coin-{i}", "usd")] = 1.0 + i
    limited = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_CAPACITY": "30", "WARMUP_INTERVAL": "5000",
               "CACHE_MAX_AGE": "15000", "CACHE_MIN_AGE": "0"}
    with ExitStack() as stack:
        servers = [stack.enter_context(gunicorn(instance_env(tmp_path, n, provider, redis_url, **limited),
                                                tmp_path / f"{n}.log")) for n in ("a", "b", "c")]
        statuses = hammer([server.url for server in servers], feeds, 60, 24)
        times = [c.at for c in provider.calls]
    print(f"\nshared 30/min over 3 instances: {dict(statuses)}, {len(times)} provider calls, at most "
          f"{max_in_any_window(times, 60.0)} in any 60 s")
    assert set(statuses) <= {200, 429} and statuses[200] > 0 and statuses[429] > 0, statuses
    assert max_in_any_window(times, 60.0) <= 30
    assert len(times) >= 25  # the quota was used, not starved


def test_a_redis_outage_under_load_is_ridden_out(tmp_path: Path, provider: FakeProvider) -> None:
    redis = RedisServer(tmp_path).start()
    timeout_ms = 3000
    settings = {"API_TIMEOUT": str(timeout_ms), "CACHE_REDIS_TIMEOUT": "300"}
    results: list[tuple[int, float]] = []
    stop = threading.Event()
    try:
        with ExitStack() as stack:
            servers = [stack.enter_context(gunicorn(instance_env(tmp_path, n, provider, redis.url, **settings),
                                                    tmp_path / f"{n}.log")) for n in ("a", "b")]
            hot = [{"id": "1", "data": {"from": c, "to": "USD"}} for c in ("ETH", "BTC", "LINK")]
            for body in hot:
                assert post(servers[0].url, body).status_code == 200

            def load(seed: int) -> None:
                rng = random.Random(seed)
                with requests.Session() as session:
                    while not stop.is_set():
                        body = rng.choice(hot) if rng.random() < 0.8 else {
                            "id": "1", "data": {"coinid": f"cold-{rng.randrange(10**6)}", "quote": "USD"}}
                        started = time.monotonic()
                        code = session.post(servers[seed % 2].url, json=body, timeout=30).status_code
                        results.append((code, time.monotonic() - started))

            threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            time.sleep(1)
            redis.stop()
            time.sleep(10)
            logged = {n: len((tmp_path / f"{n}.log").read_text()) for n in ("a", "b")}
            redis.start()
            time.sleep(3)
            stop.set()
            for thread in threads:
                thread.join()
            for server in servers:
                after = post(server.url, {"id": "1", "data": {"from": "ETH", "to": "EUR"}})
                assert after.status_code == 200, "recovered without a restart"
            taken = sum((tmp_path / f"{n}.log").read_text()[logged[n]:].count("now runs the background jobs")
                        for n in ("a", "b"))
            assert taken == 1, "after the outage, one process of one instance took the lease back"
    finally:
        stop.set()
        redis.stop()
    codes = Counter(code for code, _ in results)
    print(f"\nRedis down 10 s under load: {dict(codes)}, slowest {max(s for _, s in results):.3f} s")
    assert codes[500] == 0 and set(codes) <= {200, 502, 503}, codes
    assert max(s for _, s in results) < timeout_ms / 1000
    assert codes[503] > 0 and codes[200] > len(results) / 2  # hot feeds kept being served

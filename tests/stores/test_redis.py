"""CACHE_TYPE=redis against a real redis-server: what several instances share, what stays atomic under
concurrency, EA_MODE, and how an instance behaves while Redis is down.

Apps built here are separate instances as far as sharing goes: each has its own CACHE_DIR, so the only thing
they have in common is the Redis.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.config import load_config
from app.core.entries import CacheEntry
from app.core.provider_limits import RateLimit
from app.core.setting_specs import SettingsError
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import node_request, wait_for
from app.fetch.rate_limit_redis import RedisRateLimiter
from app.stores.lease import RedisLease
from app.stores.redis_cache import RedisCache
from app.stores.redis_client import Shared, connect
from tests.servers import RedisServer

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

SECRET_PASSWORD = "redis-pass-Zq93-DO-NOT-LEAK"


def shared(url: str, open_s: float = 1.0) -> Shared:
    settings = load_config({"CACHE_TYPE": "redis", "CACHE_REDIS_URL": url}).settings
    return Shared(connect(settings), "test", open_s=open_s)



# ---------------------------------------------------------------------------------------------- settings


def test_reader_or_writer_without_redis_is_a_startup_error_that_says_why() -> None:
    with pytest.raises(SettingsError) as caught:
        load_config({"EA_MODE": "reader"})
    assert "EA_MODE='reader': must be reader-writer while CACHE_TYPE=local" in str(caught.value)
    assert "CACHE_TYPE=redis" in str(caught.value)


def test_redis_url_is_checked_and_never_shown(make_app, redis_url) -> None:
    with pytest.raises(SettingsError) as caught:
        load_config({"CACHE_TYPE": "redis", "CACHE_REDIS_URL": f"http://user:{SECRET_PASSWORD}@host"})
    assert "CACHE_REDIS_URL='[REDACTED]': must be a redis://, rediss:// or unix:// URL" in str(caught.value)
    assert SECRET_PASSWORD not in str(caught.value)
    client = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=redis_url, CACHE_REDIS_PASSWORD=SECRET_PASSWORD).test_client()
    shown = {row["name"]: row["value"] for row in client.get("/status").get_json()["configuration"]}
    assert shown["CACHE_REDIS_URL"] == "[REDACTED]" and shown["CACHE_REDIS_PASSWORD"] == "[REDACTED]"


def test_unix_socket_and_password(make_app, provider: FakeProvider, tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    with RedisServer(tmp_path, password=SECRET_PASSWORD, unix_socket=sock) as server:
        by_path = make_app(CACHE_TYPE="redis", CACHE_REDIS_PATH=str(sock), CACHE_REDIS_PASSWORD=SECRET_PASSWORD)
        assert node_request(by_path.test_client()).status_code == 200
        by_url = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=f"unix://:{SECRET_PASSWORD}@{sock}?db=0")
        assert node_request(by_url.test_client()).get_json()["meta"]["cacheHit"] is True
        assert server.client().exists("pyea:cache:" + by_path.extensions["pyea"].default.keys.key(
            "crypto", {"base": "ethereum", "quote": "USD"}))
        wrong = make_app(CACHE_TYPE="redis", CACHE_REDIS_PATH=str(sock), CACHE_REDIS_PASSWORD="not-the-password")
        refused = node_request(wrong.test_client(), {"base": "BTC", "quote": "USD"})
        assert refused.status_code == 503 and SECRET_PASSWORD not in refused.get_data(as_text=True)


# ------------------------------------------------------------------------------------------ shared state


def test_a_value_fetched_by_one_instance_is_a_hit_on_another(make_app, provider: FakeProvider, redis_url) -> None:
    a = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=redis_url).test_client()
    b = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=redis_url).test_client()
    assert node_request(a).get_json()["meta"]["cacheHit"] is False
    answer = node_request(b).get_json()
    assert answer["meta"]["cacheHit"] is True and answer["result"] == 3021.5
    assert provider.count("/simple/price") == 1


def test_an_error_never_replaces_an_unexpired_success(redis_url) -> None:
    cache = RedisCache(shared(redis_url))
    good, bad = CacheEntry(200, 1, '{"result":1}'), CacheEntry(502, 2, '{"error":"x"}')
    assert cache.set("k", good, 10_000)
    assert not cache.set("k", bad, 10_000)
    assert cache.get("k") == good
    assert cache.set("e", bad, 10_000) and cache.set("e", good, 10_000)  # a success always replaces an error
    # concurrent writers: whatever the interleaving, the success stays
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: cache.set("race", good if i % 2 else bad, 10_000), range(400)))
    assert cache.get("race") == good


def test_in_flight_markers_are_exclusive(redis_url) -> None:
    caches = [RedisCache(shared(redis_url)) for _ in range(4)]
    with ThreadPoolExecutor(16) as pool:
        owners = list(pool.map(lambda i: caches[i % 4].add_marker("feed", 5_000), range(64)))
    assert owners.count(True) == 1
    caches[0].delete_marker("feed")
    assert not caches[1].has_marker("feed") and caches[2].add_marker("feed", 5_000)


def test_subscriptions_are_shared_and_expire(make_app, redis_url) -> None:
    a = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=redis_url, WARMUP_SUBSCRIPTION_TTL="300")
    b = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=redis_url, WARMUP_SUBSCRIPTION_TTL="300")
    node_request(a.test_client())
    store_b = b.extensions["pyea"].subscriptions
    prefix = f"{b.extensions['pyea'].adapters['coingecko'].keys.group}:crypto:"
    [subscription] = store_b.live(prefix)
    assert subscription.params == {"base": "ethereum", "quote": "USD"}  # after the symbol overrides
    time.sleep(0.35)
    assert store_b.live(prefix) == []
    assert store_b.expire() == 1


def test_the_quota_cannot_be_overdrawn_by_concurrent_instances(redis_url) -> None:
    limit = RateLimit(per_second=None, per_minute=30, per_hour=None, source="test", provider="p")
    limiters = [RedisRateLimiter(shared(redis_url), limit, "p") for _ in range(3)]
    with ThreadPoolExecutor(24) as pool:
        waits = list(pool.map(lambda i: limiters[i % 3].try_acquire(), range(300)))
    assert sum(1 for w in waits if w == 0) == 30
    assert all(55 < w <= 60.1 for w in waits if w)  # told when a slot frees, about a minute on
    assert limiters[0].usage() == {"60s": 30}


def test_background_calls_leave_a_reserve_for_requests(redis_url) -> None:
    limit = RateLimit(per_second=None, per_minute=10, per_hour=None, source="test", provider="p")
    limiter = RedisRateLimiter(shared(redis_url), limit, "p")
    granted = [limiter.try_acquire(background=True) == 0 for _ in range(12)]
    assert granted.count(True) == 9  # 10 % kept for node requests
    assert limiter.try_acquire() == 0 and limiter.try_acquire() > 0


def test_one_lease_holder_across_instances(redis_url) -> None:
    leases = [RedisLease(shared(redis_url), "deployment", ttl_s=0.5) for _ in range(3)]
    held = [lease.hold() for lease in leases]
    assert held.count(True) == 1
    holder = leases[held.index(True)]
    assert all(lease.holder() == holder.owner for lease in leases)
    assert holder.hold()  # renewal by the holder
    holder.release()
    assert leases[(held.index(True) + 1) % 3].hold()
    time.sleep(0.6)  # the new holder died without releasing: its lease lapses
    assert leases[held.index(True)].hold()


# ------------------------------------------------------------------------------------------------ EA_MODE


def test_a_reader_leaves_fetching_to_a_writer(make_app, provider: FakeProvider, redis_url) -> None:
    settings = {"CACHE_TYPE": "redis", "CACHE_REDIS_URL": redis_url, "CACHE_POLLING_SLEEP_MS": "50",
                "CACHE_POLLING_MAX_RETRIES": "60"}
    writer = make_app(EA_MODE="writer", **settings)
    reader = make_app(EA_MODE="reader", **settings).test_client()
    wait_for(lambda: writer.extensions["pyea"].background.leader, 5, "the writer leads")
    started = time.monotonic()
    answer = node_request(reader)
    assert answer.status_code == 200 and answer.get_json()["result"] == 3021.5
    assert time.monotonic() - started < 1.5
    assert provider.count("/simple/price") == 1
    assert reader.application.extensions["pyea"].background is None  # a reader runs no background jobs
    refused = node_request(writer.test_client())
    assert refused.status_code == 404 and refused.get_json()["error"]["name"] == "AdapterWriterOnlyError"
    assert writer.test_client().get("/health").status_code == 200


# ------------------------------------------------------------------------------------------ Redis outage


def test_an_instance_rides_out_a_redis_outage(make_app, provider: FakeProvider, tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        client = make_app(CACHE_TYPE="redis", CACHE_REDIS_URL=server.url, CACHE_REDIS_TIMEOUT="300").test_client()
        assert node_request(client).status_code == 200  # ETH/USD now held in this process too
        server.stop()
        served = node_request(client)
        assert served.status_code == 200 and served.get_json()["result"] == 3021.5
        for _ in range(3):
            started = time.monotonic()
            cold = node_request(client, {"base": "BTC", "quote": "USD"})
            assert time.monotonic() - started < 0.6  # one Redis timeout at most, then the breaker answers
            assert cold.status_code == 503, cold.get_json()
            assert cold.get_json()["error"]["name"] == "AdapterSharedStoreUnavailableError"
        assert client.get("/health?deep=1").status_code == 503
        assert client.get("/health").status_code == 200
        server.start()
        recovered = wait_for(lambda: (r := node_request(client, {"base": "BTC", "quote": "USD"})).status_code == 200
                             and r, 5, "requests succeed again once Redis is back")
        assert recovered.get_json()["result"] == 97000.0
    finally:
        server.stop()

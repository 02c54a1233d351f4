"""Cache behaviour: shared keys, TTLs, maxAge, eviction, and values that no request can corrupt."""

from __future__ import annotations

import json
import threading
import time

from app.core.entries import CacheEntry, KeyMaker
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import node_request, wait_for
from app.stores.local_cache import LocalCache


def test_equivalent_requests_share_one_entry(client, provider):
    first = client.post("/", json={"id": 1, "data": {"base": "LINK", "quote": "USD"}})
    second = client.post("/", json={"id": 2, "data": {"from": "link", "quote": "USD", "maxAge": 60000}})
    assert first.status_code == second.status_code == 200
    assert second.get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 1


def test_unknown_and_ignored_keys_do_not_split_the_cache(make_app, provider):
    client = make_app(CACHE_KEY_IGNORED_PROPS="nonce").test_client()
    node_request(client, {"base": "ETH", "quote": "USD"})
    node_request(client, {"base": "ETH", "quote": "USD", "whatever": 1, "meta": {"x": 1}, "nonce": 7})
    assert provider.count() == 1


def test_different_feeds_and_endpoints_do_not_collide(client, provider):
    assert node_request(client, {"base": "ETH", "quote": "USD"}).get_json()["result"] == 3021.5
    assert node_request(client, {"base": "ETH", "quote": "EUR"}).get_json()["result"] == 2800.0
    marketcap = node_request(client, {"base": "ETH", "quote": "USD"}, endpoint="marketcap").get_json()
    assert marketcap["result"] == 3021.5 * 1e6
    assert provider.count() == 3


def test_key_group_prefixes_keys():
    params = {"base": "ETH", "quote": "USD"}
    a, b = KeyMaker("coingecko").key("crypto", params), KeyMaker("other").key("crypto", params)
    assert a.startswith("coingecko:crypto:") and b.startswith("other:crypto:") and a[-40:] == b[-40:]
    assert KeyMaker("g").key("crypto", {"quote": "USD", "base": "ETH"}) == KeyMaker("g").key("crypto", params)
    nested = KeyMaker("g", ["secret"])
    assert nested.key("e", {"a": {"secret": 1, "b": 2}}) == nested.key("e", {"a": {"b": 2}})


def test_repeat_within_ttl_costs_nothing_and_expiry_refetches(make_app, provider):
    client = make_app(CACHE_MAX_AGE="1000", CACHE_MIN_AGE="0", WARMUP_ENABLED="false").test_client()
    node_request(client)
    for _ in range(5):
        assert node_request(client).get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 1
    time.sleep(1.1)
    assert node_request(client).get_json()["meta"]["cacheHit"] is False
    assert provider.count() == 2


def test_negative_max_age_bypasses_the_read(client, provider):
    for _ in range(3):
        body = node_request(client, {"base": "ETH", "quote": "USD", "maxAge": -1}).get_json()
        assert body["meta"]["cacheHit"] is False
    assert provider.count() == 3
    assert node_request(client).get_json()["meta"]["cacheHit"] is True  # the fresh value was still stored


def test_max_age_is_clamped_and_limits_accepted_age(make_app, provider):
    client = make_app(CACHE_MIN_AGE="200", CACHE_MAX_AGE="60000").test_client()
    node_request(client)
    time.sleep(0.25)
    # 1 ms is clamped up to CACHE_MIN_AGE (200 ms); the entry is older, so it is refetched
    assert node_request(client, {"base": "ETH", "quote": "USD", "maxAge": 1}).get_json()["meta"]["cacheHit"] is False
    assert node_request(client, {"base": "ETH", "quote": "USD", "maxAge": 1}).get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 2


def test_bad_max_age_is_400(client):
    response = node_request(client, {"base": "ETH", "quote": "USD", "maxAge": "soon"})
    assert response.status_code == 400 and "data.maxAge" in response.get_json()["error"]["message"]


def test_update_age_on_get_extends_expiry(make_app, provider):
    # No front layer: each read reaches the shared cache, which is what extends the expiry.
    client = make_app(CACHE_MAX_AGE="1000", CACHE_MIN_AGE="0", CACHE_UPDATE_AGE_ON_GET="true", CACHE_FRONT_TTL="0",
                      WARMUP_ENABLED="false").test_client()
    node_request(client)
    for _ in range(5):
        time.sleep(0.4)  # 2 s in all: twice the TTL, kept alive by the reads
        assert node_request(client).get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 1


def test_cache_disabled_always_fetches(make_app, provider):
    client = make_app(CACHE_ENABLED="false").test_client()
    for _ in range(3):
        assert node_request(client).status_code == 200
    assert provider.count() == 3


def test_max_items_evicts_the_oldest_written(tmp_path):
    cache = LocalCache(str(tmp_path), max_items=3)
    for i in range(5):
        cache.set(f"k{i}", CacheEntry(200, i, json.dumps({"result": i})), 60000)
    assert len(cache) == 3
    assert cache.get("k0") is None and cache.get("k1") is None
    assert cache.get("k4").body == json.dumps({"result": 4})


def test_an_error_never_overwrites_an_unexpired_success(tmp_path):
    cache = LocalCache(str(tmp_path), max_items=10)
    good, bad = CacheEntry(200, 1, '{"result":1}'), CacheEntry(502, 2, '{"error":{}}')
    assert cache.set("k", good, 60000)
    assert cache.set("k", bad, 60000) is False
    assert cache.get("k") == good
    assert cache.set("expired", good, 1)
    time.sleep(0.01)
    assert cache.set("expired", bad, 60000) is True
    assert cache.set("k", CacheEntry(200, 3, '{"result":3}'), 60000) is True  # successes always replace


def test_cached_responses_are_never_mutated_by_later_requests(make_app):
    client = make_app(API_VERBOSE="true").test_client()
    first = node_request(client, id="a").get_json()
    tampered = node_request(client, id="b").get_json()
    tampered["data"]["result"] = -1
    third = node_request(client, id="c").get_json()
    assert third["data"] == first["data"] and third["result"] == first["result"]
    assert third["jobRunID"] == "c"


def test_cache_survives_a_new_app_on_the_same_directory(make_app, provider, tmp_path):
    directory = str(tmp_path / "shared")
    node_request(make_app(CACHE_DIR=directory).test_client())
    again = node_request(make_app(CACHE_DIR=directory).test_client())
    assert again.get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 1


def test_provider_errors_are_remembered_briefly(make_app, provider):
    from app.devkit.fake_http import Reply
    provider.respond(lambda call: Reply(500, {"error": "boom"}))
    client = make_app(RETRY="0", CACHE_ERROR_MAX_AGE="300").test_client()
    assert node_request(client).status_code == 502
    assert node_request(client).status_code == 502
    assert provider.count() == 1
    provider.respond(None)
    time.sleep(0.35)
    assert node_request(client).status_code == 200


def test_front_layer_spares_backend_reads_for_a_short_time(tmp_path):
    from app.stores.front_cache import FrontCache

    backend = LocalCache(str(tmp_path / "shared"), max_items=10)
    front = FrontCache(backend, ttl_ms=200, max_age_ms=90000)
    entry = CacheEntry(200, 1, '{"result":1}')
    front.set("k", entry, 60000)
    newer = CacheEntry(200, 2, '{"result":2}')
    backend.set("k", newer, 60000)  # another worker refreshes the shared entry
    assert front.get("k") == entry  # still the in-memory copy...
    time.sleep(0.25)
    assert front.get("k") == entry  # ...answered once more past its TTL, while it is read again...
    wait_for(lambda: front.get("k") == newer, 0.2, "the newer value")  # ...in the background, well within a TTL
    backend.set("k", CacheEntry(200, 3, '{"result":3}'), 60000)
    time.sleep(0.45)
    assert front.get("k").received_ms == 3  # never answered past twice the TTL: then read on the spot
    front.close()


class CountingCache(LocalCache):
    """A shared cache that records which threads read it."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory, max_items=10)
        self.readers: list[str] = []

    def get(self, key: str) -> CacheEntry | None:
        self.readers.append(threading.current_thread().name)
        return super().get(key)


def test_hot_entries_are_reread_off_the_request_threads(tmp_path):
    """A request thread reading SQLite opens its own connection (about 140 KiB) and waits on the read: hot
    entries past their front TTL are re-read by one thread of the process instead."""
    from app.stores.front_cache import FrontCache

    backend = CountingCache(str(tmp_path / "shared"))
    front = FrontCache(backend, ttl_ms=50, max_age_ms=90000)
    backend.set("k", CacheEntry(200, 1, '{"result":1}'), 60000)
    front.get("k")  # first sight: read where it is asked for
    assert backend.readers == [threading.current_thread().name]

    def ask() -> None:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            assert front.get("k") is not None
            time.sleep(0.005)

    askers = [threading.Thread(target=ask, name=f"request-{i}") for i in range(4)]
    for thread in askers:
        thread.start()
    for thread in askers:
        thread.join()
    rereads = backend.readers[1:]
    assert len(rereads) >= 5 and set(rereads) == {"pyea-front-cache"}  # about one read per TTL, none by askers
    front.close()
    assert not any(t.name == "pyea-front-cache" for t in threading.enumerate())


def test_rereading_drops_a_vanished_entry_and_keeps_a_newer_local_one(tmp_path):
    from app.stores.front_cache import FrontCache

    backend = LocalCache(str(tmp_path / "shared"), max_items=10)
    front = FrontCache(backend, ttl_ms=50, max_age_ms=90000)
    front.set("gone", CacheEntry(200, 1, '{"result":1}'), 60000)
    front.set("kept", CacheEntry(200, 1, '{"result":1}'), 60000)
    backend._cache.delete("gone")  # expired or evicted from the shared cache
    time.sleep(0.06)
    assert front.get("gone") is not None  # answered while it is read again...
    wait_for(lambda: "gone" not in front._entries, 1, "the vanished entry dropped")
    assert front.get("gone") is None  # ...then a miss, as the shared cache says

    newest = CacheEntry(200, 5, '{"result":5}')
    backend.set("kept", CacheEntry(200, 0, '{"result":0}'), 60000)  # an older value read back...
    front._entries["kept"] = (newest, 0.0, time.monotonic() + 60)  # ...than the one this process holds
    front._reread("kept")
    assert front.get("kept") is newest
    front.close()


def test_front_layer_never_keeps_what_the_backend_refused(tmp_path):
    from app.stores.front_cache import FrontCache

    front = FrontCache(LocalCache(str(tmp_path / "shared"), max_items=10), ttl_ms=1000, max_age_ms=90000, max_items=2)
    good = CacheEntry(200, 1, '{"result":1}')
    front.set("k", good, 60000)
    assert front.set("k", CacheEntry(502, 2, '{"error":{}}'), 60000) is False
    assert front.get("k") == good
    for name in ("a", "b", "c"):
        front.set(name, good, 60000)
    assert len(front._entries) == 2


def test_a_restart_onto_another_provider_never_serves_the_first_ones_values(make_app, tmp_path):
    """The key group names the provider (its URL settings, and whether a key is set; never the key): the same
    CACHE_DIR pointed at another API_ENDPOINT, or given an API key (CoinGecko's pro host), misses."""
    directory = str(tmp_path / "kept")
    with FakeProvider() as first, FakeProvider() as second:
        first.prices[("ethereum", "usd")] = 1111.0
        second.prices[("ethereum", "usd")] = 2222.0
        one = make_app(CACHE_DIR=directory, API_ENDPOINT=first.url).test_client()
        assert node_request(one).get_json()["result"] == 1111.0
        again = make_app(CACHE_DIR=directory, API_ENDPOINT=first.url).test_client()
        assert node_request(again).get_json()["meta"]["cacheHit"] is True, "same provider: its value is kept"
        other = make_app(CACHE_DIR=directory, API_ENDPOINT=second.url).test_client()
        answer = node_request(other).get_json()
        assert answer["result"] == 2222.0 and answer["meta"]["cacheHit"] is False
        keyed = make_app(CACHE_DIR=directory, API_ENDPOINT=second.url, API_KEY="k" * 24)
        assert node_request(keyed.test_client()).get_json()["meta"]["cacheHit"] is False
        group = keyed.extensions["pyea"].adapters["coingecko"].keys.group
        assert group.startswith("coingecko@") and "k" * 24 not in group

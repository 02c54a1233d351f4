"""Background work: subscriptions, batched refresh cycles, dropping broken feeds, one leader at a time."""

from __future__ import annotations

import itertools
import math
import random
import time

import pytest

from adapters.coingecko.transports import SimplePriceTransport
from app.devkit.fake_http import Reply
from app.devkit.testing import node_request
from app.stores.lease import Lease

FEEDS = 100


def coin(i: int) -> str:
    return f"coin-{i:05d}"


@pytest.fixture
def many_coins(provider):
    for i in range(FEEDS):
        provider.prices[(coin(i), "usd")] = 1.0 + i
    return provider


def warm_app(make_app, **env):
    """Short cycles: entries live 2 s and are refreshed once older than 1.2 s (2 intervals before expiry)."""
    settings = {"CACHE_MAX_AGE": "2000", "CACHE_MIN_AGE": "0", "WARMUP_INTERVAL": "400", **env}
    return make_app(**settings)


def ask_all(client, count: int = FEEDS) -> list[dict]:
    return [node_request(client, {"coinid": coin(i), "quote": "USD"}).get_json() for i in range(count)]


def wait_for(condition, timeout_s: float = 8.0, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def ids_of(call) -> list[str]:
    return call.query["ids"].split(",")


def test_every_valid_request_subscribes_and_subscriptions_persist(make_app, provider, tmp_path):
    directory = str(tmp_path / "shared")
    app = make_app(CACHE_DIR=directory)
    node_request(app.test_client())
    node_request(app.test_client(), {"base": "nope"})  # invalid: not subscribed
    host = app.extensions["pyea"]
    group = host.adapters["coingecko"].keys.group
    live = host.subscriptions.live(f"{group}:crypto:")
    assert [s.params for s in live] == [{"base": "ethereum", "quote": "USD"}]
    again = make_app(CACHE_DIR=directory).extensions["pyea"]
    assert [s.key for s in again.subscriptions.live(f"{group}:")] == [live[0].key]


@pytest.mark.parametrize("batch_size", [100, 30])
def test_feeds_left_alone_are_refreshed_in_batches(make_app, many_coins, monkeypatch, batch_size):
    monkeypatch.setattr(SimplePriceTransport, "max_batch_size", batch_size)
    client = warm_app(make_app).test_client()
    assert all(body["statusCode"] == 200 for body in ask_all(client))
    many_coins.reset()
    expected_calls = math.ceil(FEEDS / batch_size)
    assert wait_for(lambda: many_coins.count() >= expected_calls)
    time.sleep(0.2)
    first_cycle = many_coins.calls[:expected_calls]
    assert sorted(len(ids_of(c)) for c in first_cycle) == sorted(
        [batch_size] * (FEEDS // batch_size) + ([FEEDS % batch_size] if FEEDS % batch_size else []))
    assert {i for c in first_cycle for i in ids_of(c)} == {coin(i) for i in range(FEEDS)}

    # The node's next requests are all answered from the warm cache: no foreground (single-feed) call.
    before = many_coins.count()
    bodies = ask_all(client)
    assert all(body["meta"]["cacheHit"] for body in bodies)
    assert all(len(ids_of(c)) > 1 for c in many_coins.calls[before:])


def test_a_cycle_with_nothing_due_costs_nothing(make_app, provider):
    client = make_app(CACHE_MAX_AGE="60000", WARMUP_INTERVAL="200").test_client()
    node_request(client)
    provider.reset()
    time.sleep(1.0)  # five cycles: the entry is far from expiry, so none refreshes it
    assert provider.count() == 0


def test_a_feed_failing_three_times_is_dropped_and_a_request_resubscribes_it(make_app, provider):
    provider.prices[("bad-coin", "usd")] = 1.0
    client = warm_app(make_app, WARMUP_UNHEALTHY_THRESHOLD="3", CACHE_ERROR_MAX_AGE="0").test_client()
    node_request(client, {"coinid": "bad-coin", "quote": "USD"})
    node_request(client)  # a healthy feed in the same batch
    del provider.prices[("bad-coin", "usd")]  # from now on CoinGecko omits it from every answer
    host = client.application.extensions["pyea"]
    live = lambda: {s.params.get("coinid") or s.params.get("base") for s in host.subscriptions.live("")}  # noqa: E731
    assert wait_for(lambda: live() == {"ethereum"}, timeout_s=10)
    assert host.background.warmer.stats.feeds_dropped == 1
    provider.reset()
    assert wait_for(lambda: provider.count() >= 1)
    assert all("bad-coin" not in ids_of(c) for c in provider.calls)  # the healthy feed is still refreshed
    # The dropped feed's entry is an error, so the next request misses, and re-subscribes it.
    provider.prices[("bad-coin", "usd")] = 2.0
    assert node_request(client, {"coinid": "bad-coin", "quote": "USD"}).status_code == 200
    assert live() == {"ethereum", "bad-coin"}


def test_a_provider_outage_never_replaces_good_values(make_app, provider):
    client = warm_app(make_app, RETRY="0").test_client()
    node_request(client)
    provider.respond(lambda call: Reply(503, {}))
    assert wait_for(lambda: provider.count() >= 2)
    body = node_request(client).get_json()
    assert body["statusCode"] == 200 and body["result"] == 3021.5


def test_only_one_of_two_processes_sharing_a_directory_runs_the_jobs(make_app, many_coins, tmp_path):
    directory = str(tmp_path / "shared")
    first = warm_app(make_app, CACHE_DIR=directory)
    second = warm_app(make_app, CACHE_DIR=directory)
    ask_all(first.test_client(), 10)
    ask_all(second.test_client(), 10)
    assert wait_for(lambda: first.extensions["pyea"].background.leader or second.extensions["pyea"].background.leader)
    leaders = [app.extensions["pyea"].background.leader for app in (first, second)]
    assert leaders.count(True) == 1
    many_coins.reset()
    time.sleep(2.5)
    calls = many_coins.calls
    assert 1 <= len(calls) <= 3  # about one batch per 1.2 s refresh period, never one per process
    assert all(len(ids_of(c)) == 10 for c in calls)
    assert all(b.at - a.at > 0.3 for a, b in itertools.pairwise(calls))


def test_lease_has_one_holder_and_moves_when_it_lapses(tmp_path):
    a, b = Lease(str(tmp_path), ttl_s=0.3), Lease(str(tmp_path), ttl_s=0.3)
    assert a.hold() and not b.hold()
    assert a.hold()  # renewal
    time.sleep(0.35)  # a stops renewing, as a killed process would
    assert b.hold() and not a.hold()
    b.release()
    assert a.hold()


def test_closing_the_app_stops_background_work(make_app, provider):
    app = warm_app(make_app)
    node_request(app.test_client())
    background = app.extensions["pyea"].background
    assert wait_for(lambda: background.leader)
    from app import close_app

    close_app(app)
    assert not background.scheduler.running
    provider.reset()
    time.sleep(1.5)
    assert provider.count() == 0


def test_background_only_endpoint_waits_for_the_warmer(make_app, provider, monkeypatch):
    monkeypatch.setattr(SimplePriceTransport, "fetches_in_foreground", False)
    client = make_app(WARMUP_INTERVAL="100", CACHE_POLLING_SLEEP_MS="50", CACHE_POLLING_MAX_RETRIES="40").test_client()
    started = time.monotonic()
    response = node_request(client)
    assert response.status_code == 200 and response.get_json()["result"] == 3021.5
    assert response.get_json()["meta"]["cacheHit"] is True  # delivered by the warmer, read from the cache
    assert provider.count() == 1 and provider.calls[0].at >= time.time() - (time.monotonic() - started)


def test_background_only_endpoint_says_when_nothing_arrived(make_app, provider, monkeypatch):
    monkeypatch.setattr(SimplePriceTransport, "fetches_in_foreground", False)
    client = make_app(WARMUP_ENABLED="false", CACHE_POLLING_SLEEP_MS="10", CACHE_POLLING_MAX_RETRIES="5").test_client()
    response = node_request(client)
    assert response.status_code == 504
    assert "no value for this feed has arrived" in response.get_json()["error"]["message"]
    assert provider.count() == 0  # never called in the foreground


def test_stats_hooks_count_batches_and_calls(make_app, many_coins):
    app = warm_app(make_app)
    ask_all(app.test_client(), 10)
    host = app.extensions["pyea"]
    assert wait_for(lambda: host.background.warmer.stats.provider_batches >= 1)
    assert host.background.warmer.stats.last_batch_sizes == [10]
    calls = sum(s.value for m in host.metrics.provider_requests.collect() for s in m.samples
                if s.name == "data_provider_requests")
    assert calls >= 11  # 10 foreground fetches and at least one batch, as data_provider_requests counts them


def test_deep_health_reports_when_nobody_runs_the_background(make_app):
    app = make_app()
    client = app.test_client()
    background = app.extensions["pyea"].background
    assert wait_for(lambda: background.leader)
    assert client.get("/health?deep=1").status_code == 200
    background.stop()  # the only process that could hold the lease is gone
    response = client.get("/health?deep=1")
    assert response.status_code == 503 and "background lease" in response.get_json()["error"]["message"]


def test_hits_keep_a_feed_subscribed_and_an_idle_feed_expires(make_app, provider):
    """A hit's extension is written by the store's flusher (off the request path), and still keeps the feed."""
    client = make_app(WARMUP_SUBSCRIPTION_TTL="1000").test_client()
    host = client.application.extensions["pyea"]
    prefix = f"{host.adapters['coingecko'].keys.group}:crypto:"
    subscribed = lambda: bool(host.subscriptions.live(prefix))  # noqa: E731
    assert node_request(client).get_json()["meta"]["cacheHit"] is False  # the miss subscribes at once
    assert subscribed()
    started = time.monotonic()
    while time.monotonic() - started < 1.75:  # past the 1 s the miss's subscription lasts
        assert node_request(client).get_json()["meta"]["cacheHit"] is True
        time.sleep(0.25)
    assert subscribed()
    assert wait_for(lambda: not subscribed(), timeout_s=4)


@pytest.mark.parametrize(("interval_ms", "max_age_ms", "cadence", "period_ms"),
                         [(30000, 90000, 1, None), (30000, 120000, 2, None), (10000, 90000, 7, None),
                          (30000, 60000, 1, None),
                          # paced by a credit budget: the spare check given up, never a lapse
                          (30000, 315000, 9, 270000), (30000, 135000, 3, 90000), (10000, 90000, 7, 40000)])
def test_a_feed_is_refreshed_at_a_steady_cadence_whatever_the_scheduling_jitter(interval_ms, max_age_ms, cadence,
                                                                                 period_ms):
    """Checks come every interval give or take 100 ms; a value refreshed at one check is refreshed again the same
    number of checks later every time, and never lapses. A budget's period shorter than warming's own cadence
    changes nothing."""
    from app.background.warmer import due_for_refresh

    jitter = random.Random(3)
    refreshed_at, gaps = 0.0, []
    for check in range(1, 200):
        now = check * interval_ms + jitter.uniform(-100, 100)
        assert now - refreshed_at < max_age_ms, "the value lapsed before it was refreshed"
        if due_for_refresh(now - refreshed_at, interval_ms, max_age_ms, period_ms):
            gaps.append(round((now - refreshed_at) / interval_ms))
            refreshed_at = now
    assert set(gaps) == {cadence}, sorted(set(gaps))

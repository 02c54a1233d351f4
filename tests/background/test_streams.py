"""The websocket transport against a real websocket server on loopback speaking Coinbase Exchange's ticker
protocol: requests are answered from the stream through the cache, subscriptions follow demand, and the stream
heals itself (silence, drops, restarts, garbage) without any new request. The coinbase adapter is the vehicle;
its own REST behaviour is tested in adapters/coinbase/tests."""

from __future__ import annotations

import gc
import itertools
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.devkit.fake_http import FakeProvider, Reply, free_port
from app.devkit.fake_ws import FakeTickerStream
from app.devkit.testing import node_request, wait_for

PRODUCTS = [f"C{i:02d}-USD" for i in range(50)]


@pytest.fixture
def stream() -> Iterator[FakeTickerStream]:
    with FakeTickerStream() as fake:
        yield fake


@pytest.fixture
def streaming_app(make_app, stream: FakeTickerStream) -> Callable[..., Any]:
    def build(**settings: str) -> Any:
        env = {"ADAPTERS": "coinbase", "WS_ENABLED": "true", "WS_API_ENDPOINT": stream.url, "CACHE_FRONT_TTL": "0",
               "CACHE_POLLING_SLEEP_MS": "10", "CACHE_POLLING_MAX_RETRIES": "200", "WS_RECONNECT_BACKOFF_MS": "50",
               "WS_RECONNECT_BACKOFF_MAX_MS": "200", **settings}
        app = make_app(**env)
        wait_for(lambda: app.extensions["pyea"].background.leader, 5, "the app leads")
        return app

    return build



def price(client: Any, product: str) -> Any:
    base, quote = product.split("-")
    answer = node_request(client, {"base": base, "quote": quote})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["result"]


def own_threads() -> list[str]:
    """Threads other than the scheduler's executor pools, which start on demand up to a fixed size."""
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("ThreadPoolExecutor-"))


def open_fds() -> Counter[str]:
    """What this process has open (files, sockets), by target: numbers are reused, targets are what leaks."""
    gc.collect()  # handles of finished threads are closed when their thread-locals are collected
    found: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[os.readlink(f"/proc/self/fd/{fd}").split(":[")[0]] += 1  # socket:[inode] → socket
        except OSError:
            continue  # the fd of the listing itself
    return found


def subscribes_for(stream: FakeTickerStream, product: str) -> int:
    return sum(product in m["product_ids"] for m in stream.messages("subscribe"))


def test_a_request_subscribes_and_is_answered_from_the_stream(streaming_app, stream: FakeTickerStream) -> None:
    client = streaming_app().test_client()
    assert price(client, "ETH-USD") == 3021.5
    assert stream.opened == 1 and stream.subscribed() == [{"ETH-USD"}]
    again = node_request(client, {"base": "ETH", "quote": "USD"}).get_json()
    assert again["meta"]["cacheHit"] is True and again["timestamps"]["providerIndicatedTimeUnixMs"] > 0


def test_fifty_feeds_share_one_connection_and_follow_each_push_within_100_ms(streaming_app,
                                                                            stream: FakeTickerStream) -> None:
    for i, product in enumerate(PRODUCTS):
        stream.prices[product] = f"{100 + i}.0"
    app = streaming_app()
    client = app.test_client()
    with ThreadPoolExecutor(16) as pool:
        first = list(pool.map(lambda p: price(app.test_client(), p), PRODUCTS))
    assert first == [100.0 + i for i in range(50)]
    assert stream.opened == 1 and stream.subscribed() == [set(PRODUCTS)]
    lags = []
    for i, product in enumerate(PRODUCTS):
        pushed = time.monotonic()
        stream.tick(product, f"{500 + i}.0")
        wait_for(lambda p=product, v=500.0 + i: price(client, p) == v, 1, f"{product} updated")
        lags.append(time.monotonic() - pushed)
    print(f"\n50 feeds on one connection: push-to-answer median {sorted(lags)[25] * 1000:.1f} ms, "
          f"slowest {max(lags) * 1000:.1f} ms")
    assert max(lags) < 0.1, f"slowest update {max(lags) * 1000:.0f} ms"
    text = client.get("/status")  # the app is alive and well; the metrics tell the same story
    assert text.status_code == 200
    metrics = app.extensions["pyea"].metrics.render().decode()
    assert 'ws_connection_active{app_name="coinbase",app_version="0.1.0",endpoint="crypto"} 1.0' in metrics
    assert 'ws_subscription_active{app_name="coinbase",app_version="0.1.0",endpoint="crypto"} 50.0' in metrics
    assert 'ws_subscription_total{app_name="coinbase",app_version="0.1.0",endpoint="crypto"} 50.0' in metrics


def test_an_idle_feed_is_unsubscribed(streaming_app, stream: FakeTickerStream) -> None:
    client = streaming_app(WS_SUBSCRIPTION_TTL="300").test_client()
    price(client, "ETH-USD")
    wait_for(lambda: any("ETH-USD" in m["product_ids"] for m in stream.messages("unsubscribe")), 2,
             "unsubscribe after WS_SUBSCRIPTION_TTL without requests")
    assert stream.subscribed() == [set()]


def test_a_silent_feed_is_subscribed_again(streaming_app, stream: FakeTickerStream) -> None:
    client = streaming_app(WS_SUBSCRIPTION_UNRESPONSIVE_TTL="400").test_client()
    price(client, "BTC-USD")
    price(client, "ETH-USD")
    stream.muted.add("ETH-USD")
    keep_talking = threading.Event()

    def talk() -> None:  # BTC keeps the connection busy, so only the ETH feed is silent
        while not keep_talking.wait(0.05):
            stream.tick("BTC-USD", "97000.00")

    talker = threading.Thread(target=talk)
    talker.start()
    try:
        wait_for(lambda: subscribes_for(stream, "ETH-USD") >= 2, 3, "ETH-USD subscribed again")
        assert stream.opened == 1, "the connection itself was fine"
    finally:
        keep_talking.set()
        talker.join()


def test_a_silent_connection_is_reopened_and_resubscribed(streaming_app, stream: FakeTickerStream) -> None:
    client = streaming_app(WS_SUBSCRIPTION_UNRESPONSIVE_TTL="400").test_client()
    price(client, "ETH-USD")
    stream.muted.add("ETH-USD")
    wait_for(lambda: stream.opened >= 2 and stream.subscribed() == [{"ETH-USD"}], 5, "reconnected and resubscribed")


def test_a_dropped_connection_and_a_server_restart_restore_every_subscription(streaming_app,
                                                                               stream: FakeTickerStream) -> None:
    client = streaming_app().test_client()
    for product in ("ETH-USD", "BTC-USD", "LINK-USD"):
        price(client, product)
    stream.drop()
    wait_for(lambda: stream.opened == 2 and stream.subscribed() == [{"ETH-USD", "BTC-USD", "LINK-USD"}], 5,
             "reconnected after a drop, with every subscription, without a request")
    stream.stop()
    time.sleep(0.5)  # down for a while: several reconnect attempts fail
    stream.start()
    wait_for(lambda: stream.subscribed() == [{"ETH-USD", "BTC-USD", "LINK-USD"}], 5, "restored after a restart")
    stream.tick("LINK-USD", "15.00")
    wait_for(lambda: price(client, "LINK-USD") == 15.0, 1, "values flow again")


def test_garbage_and_error_frames_are_counted_not_fatal(streaming_app, stream: FakeTickerStream, caplog) -> None:
    app = streaming_app()
    client = app.test_client()
    price(client, "ETH-USD")
    stream.send_raw("this is not json")
    stream.send_raw('{"type": "ticker", "product_id": "ETH-USD", "price": "not a number"}')
    stream.send_raw('{"type": "error", "message": "Failed to subscribe", "reason": "ETH-XYZ is not a valid product"}')
    stream.tick("ETH-USD", "3100.00")
    wait_for(lambda: price(client, "ETH-USD") == 3100.0, 1, "the stream still works")
    metrics = app.extensions["pyea"].metrics.render().decode()
    assert 'ws_message_total{app_name="coinbase",app_version="0.1.0",endpoint="crypto",kind="error"} 3.0' in metrics
    assert stream.opened == 1


def test_no_thread_or_socket_leaks_over_200_subscription_cycles(streaming_app, stream: FakeTickerStream) -> None:
    for i in range(250):
        stream.prices[f"L{i:03d}-USD"] = "1.0"
    app = streaming_app(WS_SUBSCRIPTION_TTL="300")
    client = app.test_client()
    background = app.extensions["pyea"].background
    renewals = background.renewals

    def cycles(numbers: range) -> None:
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda i: price(client, f"L{i:03d}-USD"), numbers))
        wait_for(lambda: stream.subscribed() == [set()], 3, "every feed unsubscribed")

    # Warm-up: every pooled background thread has opened its own SQLite handles (diskcache keeps one per
    # thread), so what follows measures growth, not first use.
    cycles(range(50))
    wait_for(lambda: background.renewals > renewals, 3, "the lease renewed once")
    time.sleep(0.1)  # that renewal finishes on its own thread
    threads, fds = own_threads(), open_fds()
    cycles(range(50, 250))
    unsubscribed = {p for m in stream.messages("unsubscribe") for p in m["product_ids"]}
    assert unsubscribed >= {f"L{i:03d}-USD" for i in range(250)} and stream.opened == 1
    assert own_threads() == threads
    assert open_fds() == fds


def test_provider_websocket_limits_open_a_second_connection_then_refuse(streaming_app, stream: FakeTickerStream,
                                                                          tmp_path) -> None:
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"coinbase": {"http": {"public": {"rateLimit1s": 10}},
                                               "ws": {"public": {"connections": 2, "subscriptions": 3}}}}))
    for i in range(7):
        stream.prices[f"W{i}-USD"] = f"{i + 1}.0"
    client = streaming_app(LIMITS_FILE=str(limits)).test_client()
    for i in range(6):
        assert price(client, f"W{i}-USD") == i + 1.0
    assert stream.opened == 2 and sorted(len(s) for s in stream.subscribed()) == [3, 3]
    started = time.monotonic()
    refused = node_request(client, {"base": "W6", "quote": "USD"})
    assert refused.status_code == 503 and time.monotonic() - started < 1
    assert "websocket limits are reached (2 connections x 3 subscriptions" in refused.get_json()["error"]["message"]


def test_a_failover_url_is_used_when_the_first_is_down(make_app, provider: FakeProvider,
                                                       stream: FakeTickerStream) -> None:
    provider.respond(lambda call: Reply(body={"data": {"amount": "96000.00"}}))  # the REST fallback, no stream up
    dead = f"ws://127.0.0.1:{free_port()}"
    app = make_app(ADAPTERS="coinbase", WS_ENABLED="true", WS_API_ENDPOINT=f"{dead},{stream.url}",
                   CACHE_FRONT_TTL="0", CACHE_POLLING_SLEEP_MS="10", CACHE_POLLING_MAX_RETRIES="300",
                   WS_RECONNECT_BACKOFF_MS="50", WS_RECONNECT_BACKOFF_MAX_MS="100")
    client = app.test_client()
    assert price(client, "BTC-USD") in (96000.0, 97000.0)
    wait_for(lambda: stream.subscribed() == [{"BTC-USD"}], 3, "connected to the second URL")
    stream.tick("BTC-USD", "97500.00")
    wait_for(lambda: price(client, "BTC-USD") == 97500.0, 1, "values come from the failover stream")
    metrics = app.extensions["pyea"].metrics.render().decode()
    assert 'ws_connection_errors{app_name="coinbase",app_version="0.1.0",endpoint="crypto"} 1.0' in metrics


def test_reconnects_back_off_exponentially_up_to_the_cap(make_app) -> None:
    """A server that accepts and hangs up at once: every attempt fails, and the attempts' spacing shows the
    back-off (0.1, 0.2, then 0.4 s capped, each with up to 25 % jitter)."""
    attempts: list[float] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            attempts.append(time.monotonic())
            conn.close()

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        app = make_app(ADAPTERS="coinbase", WS_ENABLED="true",
                       WS_API_ENDPOINT=f"ws://127.0.0.1:{listener.getsockname()[1]}",
                       WS_RECONNECT_BACKOFF_MS="100", WS_RECONNECT_BACKOFF_MAX_MS="400", CACHE_POLLING_MAX_RETRIES="0")
        node_request(app.test_client(), {"base": "ETH", "quote": "USD"})  # a feed to stream: the first attempt
        wait_for(lambda: len(attempts) >= 5, 5, "five connection attempts")
    finally:
        done.set()
        acceptor.join()
        listener.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)][:4]
    for gap, backoff in zip(gaps, [0.1, 0.2, 0.4, 0.4], strict=True):
        assert backoff * 0.75 <= gap <= backoff + 0.15, gaps

"""The SSE transport with the Pyth (Hermes) adapter against a real HTTP server streaming server-sent events:
feeds are streamed and cached, a change of feeds reopens the stream with the new set, a dropped stream is
reopened, and what the stream cannot carry is answered at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.pyth.transports import KNOWN_FEEDS
from app.sdk import FakeHermes, node_request, wait_for

ETH = KNOWN_FEEDS["ETH/USD"]
BTC = KNOWN_FEEDS["BTC/USD"]
OTHER = "ab" * 32


@pytest.fixture
def hermes() -> Iterator[FakeHermes]:
    with FakeHermes() as fake:
        fake.prices.update({ETH: 302150000000, BTC: 9700000000000, OTHER: 123456789})
        yield fake


@pytest.fixture
def pyea_client(pyea_app, hermes: FakeHermes):
    app = pyea_app(ADAPTERS="pyth", WS_ENABLED="true", SSE_API_ENDPOINT=hermes.url, API_ENDPOINT=hermes.url,
                   CACHE_FRONT_TTL="0", CACHE_POLLING_SLEEP_MS="10", CACHE_POLLING_MAX_RETRIES="200",
                   WS_RECONNECT_BACKOFF_MS="50", WS_RECONNECT_BACKOFF_MAX_MS="200")
    wait_for(lambda: app.extensions["pyea"].background.leader, 5, "the app leads")
    return app.test_client()


def value(pyea_client, data: dict) -> float:
    answer = node_request(pyea_client, data)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["result"]


def test_feeds_are_streamed_and_the_stream_follows_the_wanted_set(pyea_client, hermes: FakeHermes) -> None:
    assert value(pyea_client, {"base": "ETH", "quote": "USD"}) == pytest.approx(3021.5)
    assert hermes.streams == [[ETH]]
    assert value(pyea_client, {"feedid": "0x" + OTHER.upper()}) == pytest.approx(1.23456789)
    assert sorted(hermes.streams[-1]) == sorted([ETH, OTHER])  # reopened with both feeds
    hermes.push(ETH, 310000000000)
    wait_for(lambda: value(pyea_client, {"base": "ETH", "quote": "USD"}) == pytest.approx(3100.0), 1, "pushed value")
    answer = node_request(pyea_client, {"base": "ETH", "quote": "USD"}).get_json()
    assert answer["meta"]["cacheHit"] is True and answer["timestamps"]["providerIndicatedTimeUnixMs"] > 0


def test_a_dropped_stream_is_reopened_with_every_feed(pyea_client, hermes: FakeHermes) -> None:
    value(pyea_client, {"base": "ETH", "quote": "USD"})
    value(pyea_client, {"base": "BTC", "quote": "USD"})
    opened = len(hermes.streams)
    hermes.drop()
    wait_for(lambda: len(hermes.streams) > opened and sorted(hermes.streams[-1]) == sorted([ETH, BTC]), 5,
             "reopened with every feed, without a request")
    hermes.push(BTC, 9800000000000)
    wait_for(lambda: value(pyea_client, {"base": "BTC", "quote": "USD"}) == pytest.approx(98000.0), 1, "values flow")


def test_a_pair_without_a_known_feed_is_a_clear_error_at_once(pyea_client, hermes: FakeHermes) -> None:
    answer = node_request(pyea_client, {"base": "DOGE", "quote": "USD"})
    assert answer.status_code == 400
    assert "no Pyth price feed id is known for DOGE/USD" in answer.get_json()["error"]["message"]
    bad = node_request(pyea_client, {"feedid": "0x1234"})
    assert bad.status_code == 400 and "feedid" in bad.get_json()["error"]["message"]


def test_without_streaming_the_latest_prices_call_answers(pyea_app, hermes: FakeHermes) -> None:
    pyea_client = pyea_app(ADAPTERS="pyth", API_ENDPOINT=hermes.url).test_client()
    assert value(pyea_client, {"from": "btc", "to": "usd"}) == pytest.approx(97000.0)
    assert hermes.streams == []

"""Requests of Chainlink's TypeScript Tiingo adapter's integration tests (REST and websocket), against the
answers they recorded: the same status and the same result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from app.sdk import Call, Reply, node_request, wait_for

KEY = "tiingo-test-token-5f2c9a"
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "twin_rest.json").read_text())


def recorded(call: Call) -> Reply:
    if call.headers.get("authorization") != f"Token {KEY}":
        return Reply(401, {"detail": "Invalid token."})
    answer = RECORDED.get(f"{call.path}?{urlencode(call.query)}")
    return Reply(body=answer) if answer is not None else Reply(404, {"detail": f"not recorded: {call.path}"})


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.respond(recorded)
    return pyea_app(API_KEY=KEY).test_client()


@pytest.mark.parametrize(("data", "result"), [
    ({"endpoint": "cryptoyield", "aprTerm": "90Day"}, 0.0509027044623858),
    ({"base": "ETH", "quote": "USD", "transport": "rest"}, 4462.5193860735335),
    ({"endpoint": "eod", "ticker": "USD"}, 48.77),
    ({"endpoint": "top", "base": "ETH", "quote": "USD"}, 4471.9),
    ({"endpoint": "volume", "base": "ETH", "quote": "USD"}, 4094298121.291589),
    ({"endpoint": "vwap", "base": "ampl", "quote": "USD"}, 0.7091192957589304),
    ({"endpoint": "forex", "base": "gbp", "quote": "usd", "transport": "rest"}, 1.33605),
    ({"endpoint": "iex", "ticker": "aapl", "transport": "rest"}, 51.27),
    ({"base": "ETH", "endpoint": "realized-vol"}, 0.851625908515737),
])
def test_the_twins_rest_requests_get_the_same_answers(client, data, result):
    body = node_request(client, data).get_json()
    assert body["statusCode"] == 200 and body["result"] == result == body["data"]["result"], body


def test_realized_volatility_carries_its_date(client):
    body = node_request(client, {"base": "ETH", "endpoint": "realized-vol"}).get_json()
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1641859200000


def test_an_inverse_forex_pair_is_answered_from_the_pair_tiingo_quotes(client, fake_provider):
    """includes.json: JPY/USD is fetched as USD/JPY (here: GBP/USD asked through a request's own includes)."""
    includes = [{"from": "USD", "to": "GBP", "includes": [{"from": "GBP", "to": "USD", "inverse": True}]}]
    body = node_request(client, {"endpoint": "forex", "base": "USD", "quote": "GBP", "transport": "rest",
                                 "includes": includes}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 1 / 1.33605


CRYPTO = {"service": "crypto_data", "messageType": "A",
          "data": ["SA", "eth/usd", "2022-03-02T19:37:08.102119+00:00", "tiingo", 2930.4483973989]}
LWBA = {"service": "crypto_data", "messageType": "A",
        "data": ["SA", "eth/usd", "2023-03-30T14:38:14.577256+00:00", "tiingo", 1793.915292654675,
                 0.00032445356984135313, 117.75114002, 1793.6242715443277, 126.22352905999999, 1794.2063137650225]}
FX = {"messageType": "A", "service": "fx",
      "data": ["Q", "eurusd", "2022-04-14T19:33:12.474000+00:00", 1000000, 1.08267, 1.08272, 1000000, 1.08277]}
IEX_QUOTE = {"messageType": "A", "service": "iex",
             "data": ["Q", "2022-02-16T12:35:16.595244526-05:00", 1645032916595244500, "aapl", 399, 170.28, 170.285,
                      170.29, 100, None, None, 0, 0, None, None, None]}
IEX_TRADE = {"messageType": "A", "service": "iex",
             "data": ["T", "2022-02-16T12:35:16.595244526-05:00", 1645032916595244500, "amzn", None, None, None,
                      None, None, 106.21, None, None, 0, 0, 0, 0]}


def answer_subscriptions(message: Any) -> list[Any]:
    """The twin's recorded stream messages, sent once the client subscribes to their ticker at the threshold
    level of their stream (crypto 6, top of book 4, fx 5, iex 6)."""
    if message.get("authorization") != KEY or message.get("eventName") != "subscribe":
        return []
    level, tickers = message["eventData"]["thresholdLevel"], message["eventData"]["tickers"]
    by_stream = {6: [CRYPTO, IEX_QUOTE, IEX_TRADE], 4: [LWBA], 5: [FX]}[level]
    return [m for m in by_stream if m["data"][1 if m["service"] != "iex" else 3] in tickers]


@pytest.fixture
def streaming(pyea_app, fake_ws_provider):
    fake_ws_provider.on_message(answer_subscriptions)
    app = pyea_app(API_KEY=KEY, WS_ENABLED="true", WS_API_ENDPOINT=fake_ws_provider.url,
                   SECONDARY_WS_API_ENDPOINT=fake_ws_provider.url, CACHE_POLLING_SLEEP_MS="10",
                   CACHE_POLLING_MAX_RETRIES="300")
    wait_for(lambda: app.extensions["pyea"].background.leader, 5, "the app leads")
    return app.test_client()


@pytest.mark.parametrize(("data", "result", "indicated"), [
    ({"base": "eth", "quote": "usd"}, 2930.4483973989, 1646249828102),
    ({"endpoint": "forex", "base": "eur", "quote": "usd"}, 1.08272, 1649964792474),
    ({"endpoint": "iex", "base": "aapl", "transport": "ws"}, 170.285, 1645032916595),
    ({"endpoint": "iex", "base": "amzn", "transport": "ws"}, 106.21, 1645032916595),
])
def test_the_twins_websocket_requests_get_the_same_answers(streaming, data, result, indicated):
    body = node_request(streaming, data).get_json()
    assert body["statusCode"] == 200 and body["result"] == result == body["data"]["result"], body
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == indicated


def test_the_twins_bid_mid_ask_request(streaming, fake_ws_provider):
    body = node_request(streaming, {"endpoint": "crypto_lwba", "base": "eth", "quote": "usd"}).get_json()
    assert body["statusCode"] == 200 and body["result"] is None
    assert body["data"] == {"mid": 1793.915292654675, "bid": 1793.6242715443277, "ask": 1794.2063137650225}
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1680187094577
    subscribe = next(m for m in fake_ws_provider.received if m["eventData"]["thresholdLevel"] == 4)
    assert subscribe == {"eventName": "subscribe", "authorization": KEY,
                         "eventData": {"thresholdLevel": 4, "tickers": ["eth/usd"]}}


def test_stock_quotes_stream_with_its_own_key(pyea_app, fake_ws_provider):
    """stock_quotes subscribes with EQUITIES_API_KEY at threshold 4 and answers bid, mid and ask as data."""
    equities = "tiingo-equities-token-77"
    quote = {"messageType": "A", "service": "cons",
             "data": ["2024-03-25T10:15:00.000000-04:00", "aapl", 0.0004, 100, 170.25, 170.5, 170.75, 200]}
    fake_ws_provider.on_message(lambda m: [quote] if m.get("authorization") == equities else [])
    app = pyea_app(API_KEY=KEY, EQUITIES_API_KEY=equities, WS_ENABLED="true", WS_API_ENDPOINT=fake_ws_provider.url,
                   CACHE_POLLING_SLEEP_MS="10", CACHE_POLLING_MAX_RETRIES="300")
    wait_for(lambda: app.extensions["pyea"].background.leader, 5, "the app leads")
    body = node_request(app.test_client(), {"endpoint": "stock_quotes", "base": "AAPL"}).get_json()
    assert body["statusCode"] == 200 and body["result"] is None
    assert body["data"] == {"mid_price": 170.5, "bid_price": 170.25, "bid_volume": 100, "ask_price": 170.75,
                            "ask_volume": 200}
    assert fake_ws_provider.received[0]["eventData"] == {"thresholdLevel": 4, "tickers": ["aapl"]}


def test_stock_quotes_without_its_key_is_a_503_naming_it(pyea_app, fake_ws_provider):
    app = pyea_app(API_KEY=KEY, WS_ENABLED="true", WS_API_ENDPOINT=fake_ws_provider.url,
                   CACHE_POLLING_SLEEP_MS="10", CACHE_POLLING_MAX_RETRIES="100")
    wait_for(lambda: app.extensions["pyea"].background.leader, 5, "the app leads")
    response = node_request(app.test_client(), {"endpoint": "stock_quotes", "base": "AAPL"})
    assert response.status_code == 503 and "EQUITIES_API_KEY" in response.get_json()["error"]["message"]

"""Requests of Chainlink's TypeScript CoinMarketCap adapter's integration tests, against the answers they
recorded (tests/fixtures): the same status and the same result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.sdk import Call, Reply, node_request

KEY = "cmc-secret-key-123"
FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def cmc(call: Call) -> Reply:
    if call.headers.get("x-cmc_pro_api_key") != KEY:
        return Reply(401, {"status": {"error_code": 1002, "error_message": "API key missing."}})
    query = call.query
    if call.path == "/v2/cryptocurrency/quotes/latest" and query.get("convert") == "USD" and (
            query.get("id") == "1" or query.get("slug") == "bitcoin"):
        return Reply(body=fixture("quotes_btc"))
    if call.path == "/v1/global-metrics/quotes/latest" and query in ({}, {"convert": "USD"}):
        return Reply(body=fixture("global_metrics"))
    if call.path == "/v1/cryptocurrency/quotes/historical" and query == {
            "symbol": "ETH", "time_start": "2021-07-23T14", "convert": "BTC", "count": "10", "interval": "5m"}:
        return Reply(body=fixture("historical_eth_btc"))
    return Reply(400, {"status": {"error_code": 400, "error_message": f"not recorded: {call.path} {query}"}})


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.respond(cmc)
    return pyea_app(API_KEY=KEY).test_client()


@pytest.mark.parametrize(("data", "result"), [
    ({"base": "BTC", "cid": "1", "to": "USD"}, 6602.60701122),
    ({"endpoint": "marketcap", "base": "BTC", "slug": "bitcoin", "to": "USD"}, 113563929433.21645),
    ({"endpoint": "volume", "base": "BTC", "to": "USD"}, 4314444687.5194),
    ({"endpoint": "globalmarketcap", "market": "USD"}, 1939416192105.152),
    ({"endpoint": "dominance", "market": "BTC"}, 44.897494474523),
])
def test_the_twins_integration_requests_get_the_same_answers(client, data, result):
    body = node_request(client, data).get_json()
    assert body["statusCode"] == 200 and body["result"] == result == body["data"]["result"], body


def test_the_twins_historical_request_answers_the_providers_data(client):
    body = node_request(client, {"endpoint": "historical", "symbol": "ETH", "convert": "BTC",
                                 "start": "2021-07-23T14"}).get_json()
    assert body["statusCode"] == 200 and body["result"] is None
    assert body["data"] == fixture("historical_eth_btc")["data"]


@pytest.mark.parametrize("data", [{"cid": 1, "quote": "USD"}, {"cid": "1", "quote": "usd"},
                                  {"base": "btc", "convert": "USD"}, {"slug": "BITCOIN", "quote": "USD"}])
def test_an_id_as_text_or_number_a_symbol_and_a_slug_are_one_coin(client, fake_provider, data):
    body = node_request(client, data).get_json()
    assert body["statusCode"] == 200 and body["result"] == 6602.60701122


def test_resultpath_picks_the_figure(client):
    body = node_request(client, {"base": "BTC", "quote": "USD", "resultPath": "market_cap"}).get_json()
    assert body["result"] == 113563929433.21645
    wrong = node_request(client, {"base": "BTC", "quote": "USD", "resultPath": "supply"})
    assert wrong.status_code == 400 and "data.resultPath" in wrong.get_json()["error"]["message"]


def test_the_twins_form_of_api_endpoint_works(pyea_app, fake_provider):
    fake_provider.respond(cmc)
    client = pyea_app(API_KEY=KEY, API_ENDPOINT=f"{fake_provider.url}/v1/").test_client()
    assert node_request(client, {"cid": "1", "quote": "USD"}).get_json()["result"] == 6602.60701122
    assert fake_provider.calls[-1].path == "/v2/cryptocurrency/quotes/latest"

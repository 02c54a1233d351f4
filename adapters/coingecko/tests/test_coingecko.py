"""The CoinGecko adapter against a fake CoinGecko: endpoints, inputs, symbol mapping, keys and URLs."""

from __future__ import annotations

import pytest

from app.sdk import node_request, provider_sender


@pytest.mark.parametrize("endpoint, expected, flag", [
    ("crypto", 3021.5, None), ("price", 3021.5, None),
    ("marketcap", 3021.5e6, "include_market_cap"), ("volume", 3021.5e3, "include_24hr_vol"),
])
def test_simple_price_endpoints(pyea_client, fake_provider, endpoint, expected, flag):
    body = node_request(pyea_client, endpoint=endpoint).get_json()
    assert body["result"] == expected
    query = fake_provider.calls[0].query
    assert fake_provider.calls[0].path == "/simple/price"
    assert query["ids"] == "ethereum" and query["vs_currencies"] == "usd"
    if flag:
        assert query[flag] == "true"


@pytest.mark.parametrize("endpoint, data, expected", [
    ("globalmarketcap", {"market": "USD"}, 3.2e12),
    ("globalmarketcap", {"quote": "eur"}, 2.9e12),
    ("dominance", {"market": "BTC"}, 56.1),
    ("dominance", {"to": "eth"}, 11.9),
])
def test_global_endpoints(pyea_client, fake_provider, endpoint, data, expected):
    body = node_request(pyea_client, data, endpoint=endpoint).get_json()
    assert body["result"] == expected
    assert fake_provider.calls[0].path == "/global"


def test_global_endpoint_missing_market_is_502(pyea_client):
    response = node_request(pyea_client, {"market": "XYZ"}, endpoint="dominance")
    assert response.status_code == 502 and "xyz" in response.get_json()["error"]["message"]


def test_coinid_bypasses_symbol_mapping(pyea_client, fake_provider):
    body = node_request(pyea_client, {"coinid": "Chainlink", "quote": "USD"}).get_json()
    assert body["result"] == 14.25
    assert fake_provider.calls[0].query["ids"] == "chainlink"


def test_request_overrides_win_over_built_in_ones(pyea_client, fake_provider):
    fake_provider.prices[("wrapped-ether-x", "usd")] = 1.5
    body = node_request(pyea_client, {"base": "ETH", "quote": "USD",
                                 "overrides": {"coingecko": {"eth": "wrapped-ether-x"}}}).get_json()
    assert body["result"] == 1.5
    other_adapter = node_request(pyea_client, {"base": "ETH", "quote": "USD", "overrides": {"other": {"ETH": "x"}}})
    assert other_adapter.get_json()["result"] == 3021.5


@pytest.mark.parametrize("overrides, path", [
    ("ETH", "data.overrides"), ({"coingecko": ["x"]}, "data.overrides.coingecko"),
    ({"coingecko": {"ETH": 5}}, "data.overrides.coingecko.ETH"),
])
def test_bad_overrides_are_400(pyea_client, overrides, path):
    response = node_request(pyea_client, {"base": "ETH", "quote": "USD", "overrides": overrides})
    assert response.status_code == 400 and response.get_json()["error"]["message"].startswith(path)


@pytest.mark.parametrize("data, fragment", [
    ({"quote": "USD"}, "give base (also accepted as from, coin) or coinid"),
    ({"base": 5, "quote": "USD"}, "data.base: must be of type string, got integer 5"),
    ({"base": "", "quote": "USD"}, "data.base"),
    ({"from": "ETH", "coin": "BTC", "quote": "USD"}, "data.base: given more than once (as from, coin)"),
    ({"base": "ETH", "quote": ["USD"]}, "data.quote: must be of type string"),
    ({"base": "ETH"}, "data.quote: required parameter is missing (also accepted as to, market)"),
])
def test_input_errors_name_the_field_and_rule(pyea_client, fake_provider, data, fragment):
    response = node_request(pyea_client, data)
    assert response.status_code == 400
    assert fragment in response.get_json()["error"]["message"]
    assert fake_provider.count() == 0


def test_symbols_travel_encoded_and_cannot_change_the_provider_path(pyea_client, fake_provider):
    for symbol in ("../admin", "a?b=c", "x#y", "%2F", "@evil.example", "a\nb"):
        node_request(pyea_client, {"coinid": symbol, "quote": "USD"})
    for call in fake_provider.calls:
        assert call.path == "/simple/price"
    assert [c.query["ids"] for c in fake_provider.calls] == ["../admin", "a?b=c", "x#y", "%2f", "@evil.example",
                                                        "a\nb"]


def test_pro_url_and_header_with_a_key():
    from adapters.coingecko.transports import FREE_URL, PRO_URL, SimplePriceTransport
    transport = SimplePriceTransport("price")
    request = transport.prepare_requests([{"base": "ETH", "quote": "USD"}],
                                         {"API_KEY": "k", "API_KEY_TYPE": "pro", "API_ENDPOINT": None})[0]
    assert request.url == f"{PRO_URL}/simple/price" and request.headers["x-cg-pro-api-key"] == "k"
    free = transport.prepare_requests([{"base": "ETH", "quote": "USD"}],
                                      {"API_KEY": None, "API_KEY_TYPE": "pro", "API_ENDPOINT": None})[0]
    assert free.url == f"{FREE_URL}/simple/price" and "x-cg-pro-api-key" not in free.headers


def test_one_call_can_answer_a_batch_of_feeds(pyea_app, fake_provider):
    from adapters.coingecko.transports import SimplePriceTransport
    feeds = [{"base": "ethereum", "quote": "USD"}, {"base": "bitcoin", "quote": "USD"},
             {"base": "ethereum", "quote": "EUR"}, {"base": "nothing", "quote": "USD"}]
    requester = provider_sender()
    config = {"API_KEY": None, "API_KEY_TYPE": "pro", "API_ENDPOINT": fake_provider.url}
    outcomes = SimplePriceTransport("price").fetch(feeds, config, requester)
    assert fake_provider.count() == 1
    results = [getattr(o.outcome, "result", None) for o in outcomes]
    assert results == [3021.5, 97000.0, 2800.0, None]
    assert outcomes[3].outcome.status_code == 502

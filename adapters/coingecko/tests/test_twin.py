"""Requests of Chainlink's TypeScript CoinGecko adapter's integration tests, against the answers they recorded
(tests/fixtures): pyea must give the same status and the same result, so a job moves over unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.sdk import Call, Reply, load_config, node_request

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def simple_price(call: Call) -> Reply:
    """CoinGecko's /simple/price over the recorded answers: full precision only when asked for, one answer
    per include flag, narrowed to the ids and currencies asked for."""
    query = call.query
    if query.get("precision") != "full":
        return Reply(400, {"error": "the recorded answers are all at precision=full"})
    kind = "marketcap" if query.get("include_market_cap") == "true" else \
        "volume" if query.get("include_24hr_vol") == "true" else "price"
    ids, currencies = query["ids"].split(","), query["vs_currencies"].split(",")
    answer = {coin: {k: v for k, v in fields.items() if k.split("_")[0] in currencies}
              for coin, fields in fixture("simple_price")[kind].items() if coin in ids}
    return Reply(body=answer)


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.on("/simple/price", simple_price)
    fake_provider.on("/global", fixture("global"))
    fake_provider.on("/coins/list", fixture("coins_list"))
    return pyea_app().test_client()


TWIN_CASES = [
    # (request data (endpoint in data, as the twin's tests send it), status, result)
    ({"base": "ETH", "quote": "USD"}, 200, 4226.71),
    ({"base": "OHMV2", "quote": "USD", "overrides": {"coingecko": {"OHMV2": "olympus"}}}, 200, 100),
    ({"endpoint": "volume", "base": "ETH", "quote": "USD"}, 200, 17345604238.153397),
    ({"endpoint": "marketcap", "base": "ETH", "quote": "USD"}, 200, 499351414399.08246),
    ({"endpoint": "globalmarketcap", "quote": "USD"}, 200, 2744386468602.4453),
    ({"endpoint": "dominance", "quote": "ETH"}, 200, 18.127134683884314),
]


@pytest.mark.parametrize(("data", "status", "result"), TWIN_CASES)
def test_the_twins_integration_requests_get_the_same_answers(client, data, status, result):
    body = node_request(client, data).get_json()
    assert body["statusCode"] == status and body["result"] == result and body["data"]["result"] == result, body


def test_an_array_base_is_a_400_as_in_the_twin(client, fake_provider):
    response = node_request(client, {"base": ["OHMV2", "ETH"], "quote": "USD",
                                     "overrides": {"coingecko": {"OHMV2": "olympus"}}})
    assert response.status_code == 400
    assert "data.base: must be of type string" in response.get_json()["error"]["message"]
    assert fake_provider.calls == []


def test_provider_calls_are_what_coingecko_documents(client, fake_provider):
    for endpoint in ("crypto", "marketcap", "volume"):
        assert node_request(client, {"endpoint": endpoint, "base": "ETH", "quote": "USD"}).status_code == 200
    flags = [{k: v for k, v in c.query.items() if k not in ("ids", "vs_currencies")} for c in fake_provider.calls]
    assert flags == [{"precision": "full", "include_last_updated_at": "true"},
                     {"precision": "full", "include_last_updated_at": "true", "include_market_cap": "true"},
                     {"precision": "full", "include_last_updated_at": "true", "include_24hr_vol": "true"}]
    assert {(c.query["ids"], c.query["vs_currencies"]) for c in fake_provider.calls} == {("ethereum", "usd")}


@pytest.mark.parametrize(("endpoint", "data", "result"), [
    ("crypto-batched", {"from": "ETH", "to": "USD"}, 4226.71),
    ("batched", {"coin": "eth", "market": "usd"}, 4226.71),
    ("batch", {"base": "ETH", "quote": "USD"}, 4226.71),
    ("price", {"base": "ETH", "quote": "USD"}, 4226.71),
    ("CRYPTO", {"coinid": "ethereum", "quote": "USD"}, 4226.71),
    ("crypto-marketcap", {"base": "ETH", "quote": "USD"}, 499351414399.08246),
    ("crypto-volume", {"base": "ETH", "quote": "USD"}, 17345604238.153397),
    ("total_market_cap", {"market": "USD"}, 2744386468602.4453),
    ("market_cap_percentage", {"to": "ETH"}, 18.127134683884314),
])
def test_every_endpoint_alias_of_the_twin_is_accepted(client, endpoint, data, result):
    body = node_request(client, data, endpoint=endpoint).get_json()
    assert body["statusCode"] == 200 and body["result"] == result, body


def test_the_coins_endpoint_answers_the_coin_list_as_data(client, fake_provider):
    body = node_request(client, {}, endpoint="coins").get_json()
    assert body["statusCode"] == 200 and body["result"] is None
    assert body["data"] == fixture("coins_list")
    assert [c.path for c in fake_provider.calls] == ["/coins/list"]


def test_global_endpoints_carry_the_providers_timestamp(client):
    body = node_request(client, {"quote": "USD"}, endpoint="globalmarketcap").get_json()
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1635189786000


def test_the_symbol_table_is_regenerated_from_the_coin_list(fake_provider, tmp_path):
    from adapters.coingecko.update_overrides import main, merged

    coins = [{"id": "ethereum", "symbol": "eth"}, {"id": "ethereum-wormhole", "symbol": "eth"},
             {"id": "olympus", "symbol": "ohm"}, {"id": "bitcoin", "symbol": "BTC"}, {"id": "", "symbol": "x"}]
    assert merged({"OHM": "olympus-v1"}, coins) == {"OHM": "olympus-v1", "ETH": "ethereum", "BTC": "bitcoin"}
    fake_provider.on("/coins/list", coins)
    out = tmp_path / "overrides.json"
    out.write_text('{"OHM": "olympus-v1"}')
    assert main(["--api-endpoint", fake_provider.url, "--api-key", "k" * 20, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"OHM": "olympus-v1", "ETH": "ethereum", "BTC": "bitcoin"}
    assert fake_provider.calls[-1].headers["x-cg-pro-api-key"] == "k" * 20


def test_the_shipped_table_is_the_twins_size_and_maps_the_common_symbols(client):
    table = json.loads((Path(__file__).parents[1] / "overrides.json").read_text())
    assert len(table) > 10000
    assert {s: table[s] for s in ("ETH", "BTC", "LINK")} == {"ETH": "ethereum", "BTC": "bitcoin", "LINK": "chainlink"}


def test_an_api_endpoint_with_a_trailing_slash_works(pyea_app, fake_provider):
    fake_provider.on("/simple/price", simple_price)
    client = pyea_app(API_ENDPOINT=f"{fake_provider.url}/").test_client()
    assert node_request(client, {"base": "ETH", "quote": "USD"}).get_json()["result"] == 4226.71


def test_a_demo_key_goes_to_the_public_host_with_the_demo_header(pyea_app, fake_provider):
    fake_provider.on("/simple/price", simple_price)
    client = pyea_app(API_KEY="CG-demo-key-0123456789", API_KEY_TYPE="demo").test_client()
    assert node_request(client, {"base": "ETH", "quote": "USD"}).get_json()["result"] == 4226.71
    headers = fake_provider.calls[-1].headers
    assert headers["x-cg-demo-api-key"] == "CG-demo-key-0123456789" and "x-cg-pro-api-key" not in headers


@pytest.mark.parametrize(("env", "host", "per_minute"), [
    ({}, FREE_HOST := "api.coingecko.com", 30),
    ({"COINGECKO_API_KEY": "CG-pro-key-0123456789"}, "pro-api.coingecko.com", 250),
    ({"COINGECKO_API_KEY": "CG-demo-key-0123456789", "COINGECKO_API_KEY_TYPE": "demo"}, FREE_HOST, 30),
    ({"COINGECKO_API_KEY": "CG-pro-key-0123456789", "RATE_LIMIT_API_TIER": "lite"}, "pro-api.coingecko.com", 500),
])
def test_the_key_kind_picks_the_host_and_the_default_tier(tmp_path, env, host, per_minute):
    from adapters.coingecko.transports import base_url

    config = load_config({"CACHE_DIR": str(tmp_path), **env})
    [cfg] = config.adapters
    assert base_url(cfg.values).split("//")[1].startswith(host)
    assert cfg.rate_limit.per_minute == per_minute

"""The CoinMarketCap adapter against a fake CoinMarketCap: endpoints, symbols vs ids, the key, errors, hosting."""

from __future__ import annotations

import json

import pytest

from app.sdk import Call, FakeProvider, Reply, SettingsError, load_config, node_request, provider_sender

KEY = "cmc-secret-key-123"
STAMP = "2024-03-25T10:15:00.000Z"
STAMP_MS = 1711361700000
# (symbol, id, cmc_rank) → {currency: price}
COINS = {("ETH", 1027, 2): {"USD": 3021.5, "EUR": 2800.0}, ("BTC", 1, 1): {"USD": 97000.0},
         ("DOGE", 74, 9): {"USD": 0.15}, ("DOGE", 99999, 4000): {"USD": 0.01}}  # an impostor, listed first below


def _coin(symbol: str, cid: int, rank: int, currency: str) -> dict | None:
    price = COINS[(symbol, cid, rank)].get(currency)
    if price is None:
        return None
    return {"id": cid, "symbol": symbol, "cmc_rank": rank, "last_updated": STAMP,
            "quote": {currency: {"price": price, "market_cap": price * 1e6, "volume_24h": price * 1e3,
                                 "last_updated": STAMP}}}


def cmc(call: Call, fake_provider: FakeProvider | None = None) -> Reply:
    """Answers the two CoinMarketCap paths the adapter uses; CoinGecko paths go to the stock fake."""
    if fake_provider is not None and not call.path.startswith(("/v1/", "/v2/")):
        return fake_provider._coingecko(call)
    if call.headers.get("x-cmc_pro_api_key") != KEY:
        return Reply(401, {"status": {"error_code": 1002, "error_message": "API key missing."}})
    status = {"timestamp": STAMP, "error_code": 0, "error_message": None, "credit_count": 1}
    currency = call.query.get("convert", "USD")
    if call.path == "/v2/cryptocurrency/quotes/latest":
        data: dict = {}
        for symbol in filter(None, call.query.get("symbol", "").split(",")):
            coins = [c for (s, i, r) in sorted(COINS, key=lambda k: -k[2]) if s == symbol
                     if (c := _coin(s, i, r, currency))]
            if coins:
                data[symbol] = coins
        for cid in filter(None, call.query.get("id", "").split(",")):
            found = [_coin(*k, currency) for k in COINS if str(k[1]) == cid]
            if found and found[0]:
                data[cid] = found[0]
        return Reply(body={"status": status, "data": data})
    if call.path == "/v1/global-metrics/quotes/latest":
        totals = {"USD": 3.2e12, "EUR": 2.9e12}
        quote = {currency: {"total_market_cap": totals[currency], "last_updated": STAMP}} if currency in totals else {}
        return Reply(body={"status": status, "data": {"btc_dominance": 56.1, "eth_dominance": 11.9,
                                                       "last_updated": STAMP, "quote": quote}})
    return Reply(404, {"status": {"error_code": 404, "error_message": "not found"}})


@pytest.fixture
def pyea_client(pyea_app, fake_provider):
    fake_provider.respond(cmc)
    return pyea_app(ADAPTERS="coinmarketcap", API_KEY=KEY).test_client()


@pytest.mark.parametrize("endpoint, expected", [
    ("crypto", 3021.5), ("price", 3021.5), ("marketcap", 3021.5e6), ("volume", 3021.5e3),
])
def test_quote_endpoints(pyea_client, fake_provider, endpoint, expected):
    body = node_request(pyea_client, endpoint=endpoint).get_json()
    assert body["result"] == expected
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == STAMP_MS
    call = fake_provider.calls[0]
    assert call.path == "/v2/cryptocurrency/quotes/latest"
    assert call.query["id"] == "1027" and call.query["convert"] == "USD" and "symbol" not in call.query, \
        "ETH is in presetids.json: asked by its id, which no other coin shares"


def test_symbol_shared_by_several_coins_takes_the_best_ranked(pyea_client, fake_provider):
    assert node_request(pyea_client, {"sym": "doge", "convert": "usd"}).get_json()["result"] == 0.15
    assert fake_provider.calls[-1].query["symbol"] == "DOGE"


def test_cid_asks_by_id_and_wins_over_base(pyea_client, fake_provider):
    body = node_request(pyea_client, {"cid": 1027, "base": "BTC", "quote": "USD"}).get_json()
    assert body["result"] == 3021.5
    assert fake_provider.calls[0].query["id"] == "1027" and "symbol" not in fake_provider.calls[0].query


def test_cid_from_a_query_string_is_an_integer(pyea_client, fake_provider):
    response = pyea_client.get("/?cid=1&quote=USD")
    assert response.get_json()["result"] == 97000.0 and fake_provider.calls[0].query["id"] == "1"


@pytest.mark.parametrize("endpoint, data, expected, convert", [
    ("globalmarketcap", {"market": "USD"}, 3.2e12, "USD"),
    ("globalmarketcap", {"quote": "eur"}, 2.9e12, "EUR"),
    ("dominance", {"market": "BTC"}, 56.1, None),
    ("dominance", {"to": "eth"}, 11.9, None),
])
def test_global_endpoints(pyea_client, fake_provider, endpoint, data, expected, convert):
    body = node_request(pyea_client, data, endpoint=endpoint).get_json()
    assert body["result"] == expected
    assert fake_provider.calls[0].path == "/v1/global-metrics/quotes/latest"
    assert fake_provider.calls[0].query.get("convert") == convert


def test_dominance_of_another_asset_is_502_without_a_provider_call(pyea_client, fake_provider):
    response = node_request(pyea_client, {"market": "SOL"}, endpoint="dominance")
    assert response.status_code == 502
    assert "only reports BTC and ETH dominance" in response.get_json()["error"]["message"]
    assert fake_provider.count() == 0


def test_key_travels_in_the_header_and_is_never_shown(pyea_client, fake_provider):
    answers = [node_request(pyea_client, {"base": "ETH", "quote": "USD"}).get_data(as_text=True),
               node_request(pyea_client, {"base": "NOPE", "quote": "USD"}).get_data(as_text=True),
               pyea_client.get("/status").get_data(as_text=True)]
    assert fake_provider.calls[0].headers["x-cmc_pro_api_key"] == KEY
    assert all(KEY not in c.path and KEY not in str(c.query) for c in fake_provider.calls)
    assert all(KEY not in text for text in answers)


def test_missing_symbol_is_502_naming_it(pyea_client):
    response = node_request(pyea_client, {"base": "NOPE", "quote": "USD"})
    assert response.status_code == 502
    assert "symbol 'NOPE' in 'USD'" in response.get_json()["error"]["message"]


def test_missing_quote_for_a_known_symbol_is_502(pyea_client):
    response = node_request(pyea_client, {"base": "BTC", "quote": "EUR"})
    assert response.status_code == 502 and "id '1' in 'EUR'" in response.get_json()["error"]["message"]


def test_provider_401_is_502_with_the_provider_status(pyea_app, fake_provider):
    fake_provider.respond(cmc)
    response = node_request(pyea_app(ADAPTERS="coinmarketcap", API_KEY="wrong").test_client())
    assert response.status_code == 502 and response.get_json()["providerStatusCode"] == 401


def test_no_key_is_refused_at_startup_naming_the_variable(tmp_path):

    with pytest.raises(SettingsError) as caught:
        load_config({"ADAPTERS": "coinmarketcap", "CACHE_DIR": str(tmp_path)})
    assert "COINMARKETCAP_API_KEY (or API_KEY)=(unset): must be set" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load_config({"ADAPTERS": "coingecko,coinmarketcap", "API_KEY": KEY, "CACHE_DIR": str(tmp_path)})
    assert "COINMARKETCAP_API_KEY=(unset)" in str(caught.value)  # plain API_KEY belongs to the first adapter


def test_error_code_in_a_200_answer_fails_every_feed_of_the_call(pyea_app, fake_provider):
    fake_provider.respond(lambda call: Reply(200, {"status": {"error_code": 1008, "error_message": "minute limit"},
                                              "data": None}))
    response = node_request(pyea_app(ADAPTERS="coinmarketcap", API_KEY=KEY).test_client())
    assert response.status_code == 502 and "minute limit" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("data, fragment", [
    ({"quote": "USD"}, "cid"),
    ({"cid": "ethereum", "quote": "USD"}, "data.cid: 'ethereum' does not match"),
    ({"symbol": "ETH", "coin": "BTC", "quote": "USD"}, "data.base: given more than once"),
])
def test_input_errors_are_400(pyea_client, fake_provider, data, fragment):
    response = node_request(pyea_client, data)
    assert response.status_code == 400 and fragment in response.get_json()["error"]["message"]
    assert fake_provider.count() == 0


def test_a_batch_makes_one_call_per_quote_and_per_symbol_or_id(fake_provider):
    from adapters.coinmarketcap.transports import QuotesTransport
    fake_provider.respond(cmc)
    feeds = [{"base": "ETH", "quote": "USD"}, {"base": "BTC", "quote": "USD"}, {"base": "ETH", "quote": "EUR"},
             {"cid": 1027, "quote": "USD"}, {"base": "NOPE", "quote": "USD"}]
    outcomes = QuotesTransport("price").fetch(feeds, {"API_KEY": KEY, "API_ENDPOINT": fake_provider.url},
                                              provider_sender())
    asked = sorted((c.query.get("symbol", ""), c.query.get("id", ""), c.query["convert"]) for c in fake_provider.calls)
    assert asked == [("", "1,1027", "USD"), ("", "1027", "EUR"), ("NOPE", "", "USD")]
    by_feed = {json.dumps(dict(o.params), sort_keys=True): o.outcome for o in outcomes}
    assert len(outcomes) == len(by_feed) == len(feeds)
    results = [by_feed[json.dumps(f, sort_keys=True)] for f in feeds]
    assert [getattr(r, "result", None) for r in results] == [3021.5, 97000.0, 2800.0, 3021.5, None]
    assert results[4].status_code == 502


def test_hosted_next_to_coingecko_with_separate_caches(pyea_app, fake_provider):
    fake_provider.respond(lambda call: cmc(call, fake_provider))
    app = pyea_app(ADAPTERS="coingecko,coinmarketcap", COINMARKETCAP_API_KEY=KEY,
                   COINMARKETCAP_API_ENDPOINT=fake_provider.url)
    pyea_client = app.test_client()
    for _ in range(2):
        assert pyea_client.post("/coinmarketcap/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code == 200
        assert pyea_client.post("/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code == 200
    assert fake_provider.count("/v2/cryptocurrency/quotes/latest") == 1
    assert fake_provider.count("/simple/price") == 1
    assert KEY not in pyea_client.get("/status").get_data(as_text=True)


def test_unknown_tier_lists_the_coinmarketcap_ones():
    with pytest.raises(SettingsError) as raised:
        load_config({"ADAPTERS": "coinmarketcap", "RATE_LIMIT_API_TIER": "gold", "API_KEY": KEY})
    assert "basic, hobbyist, startup, standard, professional" in str(raised.value)

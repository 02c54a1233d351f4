"""The coinbase adapter: the spot price over REST (the default while WS_ENABLED is off, the stream's fallback,
and data.transport "rest"), NFT floor prices, and the requests of Chainlink's TypeScript adapter's tests against
the answers they recorded."""

from __future__ import annotations

import pytest

from app.sdk import Call, Reply, node_request, wait_for

NFT_ENV = {"NFT_API_ENDPOINT": "", "NFT_API_AUTH_HEADER": "nft-token-0123456789"}
COLLECTION = "0xbc4ca0eda7647a8ab7c2061c2e118a18a936f13d"


def spot(prices: dict[str, str]):
    """Coinbase's /v2/prices/<pair>/spot: amount as a decimal string, 404 with errors for unknown pairs."""

    def answer(call: Call) -> Reply:
        pair = call.path.removeprefix("/v2/prices/").removesuffix("/spot")
        if pair not in prices:
            return Reply(404, {"errors": [{"id": "not_found", "message": "Invalid currency"}]})
        base, currency = pair.split("-")
        return Reply(body={"data": {"base": base, "currency": currency, "amount": prices[pair]}})

    return answer


def nft(call: Call) -> Reply:
    if call.headers.get("cb-nft-api-token") != NFT_ENV["NFT_API_AUTH_HEADER"]:
        return Reply(401, {"error": "unauthorized"})
    if call.query.get("metricName") != "ETH_FLOOR_PRICE_ESTIMATE_BASE":
        return Reply(400, {"error": "unknown metric"})
    return Reply(body={"value": {"floor_price_estimate": "67.09079293", "updated_at": "2022-09-09T06:12:31Z"},
                       "metricName": "eth_floor_price_estimate_base"})


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.respond(spot({"BTC-USD": "57854.29", "ETH-USD": "3021.50"}))
    fake_provider.on("/api/nft/quant/v1/GetCollectionLatestMetric", nft)
    return pyea_app(**{**NFT_ENV, "NFT_API_ENDPOINT": fake_provider.url}).test_client()


def test_the_twins_spot_price_request(client, fake_provider):
    body = node_request(client, {"base": "BTC", "quote": "USD"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 57854.29 == body["data"]["result"]
    [call] = fake_provider.calls
    assert call.path == "/v2/prices/BTC-USD/spot" and call.query == {"symbol": "BTC", "convert": "USD"}


def test_the_twins_nft_floor_price_request(client, fake_provider):
    body = node_request(client, {"endpoint": "nft-floor-price", "network": "ethereum-mainnet",
                                 "contractAddress": COLLECTION, "start": "2022-05-25T12:00:00.000Z",
                                 "end": "2022-05-25T12:00:00.000Z"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 67.09079293 == body["data"]["result"]
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1662703951000
    assert fake_provider.calls[-1].query == {"networkName": "ethereum-mainnet", "contractAddress": COLLECTION,
                                             "metricName": "ETH_FLOOR_PRICE_ESTIMATE_BASE"}


@pytest.mark.parametrize(("endpoint", "data"), [
    ("crypto", {"symbol": "ETH", "convert": "USD"}), ("price", {"sym": "eth", "market": "usd"}),
    ("ticker", {"from": "ETH", "to": "USD"}), (None, {"coin": "ETH", "quote": "USD"})])
def test_the_twins_endpoint_and_parameter_names(client, endpoint, data):
    body = node_request(client, data, endpoint=endpoint).get_json()
    assert body["statusCode"] == 200 and body["result"] == 3021.5


@pytest.mark.parametrize(("data", "status", "says"), [
    ({"endpoint": "nft-floor-price"}, 400, "data.contractAddress: required"),
    ({"endpoint": "nft-floor-price", "network": "abc", "contractAddress": COLLECTION}, 400, "data.network"),
    ({"symbol": "ETH"}, 400, "data.quote: required"),
    ({"base": "NOPE", "quote": "USD"}, 502, "/v2/prices/NOPE-USD/spot answered HTTP 404"),
])
def test_bad_requests_are_named(client, data, status, says):
    response = node_request(client, data)
    assert response.status_code == status and says in response.get_json()["error"]["message"]


def test_nft_floor_price_without_the_nft_api_configured_is_a_503_costing_nothing(pyea_app, fake_provider):
    client = pyea_app().test_client()
    response = node_request(client, {"contractAddress": COLLECTION}, endpoint="nft-floor")
    assert response.status_code == 503 and "NFT_API_ENDPOINT and NFT_API_AUTH_HEADER" in response.get_json()[
        "error"]["message"]
    assert fake_provider.calls == []


def test_the_http_fallback_serves_while_the_stream_is_down(pyea_app, fake_provider):
    fake_provider.respond(spot({"ETH-USD": "3021.50"}))
    app = pyea_app(WS_ENABLED="true", WS_API_ENDPOINT="ws://127.0.0.1:9/", WARMUP_INTERVAL="100",
                   CACHE_MIN_AGE="100", CACHE_POLLING_SLEEP_MS="20", CACHE_POLLING_MAX_RETRIES="100")
    answer = node_request(app.test_client(), {"base": "ETH", "quote": "USD"})
    assert answer.status_code == 200 and answer.get_json()["result"] == 3021.5
    assert fake_provider.count("/v2/prices/ETH-USD/spot") >= 1


def test_a_request_can_choose_rest_while_the_stream_is_on(pyea_app, fake_provider):
    """data.transport: "rest" is fetched in the request, cached apart from the stream; an unknown one is a 400."""
    fake_provider.respond(spot({"ETH-USD": "3021.50"}))
    app = pyea_app(WS_ENABLED="true", WS_API_ENDPOINT="ws://127.0.0.1:9/", WARMUP_ENABLED="false")
    client = app.test_client()
    first = node_request(client, {"base": "ETH", "quote": "USD", "transport": "REST"}).get_json()
    assert first["statusCode"] == 200 and first["result"] == 3021.5 and first["meta"]["cacheHit"] is False
    assert first["meta"]["endpoint"] == "crypto"
    again = node_request(client, {"base": "ETH", "quote": "USD", "transport": "rest"}).get_json()
    assert again["meta"]["cacheHit"] is True and fake_provider.count() == 1
    wrong = node_request(client, {"base": "ETH", "quote": "USD", "transport": "grpc"})
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["message"] == "data.transport: must be one of rest, ws, got \"grpc\""
    status = client.get("/status").get_json()
    [crypto] = [e for e in status["adapters"][0]["endpoints"] if e["name"] == "crypto"]
    assert crypto["transports"] == ["rest", "ws"]


def test_transport_on_an_endpoint_with_one_is_a_400(client):
    response = node_request(client, {"contractAddress": COLLECTION, "transport": "rest"}, endpoint="nft-floor")
    assert response.status_code == 400 and "has one transport" in response.get_json()["error"]["message"]


def test_without_ws_enabled_the_spot_price_answers_in_the_request(client, fake_provider):
    answer = node_request(client, {"from": "btc", "to": "usd"})
    assert answer.status_code == 200 and answer.get_json()["result"] == 57854.29
    assert node_request(client, {"base": "BTC/../x", "quote": "USD"}).status_code == 400
    wait_for(lambda: fake_provider.count() == 1, 1, "one call")

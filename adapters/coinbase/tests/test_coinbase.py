"""The coinbase adapter's REST side: the fallback that answers while the stream is down or off."""

from __future__ import annotations

from app.sdk import FakeProvider, Reply, node_request


def test_the_http_fallback_serves_while_the_stream_is_down(pyea_app, fake_provider: FakeProvider) -> None:
    fake_provider.respond(lambda call: Reply(body={"price": "3021.50", "time": "2024-03-25T10:15:00.000Z"})
                     if call.path == "/products/ETH-USD/ticker" else Reply(404, {"message": "NotFound"}))
    app = pyea_app(ADAPTERS="coinbase", WS_ENABLED="true", WS_API_ENDPOINT="ws://127.0.0.1:9/",
                   WARMUP_INTERVAL="100", CACHE_MIN_AGE="100", CACHE_POLLING_SLEEP_MS="20",
                   CACHE_POLLING_MAX_RETRIES="100")
    answer = node_request(app.test_client(), {"base": "ETH", "quote": "USD"})
    assert answer.status_code == 200 and answer.get_json()["result"] == 3021.5
    assert fake_provider.count("/products/ETH-USD/ticker") >= 1


def test_without_ws_enabled_the_rest_fallback_answers_in_the_request(pyea_app, fake_provider: FakeProvider) -> None:
    fake_provider.respond(lambda call: Reply(body={"price": "97000.00", "time": "2024-03-25T10:15:00.000Z"}))
    pyea_client = pyea_app(ADAPTERS="coinbase").test_client()
    answer = node_request(pyea_client, {"from": "btc", "to": "usd"})
    assert answer.status_code == 200 and answer.get_json()["result"] == 97000.0
    assert fake_provider.calls[0].path == "/products/BTC-USD/ticker"
    assert node_request(pyea_client, {"base": "BTC/../x", "quote": "USD"}).status_code == 400

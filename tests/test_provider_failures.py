"""What the node sees when the provider misbehaves: the documented status, a clear message, no 500."""

from __future__ import annotations

import logging

import pytest

from app.testing import Reply, free_port
from tests.conftest import node_request


@pytest.fixture
def strict_client(make_app):
    """No retries and no negative cache: every request reaches the provider."""
    return make_app(RETRY="0", CACHE_ERROR_MAX_AGE="0", API_TIMEOUT="300").test_client()


def failure(response, status: int, name: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["statusCode"] == status and body["status"] == "errored"
    assert body["error"]["name"] == name
    return body


def test_provider_500_is_502_with_provider_status(strict_client, provider):
    provider.respond(lambda call: Reply(500, {"error": "internal"}))
    body = failure(node_request(strict_client), 502, "AdapterDataProviderError")
    assert body["providerStatusCode"] == 500
    assert "HTTP 500" in body["error"]["message"]


def test_provider_malformed_json_is_502(strict_client, provider):
    provider.respond(lambda call: Reply(200, b"{not json"))
    body = failure(node_request(strict_client), 502, "AdapterDataProviderError")
    assert "invalid JSON" in body["error"]["message"]


def test_provider_html_is_502(strict_client, provider):
    provider.respond(lambda call: Reply(200, b"<html>maintenance</html>", {"content-type": "text/html"}))
    failure(node_request(strict_client), 502, "AdapterDataProviderError")


@pytest.mark.parametrize("body", [[1, 2], {"ethereum": "3021"}, {"ethereum": {"usd": "3021"}}, {"ethereum": None}])
def test_provider_wrong_shape_is_502(strict_client, provider, body):
    provider.respond(lambda call: Reply(200, body))
    failure(node_request(strict_client), 502, "AdapterDataProviderError")


def test_provider_timeout_is_504(strict_client, provider):
    provider.delay_s = 1.0
    body = failure(node_request(strict_client), 504, "AdapterTimeoutError")
    assert "300 ms" in body["error"]["message"]


def test_provider_unreachable_is_502(make_app):
    client = make_app(API_ENDPOINT=f"http://127.0.0.1:{free_port()}", RETRY="0").test_client()
    body = failure(node_request(client), 502, "AdapterConnectionError")
    assert "could not reach" in body["error"]["message"]


def test_missing_pair_is_a_clear_502(strict_client):
    body = failure(node_request(strict_client, {"base": "DOGE", "quote": "USD"}), 502, "AdapterDataProviderError")
    assert "dogecoin" in body["error"]["message"] and "usd" in body["error"]["message"]


def test_5xx_and_429_are_retried_then_succeed(make_app, provider):
    answers = iter([Reply(503, {}), Reply(429, {})])
    provider.respond(lambda call: next(answers, None) or provider._coingecko(call))
    client = make_app(RETRY="2").test_client()
    assert node_request(client).status_code == 200
    assert provider.count() == 3


def test_4xx_is_never_retried(make_app, provider):
    provider.respond(lambda call: Reply(404, {"error": "coin not found"}))
    client = make_app(RETRY="3", CACHE_ERROR_MAX_AGE="0").test_client()
    assert failure(node_request(client), 502, "AdapterDataProviderError")["providerStatusCode"] == 404
    assert provider.count() == 1


def test_retries_stop_after_retry_count(make_app, provider):
    provider.respond(lambda call: Reply(500, {}))
    client = make_app(RETRY="2", CACHE_ERROR_MAX_AGE="0").test_client()
    failure(node_request(client), 502, "AdapterDataProviderError")
    assert provider.count() == 3


def test_api_key_is_sent_but_never_shown(make_app, provider, caplog):
    secret = "CG-pro-key-DO-NOT-LEAK"
    provider.respond(lambda call: Reply(401, {"error": f"invalid key {call.headers.get('x-cg-pro-api-key')}"}))
    client = make_app(API_KEY=secret, RETRY="0", LOG_LEVEL="debug").test_client()
    with caplog.at_level(logging.DEBUG, logger="pyea"):
        response = node_request(client)
    assert provider.calls[0].headers["x-cg-pro-api-key"] == secret
    assert secret not in response.get_data(as_text=True)
    assert "[REDACTED]" in response.get_json()["error"]["message"]
    assert secret not in client.get("/status").get_data(as_text=True)


def test_a_failure_never_replaces_a_cached_success(make_app, provider):
    client = make_app(RETRY="0", CACHE_ERROR_MAX_AGE="60000").test_client()
    assert node_request(client).status_code == 200
    provider.respond(lambda call: Reply(500, {}))
    assert node_request(client, {"base": "ETH", "quote": "USD", "maxAge": -1}).status_code == 502
    cached = node_request(client)
    assert cached.status_code == 200 and cached.get_json()["result"] == 3021.5

"""What the node sees when the provider misbehaves: the documented status, a clear message, no 500."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from app.devkit.fake_http import Reply, free_port
from app.devkit.testing import node_request


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


def test_retry_after_is_honoured_by_every_later_request(make_app, provider):
    """A 429 with Retry-After: the node gets a 429 saying so, and nobody calls the provider until then."""
    provider.respond(lambda call: Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}))
    client = make_app(RETRY="0", CACHE_ERROR_MAX_AGE="0").test_client()
    body = failure(node_request(client), 429, "AdapterRateLimitError")
    assert "asked to wait 1 s (Retry-After)" in body["error"]["message"] and body["providerStatusCode"] == 429
    again = failure(node_request(client, {"base": "BTC", "quote": "USD"}), 429, "AdapterRateLimitError")
    assert "retry in 1 s" in again["error"]["message"]
    assert provider.count() == 1, "no call before the provider's Retry-After has passed"
    provider.respond(None)
    time.sleep(1.05)
    assert node_request(client).status_code == 200 and provider.count() == 2


def test_a_short_retry_after_is_waited_out_within_the_request(make_app, provider):
    replies = iter([Reply(503, {"error": "busy"}, headers={"Retry-After": "1"})])
    provider.respond(lambda call: next(replies, None) or provider._coingecko(call))
    client = make_app(RETRY="1", CACHE_ERROR_MAX_AGE="0").test_client()
    assert node_request(client).get_json()["result"] == 3021.5
    first, second = provider.calls
    assert second.at - first.at >= 1.0, "the retry came after the provider's Retry-After"


def test_retry_after_as_an_http_date(make_app, provider):
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    provider.respond(lambda call: Reply(429, {"error": "slow down"}, headers={"Retry-After": later}))
    client = make_app(RETRY="3", CACHE_ERROR_MAX_AGE="0").test_client()
    started = time.monotonic()
    body = failure(node_request(client), 429, "AdapterRateLimitError")
    assert time.monotonic() - started < 1, "a long Retry-After fails the request at once instead of hanging"
    assert "asked to wait 29 s" in body["error"]["message"] or "asked to wait 30 s" in body["error"]["message"]
    assert provider.count() == 1


def test_a_failed_refresh_serves_the_last_good_value_while_young_enough(make_app, provider):
    client = make_app(CACHE_MAX_AGE="200", CACHE_MIN_AGE="0", CACHE_STALE_MAX_AGE="1000", CACHE_ERROR_MAX_AGE="0",
                      RETRY="0", WARMUP_ENABLED="false").test_client()
    assert node_request(client).get_json()["meta"].get("stale") is None
    provider.respond(lambda call: Reply(500, {"error": "down"}))
    time.sleep(0.25)  # the value expired; its refresh fails
    stale = node_request(client)
    body = stale.get_json()
    assert stale.status_code == 200 and body["result"] == 3021.5
    assert body["meta"]["stale"] is True and body["meta"]["cacheHit"] is True and body["meta"]["staleness"] >= 0.25
    time.sleep(0.8)  # past CACHE_STALE_MAX_AGE: the honest error
    failure(node_request(client), 502, "AdapterDataProviderError")
    provider.respond(None)
    fresh = node_request(client).get_json()
    assert fresh["result"] == 3021.5 and "stale" not in fresh["meta"]


def test_a_remembered_failure_still_serves_the_last_good_value(make_app, provider):
    """With the default CACHE_ERROR_MAX_AGE the failure is cached so the broken feed costs no more calls; the
    requests that read that cached failure are answered with the last good value too, not only the first."""
    client = make_app(CACHE_MAX_AGE="200", CACHE_MIN_AGE="0", CACHE_STALE_MAX_AGE="5000", RETRY="0",
                      WARMUP_ENABLED="false").test_client()
    node_request(client)
    provider.respond(lambda call: Reply(500, {"error": "down"}))
    time.sleep(0.25)
    for _ in range(3):
        body = node_request(client).get_json()
        assert body["result"] == 3021.5 and body["meta"]["stale"] is True
    assert provider.count() == 2  # the first value, then one failed refresh: the failure is remembered


def test_without_serve_stale_a_failed_refresh_is_an_error(make_app, provider):
    client = make_app(CACHE_MAX_AGE="200", CACHE_MIN_AGE="0", RETRY="0", WARMUP_ENABLED="false").test_client()
    node_request(client)
    provider.respond(lambda call: Reply(500, {"error": "down"}))
    time.sleep(0.25)
    failure(node_request(client), 502, "AdapterDataProviderError")

"""Every way a provider can fail, and what the node sees: the documented status, a clear {name, message},
never a 500, never a request held past API_TIMEOUT, and never a cache entry that outlives the fault."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.devkit.fake_http import Reply, free_port
from app.devkit.testing import node_request

TIMEOUT_MS = 400
PRICE = {"ethereum": {"usd": 3021.5, "last_updated_at": 1763699999}}

# fault → (reply or provider URL, expected status, error name, provider status, words in the message)
FAULTS: dict[str, tuple[Any, int, str, int | None, str]] = {
    "connection refused": ("refused", 502, "AdapterConnectionError", None, "could not reach provider"),
    "name does not resolve": ("dns", 502, "AdapterConnectionError", None, "could not reach provider"),
    "no answer (timeout)": (Reply(body=PRICE, delay_s=1.0), 504, "AdapterTimeoutError", None, "API_TIMEOUT"),
    "slow body (trickle)": (Reply(body=PRICE, trickle_s=0.05), 504, "AdapterTimeoutError", None,
                            "did not finish its answer"),
    "429 without Retry-After": (Reply(429, {"error": "slow down"}), 502, "AdapterDataProviderError", 429, "HTTP 429"),
    "429 with Retry-After": (Reply(429, {"error": "slow down"}, headers={"Retry-After": "30"}), 429,
                             "AdapterRateLimitError", 429, "Retry-After"),
    "500": (Reply(500, {"error": "internal"}), 502, "AdapterDataProviderError", 500, "HTTP 500"),
    "502": (Reply(502, b"<html>bad gateway</html>", headers={"content-type": "text/html"}), 502,
            "AdapterDataProviderError", 502, "HTTP 502"),
    "503": (Reply(503, {"error": "maintenance"}), 502, "AdapterDataProviderError", 503, "HTTP 503"),
    "200 with HTML": (Reply(200, b"<html><body>login</body></html>", headers={"content-type": "text/html"}), 502,
                      "AdapterDataProviderError", 200, "JSON"),
    "200 with malformed JSON": (Reply(200, b'{"ethereum": {"usd": 30'), 502, "AdapterDataProviderError", 200,
                                "JSON"),
    "200 with the wrong shape": (Reply(200, {"data": [1, 2, 3]}), 502, "AdapterDataProviderError", 200, ""),
    "200 with a non-number price": (Reply(200, {"ethereum": {"usd": "lots"}}), 502, "AdapterDataProviderError", 200,
                                    ""),
    "huge body": (Reply(200, b"[" + b"1," * 9_000_000 + b"1]"), 502, "AdapterDataProviderError", 200,
                  "more than"),
    "non-UTF-8 body": (Reply(200, b'{"ethereum": {"usd": 1, "x": "\xff\xfe"}}'), 502, "AdapterDataProviderError", 200,
                       "invalid JSON"),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_fault(make_app, provider, fault: str) -> None:
    reply, status, name, provider_status, words = FAULTS[fault]
    endpoint = provider.url
    if reply == "refused":
        endpoint = f"http://127.0.0.1:{free_port()}"
    elif reply == "dns":
        endpoint = "http://pyea-test.invalid"  # .invalid never resolves (RFC 6761)
    else:
        provider.respond(lambda call: reply)
    client = make_app(API_ENDPOINT=endpoint, RETRY="0", API_TIMEOUT=str(TIMEOUT_MS), CACHE_ERROR_MAX_AGE="300",
                      WARMUP_ENABLED="false").test_client()
    started = time.monotonic()
    answer = node_request(client)
    elapsed = time.monotonic() - started
    body = answer.get_json()
    assert answer.status_code == status, body
    assert body["statusCode"] == status and body["status"] == "errored" and body["jobRunID"] == "1"
    assert body["error"]["name"] == name and words in body["error"]["message"], body
    assert body.get("providerStatusCode") == provider_status, body
    assert elapsed < TIMEOUT_MS / 1000 + 0.5, f"held {elapsed:.2f} s"
    if reply in ("refused", "dns"):
        return
    calls = provider.count()
    provider.respond(None)
    time.sleep(0.35)  # past CACHE_ERROR_MAX_AGE
    recovered = node_request(client)
    if "Retry-After" in reply.headers:  # the provider asked for 30 s: it is not asked again before then
        assert recovered.status_code == 429 and provider.count() == calls
    else:  # the fault is not remembered: the recovered provider is asked again
        assert recovered.status_code == 200 and recovered.get_json()["result"] == 3021.5

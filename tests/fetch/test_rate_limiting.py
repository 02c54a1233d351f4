"""Outbound rate limiting as a node sees it: 429 with a clear message, cached values preferred, warmer waits."""

from __future__ import annotations

import time

from app.devkit.fake_http import Reply
from app.devkit.testing import node_request


def limited(make_app, **env):
    return make_app(**{"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_CAPACITY": "2", **env})


def test_out_of_quota_is_a_429_naming_the_limit(make_app, provider):
    client = limited(make_app).test_client()
    assert node_request(client, {"base": "ETH", "quote": "USD"}).status_code == 200
    assert node_request(client, {"base": "BTC", "quote": "USD"}).status_code == 200
    response = node_request(client, {"base": "LINK", "quote": "USD"})
    assert response.status_code == 429
    error = response.get_json()["error"]
    assert error["name"] == "AdapterRateLimitError"
    assert "2 calls per minute" in error["message"] and "retry in" in error["message"]
    assert provider.count() == 2
    # A refused slot is not remembered as the feed's answer: nothing was learnt about the feed.
    assert node_request(client, {"base": "LINK", "quote": "USD"}).status_code == 429
    assert provider.count() == 2


def test_a_cached_value_is_served_rather_than_a_429(make_app, provider):
    client = limited(make_app).test_client()
    node_request(client, {"base": "ETH", "quote": "USD"})
    node_request(client, {"base": "BTC", "quote": "USD"})
    response = node_request(client, {"base": "ETH", "quote": "USD", "maxAge": -1})  # wants fresh, quota is out
    assert response.status_code == 200
    assert response.get_json()["meta"]["cacheHit"] is True
    assert provider.count() == 2


def test_retries_spend_quota_too(make_app, provider):
    provider.respond(lambda call: Reply(500, {}))
    client = limited(make_app, RETRY="3", CACHE_ERROR_MAX_AGE="0").test_client()
    assert node_request(client).status_code == 429  # the third attempt found no slot left
    assert provider.count() == 2


def test_the_warmer_waits_for_quota_and_never_drops_a_feed_for_it(make_app, provider):
    app = limited(make_app, RATE_LIMIT_CAPACITY="3", CACHE_MAX_AGE="300", CACHE_MIN_AGE="0",
                  WARMUP_INTERVAL="100")
    client = app.test_client()
    node_request(client)
    time.sleep(2.0)  # ~20 cycles want a refresh, but background work stops at 3 - 1 reserved calls a minute
    assert provider.count() == 2  # the node's request and one refresh
    background = app.extensions["pyea"].background
    assert background.warmer.stats.feeds_failed == 0 and background.warmer.stats.feeds_dropped == 0
    assert len(app.extensions["pyea"].subscriptions.live("")) == 1
    # The reserve is the foreground's: a node request still gets the last slot.
    assert node_request(client, {"base": "BTC", "quote": "USD"}).status_code == 200


def test_status_shows_the_limit_and_its_use(make_app):
    client = limited(make_app).test_client()
    node_request(client)
    limit = client.get("/status").get_json()["adapters"][0]["rateLimit"]
    assert limit["perMinute"] == 2 and limit["source"] == "RATE_LIMIT_CAPACITY settings"
    assert limit["callsInWindow"]["60s"] == 1

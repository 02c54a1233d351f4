"""Monthly credits as an operator sees them: counted across workers and restarts, projected in /status, and
warned about (log at start, /health?deep=1) when the subscribed feeds cannot last the month."""

from __future__ import annotations

import json

import pytest

from app.core.setting_specs import SettingsError
from app.devkit.testing import node_request
from app.hosting.factory import close_app

BUDGET = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_MONTHLY_BUDGET": "10000"}


def subscribe(app, count: int) -> None:
    """``count`` feeds subscribed as requests leave them (without asking the provider for each)."""
    host = app.extensions["pyea"]
    runtime = host.adapters["coingecko"]
    endpoint = runtime.declared["crypto"]
    for i in range(count):
        params = {"coinid": f"coin-{i}", "quote": "USD"}
        host.subscriptions.subscribe(runtime.keys.key(endpoint.name, params), endpoint.name, params, force=True)


def test_status_shows_the_month_used_projected_and_that_it_lasts(make_app, provider, tmp_path):
    app = make_app(CACHE_MAX_AGE="600000", **BUDGET)
    client = app.test_client()
    subscribe(app, 99)
    assert node_request(client).status_code == 200  # the 100th feed: one provider call, counted
    credits = client.get("/status").get_json()["adapters"][0]["credits"]
    assert credits["budget"] == 10000 and credits["source"] == "RATE_LIMIT_MONTHLY_BUDGET"
    assert credits["used"] == 1 and credits["callsPerRefresh"] == 1  # 100 feeds in one batched call
    assert credits["lastsTheMonth"] is True and credits["projected"] <= 10000 and credits["runsOut"] is None
    assert client.get("/health?deep=1").get_json()["message"] == "OK"


def test_the_tier_states_the_budget_when_the_operator_does_not(make_app):
    client = make_app(RATE_LIMIT_ENABLED="true").test_client()  # CoinGecko without a key: the demo plan
    credits = client.get("/status").get_json()["adapters"][0]["credits"]
    assert credits["budget"] == 10000 and credits["source"] == "limits.json coingecko/demo"


def test_credits_used_are_shared_by_workers_and_survive_a_restart(make_app, provider, tmp_path):
    shared = str(tmp_path / "shared")
    first, second = make_app(CACHE_DIR=shared, **BUDGET), make_app(CACHE_DIR=shared, **BUDGET)
    node_request(first.test_client())
    node_request(second.test_client(), {"base": "BTC", "quote": "USD"})
    again = make_app(CACHE_DIR=shared, **BUDGET)
    assert again.test_client().get("/status").get_json()["adapters"][0]["credits"]["used"] == 2


def test_five_thousand_feeds_on_ten_thousand_calls_warn_at_start_and_degrade_deep_health(make_app, tmp_path,
                                                                                         capfd):
    shared = str(tmp_path / "shared")
    before = make_app(CACHE_DIR=shared, **BUDGET)
    subscribe(before, 5000)
    close_app(before)  # it led the background: the next start leads, and looks at the feeds it inherits
    capfd.readouterr()
    app = make_app(CACHE_DIR=shared, LOG_LEVEL="warning", **BUDGET)  # a restart: the feeds are still there
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    warnings = [line["message"] for line in lines if "monthly budget of 10000" in line["message"]]
    assert warnings and "run out around" in warnings[0] and "CACHE_MAX_AGE" in warnings[0]
    client = app.test_client()
    health = client.get("/health?deep=1").get_json()
    assert health["message"] == "DEGRADED" and "monthly credits" in health["degraded"][0]
    credits = client.get("/status").get_json()["adapters"][0]["credits"]
    assert credits["lastsTheMonth"] is False and credits["projected"] > 10000 and credits["runsOut"]
    assert credits["callsPerRefresh"] == 50 and "CACHE_MAX_AGE" in credits["warning"]


def test_a_budget_without_a_rate_limit_to_count_it_against_is_refused_at_startup(make_app):
    with pytest.raises(SettingsError, match="RATE_LIMIT_MONTHLY_BUDGET='10': must be unset, or set with a rate "
                                            "limit"):
        make_app(ADAPTERS="openexchangerates", API_KEY="key", RATE_LIMIT_API_TIER="unlimited", **{
            **BUDGET, "RATE_LIMIT_MONTHLY_BUDGET": "10"})

"""Startup validation: every bad variable reported at once, with its value and what is allowed."""

from __future__ import annotations

import pytest

from app.config import load_config
from app.core.setting_specs import SettingsError
from app.core.settings import Settings


def problems_of(env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(SettingsError) as caught:
        load_config(env)
    return {p.name: str(p) for p in caught.value.problems}


def test_defaults_follow_the_v2_v3_frameworks():
    settings, problems = Settings.parse({})
    assert problems == []
    assert (settings.BASE_URL, settings.EA_HOST, settings.EA_PORT) == ("/", "127.0.0.1", 8080)
    assert (settings.API_TIMEOUT, settings.RETRY) == (30000, 1)
    assert (settings.CACHE_MAX_AGE, settings.CACHE_MIN_AGE, settings.CACHE_TYPE) == (90000, 30000, "local")
    assert settings.REQUEST_COALESCING_ENABLED is False
    assert (settings.REQUEST_COALESCING_INTERVAL, settings.REQUEST_COALESCING_INTERVAL_MAX,
            settings.REQUEST_COALESCING_MAX_RETRIES) == (100, 1000, 5)
    assert settings.LOG_FORMAT == "json"


def test_all_problems_are_reported_together():
    found = problems_of({"EA_PORT": "abc", "CACHE_MAX_AGE": "-5", "API_TIMEOUT": "0", "CACHE_TYPE": "memcached",
                         "RATE_LIMIT_API_TIER": "gold", "API_VERBOSE": "maybe"})
    assert set(found) == {"EA_PORT", "CACHE_MAX_AGE", "API_TIMEOUT", "CACHE_TYPE", "RATE_LIMIT_API_TIER",
                          "API_VERBOSE"}
    assert "'abc'" in found["EA_PORT"] and "integer" in found["EA_PORT"]
    assert ">= 100" in found["API_TIMEOUT"]
    assert "local, redis" in found["CACHE_TYPE"]
    assert "demo, basic, analyst, lite" in found["RATE_LIMIT_API_TIER"]
    assert "true or false" in found["API_VERBOSE"]


def test_message_lists_every_problem():
    with pytest.raises(SettingsError) as caught:
        load_config({"EA_PORT": "0", "RETRY": "x"})
    message = str(caught.value)
    assert "2 problems" in message and "EA_PORT='0'" in message and "RETRY='x'" in message


@pytest.mark.parametrize("value", ["0", "50", "99"])
def test_placeholder_timeouts_are_refused(value):
    assert "API_TIMEOUT" in problems_of({"API_TIMEOUT": value})


def test_cross_checks():
    assert "CACHE_MIN_AGE" in problems_of({"CACHE_MIN_AGE": "60000", "CACHE_MAX_AGE": "30000"})
    assert "REQUEST_COALESCING_INTERVAL" in problems_of({"REQUEST_COALESCING_INTERVAL": "5000"})


def test_unknown_adapter_and_provider_are_listed():
    found = problems_of({"ADAPTERS": "coingecko,nosuch", "RATE_LIMIT_API_PROVIDER": "acme"})
    assert "coingecko" in found["ADAPTERS"]
    assert "coingecko" in found["RATE_LIMIT_API_PROVIDER"]


def test_tier_resolves_to_a_per_minute_quota():
    config = load_config({"RATE_LIMIT_API_TIER": "Analyst"})
    assert (config.adapters[0].rate_limit.per_minute, config.adapters[0].rate_limit.per_hour) == (500, 684)
    assert load_config({}).adapters[0].rate_limit.per_minute == 30  # the first tier: CoinGecko's public API
    config = load_config({"RATE_LIMIT_CAPACITY": "42"})
    assert config.adapters[0].rate_limit.per_minute == 42
    assert load_config({"RATE_LIMIT_ENABLED": "false"}).adapters[0].rate_limit is None


def test_adapter_settings_accept_a_prefixed_name():
    config = load_config({"COINGECKO_API_ENDPOINT": "http://127.0.0.1:9/", "API_ENDPOINT": "http://127.0.0.1:8"})
    assert config.adapters[0].values["API_ENDPOINT"] == "http://127.0.0.1:9"
    assert "COINGECKO_API_ENDPOINT" in problems_of({"COINGECKO_API_ENDPOINT": "ftp://x"})


def test_secret_values_never_appear_in_problems():
    with pytest.raises(SettingsError) as caught:
        load_config({"EA_PORT": "x", "API_KEY": "sk-SECRET-VALUE"})
    assert "sk-SECRET-VALUE" not in str(caught.value)


@pytest.mark.parametrize("cache_type", ["local", "redis"])
def test_unwritable_cache_dir_is_a_setting_problem(tmp_path, cache_type):
    """With Redis too: one machine's workers coalesce cold fetches on lock files there."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SettingsError) as caught:
        load_config({"CACHE_DIR": str(blocker / "cache"), "CACHE_TYPE": cache_type})
    assert f"CACHE_DIR='{blocker / 'cache'}': must be a directory pyea can create" in str(caught.value)


def test_base_url_is_normalised():
    assert Settings.parse({"BASE_URL": "/ea"})[0].BASE_URL == "/ea/"
    assert Settings.parse({"BASE_URL": "ea"})[1][0].name == "BASE_URL"


def test_each_adapter_can_name_its_own_plan(tmp_path):
    env = {"ADAPTERS": "coingecko,coinmarketcap", "COINMARKETCAP_API_KEY": "k", "RATE_LIMIT_API_TIER": "analyst",
           "COINMARKETCAP_RATE_LIMIT_API_TIER": "standard"}
    limits = {cfg.adapter.name: cfg.rate_limit for cfg in load_config(env).adapters}
    assert (limits["coingecko"].per_minute, limits["coingecko"].provider) == (500, "coingecko")
    assert (limits["coinmarketcap"].per_minute, limits["coinmarketcap"].provider) == (60, "coinmarketcap")
    found = problems_of({**env, "COINMARKETCAP_RATE_LIMIT_API_TIER": "gold"})
    assert "professional" in found["COINMARKETCAP_RATE_LIMIT_API_TIER"]
    assert "RATE_LIMIT_API_TIER" not in found

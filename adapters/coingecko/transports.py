"""How CoinGecko is asked and how its answers are read.

``/simple/price`` answers ``{coin_id: {currency: price, currency_market_cap: …, currency_24h_vol: …,
last_updated_at: unix_s}}`` for many ids and currencies at once, so one call can serve a whole batch of feeds.
``/global`` answers ``{"data": {"total_market_cap": {currency: …}, "market_cap_percentage": {symbol: …},
"updated_at": unix_s}}``. ``/coins/list`` answers ``[{"id", "symbol", "name"}, …]``.

Prices are asked with ``precision=full``: without it CoinGecko rounds them (to 2 decimals above 1), which a feed
of a low-priced coin cannot afford. Currencies are sent lower-case, as CoinGecko documents them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.sdk import (
    DataProviderError,
    HttpTransport,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    Success,
    is_number,
    unix_s_ms,
)

FREE_URL = "https://api.coingecko.com/api/v3"
PRO_URL = "https://pro-api.coingecko.com/api/v3"

_SIMPLE_PRICE_SUFFIX = {"price": "", "marketcap": "_market_cap", "volume": "_24h_vol"}
_SIMPLE_PRICE_FLAG = {"marketcap": "include_market_cap", "volume": "include_24hr_vol"}


def pro(config: Mapping[str, Any]) -> bool:
    """A pro key (the pro host); a demo key goes to the public host, as CoinGecko documents the two kinds."""
    return bool(config["API_KEY"]) and config["API_KEY_TYPE"] == "pro"


def base_url(config: Mapping[str, Any]) -> str:
    return (config["API_ENDPOINT"] or (PRO_URL if pro(config) else FREE_URL)).rstrip("/")


def headers(config: Mapping[str, Any]) -> dict[str, str]:
    found = {"accept": "application/json"}
    if config["API_KEY"]:
        found["x-cg-pro-api-key" if pro(config) else "x-cg-demo-api-key"] = config["API_KEY"]
    return found


def coin_id(params: Params) -> str:
    """``coinid`` wins; else ``base`` after overrides (ETH → ethereum), as CoinGecko ids are lowercase."""
    return str(params.get("coinid") or params["base"]).lower()


class SimplePriceTransport(HttpTransport):
    max_batch_size = 100

    def __init__(self, field: str) -> None:
        self.field = field

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        query = {"ids": ",".join(sorted({coin_id(p) for p in params_list})),
                 "vs_currencies": ",".join(sorted({p["quote"].lower() for p in params_list})),
                 "precision": "full", "include_last_updated_at": "true"}
        if self.field in _SIMPLE_PRICE_FLAG:
            query[_SIMPLE_PRICE_FLAG[self.field]] = "true"
        return [ProviderRequest(tuple(params_list), f"{base_url(config)}/simple/price", params=query,
                                headers=headers(config))]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        body = response.json()
        if not isinstance(body, dict):
            raise DataProviderError("CoinGecko /simple/price answered with a JSON " + type(body).__name__
                                    + ", expected an object keyed by coin id",
                                    provider_status_code=response.status_code)
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            coin, currency = coin_id(params), params["quote"].lower()
            entry = body.get(coin)
            value = entry.get(currency + _SIMPLE_PRICE_SUFFIX[self.field]) if isinstance(entry, dict) else None
            if not is_number(value):
                outcomes.append((params, DataProviderError(
                    f"CoinGecko returned no {self.field} for coin id '{coin}' in '{currency}'; check base "
                    "(or give coinid, or data.overrides) and quote", provider_status_code=response.status_code)))
                continue
            outcomes.append((params, Success(value, data={coin: entry},
                                             provider_indicated_ms=unix_s_ms(entry.get("last_updated_at")))))
        return outcomes


class GlobalTransport(HttpTransport):
    """One ``/global`` call answers every currency and symbol, so all feeds share it."""

    max_batch_size = 1000

    def __init__(self, section: str) -> None:
        self.section = section

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest(tuple(params_list), f"{base_url(config)}/global", headers=headers(config))]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        figures = data.get(self.section) if isinstance(data, dict) else None
        if not isinstance(figures, dict):
            raise DataProviderError(f"CoinGecko /global answer has no data.{self.section} object",
                                    provider_status_code=response.status_code)
        updated = data.get("updated_at")
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            market = params["market"].lower()
            value = figures.get(market)
            if not is_number(value):
                outcomes.append((params, DataProviderError(
                    f"CoinGecko /global has no {self.section} for '{market}'",
                    provider_status_code=response.status_code)))
            else:
                outcomes.append((params, Success(value, data={self.section: {market: value}},
                                                 provider_indicated_ms=unix_s_ms(updated))))
        return outcomes


class CoinsListTransport(HttpTransport):
    """``/coins/list``: every coin's id, symbol and name, answered as ``data`` (``result`` is null)."""

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest(tuple(params_list), f"{base_url(config)}/coins/list", headers=headers(config))]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        coins = response.json()
        if not isinstance(coins, list):
            raise DataProviderError("CoinGecko /coins/list answered with a JSON " + type(coins).__name__
                                    + ", expected an array of coins", provider_status_code=response.status_code)
        return [(params, Success(None, data=coins)) for params in params_list]

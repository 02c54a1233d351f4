"""How CoinMarketCap (Pro API) is asked and how its answers are read.

``/v2/cryptocurrency/quotes/latest`` takes many symbols (or many ids) but, on the basic plans, only one
``convert`` currency per call, and never symbols and ids together; so feeds are grouped by (symbol or id, quote)
and each group costs one call. With ``symbol=`` the answer maps each symbol to a *list* of coins (symbols are not
unique); with ``id=`` or ``slug=`` it maps each to one coin object. ``/v1/global-metrics/quotes/latest`` answers
the total market cap in the ``convert`` currency and the BTC and ETH dominance. ``/v1/cryptocurrency/quotes/
historical`` answers ``{"data": {id, name, symbol, quotes: [{timestamp, quote: {CONVERT: {price, …}}}]}}``.

A coin is named by ``cid``, else ``slug``, else its symbol: the symbols of ``presetids.json`` (Chainlink's
TypeScript adapter's table) are asked by id, since ids are unique and symbols are not.

Every answer carries ``status.error_code`` / ``status.error_message``; HTTP errors are mapped by the framework.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.sdk import (
    AdapterError,
    DataProviderError,
    HttpTransport,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    Success,
    is_number,
    iso_ms,
)

PRO_URL = "https://pro-api.coinmarketcap.com"
#: CoinMarketCap accepts at most this many symbols or ids in one quotes call.
MAX_IDS_PER_CALL = 100

_QUOTE_FIELD = {"price": "price", "marketcap": "market_cap", "volume": "volume_24h"}
_DOMINANCE_FIELD = {"BTC": "btc_dominance", "ETH": "eth_dominance"}


def base_url(config: Mapping[str, Any]) -> str:
    """The API's root: the TypeScript adapter's setting names it with ``/v1`` (its default is
    ``https://pro-api.coinmarketcap.com/v1/``), so that form is taken as the root too."""
    return (config["API_ENDPOINT"] or PRO_URL).rstrip("/").removesuffix("/v1")


def headers(config: Mapping[str, Any]) -> dict[str, str]:
    return {"accept": "application/json", "X-CMC_PRO_API_KEY": config["API_KEY"]}


def _data(response: ProviderResponse, what: str) -> dict[str, Any]:
    """A 200 can still carry ``status.error_code``; it applies to every feed of the call."""
    body = response.json()
    if not isinstance(body, dict):
        raise DataProviderError(f"CoinMarketCap {what} answered with a JSON {type(body).__name__}, expected an "
                                "object", provider_status_code=response.status_code)
    status = body.get("status")
    if isinstance(status, dict) and status.get("error_code") not in (None, 0, "0"):
        raise DataProviderError(f"CoinMarketCap {what} error {status.get('error_code')}: "
                                f"{status.get('error_message')}", provider_status_code=response.status_code)
    data = body.get("data")
    if not isinstance(data, dict):
        raise DataProviderError(f"CoinMarketCap {what} answer has no data object",
                                provider_status_code=response.status_code)
    return data


@functools.cache
def preset_ids() -> dict[str, str]:
    """Symbol → CoinMarketCap id of the coins asked by id (read once, on first use)."""
    table = json.loads(Path(__file__).with_name("presetids.json").read_text("utf-8"))
    return {symbol.upper(): str(cid) for symbol, cid in table.items()}


def _lookup(params: Params) -> tuple[str, str]:
    """("id", "1027"), ("slug", "ethereum") or ("symbol", "ETH"): ``cid``, then ``slug``, then the preset id of
    ``base``, then ``base`` itself."""
    if params.get("cid") is not None:
        return "id", str(params["cid"])
    if params.get("slug"):
        return "slug", params["slug"]
    symbol = str(params["base"]).upper()
    preset = preset_ids().get(symbol)
    return ("id", preset) if preset else ("symbol", symbol)


def _pick(entry: Any) -> Any:
    """Several coins can share a symbol: prefer the best-ranked one, else the first CoinMarketCap lists."""
    if not isinstance(entry, list):
        return entry
    coins = [c for c in entry if isinstance(c, dict)]
    if not coins:
        return None
    ranked = [c for c in coins if is_number(c.get("cmc_rank"))]
    return min(ranked, key=lambda c: c["cmc_rank"]) if ranked else coins[0]


def _by_slug(data: Mapping[str, Any], slug: str) -> Any:
    """An answer to ``slug=`` is keyed by coin id; the coin is the one with that slug."""
    found = data.get(slug)
    return found if isinstance(found, dict) else next(
        (coin for coin in data.values() if isinstance(coin, dict) and coin.get("slug") == slug), None)


class QuotesTransport(HttpTransport):
    max_batch_size = MAX_IDS_PER_CALL

    def __init__(self, field: str) -> None:
        self.field = field

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        groups: dict[tuple[str, str], list[Params]] = {}
        for params in params_list:
            groups.setdefault((_lookup(params)[0], params["quote"].upper()), []).append(params)
        requests: list[ProviderRequest] = []
        for (kind, quote), members in sorted(groups.items()):
            keys = sorted({_lookup(p)[1] for p in members})
            for start in range(0, len(keys), MAX_IDS_PER_CALL):
                chunk = set(keys[start:start + MAX_IDS_PER_CALL])
                requests.append(ProviderRequest(
                    tuple(p for p in members if _lookup(p)[1] in chunk),
                    f"{base_url(config)}/v2/cryptocurrency/quotes/latest",
                    params={kind: ",".join(sorted(chunk)), "convert": quote, "skip_invalid": "true"},
                    headers=headers(config)))
        return requests

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        data = _data(response, "quotes")
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            kind, key = _lookup(params)
            quote = params["quote"].upper()
            coin = _pick(data.get(key)) if kind != "slug" else _by_slug(data, key)
            figures = coin.get("quote", {}).get(quote) if isinstance(coin, dict) else None
            field = params.get("resultPath") or _QUOTE_FIELD[self.field]
            value = figures.get(field) if isinstance(figures, dict) else None
            if not is_number(value):
                outcomes.append((params, DataProviderError(
                    f"CoinMarketCap returned no {field} for {kind} '{key}' in '{quote}'; check "
                    f"{'cid' if kind == 'id' else 'base (or data.overrides)'} and quote",
                    provider_status_code=response.status_code)))
                continue
            outcomes.append((params, Success(value, data={key: coin},
                                             provider_indicated_ms=iso_ms(figures.get("last_updated")))))
        return outcomes


class GlobalMetricsTransport(HttpTransport):
    """``total_market_cap`` needs one call per currency; dominance is the same in every currency, so one call
    answers all dominance feeds."""

    max_batch_size = 1000

    def __init__(self, field: str) -> None:
        self.field = field

    def refuse(self, params: Params, config: Mapping[str, Any]) -> AdapterError | None:
        if self.field == "dominance" and params["market"].upper() not in _DOMINANCE_FIELD:
            return DataProviderError(f"CoinMarketCap only reports BTC and ETH dominance, not "
                                     f"'{params['market']}'")
        return None

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        url = f"{base_url(config)}/v1/global-metrics/quotes/latest"
        if self.field == "dominance":
            return [ProviderRequest(tuple(params_list), url, headers=headers(config))]
        groups: dict[str, list[Params]] = {}
        for params in params_list:
            groups.setdefault(params["market"].upper(), []).append(params)
        return [ProviderRequest(tuple(members), url, params={"convert": market}, headers=headers(config))
                for market, members in sorted(groups.items())]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        data = _data(response, "global metrics")
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            market = params["market"].upper()
            if self.field == "dominance":
                name = _DOMINANCE_FIELD[market]
                value, stamp = data.get(name), data.get("last_updated")
            else:
                figures = data.get("quote", {}).get(market)
                figures = figures if isinstance(figures, dict) else {}
                name = "total_market_cap"
                value, stamp = figures.get(name), figures.get("last_updated") or data.get("last_updated")
            if not is_number(value):
                outcomes.append((params, DataProviderError(
                    f"CoinMarketCap global metrics have no {name} for '{market}'",
                    provider_status_code=response.status_code)))
            else:
                outcomes.append((params, Success(value, data={name: value, "market": market},
                                                 provider_indicated_ms=iso_ms(stamp))))
        return outcomes


class HistoricalTransport(HttpTransport):
    """One call per feed; the answer is the provider's ``data`` (``result`` is null), as in Chainlink's adapter."""

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        names = {"start": "time_start", "end": "time_end", "count": "count", "interval": "interval",
                 "cid": "convert_id", "aux": "aux", "skipInvalid": "skip_invalid"}
        return [ProviderRequest((params,), f"{base_url(config)}/v1/cryptocurrency/quotes/historical",
                                params={"symbol": params["base"], "convert": params["convert"],
                                        **{ours: str(params[mine]) for mine, ours in names.items()
                                           if params.get(mine) is not None}},
                                headers=headers(config)) for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        return [(params, Success(None, data=_data(response, "historical quotes")))]

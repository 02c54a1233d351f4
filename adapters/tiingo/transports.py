"""How Tiingo's REST API is asked and how its answers are read (the streams are in ``streams.py``).

``/iex/?tickers=aapl,msft`` (stocks, IEX top of book) and ``/tiingo/fx/top?tickers=eurusd,gbpusd`` (forex top of
book) both answer a JSON *list* with one object per ticker they know and simply leave out the ones they do not, so
one call serves a whole batch and each feed is found by the object's ``ticker`` field. Since IEX's market data
policy change of February 2025, ``last`` and the bid/ask fields are null without an IEX exchange agreement, while
``tngoLast`` (Tiingo's reference price) is always filled; hence ``tngoLast`` first.

Crypto: ``/tiingo/crypto/prices?baseCurrency=eth&convertCurrency=usd&consolidateBaseCurrency=true&resampleFreq=
24hour`` answers ``[{"ticker", "baseCurrency", "quoteCurrency", "priceData": [{close, volumeNotional, fxClose,
…}]}]`` (``baseCurrency=<base>cvwap`` gives the VWAP, ``real_vol_<base>`` the realized volatility in
``realVolData``); ``/tiingo/crypto/top?tickers=ethusd,…`` a list with ``topOfBookData``. End of day:
``/tiingo/daily/<ticker>/prices`` a list of daily bars. Yields: ``/tiingo/crypto-yield/ticks?poolCodes=…``.

Error statuses (401 ``{"detail": "Invalid token."}``, 429 over the plan's allowance) never reach the parser: the
framework turns them into 502/429 answers that quote Tiingo's body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from app.sdk import (
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

API_URL = "https://api.tiingo.com"
#: Tiingo publishes no cap on tickers per call; 100 keeps the query string short (~700 characters) while a
#: refresh of a few hundred feeds still costs only a handful of calls against a plan's hourly allowance.
MAX_TICKERS_PER_CALL = 100


def headers(config: Mapping[str, Any]) -> dict[str, str]:
    """The token goes in the Authorization header, never in ``?token=``: URLs end up in logs and proxies."""
    return {"accept": "application/json", "authorization": f"Token {config['API_KEY']}"}


def base_url(config: Mapping[str, Any]) -> str:
    return str(config["API_ENDPOINT"]).rstrip("/")


def quotes_by_ticker(response: ProviderResponse, what: str) -> dict[str, Mapping[str, Any]]:
    """Tiingo's list keyed by lower-case ticker (IEX answers ``AAPL``, forex ``eurusd``). Anything but a list,
    such as ``{"detail": "..."}``, says nothing about any one feed, so it fails the whole call."""
    body = response.json()
    if not isinstance(body, list):
        detail = body.get("detail") if isinstance(body, dict) else None
        said = f"{detail!r}" if detail else f"with a JSON {type(body).__name__}"
        raise DataProviderError(f"Tiingo {what} answered {said}, expected a list of quotes",
                                provider_status_code=response.status_code)
    return {entry["ticker"].lower(): entry for entry in body
            if isinstance(entry, dict) and isinstance(entry.get("ticker"), str)}


class TopOfBookTransport(HttpTransport):
    """One top-of-book call for a batch of tickers; subclasses say where, how a feed names its ticker and which
    fields hold its value (the first number found wins)."""

    max_batch_size = MAX_TICKERS_PER_CALL
    path = ""
    value_fields: tuple[str, ...] = ()
    stamp_field = ""

    def ticker(self, params: Params) -> str:
        """The feed's ticker as Tiingo writes it in its answers."""
        raise NotImplementedError

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        tickers = ",".join(sorted({self.ticker(p).lower() for p in params_list}))
        return [ProviderRequest(tuple(params_list), f"{base_url(config)}{self.path}",
                                params={"tickers": tickers}, headers=headers(config))]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        quotes = quotes_by_ticker(response, self.path)
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            ticker = self.ticker(params)
            quote = quotes.get(ticker.lower())
            value = next((quote[f] for f in self.value_fields if is_number(quote.get(f))), None) if quote else None
            outcome: Outcome
            if quote is None:
                outcome = DataProviderError(f"Tiingo {self.path} has no quote for ticker '{ticker}'; check the "
                                            "ticker (or data.overrides)", provider_status_code=response.status_code)
            elif value is None:
                outcome = DataProviderError(f"Tiingo's quote for '{ticker}' has no "
                                            f"{' or '.join(self.value_fields)} (null)",
                                            provider_status_code=response.status_code)
            else:
                outcome = Success(value, data=quote, provider_indicated_ms=iso_ms(quote.get(self.stamp_field)))
            outcomes.append((params, outcome))
        return outcomes


class IexTransport(TopOfBookTransport):
    path = "/iex"
    value_fields = ("tngoLast", "last")
    stamp_field = "timestamp"

    def ticker(self, params: Params) -> str:
        return str(params["base"]).upper()


class ForexTransport(TopOfBookTransport):
    """``midPrice`` is null whenever one side of the book is empty; the feed then errors rather than guess."""

    path = "/tiingo/fx/top"
    value_fields = ("midPrice",)
    stamp_field = "quoteTimestamp"

    def ticker(self, params: Params) -> str:
        return f"{params['base']}{params['quote']}".lower()


class CryptoTopTransport(TopOfBookTransport):
    """``/tiingo/crypto/top``: the last trade of a pair across exchanges, many pairs per call."""

    path = "/tiingo/crypto/top"

    def ticker(self, params: Params) -> str:
        return f"{params['base']}{params['quote']}".lower()

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        quotes = quotes_by_ticker(response, self.path)
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            book = quotes.get(self.ticker(params), {}).get("topOfBookData")
            top = book[0] if isinstance(book, list) and book and isinstance(book[0], dict) else {}
            if not is_number(top.get("lastPrice")):
                outcomes.append((params, DataProviderError(f"Tiingo provided no data for {params['base']}/"
                                                           f"{params['quote']}", provider_status_code=200)))
            else:
                outcomes.append((params, Success(top["lastPrice"], data=top,
                                                 provider_indicated_ms=iso_ms(top.get("lastSaleTimestamp")))))
        return outcomes


class CryptoPricesTransport(HttpTransport):
    """``/tiingo/crypto/prices`` at a 24 h resampling, one call per pair (as Chainlink's adapter asks it):
    ``close`` (price), ``volumeNotional`` (volume) or, with the ``cvwap`` suffix, ``fxClose`` (VWAP)."""

    def __init__(self, field: str, suffix: str = "") -> None:
        self.field = field
        self.suffix = suffix

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest((params,), f"{base_url(config)}/tiingo/crypto/prices", headers=headers(config),
                                params={"baseCurrency": f"{params['base'].lower()}{self.suffix}",
                                        "convertCurrency": params["quote"].lower(),
                                        "consolidateBaseCurrency": "true", "resampleFreq": "24hour"})
                for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        bar = _first(_first(response.json()).get("priceData"))
        if not is_number(bar.get(self.field)):
            raise DataProviderError(f"Tiingo provided no data for {params['base']}/{params['quote']}",
                                    provider_status_code=response.status_code)
        return [(params, Success(bar[self.field], data=bar, provider_indicated_ms=iso_ms(bar.get("date"))))]


class EodTransport(HttpTransport):
    """``/tiingo/daily/<ticker>/prices``: the latest end-of-day close."""

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest((params,), f"{base_url(config)}/tiingo/daily/{quote(params['base'].lower(), safe='')}"
                                f"/prices", headers=headers(config)) for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        body = response.json()
        if isinstance(body, dict) and body.get("detail"):
            raise DataProviderError(f"Tiingo: {body['detail']}", provider_status_code=response.status_code)
        bar = _first(body)
        if not is_number(bar.get("close")) or not bar["close"]:
            raise DataProviderError(f"Tiingo has no end-of-day close for ticker {params['base']}",
                                    provider_status_code=response.status_code)
        return [(params, Success(bar["close"], data=bar, provider_indicated_ms=iso_ms(bar.get("date"))))]


class CryptoYieldTransport(HttpTransport):
    """``/tiingo/crypto-yield/ticks`` of Ethereum staking (pool ``ethnetwork_eth``): its 30- or 90-day APR."""

    max_batch_size = 2

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest(tuple(params_list), f"{base_url(config)}/tiingo/crypto-yield/ticks",
                                params={"poolCodes": "ethnetwork_eth"}, headers=headers(config))]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        tick = _first(response.json())
        outcomes: list[tuple[Params, Outcome]] = []
        for params in params_list:
            value = tick.get(f"apr{params['aprTerm']}")
            outcomes.append((params, Success(value, data=tick, provider_indicated_ms=iso_ms(tick.get("date")))
                             if is_number(value) else DataProviderError(
                                 f"Tiingo has no apr{params['aprTerm']} for ethnetwork_eth",
                                 provider_status_code=response.status_code)))
        return outcomes


class RealizedVolTransport(HttpTransport):
    """``/tiingo/crypto/prices`` of ``real_vol_<base>``: realized volatility over 1, 7 and 30 days."""

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        return [ProviderRequest((params,), f"{base_url(config)}/tiingo/crypto/prices", headers=headers(config),
                                params={"baseCurrency": f"real_vol_{params['base']}",
                                        "convertCurrency": params["convert"], "consolidateBaseCurrency": "true"})
                for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        row = _first(_first(response.json()).get("realVolData"))
        if not row:
            raise DataProviderError(f"Tiingo provided no data for {params['base']}/{params['convert']}",
                                    provider_status_code=response.status_code)
        figures = {k: row.get(k) for k in ("realVol1Day", "realVol7Day", "realVol30Day")}
        value = row.get(params["resultPath"])
        return [(params, Success(value if is_number(value) else None, data=figures,
                                 provider_indicated_ms=iso_ms(row.get("date"))))]


def _first(value: Any) -> dict[str, Any]:
    """The first object of a list answer, or an empty one."""
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}

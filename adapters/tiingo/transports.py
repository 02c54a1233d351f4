"""How Tiingo is asked and how its answers are read.

``/iex/?tickers=aapl,msft`` (stocks, IEX top of book) and ``/tiingo/fx/top?tickers=eurusd,gbpusd`` (forex top of
book) both answer a JSON *list* with one object per ticker they know and simply leave out the ones they do not, so
one call serves a whole batch and each feed is found by the object's ``ticker`` field. Since IEX's market data
policy change of February 2025, ``last`` and the bid/ask fields are null without an IEX exchange agreement, while
``tngoLast`` (Tiingo's reference price) is always filled; hence ``tngoLast`` first.

Error statuses (401 ``{"detail": "Invalid token."}``, 429 over the plan's allowance) never reach the parser: the
framework turns them into 502/429 answers that quote Tiingo's body.
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
    iso_ms,
)

API_URL = "https://api.tiingo.com"
#: Tiingo publishes no cap on tickers per call; 100 keeps the query string short (~700 characters) while a
#: refresh of a few hundred feeds still costs only a handful of calls against a plan's hourly allowance.
MAX_TICKERS_PER_CALL = 100


def headers(config: Mapping[str, Any]) -> dict[str, str]:
    """The token goes in the Authorization header, never in ``?token=``: URLs end up in logs and proxies."""
    return {"accept": "application/json", "authorization": f"Token {config['API_KEY']}"}



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
        return [ProviderRequest(tuple(params_list), f"{config['API_ENDPOINT']}{self.path}",
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
    path = "/iex/"
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

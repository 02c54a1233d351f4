"""Tiingo's websocket streams: crypto prices, crypto top of book (bid, mid, ask), IEX stocks and forex.

Each stream lives at ``<WS_API_ENDPOINT>/<path>`` (``/crypto-synth``, ``/crypto-synth-top``, ``/iex``, ``/fx``),
with ``SECONDARY_WS_API_ENDPOINT`` (Tiingo's redundant host) as the failover. The client sends ``{"eventName":
"subscribe" | "unsubscribe", "authorization": <API_KEY>, "eventData": {"thresholdLevel": N, "tickers": [...]}}``;
values arrive as ``{"messageType": "A", "service": …, "data": [...]}`` arrays whose positions depend on the
stream; ``"H"`` is a heartbeat and ``"I"``/``"E"`` are acknowledgements and errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.sdk import (
    DataProviderError,
    Outcome,
    Params,
    ServiceUnavailableError,
    Success,
    WebSocketTransport,
    is_number,
    iso_ms,
)


class TiingoStream(WebSocketTransport):
    """What the four streams share: URLs, messages, and a value per ``A`` message."""

    path = ""
    threshold = 5
    subscribe_batch_size = 100

    def stream_urls(self, config: Mapping[str, Any]) -> list[str]:
        hosts = [config["WS_API_ENDPOINT"], config.get("SECONDARY_WS_API_ENDPOINT")]
        return list(dict.fromkeys(f"{str(h).rstrip('/')}{self.path}" for h in hosts if h))

    def subscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        return self._message("subscribe", stream_ids, config)

    def unsubscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        return self._message("unsubscribe", stream_ids, config)

    def _message(self, event: str, stream_ids: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        return {"eventName": event, "authorization": config["API_KEY"],
                "eventData": {"thresholdLevel": self.threshold, "tickers": list(stream_ids)}}

    def parse_message(self, message: Any, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        if message.get("messageType") != "A":
            if message.get("messageType") == "E" or (message.get("response") or {}).get("code") == 401:
                raise ValueError(f"Tiingo: {(message.get('response') or {}).get('message', message)}")
            return []  # heartbeats, subscription acknowledgements
        data = message["data"]
        return self.values(data) if isinstance(data, list) and data else []

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        raise NotImplementedError


class CryptoStream(TiingoStream):
    """``/crypto-synth``: ``["SA", "eth/usd", ISO time, "tiingo", price]``."""

    path = "/crypto-synth"
    threshold = 6

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        return f"{params['base']}/{params['quote']}".lower()

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        return [(str(data[1]).lower(), Success(_number(data[4]), provider_indicated_ms=iso_ms(data[2])))]


class CryptoTopStream(CryptoStream):
    """``/crypto-synth-top``: ``["SA", "eth/usd", time, exchange, mid, spread %, bid size, bid, ask size, ask]``,
    answered as ``data: {mid, bid, ask}`` (``result`` null), as a low-latency bid-ask feed reads it."""

    path = "/crypto-synth-top"
    threshold = 4

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        mid, bid, ask = data[4], data[7], data[9]
        ticker, stamp = str(data[1]).lower(), iso_ms(data[2])
        if not all(is_number(v) and v for v in (mid, bid, ask)):
            return [(ticker, DataProviderError(f"Tiingo's top of book for {ticker} must carry mid, bid and ask "
                                               f"prices; got bid {bid}, mid {mid}, ask {ask}"))]
        if not bid <= mid <= ask:
            return [(ticker, DataProviderError(f"Tiingo's mid price for {ticker} is not between bid and ask; got "
                                               f"bid {bid}, mid {mid}, ask {ask}"))]
        return [(ticker, Success(None, data={"mid": mid, "bid": bid, "ask": ask}, provider_indicated_ms=stamp))]


class IexStream(TiingoStream):
    """``/iex``: ``[ISO time, ticker, price]``; also the older ``["Q"|"T", time, nanos, ticker, …]`` form, whose
    quote carries the mid at 6 and whose trade carries the price at 9."""

    path = "/iex"
    threshold = 6

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        return str(params["base"]).lower()

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        if data[0] in ("Q", "T"):
            price = data[6] if data[0] == "Q" else data[9]
            return [(str(data[3]).lower(), Success(_number(price), provider_indicated_ms=iso_ms(data[1])))]
        return [(str(data[1]).lower(), Success(_number(data[2]), provider_indicated_ms=iso_ms(data[0])))]


class ForexStream(TiingoStream):
    """``/fx``: ``["Q", "eurusd", time, bid size, bid, mid, ask size, ask]``."""

    path = "/fx"

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        return f"{params['base']}{params['quote']}".lower()

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        return [(str(data[1]).lower(), Success(_number(data[5]), provider_indicated_ms=iso_ms(data[2])))]


def _number(value: Any) -> float:
    """A price from a message; ``ValueError`` (counted, logged) when it is not one."""
    if not is_number(value):
        raise ValueError(f"expected a price, got {value!r}")
    return value


class StockQuotesStream(TiingoStream):
    """``/equity/intraday`` (its own key, ``EQUITIES_API_KEY``): ``[time, ticker, spread, bid size, bid,
    reference price, ask, ask size]``, answered as ``data`` (mid, bid and ask with their sizes; ``result`` null)."""

    path = "/equity/intraday"
    threshold = 4

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        if not config["EQUITIES_API_KEY"]:
            raise ServiceUnavailableError("stock_quotes needs EQUITIES_API_KEY (Tiingo's equities token) set")
        return str(params["base"]).lower()

    def _message(self, event: str, stream_ids: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        return {**super()._message(event, stream_ids, config), "authorization": config["EQUITIES_API_KEY"]}

    def values(self, data: list[Any]) -> list[tuple[str, Outcome]]:
        bid, ask = data[4], data[6]
        sides = [v for v in (bid, ask) if is_number(v) and v]
        if not sides:
            return []  # nothing to quote yet
        mid = sum(sides) / len(sides)
        return [(str(data[1]).lower(), Success(None, data={"mid_price": mid, "bid_price": bid, "bid_volume": data[3],
                                                           "ask_price": ask, "ask_volume": data[7]},
                                               provider_indicated_ms=iso_ms(data[0])))]

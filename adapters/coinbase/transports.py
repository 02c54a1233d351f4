"""How Coinbase Exchange's public market data is streamed and, as a fallback, polled.

Stream (``wss://ws-feed.exchange.coinbase.com``): the client sends ``{"type": "subscribe", "product_ids":
[...], "channels": ["ticker"]}`` (``"unsubscribe"`` likewise), many products per message. The server confirms
with a ``subscriptions`` message and then sends a ``ticker`` message on every match, carrying ``product_id``,
``price`` (a decimal string) and ``time`` (ISO 8601). Failures arrive as ``{"type": "error", "message",
"reason"}``.

Fallback (``https://api.exchange.coinbase.com``): ``GET /products/<product_id>/ticker`` answers one product
with ``price`` and ``time``; there is no batch form, so each feed costs one call.
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
    WebSocketTransport,
    iso_ms,
)

REST_URL = "https://api.exchange.coinbase.com"
WS_URL = "wss://ws-feed.exchange.coinbase.com"


def product_id(params: Params) -> str:
    return f"{params['base']}-{params['quote']}"


def _price(value: Any, product: str) -> float:
    price = float(value)  # a decimal string; ValueError/TypeError mean the message is not what we expect
    if price <= 0:
        raise ValueError(f"{product}: price {value!r} is not positive")
    return price


class TickerRestTransport(HttpTransport):
    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        base = (config["API_ENDPOINT"] or REST_URL).rstrip("/")
        return [ProviderRequest((params,), f"{base}/products/{quote(product_id(params), safe='')}/ticker",
                                headers={"accept": "application/json"}) for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        body = response.json()
        if not isinstance(body, dict) or "price" not in body:
            raise DataProviderError(f"Coinbase has no ticker for {product_id(params)}",
                                    provider_status_code=response.status_code)
        return [(params, Success(_price(body["price"], product_id(params)), {"price": body["price"]},
                                 iso_ms(body.get("time"))))]


class TickerStreamTransport(WebSocketTransport):
    subscribe_batch_size = 100

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        return product_id(params)

    def subscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        return {"type": "subscribe", "product_ids": list(stream_ids), "channels": ["ticker"]}

    def unsubscribe_message(self, stream_ids: Sequence[str], config: Mapping[str, Any]) -> Any:
        return {"type": "unsubscribe", "product_ids": list(stream_ids), "channels": ["ticker"]}

    def parse_message(self, message: Any, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        kind = message.get("type")
        if kind == "ticker":
            product = message["product_id"]
            return [(product, Success(_price(message["price"], product), {"price": message["price"]},
                                      iso_ms(message.get("time"))))]
        if kind == "error":
            raise ValueError(f"Coinbase error: {message.get('message')} ({message.get('reason')})")
        return []  # subscriptions acknowledgements, heartbeats

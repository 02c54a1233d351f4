"""How Coinbase prices are asked (REST spot price), streamed (Exchange ticker channel) and NFT floors read.

Stream (``wss://ws-feed.exchange.coinbase.com``): the client sends ``{"type": "subscribe", "product_ids":
[...], "channels": ["ticker"]}`` (``"unsubscribe"`` likewise), many products per message. The server confirms
with a ``subscriptions`` message and then sends a ``ticker`` message on every match, carrying ``product_id``,
``price`` (a decimal string) and ``time`` (ISO 8601). Failures arrive as ``{"type": "error", "message",
"reason"}``.

REST (``https://api.coinbase.com``, the public Coinbase API Chainlink's TypeScript adapter calls): ``GET
/v2/prices/<BASE-QUOTE>/spot`` answers ``{"data": {"base", "currency", "amount"}}`` with ``amount`` a decimal
string; there is no batch form, so each feed costs one call. It is the default while ``WS_ENABLED`` is off, the
stream's fallback, and what ``data.transport: "rest"`` asks for.

NFT floor prices (Coinbase's NFT API at ``NFT_API_ENDPOINT``): ``GET /api/nft/quant/v1/GetCollectionLatestMetric
?networkName=&contractAddress=&metricName=`` with the ``CB-NFT-API-TOKEN`` header answers ``{"value":
{"floor_price_estimate": "67.09", "updated_at": ISO 8601}, "metricName"}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from app.sdk import (
    AdapterError,
    DataProviderError,
    HttpTransport,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    ServiceUnavailableError,
    Success,
    WebSocketTransport,
    iso_ms,
)

REST_URL = "https://api.coinbase.com"
WS_URL = "wss://ws-feed.exchange.coinbase.com"
NFT_PATH = "/api/nft/quant/v1/GetCollectionLatestMetric"
NFT_DEFAULT_RESULT_PATH = ("value", "floor_price_estimate")


def product_id(params: Params) -> str:
    return f"{params['base']}-{params['quote']}"


def _price(value: Any, product: str) -> float:
    price = float(value)  # a decimal string; ValueError/TypeError mean the message is not what we expect
    if price <= 0:
        raise ValueError(f"{product}: price {value!r} is not positive")
    return price


class SpotPriceTransport(HttpTransport):
    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        base = (config["API_ENDPOINT"] or REST_URL).rstrip("/")
        return [ProviderRequest((params,), f"{base}/v2/prices/{quote(product_id(params), safe='')}/spot",
                                params={"symbol": params["base"], "convert": params["quote"]},
                                headers={"accept": "application/json"}) for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or "amount" not in data:
            raise DataProviderError(f"Coinbase has no spot price for {product_id(params)}",
                                    provider_status_code=response.status_code)
        return [(params, Success(_price(data["amount"], product_id(params)), data))]


class NftFloorPriceTransport(HttpTransport):
    def refuse(self, params: Params, config: Mapping[str, Any]) -> AdapterError | None:
        if not config["NFT_API_ENDPOINT"] or not config["NFT_API_AUTH_HEADER"]:
            return ServiceUnavailableError("nft-floor-price needs NFT_API_ENDPOINT and NFT_API_AUTH_HEADER set")
        return None

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        url = config["NFT_API_ENDPOINT"].rstrip("/") + NFT_PATH
        headers = {"accept": "application/json", "CB-NFT-API-TOKEN": config["NFT_API_AUTH_HEADER"]}
        return [ProviderRequest((params,), url, headers=headers,
                                params={"networkName": params["network"], "contractAddress": params["contractAddress"],
                                        "metricName": params["metricName"]}) for params in params_list]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        [params] = params_list
        path = result_path(params.get("resultPath"))
        body = value = response.json()
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        try:
            result = float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        except ValueError:
            result = None
        if result is None:
            raise DataProviderError(f"Coinbase NFT API answered no number at {'.'.join(path)} for "
                                    f"{params['contractAddress']} on {params['network']}",
                                    provider_status_code=response.status_code)
        metric = body.get("value") if isinstance(body, dict) else None
        updated = metric.get("updated_at") if isinstance(metric, dict) else None
        return [(params, Success(result, {"value": metric}, iso_ms(updated)))]


def result_path(given: Any) -> tuple[str, ...]:
    """``resultPath`` as the v2 framework took it: ``a.b`` or ``["a", "b"]``; the floor price by default."""
    if isinstance(given, list):
        return tuple(str(k) for k in given)
    if isinstance(given, str) and given:
        return tuple(given.split("."))
    return NFT_DEFAULT_RESULT_PATH


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

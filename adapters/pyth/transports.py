"""How Pyth's Hermes service is streamed (server-sent events) and, as a fallback, polled.

Both take many feeds at once, as repeated ``ids[]`` query parameters (64-hex-digit price feed ids):

- stream: ``GET /v2/updates/price/stream?ids[]=<id>&...&parsed=true`` is an SSE response whose unnamed events
  carry ``{"binary": ..., "parsed": [{"id": "<id>", "price": {"price": "<int>", "conf": "<int>", "expo": <int>,
  "publish_time": <unix s>}, ...}]}``;
- fallback: ``GET /v2/updates/price/latest?ids[]=...&parsed=true`` answers the same object once.

A price is ``int(price) * 10 ** expo``. Parsed ids come back without the ``0x`` prefix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from app.sdk import (
    AdapterInputError,
    DataProviderError,
    HttpTransport,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    SseTransport,
    Success,
)

HERMES_URL = "https://hermes.pyth.network"
#: Hermes' public instance limits the ids per request; larger sets are split.
MAX_IDS_PER_CALL = 100
#: Price feed ids of pairs nodes ask for by symbol (from Pyth's published feed list); others need ``feedid``.
KNOWN_FEEDS = {
    "BTC/USD": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH/USD": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
}


def feed_id(params: Params) -> str:
    if params.get("feedid"):
        return params["feedid"].removeprefix("0x")
    pair = f"{params.get('base')}/{params.get('quote')}"
    found = KNOWN_FEEDS.get(pair)
    if found is None:
        raise AdapterInputError(f"no Pyth price feed id is known for {pair}; give data.feedid "
                                f"(known pairs: {', '.join(sorted(KNOWN_FEEDS))})")
    return found


def _query(ids: Sequence[str]) -> str:
    return urlencode([("ids[]", f"0x{i}") for i in ids] + [("parsed", "true")])


def parse_updates(body: Any) -> list[tuple[str, Outcome]]:
    values: list[tuple[str, Outcome]] = []
    for update in body["parsed"]:
        price = update["price"]
        value = int(price["price"]) * 10.0 ** int(price["expo"])
        values.append((update["id"].removeprefix("0x").lower(),
                       Success(value, {"price": price["price"], "expo": price["expo"], "conf": price.get("conf")},
                               int(price["publish_time"]) * 1000)))
    return values


class LatestTransport(HttpTransport):
    max_batch_size = MAX_IDS_PER_CALL

    def refuse(self, params: Params, config: Mapping[str, Any]) -> AdapterInputError | None:
        try:
            feed_id(params)
        except AdapterInputError as exc:
            return exc
        return None

    def prepare_requests(self, params_list: Sequence[Params], config: Mapping[str, Any]) -> list[ProviderRequest]:
        base = (config["API_ENDPOINT"] or HERMES_URL).rstrip("/")
        ids = sorted({feed_id(p) for p in params_list})
        return [ProviderRequest(tuple(params_list), f"{base}/v2/updates/price/latest?{_query(ids)}",
                                headers={"accept": "application/json"})]

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        by_id = dict(parse_updates(response.json()))
        missing = DataProviderError("Pyth did not return this price feed", provider_status_code=response.status_code)
        return [(p, by_id.get(feed_id(p), missing)) for p in params_list]


class PriceStreamTransport(SseTransport):
    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        return feed_id(params)

    def stream_url(self, base_url: str, stream_ids: Sequence[str], config: Mapping[str, Any]) -> str:
        return f"{base_url.rstrip('/')}/v2/updates/price/stream?{_query(stream_ids)}"

    def parse_event(self, event: str, data: str, config: Mapping[str, Any]) -> list[tuple[str, Outcome]]:
        return parse_updates(json.loads(data))

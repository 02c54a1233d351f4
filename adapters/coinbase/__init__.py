"""Coinbase Exchange: spot prices streamed from the public ``ticker`` channel, polled over REST as a fallback."""

from adapters.coinbase.transports import REST_URL, WS_URL, TickerRestTransport, TickerStreamTransport
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="coinbase",
    description="Coinbase Exchange public market data (websocket ticker channel, REST fallback)",
    default_endpoint="price",
    endpoints=[
        Endpoint("price", TickerStreamTransport(fallback=TickerRestTransport()), aliases=("crypto", "ticker"),
                 override_params=(), description="Last trade price of the base-quote product"),
    ],
    settings=[
        Spec("API_ENDPOINT", REST_URL, "REST base URL (the fallback, and every request while WS_ENABLED=false)",
             kind="url"),
        Spec("WS_API_ENDPOINT", WS_URL, "Websocket URL; a comma-separated list adds failover URLs"),
    ],
)

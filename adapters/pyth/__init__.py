"""Pyth Network prices from a Hermes service: streamed over server-sent events, polled as a fallback."""

from adapters.pyth.transports import HERMES_URL, LatestTransport, PriceStreamTransport
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="pyth",
    description="Pyth Network price feeds from Hermes (SSE stream, REST fallback)",
    default_endpoint="price",
    endpoints=[
        Endpoint("price", PriceStreamTransport(fallback=LatestTransport()), aliases=("crypto",), override_params=(),
                 description="Price of a Pyth price feed, by feed id or by a known base/quote pair"),
    ],
    settings=[
        Spec("API_ENDPOINT", HERMES_URL, "Hermes base URL for the REST fallback", kind="url"),
        Spec("SSE_API_ENDPOINT", HERMES_URL, "Hermes base URL for the event stream; commas add failover URLs"),
    ],
)

"""Tiingo: crypto prices, volumes, VWAP, top of book and yields, US stocks (IEX, end of day) and forex, over REST
and Tiingo's websocket streams."""

from adapters.tiingo.streams import CryptoStream, CryptoTopStream, ForexStream, IexStream, StockQuotesStream
from adapters.tiingo.transports import (
    API_URL,
    CryptoPricesTransport,
    CryptoTopTransport,
    CryptoYieldTransport,
    EodTransport,
    ForexTransport,
    IexTransport,
    RealizedVolTransport,
)
from app.sdk import Adapter, Endpoint, Spec


def _streamed(stream_class: type, rest: object) -> dict:
    """An endpoint answered from a stream by default (the REST call keeps it fresh while the stream is down),
    or over REST with ``data.transport: "rest"``."""
    stream = stream_class(fallback=rest)
    return {"transport": stream, "routes": {"ws": stream, "rest": rest}}


adapter = Adapter(
    name="tiingo",
    description="Tiingo REST API and websocket streams (an API token is required on every plan)",
    default_endpoint="crypto",
    endpoints=[
        Endpoint("crypto", aliases=("price", "prices", "crypto-synth"), includes=True,
                 **_streamed(CryptoStream, CryptoPricesTransport("close")), description="Price of base in quote"),
        Endpoint("volume", CryptoPricesTransport("volumeNotional"), includes=True,
                 description="24 h notional volume of base in quote"),
        Endpoint("top", CryptoTopTransport(), includes=True, description="Last trade of base in quote"),
        Endpoint("vwap", CryptoPricesTransport("fxClose", "cvwap"), aliases=("crypto-vwap",), includes=True,
                 description="24 h VWAP of base in quote"),
        Endpoint("crypto-lwba", CryptoTopStream(), aliases=("crypto_lwba", "cryptolwba"),
                 description="Bid, mid and ask of base in quote (streamed)"),
        Endpoint("eod", EodTransport(), description="Latest end-of-day close of a stock"),
        Endpoint("iex", aliases=("stock",), **_streamed(IexStream, IexTransport()),
                 description="Latest price of a US stock or ETF (Tiingo's IEX reference price)"),
        Endpoint("stock_quotes", StockQuotesStream(), description="Bid, mid and ask of a stock (streamed)"),
        Endpoint("forex", aliases=("fx", "commodities"), includes=True,
                 **_streamed(ForexStream, ForexTransport()), description="Mid price of base in quote"),
        Endpoint("cryptoyield", CryptoYieldTransport(), aliases=("yield",), override_params=(),
                 description="APR of Ethereum staking over 30 or 90 days"),
        Endpoint("realized-vol", RealizedVolTransport(), aliases=("realized-volatility",),
                 description="Realized volatility of base over 1, 7 or 30 days"),
    ],
    settings=[
        Spec("API_KEY", None, "Tiingo API token; sent as the Authorization header (REST) and in each subscribe "
                              "message (streams)", sensitive=True, required=True),
        Spec("API_ENDPOINT", API_URL, "Provider base URL", kind="url"),
        Spec("WS_API_ENDPOINT", "wss://api.tiingo.com", "Websocket base URL (each stream adds its path)"),
        Spec("SECONDARY_WS_API_ENDPOINT", "wss://api.redundantstack.com",
             "Websocket failover base URL (set it to WS_API_ENDPOINT to have none)"),
        Spec("EQUITIES_API_KEY", None, "Tiingo token for stock_quotes (its own entitlement)", sensitive=True),
    ],
)

"""Tiingo: US stock prices (IEX top of book) and forex rates (top of book)."""

from adapters.tiingo.transports import API_URL, ForexTransport, IexTransport
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="tiingo",
    description="Tiingo REST API (an API token is required on every plan)",
    default_endpoint="stock",
    endpoints=[
        Endpoint("stock", IexTransport(), aliases=("iex",),
                 description="Latest price of a US stock or ETF (Tiingo's IEX reference price)"),
        Endpoint("forex", ForexTransport(), aliases=("fx",), description="Mid price of base in quote"),
    ],
    settings=[
        Spec("API_KEY", None, "Tiingo API token; sent as the Authorization header", sensitive=True, required=True),
        Spec("API_ENDPOINT", API_URL, "Provider base URL", kind="url"),
    ],
)

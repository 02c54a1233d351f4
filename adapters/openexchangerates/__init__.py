"""Open Exchange Rates: the latest forex rate of a base currency in a quote currency."""

from adapters.openexchangerates.transports import LatestTransport
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="openexchangerates",
    description="Open Exchange Rates API (an app id is required on every plan; a base other than USD needs a "
                "paid plan)",
    default_endpoint="forex",
    endpoints=[Endpoint("forex", LatestTransport(), aliases=("price",), includes=True,
                        description="Rate of base in quote: 1 base = result quote")],
    settings=[
        Spec("API_KEY", None, "Open Exchange Rates app id; sent as the Authorization: Token header", sensitive=True,
             required=True),
        Spec("API_ENDPOINT", "https://openexchangerates.org/api", "Provider base URL", kind="url"),
    ],
)

"""Coinbase: spot prices (REST, or streamed from the Exchange ``ticker`` channel) and NFT floor prices."""

from adapters.coinbase.transports import (
    REST_URL,
    WS_URL,
    NftFloorPriceTransport,
    SpotPriceTransport,
    TickerStreamTransport,
)
from app.sdk import Adapter, Endpoint, Spec

_STREAM = TickerStreamTransport(fallback=SpotPriceTransport())

adapter = Adapter(
    name="coinbase",
    description="Coinbase public prices (REST spot price; Exchange websocket ticker with WS_ENABLED) and NFT floors",
    default_endpoint="crypto",
    endpoints=[
        Endpoint("crypto", _STREAM, aliases=("price", "ticker"), override_params=(),
                 routes={"ws": _STREAM, "rest": SpotPriceTransport()},
                 description="Spot price of base in quote"),
        Endpoint("nft-floor-price", NftFloorPriceTransport(), aliases=("nft-floor",), override_params=(),
                 description="Floor price estimate of an NFT collection"),
    ],
    settings=[
        Spec("API_ENDPOINT", REST_URL, "REST base URL (every request while WS_ENABLED=false, and the stream's "
                                       "fallback)", kind="url"),
        Spec("WS_API_ENDPOINT", WS_URL, "Websocket URL; a comma-separated list adds failover URLs"),
        Spec("NFT_API_ENDPOINT", "", "Coinbase NFT API base URL (nft-floor-price)"),
        Spec("NFT_API_AUTH_HEADER", "", "Coinbase NFT API token, sent as the CB-NFT-API-TOKEN header",
             sensitive=True),
    ],
)

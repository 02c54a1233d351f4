"""CoinGecko (API v3): prices, market caps and volumes of coins, and global market figures."""

from adapters.coingecko.transports import CoinsListTransport, GlobalTransport, SimplePriceTransport, pro
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="coingecko",
    description="CoinGecko API v3 (free, or pro with API_KEY)",
    default_endpoint="crypto",
    endpoints=[
        Endpoint("crypto", SimplePriceTransport("price"), aliases=("crypto-batched", "batched", "batch", "price"),
                 description="Price of base in quote"),
        Endpoint("marketcap", SimplePriceTransport("marketcap"), aliases=("crypto-marketcap",),
                 description="Market cap of base in quote"),
        Endpoint("volume", SimplePriceTransport("volume"), aliases=("crypto-volume",),
                 description="24h volume of base in quote"),
        Endpoint("globalmarketcap", GlobalTransport("total_market_cap"), aliases=("total_market_cap",),
                 override_params=(), description="Total crypto market cap in a currency"),
        Endpoint("dominance", GlobalTransport("market_cap_percentage"), aliases=("market_cap_percentage",),
                 override_params=(), description="Share (%) of the total market cap held by one asset"),
        Endpoint("coins", CoinsListTransport(), override_params=(),
                 description="Every coin CoinGecko lists: id, symbol and name (data; result is null)"),
    ],
    settings=[
        Spec("API_KEY", None, "CoinGecko API key (pro or demo, see API_KEY_TYPE)", sensitive=True),
        Spec("API_KEY_TYPE", "pro", "Kind of API_KEY: pro (the pro host, x-cg-pro-api-key header; paid tiers) or "
                                    "demo (the public host, x-cg-demo-api-key header; the demo tier)",
             kind="enum", choices=("pro", "demo")),
        Spec("API_ENDPOINT", None, "Provider base URL (default: the free API, or the pro API with a key)",
             kind="url"),
    ],
    default_tier=lambda values: "basic" if pro(values) else "demo",
)

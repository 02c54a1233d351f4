"""CoinMarketCap Pro API: prices, market caps and volumes of coins, and global market figures."""

from adapters.coinmarketcap.transports import GlobalMetricsTransport, HistoricalTransport, QuotesTransport
from app.sdk import Adapter, Endpoint, Spec

adapter = Adapter(
    name="coinmarketcap",
    description="CoinMarketCap Pro API (an API key is required on every plan)",
    default_endpoint="crypto",
    endpoints=[
        Endpoint("crypto", QuotesTransport("price"), aliases=("price",), description="Price of base in quote"),
        Endpoint("marketcap", QuotesTransport("marketcap"), description="Market cap of base in quote"),
        Endpoint("volume", QuotesTransport("volume"), description="24h volume of base in quote"),
        Endpoint("globalmarketcap", GlobalMetricsTransport("globalmarketcap"), override_params=(),
                 description="Total crypto market cap in a currency"),
        Endpoint("dominance", GlobalMetricsTransport("dominance"), override_params=(),
                 description="Share (%) of the total market cap held by BTC or ETH"),
        Endpoint("historical", HistoricalTransport(), description="Quotes of base in convert over time "
                                                                  "(the provider's data; result is null)"),
    ],
    settings=[
        Spec("API_KEY", None, "CoinMarketCap Pro API key; sent as the X-CMC_PRO_API_KEY header", required=True,
             sensitive=True),
        Spec("API_ENDPOINT", None, "Provider base URL (default: https://pro-api.coinmarketcap.com)", kind="url"),
    ],
)

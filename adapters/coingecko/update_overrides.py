"""Regenerate ``overrides.json`` (symbol → CoinGecko coin id) from CoinGecko's documented ``/coins/list``.

    python -m adapters.coingecko.update_overrides [--api-endpoint URL] [--api-key KEY] [--out PATH]

The symbols already in the file keep their ids (someone chose them, and running feeds depend on them); every
other coin is added under its upper-cased symbol, the first coin in the list's order taking a symbol several
coins share. That is the rule Chainlink's TypeScript adapter generated its table with, so the two agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from adapters.coingecko.transports import FREE_URL, PRO_URL

OVERRIDES = Path(__file__).with_name("overrides.json")


def merged(existing: Mapping[str, str], coins: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``existing`` with every listed coin added under its upper-cased symbol when that symbol is new."""
    table = dict(existing)
    taken = {symbol.upper() for symbol in table}
    for coin in coins:
        symbol, coin_id = coin.get("symbol"), coin.get("id")
        if isinstance(symbol, str) and symbol.strip() and isinstance(coin_id, str) and coin_id:
            key = symbol.upper()
            if key not in taken:
                table[key] = coin_id
                taken.add(key)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-endpoint", help="base URL (default: the pro API with a key, else the free one)")
    parser.add_argument("--api-key", help="CoinGecko Pro API key (sent as the x-cg-pro-api-key header)")
    parser.add_argument("--out", type=Path, default=OVERRIDES, help="the file to update (default: %(default)s)")
    args = parser.parse_args(argv)
    base = args.api_endpoint or (PRO_URL if args.api_key else FREE_URL)
    headers = {"accept": "application/json", **({"x-cg-pro-api-key": args.api_key} if args.api_key else {})}
    response = requests.get(f"{base.rstrip('/')}/coins/list", headers=headers, timeout=60)
    if response.status_code != 200:
        print(f"{base}/coins/list answered HTTP {response.status_code}: {response.text[:200]}", file=sys.stderr)
        return 1
    coins = response.json()
    existing = json.loads(args.out.read_text("utf-8")) if args.out.exists() else {}
    table = merged(existing, coins)
    args.out.write_text(json.dumps(table, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(table)} symbols ({len(table) - len(existing)} new, from {len(coins)} coins)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

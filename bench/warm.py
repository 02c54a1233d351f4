"""Background refresh cost by number of subscribed feeds: provider calls per cycle, cycle time, peak memory.

Each size runs in its own process (so peak RSS is that size's alone), against the fake CoinGecko on 127.0.0.1,
with the real warmer, cache and subscription store. Feeds are subscribed through the same ``resolve`` and
``subscribe`` calls a request makes; the HTTP layer is left out because it is measured by cache_hit.py.
A process doing the same with 0 feeds is the baseline of the memory column.

    python -m bench.warm                 # 0, 10, 100, 1 000 and 10 000 feeds, 3 cycles each
    python -m bench.warm --sizes 0 100 --cycles 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._lib import REPO


def measure(size: int, cycles: int, latency_ms: float = 0.0) -> dict:
    """One size, in this process: subscribe ``size`` feeds, then run refresh cycles."""
    from adapters.coingecko.transports import SimplePriceTransport
    from app import close_app, create_app
    from app.background.warmer import Warmer
    from app.devkit.fake_http import FakeProvider

    with FakeProvider() as provider, tempfile.TemporaryDirectory() as cache_dir:
        for i in range(size):
            provider.prices[(f"coin-{i:05d}", "usd")] = 1.0 + i
        provider.delay_s = latency_ms / 1000
        # Entries live 100 ms, so every feed is due again at each cycle, as after CACHE_MAX_AGE in production.
        app = create_app(env={"API_ENDPOINT": provider.url, "CACHE_DIR": cache_dir, "LOG_LEVEL": "error",
                              "WARMUP_ENABLED": "false", "CACHE_MAX_AGE": "100", "CACHE_MIN_AGE": "0",
                              "RATE_LIMIT_ENABLED": "false",  # a tier that allows 100 calls per cycle
                              "WARMUP_INTERVAL": "100", "CACHE_MAX_ITEMS": str(max(size * 2, 500))})
        host = app.extensions["pyea"]
        endpoint = host.default.endpoints["crypto"]
        for i in range(size):
            params, key, _, _ = endpoint.resolve({"coinid": f"coin-{i:05d}", "quote": "USD"})
            host.subscriptions.subscribe(key, endpoint.name, params, force=True)
        warmer = Warmer(host.subscriptions, lambda: True)
        results = []
        for _ in range(cycles):
            time.sleep(0.15)
            provider.reset()
            started = time.perf_counter()
            batches = warmer.cycle(endpoint)
            results.append({"seconds": time.perf_counter() - started, "provider_calls": provider.count(),
                            "batches": batches})
        close_app(app)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"feeds": size, "provider_latency_ms": latency_ms, "batch_size": SimplePriceTransport.max_batch_size,
            "expected_calls": math.ceil(size / SimplePriceTransport.max_batch_size),
            "provider_calls": statistics.median(r["provider_calls"] for r in results),
            "cycle_s": statistics.median(r["seconds"] for r in results),
            "peak_rss_mib": peak_kib / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 10, 100, 1000, 10000])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the fake provider's answer time")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.cycles, args.latency_ms)))
        return 0
    rows = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, "-m", "bench.warm", "--one", str(size), "--cycles", str(args.cycles),
                              "--latency-ms", str(args.latency_ms)],
                             capture_output=True, text=True, timeout=900, cwd=REPO)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = next((r["peak_rss_mib"] for r in rows if r["feeds"] == 0), rows[0]["peak_rss_mib"])
    print(f"{'feeds':>6} {'batch':>5} {'calls/cycle':>11} {'expected':>8} {'cycle s':>8} {'peak RSS MiB':>12} "
          f"{'over 0 feeds':>12}")
    for r in rows:
        print(f"{r['feeds']:>6} {r['batch_size']:>5} {r['provider_calls']:>11} {r['expected_calls']:>8} "
              f"{r['cycle_s']:>8.3f} {r['peak_rss_mib']:>12.1f} {r['peak_rss_mib'] - base:>12.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

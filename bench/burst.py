"""A burst of never-seen feeds: 100 different cold feeds requested at once, as a node starting its jobs does.

Measured on real gunicorn with the default settings (2 workers x 8 threads; CoinGecko's default tier, demo: 30
calls a minute) and with 1 worker, on the default tier and a large one, against the fake provider answering
after a fixed delay. The baseline is the same burst with foreground batching off (``FOREGROUND_BATCH_WINDOW_MS=0``)
in the same run, and the provider's own latency: what is reported is provider calls, statuses, and p50/p99
against that latency. Runs are interleaved (every configuration once per round), figures are medians of rounds.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import GunicornProcess
from bench._lib import HOST, BenchError, percentile
from bench.herd import herd

FEEDS = 100
TIERS = {"default": {}, "large": {"RATE_LIMIT_API_TIER": "lite"}}


def _burst(port: int, bodies: list[bytes]) -> list[tuple[int, float]]:
    return herd(port, bodies)


def bursts(workdir: Path, provider_latency_s: float, rounds: int, worker_counts: list[int]) -> dict[str, Any]:
    """Every (workers, tier, batching) configuration, ``rounds`` times interleaved: a burst of ``FEEDS`` feeds
    nobody asked for before."""
    configs = [(workers, tier, batching) for workers in worker_counts for tier in TIERS for batching in (True, False)]
    rows: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    with FakeProvider() as provider:
        provider.delay_s = provider_latency_s
        servers = {}
        try:
            for workers, tier, batching in configs:
                name = _name(workers, tier, batching)
                env = {"API_ENDPOINT": provider.url, "CACHE_DIR": str(workdir / f"cache-{name}"),
                       "EA_WORKERS": str(workers), "LOG_LEVEL": "warning", **TIERS[tier]}
                if not batching:
                    env["FOREGROUND_BATCH_WINDOW_MS"] = "0"
                servers[name] = GunicornProcess(env, log_path=workdir / f"{name}.log")
                servers[name].start()
            provider_ms = _provider_latency(provider)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                for index in range(rounds):
                    for workers, tier, batching in configs:
                        name = _name(workers, tier, batching)
                        coins = [f"burst-{name}-{index}-{i:03d}" for i in range(FEEDS)]
                        for coin in coins:
                            provider.prices[(coin, "usd")] = 1.0
                        asked = set(coins)
                        bodies = [json.dumps({"id": str(i), "data": {"coinid": coin, "quote": "USD"}}).encode()
                                  for i, coin in enumerate(coins)]
                        answers = pool.apply(_burst, (servers[name].port, bodies))
                        if len(answers) != FEEDS:
                            raise BenchError(f"{name}: {len(answers)} of {FEEDS} answers")
                        latencies = sorted(seconds * 1000 for _, seconds in answers)
                        calls = sum(1 for call in provider.calls  # not the other servers' refreshes
                                    if asked & set(call.query.get("ids", "").split(",")))
                        rows[name].append({"calls": calls,
                                           "statuses": dict(collections.Counter(str(s) for s, _ in answers)),
                                           "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)})
                        time.sleep(0.3)
        finally:
            for server in servers.values():
                server.stop()
    summary = {}
    for name, runs in rows.items():
        summary[name] = {"calls": statistics.median(r["calls"] for r in runs),
                         "max_calls": max(r["calls"] for r in runs),
                         "statuses": runs[-1]["statuses"],
                         "all_statuses": sorted({s for r in runs for s in r["statuses"]}),
                         "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                         "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                         "p99_over_provider_ms": statistics.median(r["p99_ms"] for r in runs) - provider_ms,
                         "runs": runs}
    return {"feeds": FEEDS, "provider_ms": provider_ms, "rounds": rounds, "configs": summary}


def _name(workers: int, tier: str, batching: bool) -> str:
    return f"w{workers}-{tier}-{'batched' if batching else 'unbatched'}"


def _provider_latency(provider: FakeProvider) -> float:
    """The provider's latency as a client on this machine sees it: the floor of any cold answer."""
    import http.client

    port = int(provider.url.rsplit(":", 1)[1])
    samples = []
    for _ in range(10):
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        started = time.perf_counter()
        conn.request("GET", "/simple/price?ids=ethereum&vs_currencies=usd")
        conn.getresponse().read()
        samples.append((time.perf_counter() - started) * 1000)
        conn.close()
    provider.reset()
    return statistics.median(samples)


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        result = bursts(Path(where), 0.05, int(sys.argv[1]) if len(sys.argv) > 1 else 3, [1, 2])
    for name, row in result["configs"].items():
        print(f"{name:28s} calls {row['calls']:5.1f} (max {row['max_calls']}) statuses {row['all_statuses']} "
              f"p50 {row['p50_ms']:6.1f} p99 {row['p99_ms']:6.1f} ms (provider {result['provider_ms']:.1f})")

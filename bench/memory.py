"""Memory of every pyea process (master and workers) under hit load, by number of subscribed feeds.

Each size gets a fresh pyea with the default settings: N feeds are requested (so cached and subscribed for the
background), then the load rotates over them while the resident set of the whole process tree is sampled.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from app.devkit.fake_http import FakeProvider
from bench._lib import REQUEST_BODY, START_TIMEOUT_S, LoadGenerator, Memory, check_load, memory_of, pyea_server
from bench.hits import feed_body, fill


def memory_by_feeds(loadgen: LoadGenerator, workdir: Path, sizes: list[int], connections: int, duration_s: int,
                    ) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        with FakeProvider() as provider:
            for i in range(size):
                provider.prices[(f"coin-{i:05d}", "usd")] = 1.0 + i
            server = pyea_server(provider, workdir, f"pyea-mem-{size}", 2, 8)
            # Defaults, except that the cache keeps the largest set, and the one-request-per-feed fill is not held
            # to the free tier's 30 calls a minute.
            server.env.update(CACHE_MAX_ITEMS=str(max(10000, 2 * size)), RATE_LIMIT_ENABLED="false")
            try:
                server.start(START_TIMEOUT_S)
                idle = memory_of(server.proc.pid)
                bodies = [feed_body(i) for i in range(size)] or [REQUEST_BODY]
                fill(server.url, bodies)
                samples: list[Memory] = []
                stop = threading.Event()
                sampler = threading.Thread(target=_sample, args=(server.proc.pid, samples, stop), daemon=True)
                sampler.start()
                result = loadgen.measure(server.url, server.proc.pid, connections, 1, duration_s, bodies)
                stop.set()
                sampler.join(5)
                check_load(f"memory with {size} feeds", result)
            finally:
                server.stop()
        peak = max(samples, key=lambda m: m.rss_mib)
        rows.append({"feeds": size, "idle_rss_mib": idle.rss_mib, "rss_mib": peak.rss_mib, "pss_mib": peak.pss_mib,
                     "master_mib": peak.rss_master_mib, "workers_mib": peak.rss_workers_mib,
                     "rps": result.rps, "samples": len(samples)})
        print(f"  {size:6} feeds: RSS idle {idle.rss_mib:.1f} MiB, under load {peak.rss_mib:.1f} MiB (master "
              f"{peak.rss_master_mib:.1f}, workers {peak.rss_workers_mib}), PSS {peak.pss_mib:.1f}", flush=True)
    return rows


def _sample(pid: int, samples: list[Memory], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        samples.append(memory_of(pid))

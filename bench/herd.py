"""Cold feeds: the first request for a never-seen feed, and a herd of concurrent requests for one.

The provider (the fake CoinGecko on 127.0.0.1) answers after a fixed delay; its latency as the client sees it,
measured from the same client process in the same run, is the baseline: pyea's cost of a miss is what it adds.
Requests come from a separate process; herd clients connect first and send together on a barrier, so the burst
is the requests themselves, not connection set-up.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from cache_hit import HOST, START_TIMEOUT_S, BenchError, percentile, pyea_server

from app.testing import FakeProvider

TIMEOUT_S = 30.0


def _timed(port: int, method: str, path: str, body: bytes | None, ready: threading.Barrier | None = None,
           ) -> tuple[int, float]:
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)
    try:
        conn.connect()
        if ready is not None:
            ready.wait(TIMEOUT_S)
        started = time.perf_counter()
        conn.request(method, path, body, {"content-type": "application/json"} if body else {})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def _client(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in the load process: baseline, sequential first requests, then herds."""
    out: dict[str, Any] = {"provider_s": [], "first": [], "herds": []}
    for _ in range(job["samples"]):
        out["provider_s"].append(_timed(job["provider_port"], "GET", "/simple/price?ids=ethereum&vs_currencies=usd",
                                        None)[1])
    for body in job["first_bodies"]:
        out["first"].append(_timed(job["port"], "POST", "/", body.encode()))
    for body in job["herd_bodies"]:
        out["herds"].append(_herd(job["port"], body.encode(), job["herd"]))
        time.sleep(0.2)
    return out


def _herd(port: int, body: bytes, size: int) -> list[tuple[int, float]]:
    ready = threading.Barrier(size)
    results: list[tuple[int, float]] = []
    threads = [threading.Thread(target=lambda: results.append(_timed(port, "POST", "/", body, ready)))
               for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S + 5)
    return results


def cold(workdir: Path, provider_latency_s: float, first_samples: int, herd_size: int, herds: int,
         ) -> dict[str, Any]:
    """pyea with its default settings (2 workers), against a provider answering in ``provider_latency_s``."""
    with FakeProvider() as provider:
        for i in range(first_samples + herds):
            provider.prices[(f"cold-{i:03d}", "usd")] = 1.0 + i
        provider.delay_s = provider_latency_s
        server = pyea_server(provider, workdir, "pyea-cold", 2, 8)
        try:
            server.start(START_TIMEOUT_S)

            def body(i: int) -> str:
                return json.dumps({"id": str(i), "data": {"coinid": f"cold-{i:03d}", "quote": "USD"}})

            job = {"port": server.port, "provider_port": int(provider.url.rsplit(":", 1)[1]),
                   "samples": first_samples, "herd": herd_size,
                   "first_bodies": [body(i) for i in range(first_samples)],
                   "herd_bodies": [body(first_samples + i) for i in range(herds)]}
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                out = pool.apply(_client, (job,))
            calls = [sum(1 for c in provider.calls if c.query.get("ids") == f"cold-{first_samples + i:03d}")
                     for i in range(herds)]
        finally:
            server.stop()
    provider_ms = statistics.median(out["provider_s"]) * 1000
    if any(status != 200 for status, _ in out["first"]):
        raise BenchError(f"a first request failed: {out['first']}")
    first_ms = [seconds * 1000 for _, seconds in out["first"]]
    herd_rows = []
    for index, results in enumerate(out["herds"]):
        latencies = sorted(seconds * 1000 for _, seconds in results)
        errors = sum(status != 200 for status, _ in results)
        if errors or len(results) != herd_size:
            raise BenchError(f"herd {index + 1}: {errors} non-200 of {len(results)} answers")
        herd_rows.append({"provider_calls": calls[index], "p50_ms": percentile(latencies, 50),
                          "p99_ms": percentile(latencies, 99), "max_ms": latencies[-1], "latencies_ms": latencies})
    return {"provider_latency_set_ms": provider_latency_s * 1000, "provider_ms": provider_ms,
            "first_ms": first_ms, "first_median_ms": statistics.median(first_ms),
            "first_overhead_ms": statistics.median(first_ms) - provider_ms, "herd_size": herd_size,
            "herds": herd_rows, "herd_p99_ms": statistics.median(h["p99_ms"] for h in herd_rows),
            "herd_p99_overhead_ms": statistics.median(h["p99_ms"] for h in herd_rows) - provider_ms,
            "herd_max_calls": max(h["provider_calls"] for h in herd_rows)}

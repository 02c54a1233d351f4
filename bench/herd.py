"""Cold feeds: the first request for a never-seen feed, and a herd of concurrent requests for one.

The provider (the fake CoinGecko on 127.0.0.1) answers after a fixed delay; its latency as the client sees it,
measured from the same client process in the same run, is the baseline: pyea's cost of a miss is what it adds.
Requests come from a separate process; the herd's connections are opened first and its requests written
together, so the burst is the requests themselves, not connection set-up.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import re
import selectors
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from app.devkit.fake_http import FakeProvider
from bench._lib import HOST, BenchError, percentile
from bench.hits import Trio

TIMEOUT_S = 30.0


def _timed(port: int, method: str, path: str, body: bytes | None) -> tuple[int, float]:
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)
    try:
        conn.connect()
        started = time.perf_counter()
        conn.request(method, path, body, {"content-type": "application/json"} if body else {})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def _client(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in the load process: baseline, sequential first requests, then herds."""
    out: dict[str, Any] = {"provider_s": [], "first": [], "herds": [], "hit_herds": []}
    for _ in range(job["samples"]):
        out["provider_s"].append(_timed(job["provider_port"], "GET", "/simple/price?ids=ethereum&vs_currencies=usd",
                                        None)[1])
    for body in job["first_bodies"]:
        out["first"].append(_timed(job["port"], "POST", "/", body.encode()))
    for body in job["herd_bodies"]:
        out["herds"].append(herd(job["port"], [body.encode()] * job["herd"]))
        time.sleep(0.2)
        # The same herd again, now a cache hit: what 200 simultaneous new connections cost without any wait.
        out["hit_herds"].append(herd(job["port"], [body.encode()] * job["herd"]))
        time.sleep(0.2)
    for name, port in job["baseline_ports"].items():
        out[f"{name}_herds"] = []
        for body in job["herd_bodies"]:
            out[f"{name}_herds"].append(herd(port, [body.encode()] * job["herd"]))
            time.sleep(0.2)
    return out


def herd(port: int, bodies: list[bytes]) -> list[tuple[int, float]]:
    """A connection per body opened first, then one request written on each as fast as one thread can, and
    every answer read as it arrives: ``(status, seconds from its own request written to its answer read)``.

    One thread on non-blocking sockets, not a thread per connection: 200 client threads contending for one GIL
    added their own queueing (taking turns to write, then to parse the answers) to every latency measured."""
    size = len(bodies)
    wire: dict[socket.socket, bytes] = {}
    conns = [socket.create_connection((HOST, port), timeout=TIMEOUT_S) for _ in range(size)]
    selector = selectors.DefaultSelector()
    sent: dict[socket.socket, float] = {}
    received: dict[socket.socket, bytearray] = {}
    results: list[tuple[int, float]] = []
    try:
        for conn, body in zip(conns, bodies, strict=True):
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ)
            received[conn] = bytearray()
            wire[conn] = (f"POST / HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for conn in conns:  # small enough to leave in one send each
            sent[conn] = time.perf_counter()
            conn.sendall(wire[conn])
        deadline = time.monotonic() + TIMEOUT_S
        while len(results) < size and time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                conn = key.fileobj
                chunk = conn.recv(65536)
                buffer = received[conn]
                buffer += chunk
                status = _complete_status(buffer, closed=not chunk)
                if status is not None:
                    results.append((status, time.perf_counter() - sent[conn]))
                    selector.unregister(conn)
                    conn.close()
    finally:
        selector.close()
        for conn in conns:
            conn.close()
    return results


def _complete_status(buffer: bytearray, closed: bool) -> int | None:
    """The status of a complete HTTP/1.1 answer in ``buffer``; None while more is to come (0 for a connection
    closed on a broken answer)."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return 0 if closed else None
    head = bytes(buffer[:head_end]).decode("latin-1")
    length = re.search(r"(?im)^content-length:\s*(\d+)", head)
    if length is not None and len(buffer) - head_end - 4 < int(length.group(1)):
        return 0 if closed else None
    if length is None and not closed:
        return None  # read to the end of the connection
    return int(head.split(" ", 2)[1])


def cold(workdir: Path, provider_latency_s: float, first_samples: int, herd_size: int, herds: int,
         workers: int = 2, threads: int = 8) -> dict[str, Any]:
    """pyea (by default with its default settings, 2 x 8) against a provider answering in
    ``provider_latency_s``."""
    with FakeProvider() as provider:
        for i in range(first_samples + herds):
            provider.prices[(f"cold-{i:03d}", "usd")] = 1.0 + i
        trio = None
        try:
            # pyea beside the bare Flask and raw WSGI baselines: the same herd against those shows what 200
            # simultaneous new connections cost this machine with no framework and no wait at all.
            trio = Trio(provider, workdir, workers, threads, "cold-")
            provider.delay_s = provider_latency_s
            server = trio.servers["pyea"]

            def body(i: int) -> str:
                return json.dumps({"id": str(i), "data": {"coinid": f"cold-{i:03d}", "quote": "USD"}})

            job = {"port": server.port, "provider_port": int(provider.url.rsplit(":", 1)[1]),
                   "samples": first_samples, "herd": herd_size,
                   "first_bodies": [body(i) for i in range(first_samples)],
                   "herd_bodies": [body(first_samples + i) for i in range(herds)],
                   "baseline_ports": {name: trio.servers[name].port for name in ("bare", "raw")}}
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                out = pool.apply(_client, (job,))
            calls = [sum(1 for c in provider.calls if c.query.get("ids") == f"cold-{first_samples + i:03d}")
                     for i in range(herds)]
        finally:
            if trio is not None:
                trio.stop()
    provider_ms = statistics.median(out["provider_s"]) * 1000
    if any(status != 200 for status, _ in out["first"]):
        raise BenchError(f"a first request failed: {out['first']}")
    first_ms = [seconds * 1000 for _, seconds in out["first"]]
    herd_rows = []
    for index, (results, hits) in enumerate(zip(out["herds"], out["hit_herds"], strict=True)):
        row = {"provider_calls": calls[index]}
        for prefix, answers in (("", results), ("hit_", hits)):
            latencies = sorted(seconds * 1000 for _, seconds in answers)
            errors = sum(status != 200 for status, _ in answers)
            if errors or len(answers) != herd_size:
                raise BenchError(f"herd {index + 1}: {errors} non-200 of {len(answers)} answers")
            row.update({f"{prefix}p50_ms": percentile(latencies, 50), f"{prefix}p99_ms": percentile(latencies, 99),
                        f"{prefix}max_ms": latencies[-1], f"{prefix}latencies_ms": latencies})
        herd_rows.append(row)
    return {"provider_latency_set_ms": provider_latency_s * 1000, "provider_ms": provider_ms,
            "first_ms": first_ms, "first_median_ms": statistics.median(first_ms),
            "first_overhead_ms": statistics.median(first_ms) - provider_ms, "herd_size": herd_size,
            "herds": herd_rows, "herd_p99_ms": statistics.median(h["p99_ms"] for h in herd_rows),
            "herd_p99_overhead_ms": statistics.median(h["p99_ms"] for h in herd_rows) - provider_ms,
            "herd_max_calls": max(h["provider_calls"] for h in herd_rows),
            "hit_herd_p99_ms": statistics.median(h["hit_p99_ms"] for h in herd_rows),
            "baseline_herd_p99_ms": {name: statistics.median(percentile(sorted(s * 1000 for _, s in answers), 99)
                                                             for answers in out[f"{name}_herds"])
                                     for name in job["baseline_ports"]}}

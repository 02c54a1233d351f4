#!/usr/bin/env python
"""What the per-process front layer saves with CACHE_TYPE=redis: cache-hit throughput, latency and Redis
commands per request, with the front layer (CACHE_FRONT_TTL=250) against without it (CACHE_FRONT_TTL=0).

Both pyea servers run side by side over one real redis-server and the rounds alternate (ABBA), so drift of
the machine hits both; figures are medians over rounds. Redis commands per request come from Redis' own
``total_commands_processed`` around each measured run (the warm-up excluded).

Needs ``redis-server`` on PATH. Run from the repository root: ``python -m bench.redis_front``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.devkit.fake_http import FakeProvider, free_port
from app.devkit.testing import GunicornProcess
from bench._lib import LoadGenerator, check_load, machine_info, print_machine, pyea_env, warm

FRONT_TTLS = {"front 250 ms": "250", "no front": "0"}


def redis_commands(port: int) -> int:
    """Redis' count of commands processed, read over a bare socket (INFO stats)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_commands_processed" not in data or not data.endswith(b"\r\n"):
            data += sock.recv(65536)
    line = next(x for x in data.decode().splitlines() if x.startswith("total_commands_processed:"))
    return int(line.split(":")[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server is not installed", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="pyea-bench-") as tmp, FakeProvider() as provider:
        workdir = Path(tmp)
        loadgen = LoadGenerator(shutil.which("wrk") is not None, workdir, 1)
        print_machine(machine_info(loadgen))
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        servers: dict[str, GunicornProcess] = {}
        try:
            time.sleep(0.5)
            for label, ttl in FRONT_TTLS.items():
                cache_dir = workdir / f"cache-{ttl}"
                env = {**pyea_env(provider.url, cache_dir, 2, 8), "CACHE_TYPE": "redis",
                       "CACHE_REDIS_URL": f"redis://127.0.0.1:{port}/0", "CACHE_FRONT_TTL": ttl,
                       "RATE_LIMIT_ENABLED": "false", "CACHE_KEY_GROUP": f"bench-{ttl}"}
                servers[label] = GunicornProcess(env, log_path=workdir / f"{ttl}.log").start()
                warm(servers[label], provider)
            results: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in servers}
            for round_no in range(args.rounds):
                order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
                for label in order:
                    server = servers[label]
                    loadgen.measure(server.url, server.proc.pid, args.connections, 0, 1)  # warm-up, not counted
                    before = redis_commands(port)
                    result = loadgen.measure(server.url, server.proc.pid, args.connections, 0, args.duration)
                    per_request = (redis_commands(port) - before) / max(result.requests, 1)
                    check_load(label, result)
                    results[label].append((result.rps, result.p50_ms, result.p99_ms, per_request))
                    print(f"round {round_no + 1} {label:>13}: {result.rps:8.0f} req/s  p50 {result.p50_ms:.2f} ms  "
                          f"p99 {result.p99_ms:.2f} ms  {per_request:.3f} Redis commands/request", flush=True)
        finally:
            for server in servers.values():
                server.stop()
            redis.terminate()
            redis.wait(10)
    medians = {label: [statistics.median(r[i] for r in runs) for i in range(4)] for label, runs in results.items()}
    print(f"\nmedians over {args.rounds} rounds, {args.connections} connections, 2 workers x 8 threads:")
    print("| CACHE_FRONT_TTL | req/s | p50 ms | p99 ms | Redis commands per request |\n|---|---|---|---|---|")
    for label, (rps, p50, p99, commands) in medians.items():
        print(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {commands:.3f} |")
    front, none = medians["front 250 ms"], medians["no front"]
    print(f"\nfront / no front: throughput x{front[0] / none[0]:.2f}, p99 x{front[2] / none[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cache hits under real gunicorn: pyea against a bare Flask route and a raw WSGI callable, in the same run.

All three answer the same bytes under the same resolved gunicorn settings, side by side for the whole section;
rounds rotate the order of the targets so drift of the machine hits all of them. Measured at 1, 16 and 64
connections, with 1 and 2 workers of ``EA_THREADS`` threads, and with 1, 100 and 10 000 distinct cached feeds.

Checks (a failure stops the suite): every measured response is HTTP 200 with no socket error, and pyea answered
every measured request from the cache (its own ``http_requests_total`` counts no other outcome).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from app.devkit.fake_http import FakeProvider, free_port
from app.devkit.testing import GunicornProcess
from app.observe.metrics import FLUSH_INTERVAL_S
from bench._lib import (
    COMPARED_SETTINGS,
    REPO,
    REQUEST_BODY,
    START_TIMEOUT_S,
    BenchError,
    CpuMeter,
    LoadGenerator,
    LoadResult,
    bare_args,
    check_load,
    fmt,
    gunicorn_settings,
    memory_of,
    pyea_server,
    split_kind,
    summarise,
    warm,
)

TARGETS = ("pyea", "bare", "raw")


def feed_body(index: int) -> bytes:
    return json.dumps({"id": "1", "data": {"coinid": f"coin-{index:05d}", "quote": "USD"}},
                      separators=(",", ":")).encode()


def non_hits(server: GunicornProcess) -> float:
    """Requests pyea answered other than from its cache, from its own metrics (summed over the workers, once
    they have written out their counts)."""
    time.sleep(2 * FLUSH_INTERVAL_S)
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    return sum(float(value) for labels, value in re.findall(r'^http_requests_total\{(.*)\} (\S+)$', text, re.M)
               if 'type="cacheHit"' not in labels)


class Trio:
    """pyea, bare Flask and raw WSGI under the same gunicorn settings; the caller stops them."""

    def __init__(self, provider: FakeProvider, workdir: Path, workers: int, threads: int, tag: str = "",
                 extra_env: dict[str, str] | None = None) -> None:
        self.name = f"{tag}{workers}x{threads}"
        self.servers: dict[str, GunicornProcess] = {}
        pyea = pyea_server(provider, workdir, f"pyea-{self.name}", workers, threads)
        pyea.env.update(extra_env or {})
        self.servers["pyea"] = pyea.start(START_TIMEOUT_S)
        self.body = warm(pyea, provider)
        body_file = workdir / f"body-{self.name}.json"
        body_file.write_bytes(self.body)
        resolved = gunicorn_settings(pyea.args, REPO, pyea.env)
        env = {**os.environ, "BARE_BODY_FILE": str(body_file)}
        for target, module in (("bare", "bare_app"), ("raw", "raw_app")):
            port = free_port()
            command = [*bare_args(resolved, port)[:-1], f"bench.{module}:create_app()"]
            theirs = gunicorn_settings(command, REPO, env)
            differ = {k: (resolved.get(k), theirs.get(k)) for k in COMPARED_SETTINGS
                      if resolved.get(k) != theirs.get(k)}
            if differ:
                raise BenchError(f"gunicorn settings differ (pyea, {target}): {differ}")
            # Its own -c (bench/baseline_conf.py): the repository's gunicorn.conf.py never applies to a baseline.
            server = GunicornProcess(env, command, port=port, log_path=workdir / f"{target}-{self.name}.log",
                                     cwd=REPO)
            self.servers[target] = server.start(START_TIMEOUT_S)
            answer = requests.post(server.url, data=feed_body(0), timeout=10)
            if answer.status_code != 200 or answer.content != self.body:
                raise BenchError(f"{target} does not answer with pyea's bytes")
        self.settings = {k: resolved[k] for k in COMPARED_SETTINGS}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


#: Times a measurement whose connections sat lopsided on the workers is taken again.
PINNED_RETRIES = 3


def rounds_of(loadgen: LoadGenerator, trio: Trio, targets: Sequence[str], connections: int, rounds: int,
              warmup_s: int, duration_s: int, bodies: dict[str, Sequence[bytes]], label: str,
              ) -> tuple[dict[str, list[LoadResult]], int]:
    """``rounds`` measurements of every target, the order rotating each round, and how many were taken again.

    gthread keeps a keep-alive connection on the worker that accepted it, and which worker wins each accept is
    luck: a measurement in which one worker accepted every connection, or a worker less than half its fair share
    (``split_kind``), measured fewer cores than configured. It is taken again (up to PINNED_RETRIES times), for
    every target alike; not with a single connection, which can only ever sit on one worker."""
    runs: dict[str, list[LoadResult]] = {t: [] for t in targets}
    masters = {t: trio.servers[t].proc.pid for t in targets}
    again = 0
    for index in range(rounds):
        order = list(targets[index % len(targets):]) + list(targets[:index % len(targets)])
        for target in order:
            idle = [pid for t, pid in masters.items() if t != target]
            for attempt in range(PINNED_RETRIES + 1):
                with CpuMeter(masters[target], idle) as cpu:
                    result = loadgen.measure(trio.servers[target].url, masters[target], connections, warmup_s,
                                             duration_s, bodies[target])
                cpu.annotate(result)
                check_load(f"{label} round {index + 1} {target}", result)
                print(f"  {label:22} round {index + 1} {target:4} {fmt(result)}", flush=True)
                # One connection always sits on one worker: only more connections than workers can be lopsided.
                kind = split_kind(result)
                lopsided = kind in ("pinned", "skewed") and connections >= len(result.connections_per_worker)
                if not lopsided or attempt == PINNED_RETRIES:
                    break
                again += 1
                print(f"  {'':22} connections {kind} over the workers: measured again", flush=True)
            runs[target].append(result)
    return runs, again


def hit_matrix(loadgen: LoadGenerator, workdir: Path, configs: Sequence[tuple[int, int]],
               connections: Sequence[int], rounds: int, warmup_s: int, duration_s: int) -> list[dict[str, Any]]:
    """One feed, every target, every configuration and connection count."""
    rows = []
    with FakeProvider() as provider:
        for workers, threads in configs:
            trio = None
            try:
                trio = Trio(provider, workdir, workers, threads)
                before = non_hits(trio.servers["pyea"])
                bodies = {t: [REQUEST_BODY] for t in TARGETS}
                for conns in connections:
                    runs, again = rounds_of(loadgen, trio, TARGETS, conns, rounds, warmup_s, duration_s, bodies,
                                            f"{workers}x{threads} c={conns}")
                    rows.append({**_row(workers, threads, conns, runs), "measured_again": again})
                if non_hits(trio.servers["pyea"]) != before:
                    raise BenchError(f"{trio.name}: pyea answered measured requests other than from its cache")
                rows[-1]["memory"] = {t: asdict(memory_of(s.proc.pid)) for t, s in trio.servers.items()}
            finally:
                if trio is not None:
                    trio.stop()
    return rows


def _row(workers: int, threads: int, connections: int, runs: dict[str, list[LoadResult]]) -> dict[str, Any]:
    medians = {t: summarise(results) for t, results in runs.items()}
    return {"workers": workers, "threads": threads, "connections": connections, "median": medians,
            "vs_bare": medians["pyea"]["rps"] / medians["bare"]["rps"],
            "vs_raw": medians["pyea"]["rps"] / medians["raw"]["rps"],
            "p99_vs_raw": medians["pyea"]["p99_ms"] / medians["raw"]["p99_ms"] if medians["raw"]["p99_ms"] else None,
            "runs": {t: [asdict(r) for r in results] for t, results in runs.items()}}


def feed_rotation(loadgen: LoadGenerator, workdir: Path, sizes: Sequence[int], workers: int, threads: int,
                  connections: int, rounds: int, warmup_s: int, duration_s: int) -> list[dict[str, Any]]:
    """pyea hits rotating over N cached feeds, against pyea's one-feed hits and the raw floor, same run."""
    largest = max(sizes)
    rows = []
    with FakeProvider() as provider:
        for i in range(largest):
            provider.prices[(f"coin-{i:05d}", "usd")] = 1.0 + i
        trio = None
        try:
            # The largest set plus the warm-up feed must all stay cached; filling it one request per feed needs
            # more calls than the free tier's 30 a minute (as a paid tier would allow).
            trio = Trio(provider, workdir, workers, threads, "feeds-",
                        {"CACHE_MAX_ITEMS": str(max(10000, 2 * largest)), "RATE_LIMIT_ENABLED": "false"})
            pyea = trio.servers["pyea"]
            fill(pyea.url, [feed_body(i) for i in range(largest)])
            before = non_hits(pyea)
            for size in sizes:
                bodies = {"pyea": [feed_body(i) for i in range(size)], "raw": [feed_body(0)]}
                runs, again = rounds_of(loadgen, trio, ("pyea", "raw"), connections, rounds, warmup_s, duration_s,
                                        bodies, f"{size} feeds c={connections}")
                medians = {t: summarise(results) for t, results in runs.items()}
                rows.append({"feeds": size, "median": medians, "measured_again": again,
                             "vs_raw": medians["pyea"]["rps"] / medians["raw"]["rps"],
                             "runs": {t: [asdict(r) for r in results] for t, results in runs.items()}})
            if non_hits(pyea) != before:
                raise BenchError("rotating feeds: pyea answered measured requests other than from its cache")
        finally:
            if trio is not None:
                trio.stop()
    return rows


def fill(url: str, bodies: Sequence[bytes], parallel: int = 16) -> None:
    """Cache every feed (each first request fetches it), ``parallel`` at a time."""
    def one(chunk: Sequence[bytes]) -> None:
        with requests.Session() as session:
            for body in chunk:
                answer = session.post(url, data=body, headers={"content-type": "application/json"}, timeout=30)
                if answer.status_code != 200:
                    raise BenchError(f"filling the cache: HTTP {answer.status_code} {answer.text[:200]}")

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, [bodies[i::parallel] for i in range(parallel)]))

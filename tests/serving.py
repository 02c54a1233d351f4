"""Helpers for the tests that run pyea under a real gunicorn: the environment, starting and stopping, posting as a
node does, reading the access log, and load from many clients. Imported by the ``process``-marked tests."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import diskcache
import requests

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import GunicornProcess

NODE_REQUEST = {"id": "7", "data": {"from": "ETH", "to": "USD"}}


ETH_USD = 3021.5


TIMEOUT_S = 30


CLOSE = {"Connection": "close"}


# One access-log line per answered request: the worker's pid and the request's x-test-id header.
ACCESS_LOG_ARGS = ("--access-logfile", "-", "--access-logformat", "ACCESS %(p)s %({x-test-id}i)s %(s)s")


ACCESS_LINE = re.compile(r"^ACCESS <(\d+)> (\S+) (\d{3})$", re.MULTILINE)


def pyea_env(cache_dir: Path, provider: FakeProvider, **settings: str) -> dict[str, str]:
    return {"CACHE_DIR": str(cache_dir), "LOG_LEVEL": "info", "API_ENDPOINT": provider.url, "EA_WORKERS": "2",
            "RATE_LIMIT_ENABLED": "false", **settings}


def start_gunicorn(env: Mapping[str, str], log_path: Path, args: tuple[str, ...] = ("app:create_app()",),
                   ) -> GunicornProcess:
    """``python -m gunicorn <args>``, returned once every worker has answered a request.

    Waiting for every worker (not just the first to answer /health) matters: gunicorn loses a SIGTERM that
    reaches a worker before it has installed its signal handlers, and then stops only after graceful_timeout.
    """
    server = GunicornProcess(env, args=(*args, *ACCESS_LOG_ARGS), log_path=log_path)
    server.start()
    try:
        wait_until_workers_serve(server, log_path, int(env["EA_WORKERS"]))
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def gunicorn(env: Mapping[str, str], log_path: Path, args: tuple[str, ...] = ("app:create_app()",),
             ) -> Iterator[GunicornProcess]:
    """A started gunicorn; on a clean exit of the block it must stop with code 0 and log no traceback."""
    server = start_gunicorn(env, log_path, args)
    try:
        yield server
    except BaseException:
        server.stop()
        raise
    code = server.stop()
    log = log_path.read_text(errors="replace")
    assert code == 0, f"gunicorn exited with {code}: {log[-4000:]}"
    assert "Traceback" not in log, log[-4000:]


def post(url: str, body: Any = NODE_REQUEST, headers: Mapping[str, str] | None = None) -> requests.Response:
    # "Connection: close": a Response object keeps its socket open, and a kept-alive connection holds a stopping
    # gunicorn worker up for 2 s (gthread's STOP_KEEPALIVE_LINGER); it also spreads requests over the workers.
    return requests.post(url, json=body, headers={**CLOSE, **(headers or {})}, timeout=TIMEOUT_S)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (RFC 8259); a Chainlink node cannot parse it")


def strict_json(response: requests.Response) -> Any:
    """The body as standard JSON: unlike ``response.json()``, NaN and Infinity are refused, as the node does."""
    return json.loads(response.content, parse_constant=_not_json)


def assert_node_answer(response: requests.Response, cache_hit: bool | None = None) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = strict_json(response)
    assert body["jobRunID"] == "7"
    assert isinstance(body["result"], int | float) and not isinstance(body["result"], bool)
    assert body["result"] == body["data"]["result"] == ETH_USD
    assert body["statusCode"] == 200
    if cache_hit is not None:
        assert body["meta"]["cacheHit"] is cache_hit, body
    return body


def served_by(log_path: Path, prefix: str, expected: int) -> dict[str, int]:
    """x-test-id → pid of the worker that answered, for requests tagged ``prefix…`` (needs ``ACCESS_LOG_ARGS``);
    waits until ``expected`` of them are in the log."""
    deadline = time.monotonic() + 5
    while True:
        found = {tag: int(pid) for pid, tag, _ in ACCESS_LINE.findall(log_path.read_text(errors="replace"))
                 if tag.startswith(prefix)}
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def worker_pids(log_path: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log_path.read_text(errors="replace"))]


def assert_json_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = strict_json(response)
    assert isinstance(body, dict), body
    assert body["statusCode"] == status
    assert isinstance(body["error"]["name"], str) and body["error"]["name"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def leader_pid(cache_dir: Path) -> int | None:
    with diskcache.Cache(str(cache_dir / "pyea-leases")) as leases:
        holder = leases.get("background")
    return int(holder.split(":")[1]) if holder else None


def max_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def hammer(urls: list[str], feeds: int, seconds: float, clients: int) -> Counter[int]:
    """``clients`` threads posting random ``coin-<n>`` feeds round-robin to ``urls`` for ``seconds``; the
    status codes they got."""
    deadline = time.monotonic() + seconds

    def client(seed: int) -> Counter[int]:
        rng, seen = random.Random(seed), Counter()
        with requests.Session() as session:
            while time.monotonic() < deadline:
                body = {"id": "1", "data": {"coinid": f"coin-{rng.randrange(feeds)}", "quote": "USD"}}
                seen[session.post(urls[seed % len(urls)], json=body, timeout=30).status_code] += 1
        return seen

    statuses: Counter[int] = Counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for seen in pool.map(client, range(clients)):
            statuses.update(seen)
    return statuses


def wait_until_workers_serve(server: GunicornProcess, log_path: Path, workers: int) -> set[int]:
    """Pids of the workers, once each has answered a request (needs ``ACCESS_LOG_ARGS``)."""
    deadline = time.monotonic() + 15
    sent = 0
    while True:
        sent += 1
        response = requests.get(f"{server.url}/health", headers={**CLOSE, "x-test-id": f"warmup-{sent}"},
                                timeout=TIMEOUT_S)
        assert response.status_code == 200
        serving = set(served_by(log_path, "warmup-", sent).values())
        if len(serving) >= workers:
            return serving
        assert time.monotonic() < deadline, f"only {serving} of {workers} workers answered {sent} requests"
        time.sleep(0.02)

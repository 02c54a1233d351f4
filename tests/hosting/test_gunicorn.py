"""pyea under the real gunicorn, started the ways an operator starts it.

Every test runs ``python -m gunicorn`` from the repository (so ``gunicorn.conf.py`` is read) against a fake
CoinGecko on 127.0.0.1 and checks what a Chainlink node would see: status codes, JSON bodies and how many
provider calls (credits) were spent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from app.devkit.fake_http import Call, FakeProvider, Reply, free_port
from app.devkit.testing import REPO, GunicornProcess
from tests.serving import (
    CLOSE,
    NODE_REQUEST,
    TIMEOUT_S,
    assert_json_error,
    assert_node_answer,
    gunicorn,
    post,
    pyea_env,
    served_by,
    start_gunicorn,
    worker_pids,
)

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

# How the app is named on the command line; with none, gunicorn takes ``wsgi_app`` from gunicorn.conf.py.
# (Every start also gets ACCESS_LOG_ARGS, which only add an access log.)
START_FORMS = {
    "app:create_app()": ("app:create_app()",),
    "app:create_app": ("app:create_app",),
    "gunicorn.conf.py": (),
}


# --------------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


# ------------------------------------------------------------------------------------- 1. the ways to start


@pytest.mark.parametrize("args", START_FORMS.values(), ids=START_FORMS.keys())
def test_each_way_to_start_answers_the_node(tmp_path: Path, provider: FakeProvider, args: tuple[str, ...]) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="2")
    with gunicorn(env, tmp_path / "gunicorn.log", args) as server:
        assert_node_answer(post(server.url), cache_hit=False)
        assert provider.count("/simple/price") == 1

        # Served again from the cache, without spending a second provider call.
        assert_node_answer(post(server.url), cache_hit=True)
        assert provider.count() == 1

        # The app is built once per worker, not per request: its uptime keeps growing across requests
        # (a keep-alive session stays on one worker; an app rebuilt per request would always report ~0 s).
        with requests.Session() as session:
            first = session.get(f"{server.url}/status", timeout=TIMEOUT_S)
            time.sleep(0.5)
            second = session.get(f"{server.url}/status", headers=CLOSE, timeout=TIMEOUT_S)
        assert first.status_code == second.status_code == 200
        assert second.json()["uptimeSeconds"] >= first.json()["uptimeSeconds"] + 0.3, (first.json()["uptimeSeconds"],
                                                                                      second.json()["uptimeSeconds"])
    assert len(worker_pids(tmp_path / "gunicorn.log")) == 2


# --------------------------------------------------------------------------------------------- 2. one worker


def test_one_worker_fully_works(tmp_path: Path, provider: FakeProvider) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="1")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        health = requests.get(f"{server.url}/health", headers=CLOSE, timeout=TIMEOUT_S)
        assert health.status_code == 200 and health.json()["message"] == "OK"
        status = requests.get(f"{server.url}/status", headers=CLOSE, timeout=TIMEOUT_S)
        assert status.status_code == 200
        configuration = {row["name"]: row["value"] for row in status.json()["configuration"]}
        assert configuration["EA_WORKERS"] == 1

        assert_node_answer(post(server.url), cache_hit=False)
        assert_node_answer(post(server.url), cache_hit=True)
        assert provider.count() == 1

        btc = post(server.url, {"id": "8", "data": {"base": "BTC", "quote": "USD"}})
        assert btc.status_code == 200 and btc.json()["result"] == 97000.0
        link = requests.get(server.url, params={"from": "LINK", "to": "USD"}, headers=CLOSE,
                            timeout=TIMEOUT_S)  # curl-style GET
        assert link.status_code == 200 and link.json()["result"] == 14.25
        marketcap = post(f"{server.url}/coingecko", {"id": "9", "data": {"endpoint": "marketcap", "base": "ETH",
                                                                          "quote": "EUR"}})
        assert marketcap.status_code == 200 and marketcap.json()["result"] == 2800.0 * 1e6
        dominance = post(server.url, {"id": "10", "data": {"endpoint": "dominance", "market": "BTC"}})
        assert dominance.status_code == 200 and dominance.json()["result"] == 56.1
        assert provider.count("/simple/price") == 4 and provider.count("/global") == 1  # one call per feed
    assert len(worker_pids(tmp_path / "gunicorn.log")) == 1


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_address_can_be_bound(tmp_path: Path, provider: FakeProvider, host: str) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="1", EA_HOST=host)
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        assert server.url.startswith("http://[::1]:")
        assert_node_answer(post(server.url), cache_hit=False)
        metrics = requests.get(f"http://[::1]:{server.metrics_port}/metrics", headers=CLOSE, timeout=TIMEOUT_S)
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text


def test_a_burst_of_keep_alive_connections_is_shared_by_the_workers(tmp_path: Path, provider: FakeProvider) -> None:
    """gthread keeps a connection on the worker that accepted it; with plain gthread one worker often won a whole
    burst, and one core then served every request on those connections."""
    import http.client

    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="2")
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, log_path) as server:
        post(server.url)  # cached: the burst below is only hits
        port = int(server.url.rsplit(":", 1)[1])
        for burst in range(5):
            connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S) for _ in range(16)]
            for connection in connections:
                connection.connect()
            for i, connection in enumerate(connections):
                connection.request("POST", "/", json.dumps(NODE_REQUEST), {"content-type": "application/json",
                                                                         "x-test-id": f"b{burst}-{i:02d}"})
            for connection in connections:
                assert connection.getresponse().read()
                connection.close()
            per_worker = Counter(served_by(log_path, f"b{burst}-", 16).values())
            assert sum(per_worker.values()) == 16 and min(per_worker.values()) >= 4 and len(per_worker) == 2, \
                f"burst {burst}: connections per worker {sorted(per_worker.values())}"


# ---------------------------------------------------------------------------- 3. coalescing and the cache TTL

COALESCING_CASES = {
    "1 worker x 8 threads": {"EA_WORKERS": "1", "EA_THREADS": "8"},
    "2 workers, default settings (machine lock)": {"EA_WORKERS": "2", "EA_THREADS": "8"},
    "2 workers, cross-instance coalescing on": {"EA_WORKERS": "2", "EA_THREADS": "8",
                                                "REQUEST_COALESCING_ENABLED": "true"},
}


@pytest.mark.parametrize("settings", COALESCING_CASES.values(), ids=COALESCING_CASES.keys())
def test_200_concurrent_cold_requests_cost_one_provider_call(tmp_path: Path, provider: FakeProvider,
                                                             settings: dict[str, str]) -> None:
    log_path = tmp_path / "gunicorn.log"
    env = pyea_env(tmp_path / "cache", provider, **settings)
    clients = 200
    workers = int(settings["EA_WORKERS"])
    with gunicorn(env, log_path) as server:
        pids = set(worker_pids(log_path))
        assert len(pids) == workers
        provider.delay_s = 0.3  # the first call is still in flight when the other 199 requests arrive
        barrier = threading.Barrier(clients)

        def one(index: int) -> requests.Response:
            barrier.wait()
            return post(server.url, headers={"x-test-id": f"burst-{index}"})

        with ThreadPoolExecutor(max_workers=clients) as pool:
            responses = list(pool.map(one, range(clients)))
        for response in responses:
            assert_node_answer(response)
        assert provider.count("/simple/price") == 1
        # Every worker answered part of the burst (with 2 workers: cross-process coalescing was exercised).
        burst = Counter(served_by(log_path, "burst-", clients).values())
        assert set(burst) == pids and sum(burst.values()) == clients, burst

        # Within the TTL the same request is a cache hit and costs nothing.
        provider.delay_s = 0.0
        assert_node_answer(post(server.url), cache_hit=True)
        assert provider.count() == 1

        # maxAge -1 skips the cache read: each (sequential) request is one provider call.
        provider.reset()
        bypass = {"id": "7", "data": {"from": "ETH", "to": "USD", "maxAge": -1}}
        for expected_calls in (1, 2, 3):
            assert_node_answer(post(server.url, bypass), cache_hit=False)
            assert provider.count("/simple/price") == expected_calls


# -------------------------------------------------------------------------------- 4. one cache, many processes


def test_cache_survives_restart_and_is_shared_with_another_process(tmp_path: Path, provider: FakeProvider) -> None:
    cache_dir = tmp_path / "cache"
    env = pyea_env(cache_dir, provider, EA_WORKERS="1")
    with gunicorn(env, tmp_path / "first.log") as first:
        fetched = assert_node_answer(post(first.url), cache_hit=False)
    assert first.proc is not None and first.proc.returncode == 0
    assert provider.count() == 1

    # An entirely new gunicorn (new master, new worker, new port) on the same CACHE_DIR.
    with gunicorn(env, tmp_path / "second.log") as second:
        assert second.port != first.port
        again = assert_node_answer(post(second.url), cache_hit=True)
    assert provider.count() == 1
    assert again["timestamps"] == fetched["timestamps"]  # the very entry the first process stored


def test_value_cached_by_one_worker_is_served_by_the_other(tmp_path: Path, provider: FakeProvider) -> None:
    log_path = tmp_path / "gunicorn.log"
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="2")
    with gunicorn(env, log_path) as server:
        pids = set(worker_pids(log_path))
        assert_node_answer(post(server.url, headers={"x-test-id": "fetch"}), cache_hit=False)
        fetcher = served_by(log_path, "fetch", 1)["fetch"]
        (other,) = pids - {fetcher}

        # New connection per request: gunicorn spreads them over both workers. Stop once the worker that did
        # not fetch has answered a few times (bounded, so a broken spread fails instead of hanging).
        sent = 0
        served: Counter[int] = Counter()
        while sent < 40 or (served[other] < 5 and sent < 300):
            sent += 1
            response = post(server.url, headers={"x-test-id": f"hit-{sent}"})
            assert_node_answer(response, cache_hit=True)
            if sent % 20 == 0:
                served = Counter(served_by(log_path, "hit-", sent).values())
        served = Counter(served_by(log_path, "hit-", sent).values())
        assert sum(served.values()) == sent
        assert served[other] >= 5, served
        assert provider.count() == 1


# ------------------------------------------------------------------------------------------ 5. bad settings


@pytest.mark.parametrize("args", START_FORMS.values(), ids=START_FORMS.keys())
def test_bad_settings_stop_startup_with_one_message(tmp_path: Path, args: tuple[str, ...]) -> None:
    bad = {"EA_PORT": "abc", "CACHE_MAX_AGE": "-5", "API_TIMEOUT": "0", "CACHE_TYPE": "memcached",
           "RATE_LIMIT_API_TIER": "gold"}
    env = {**os.environ, "EA_HOST": "127.0.0.1", "CACHE_DIR": str(tmp_path / "cache"), "LOG_LEVEL": "info",
           **bad}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gunicorn", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert elapsed < 10, elapsed
    for name in bad:
        assert name in output, (name, output)
    assert output.count("Invalid configuration") == 1, output
    assert "Traceback" not in output, output
    assert "Booting worker" not in output, output


# ------------------------------------------------------------------------------------------------ 6. SIGTERM


def test_sigterm_stops_cleanly(tmp_path: Path, provider: FakeProvider) -> None:
    log_path = tmp_path / "gunicorn.log"
    server = start_gunicorn(pyea_env(tmp_path / "cache", provider, EA_WORKERS="2"), log_path)
    try:
        assert_node_answer(post(server.url), cache_hit=False)
        with requests.Session() as idle:  # an open keep-alive connection must not hold the shutdown up
            assert idle.get(f"{server.url}/health", timeout=TIMEOUT_S).status_code == 200
            started = time.monotonic()
            code = server.stop()
            elapsed = time.monotonic() - started
    finally:
        server.stop()
    log = log_path.read_text(errors="replace")
    assert code == 0, log
    assert elapsed < 10, elapsed
    assert "Traceback" not in log, log
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/health", timeout=2)


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path, provider: FakeProvider) -> None:
    log_path = tmp_path / "gunicorn.log"
    server = start_gunicorn(pyea_env(tmp_path / "cache", provider, EA_WORKERS="1"), log_path)
    try:
        provider.delay_s = 1.0
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(post, server.url)
            deadline = time.monotonic() + 5
            while provider.count() == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert provider.count() == 1
            code = server.stop()
            assert_node_answer(in_flight.result(), cache_hit=False)
    finally:
        server.stop()
    log = log_path.read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log, log


# ------------------------------------------------------------------- 7. no 500 and no HTML, whatever arrives

JSON = {"content-type": "application/json"}

BAD_REQUESTS: dict[str, tuple[str, str, bytes, dict[str, str], int]] = {
    # id: (method, path, body, headers, expected status)
    "empty body": ("POST", "/", b"", JSON, 400),
    "empty body, no content type": ("POST", "/", b"", {}, 400),
    "array": ("POST", "/", b"[]", JSON, 400),
    "string": ("POST", "/", b'"x"', JSON, 400),
    "null": ("POST", "/", b"null", JSON, 400),
    "invalid JSON": ("POST", "/", b"{bad", JSON, 400),
    "NaN": ("POST", "/", b'{"id": NaN, "data": {"from": "ETH", "to": "USD"}}', JSON, 400),
    "not UTF-8": ("POST", "/", b'{"data": {"from": "\xff\xfe", "to": "USD"}}', JSON, 400),
    "deeply nested": ("POST", "/", b"[" * 100_000 + b"]" * 100_000, JSON, 400),
    "no data": ("POST", "/", b"{}", JSON, 400),
    "data not an object": ("POST", "/", b'{"data": "ETH/USD"}', JSON, 400),
    "missing base": ("POST", "/", b'{"data": {"quote": "USD"}}', JSON, 400),
    "base is a number": ("POST", "/", b'{"data": {"base": 5, "quote": "USD"}}', JSON, 400),
    "base given twice": ("POST", "/", b'{"data": {"from": "ETH", "coin": "BTC", "quote": "USD"}}', JSON, 400),
    "maxAge not a number": ("POST", "/", b'{"data": {"from": "ETH", "to": "USD", "maxAge": "soon"}}', JSON, 400),
    "overrides not an object": ("POST", "/", b'{"data": {"from": "ETH", "to": "USD", "overrides": 1}}', JSON, 400),
    "unknown endpoint": ("POST", "/", b'{"endpoint": "nope"}', JSON, 404),
    "unknown endpoint in data": ("POST", "/", b'{"data": {"endpoint": "nope"}}', JSON, 404),
    "2 MiB body": ("POST", "/", b'{"data": {"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}}', JSON, 413),
    "text/plain JSON": ("POST", "/", json.dumps(NODE_REQUEST).encode(), {"content-type": "text/plain"}, 400),
    "form content type": ("POST", "/", b"from=ETH&to=USD",
                          {"content-type": "application/x-www-form-urlencoded"}, 400),
    "unknown path": ("POST", "/nope", json.dumps(NODE_REQUEST).encode(), JSON, 404),
    "wrong method": ("PUT", "/", json.dumps(NODE_REQUEST).encode(), JSON, 405),
}


@pytest.fixture(scope="module")
def input_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GunicornProcess, FakeProvider]]:
    """One gunicorn for the bad-input matrix: none of these requests may reach the provider or the cache."""
    tmp = tmp_path_factory.mktemp("bad-input")
    with FakeProvider() as fake, gunicorn(pyea_env(tmp / "cache", fake, EA_WORKERS="1"), tmp / "gunicorn.log",
                                          ) as server:
        yield server, fake


@pytest.mark.parametrize("method, path, body, headers, status", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_is_a_json_error_not_500_or_html(input_server: tuple[GunicornProcess, FakeProvider], method: str,
                                                   path: str, body: bytes, headers: dict[str, str],
                                                   status: int) -> None:
    server, fake = input_server
    fake.reset()
    response = requests.request(method, server.url + path, data=body, headers={**CLOSE, **headers},
                                timeout=TIMEOUT_S)
    assert_json_error(response, status)
    assert fake.count() == 0  # a bad request costs no credits


def test_job_run_id_is_echoed_as_valid_json(input_server: tuple[GunicornProcess, FakeProvider]) -> None:
    server, _ = input_server
    response = requests.post(server.url, data=b'{"id": 1e999, "data": {}}', headers={**CLOSE, **JSON},
                             timeout=TIMEOUT_S)
    assert_json_error(response, 400)


def test_chunked_body_over_the_limit_is_413(input_server: tuple[GunicornProcess, FakeProvider]) -> None:
    server, _ = input_server
    body = b'{"id": "7", "data": {"from": "ETH", "to": "USD", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: Transfer-Encoding
    response = requests.post(server.url, data=chunks, headers={**CLOSE, **JSON}, timeout=TIMEOUT_S)
    assert_json_error(response, 413)


def _provider_500(call: Call) -> Reply:
    return Reply(500, {"error": "internal"})


def _provider_broken_json(call: Call) -> Reply:
    return Reply(200, b'{"ethereum": {"usd": 30')


def _provider_nan(call: Call) -> Reply:
    return Reply(200, b'{"ethereum": {"usd": NaN, "last_updated_at": 1763699999}}')


def _provider_overflow(call: Call) -> Reply:
    return Reply(200, b'{"ethereum": {"usd": 1e999, "last_updated_at": 1763699999}}')


ETH_USD_DATA = {"from": "ETH", "to": "USD"}
PROVIDER_FAILURES = [
    # responder (None: the fake's CoinGecko), provider delay s, request data, status, providerStatusCode
    pytest.param(_provider_500, 0.0, ETH_USD_DATA, 502, 500, id="provider 500"),
    pytest.param(_provider_broken_json, 0.0, ETH_USD_DATA, 502, 200, id="malformed JSON"),
    pytest.param(None, 1.0, ETH_USD_DATA, 504, None, id="provider timeout"),
    pytest.param(None, 0.0, {"from": "DOGE", "to": "USD"}, 502, 200, id="pair missing"),
    pytest.param(_provider_nan, 0.0, ETH_USD_DATA, 502, 200, id="price NaN"),
    pytest.param(_provider_overflow, 0.0, ETH_USD_DATA, 502, 200, id="price 1e999"),
]


@pytest.mark.parametrize("responder, delay_s, data, status, provider_status", PROVIDER_FAILURES)
def test_provider_failures_are_json_errors(tmp_path: Path, provider: FakeProvider, responder: Any, delay_s: float,
                                           data: dict[str, str], status: int, provider_status: int | None) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="1", RETRY="0", CACHE_ERROR_MAX_AGE="0",
                   API_TIMEOUT="300")
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        provider.respond(responder)
        provider.delay_s = delay_s
        for attempt in (1, 2):  # errors are not cached (CACHE_ERROR_MAX_AGE=0): each request asks again
            started = time.monotonic()
            response = requests.post(server.url, data=json.dumps({"id": "7", "data": data}),
                                     headers={**CLOSE, **JSON}, timeout=TIMEOUT_S)
            elapsed = time.monotonic() - started
            body = assert_json_error(response, status)
            assert body["jobRunID"] == "7"
            assert body.get("providerStatusCode") == provider_status, body
            assert provider.count("/simple/price") == attempt
            if delay_s:
                assert elapsed < delay_s, elapsed  # gave up at API_TIMEOUT, did not wait for the provider
        if data["from"] == "DOGE":
            assert "dogecoin" in body["error"]["message"]


def test_cut_off_and_broken_bodies_are_400(input_server: tuple[GunicornProcess, FakeProvider]) -> None:
    """Raw sockets: a body shorter than its Content-Length, and malformed chunked encoding."""
    import socket

    server, fake = input_server
    broken = {
        "cut off": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                   b"Connection: close\r\n\r\n{\"data\": {}}",
        "bad chunk": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    }
    for name, raw in broken.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status_line = answer.split(b"\r\n", 1)[0]
        assert not status_line.startswith(b"HTTP/1.1 5"), (name, answer[:300])
    assert fake.count() == 0


def test_factory_as_wsgi_callable_without_the_config_file(tmp_path: Path, provider: FakeProvider) -> None:
    """``gunicorn -c /dev/null app:create_app``: no post_worker_init hook, so the factory itself is called per
    request and must serve every request from one app built on first use."""
    port = free_port()
    with GunicornProcess(pyea_env(tmp_path / "cache", provider), port=port, log_path=tmp_path / "gunicorn.log",
                         args=("-c", "/dev/null", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}",
                               "app:create_app")) as server:
        assert_node_answer(post(server.url), cache_hit=False)
        with requests.Session() as session:
            first = session.get(f"{server.url}/status", timeout=TIMEOUT_S).json()
            assert_node_answer(session.post(server.url, json=NODE_REQUEST, timeout=TIMEOUT_S), cache_hit=True)
            time.sleep(0.3)
            second = session.get(f"{server.url}/status", headers=CLOSE, timeout=TIMEOUT_S).json()
        assert second["uptimeSeconds"] >= first["uptimeSeconds"] + 0.2
        assert provider.count() == 1
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text(errors="replace")

"""Identical concurrent work happens once: threads of a process, and processes sharing a CACHE_DIR, always share
one provider call."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.devkit.fake_http import Reply
from app.fetch.coalescing import SingleFlight


def test_concurrent_cold_requests_cost_one_call(make_app, provider):
    app = make_app()
    provider.delay_s = 0.3

    def ask(i: int):
        response = app.test_client().post("/", json={"id": str(i), "data": {"base": "ETH", "quote": "USD"}})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(ask, range(64)))
    assert provider.count() == 1
    assert all(status == 200 and body["result"] == 3021.5 for status, body in answers)
    assert sorted(body["jobRunID"] for _, body in answers) == sorted(str(i) for i in range(64))


def test_apps_sharing_a_cache_dir_share_one_cold_fetch_without_waiting_long(make_app, provider, tmp_path):
    """Two apps on one CACHE_DIR stand for two gunicorn workers (the real ones: test_gunicorn.py): with default
    settings the second waits on the machine lock and answers from the cache as soon as the first has stored."""
    shared = str(tmp_path / "shared-cache")
    apps = [make_app(CACHE_DIR=shared), make_app(CACHE_DIR=shared)]
    provider.delay_s = 0.3
    barrier = threading.Barrier(32)

    def ask(i: int):
        barrier.wait()
        started = time.monotonic()
        response = apps[i % 2].test_client().post("/", json={"id": str(i), "data": {"base": "ETH", "quote": "USD"}})
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, range(32)))
    assert provider.count() == 1
    assert all(status == 200 for status, _ in answers)
    # Not a polling interval late: the slowest answer follows the provider's 0.3 s closely.
    assert max(seconds for _, seconds in answers) < 0.3 + 0.15, answers


def test_concurrent_failures_are_shared_too(make_app, provider):
    app = make_app(RETRY="0", CACHE_ERROR_MAX_AGE="0")
    provider.delay_s = 0.3
    provider.respond(lambda call: Reply(500, {}))
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: app.test_client().post(
            "/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code, range(16)))
    assert statuses == [502] * 16
    assert provider.count() == 1


def test_single_flight_forgets_finished_calls():
    flight = SingleFlight()
    calls = []
    assert flight.run("k", lambda: calls.append(1) or "a") == "a"
    assert flight.run("k", lambda: calls.append(2) or "b") == "b"
    assert calls == [1, 2] and len(flight) == 0
    with pytest.raises(ValueError):
        flight.run("k", lambda: (_ for _ in ()).throw(ValueError("x")))
    assert len(flight) == 0


def test_single_flight_shares_one_outcome_among_waiters():
    flight = SingleFlight()
    started, release = threading.Event(), threading.Event()
    count = []

    def slow():
        count.append(1)
        started.set()
        release.wait(5)
        return object()

    with ThreadPoolExecutor(8) as pool:
        leader = pool.submit(flight.run, "k", slow)
        started.wait(5)
        followers = [pool.submit(flight.run, "k", slow) for _ in range(7)]
        while not all(f.running() for f in followers):
            time.sleep(0.01)
        time.sleep(0.1)  # let them reach run() and join the leader's call
        release.set()
        results = {id(f.result()) for f in [leader, *followers]}
    assert len(count) == 1 and len(results) == 1


def test_a_request_that_missed_just_before_a_fetch_finished_uses_its_value(make_app, provider):
    """The late thread of a burst: it saw no entry, then the leader's flight ended before it joined."""
    app = make_app()
    adapter = app.extensions["pyea"].default
    endpoint = adapter.endpoints["crypto"]
    params, key, _, _ = endpoint.resolve({"base": "ETH", "quote": "USD"})
    assert app.test_client().post("/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code == 200
    assert adapter.fetch(endpoint, params, key, 90000, max_age=0).is_success
    assert provider.count() == 1  # the late request found the fresh value instead of calling again
    adapter.fetch(endpoint, params, key, 90000, max_age=-1)
    assert provider.count() == 2  # a request that wants a fresh value (maxAge < 0) still gets one

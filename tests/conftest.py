"""Fixtures: a fake provider on loopback, and apps built with per-test settings over it.

Tests that start a process (gunicorn, Redis, Prometheus, the CLI, any Python) are marked ``process``; one that
is not and tries is stopped with a message saying so, so ``-m "not process"`` stays the fast loop it claims to
be. Quick tools (``uname``, ``ps``) are not counted."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask

from app.devkit.fake_http import FakeProvider
from app.devkit.pytest_plugin import Outputs
from app.devkit.testing import GunicornProcess
from tests.servers import RedisServer


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    return fake_provider


@pytest.fixture
def make_app(pyea_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """``make_app(CACHE_MAX_AGE="1000", ...)``: the test kit's ``pyea_app``."""
    return pyea_app


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real Redis for the session; tests that stop it start their own."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def client(make_app):
    return make_app().test_client()


# ------------------------------------------------------------------- no secret ever leaves pyea, suite-wide


@pytest.fixture(autouse=True)
def pyea_outputs(pyea_outputs: Outputs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Outputs]:
    """The test kit's check (no secret a test set appears in a response or log line of an app it built) extended
    to every gunicorn a test starts: its responses (``/status`` and ``/metrics`` included) and its log."""
    outputs = pyea_outputs
    start, stop, send = GunicornProcess.start, GunicornProcess.stop, requests.Session.send

    def start_and_watch(server: GunicornProcess, *args, **kwargs):
        outputs.remember_secrets({k: v for k, v in server.env.items() if os.environ.get(k) != v})
        outputs.ports |= {server.port, server.metrics_port}
        return start(server, *args, **kwargs)

    def stop_and_read_log(server: GunicornProcess, *args, **kwargs):
        code = stop(server, *args, **kwargs)
        if server.log_path and server.log_path.exists():
            outputs.texts.append((f"gunicorn log {server.log_path.name}", server.log_path.read_text(errors="replace")))
        return code

    def send_and_record(session: requests.Session, request: requests.PreparedRequest, **kwargs):
        response = send(session, request, **kwargs)
        if urlsplit(request.url).port in outputs.ports:
            outputs.texts.append((f"response to {request.method} {request.url}",
                                  f"{dict(response.headers)} {response.text}"))
        return response

    monkeypatch.setattr(GunicornProcess, "start", start_and_watch)
    monkeypatch.setattr(GunicornProcess, "stop", stop_and_read_log)
    monkeypatch.setattr(requests.Session, "send", send_and_record)
    yield outputs


# ------------------------------------------------------------- only tests marked "process" start processes


#: Programs that count as "a process" besides Python itself (which runs gunicorn, the CLI, pytest and ruff).
SERVERS = {"redis-server", "redis-sentinel", "prometheus", "anvil"}


@contextlib.contextmanager
def _processes_refused(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("process") is not None:
        yield
        return
    real_init = subprocess.Popen.__init__

    def refuse(popen: subprocess.Popen, args, *rest, **kwargs) -> None:
        program = str(args if isinstance(args, str | os.PathLike) else args[0])
        if os.path.basename(program) in SERVERS or program == sys.executable:
            raise RuntimeError(f"{item.nodeid} starts {program}: mark it @pytest.mark.process")
        real_init(popen, args, *rest, **kwargs)

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = real_init  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        yield

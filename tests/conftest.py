"""Fixtures: a fake provider on loopback, and apps built with per-test settings over it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.settings import secret_values
from app.testing import FakeProvider, GunicornProcess
from tests.servers import RedisServer


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    return fake_provider


@pytest.fixture
def make_app(pyea_app: Callable[..., Flask], pyea_outputs: Outputs) -> Callable[..., Flask]:
    """``make_app(CACHE_MAX_AGE="1000", ...)``: the test kit's ``pyea_app``, watched for leaked secrets."""

    def build(**env: str) -> Flask:
        app = pyea_app(**env)
        pyea_outputs.watch_app(app, env)
        return app

    return build


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


class Outputs:
    """What one test saw pyea say (responses, log lines) and the secret values that test configured."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.texts: list[tuple[str, str]] = []
        self.ports: set[int] = set()

    def remember_secrets(self, env: Mapping[str, str]) -> None:
        self.secrets |= set(secret_values(env))

    def watch_app(self, app: Flask, env: Mapping[str, str]) -> None:
        self.remember_secrets(env)
        app.extensions["test-outputs"] = self
        app.test_client_class = RecordingClient
        formatter = logging.getLogger("pyea").handlers[0].formatter
        logging.getLogger("pyea").addHandler(RecordingHandler(self, formatter))

    def leaks(self) -> list[str]:
        return [f"{secret!r} in {where}" for where, text in self.texts for secret in self.secrets if secret in text]


class RecordingClient(FlaskClient):
    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        outputs = self.application.extensions["test-outputs"]
        outputs.texts.append((f"response to {response.request.method} {response.request.path}",
                              f"{dict(response.headers)} {response.get_data(as_text=True)}"))
        return response


class RecordingHandler(logging.Handler):
    def __init__(self, outputs: Outputs, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.outputs = outputs
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.outputs.texts.append(("a log line", self.format(record)))


@pytest.fixture(autouse=True)
def pyea_outputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outputs]:
    """Every test is checked: no secret it set appears in a response of an app built by ``make_app``, a
    response of a gunicorn it started (``/status`` and ``/metrics`` included), or a log line of either."""
    outputs = Outputs()
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
    assert not outputs.leaks(), "secrets left pyea: " + "; ".join(outputs.leaks()[:5])

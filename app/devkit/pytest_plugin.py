"""pytest fixtures for adapter tests, installed with pyea (a ``pytest11`` entry point): nothing to import.

An adapter's tests in ``adapters/<name>/tests/`` ask for ``pyea_client`` and ``fake_provider`` and get an app
serving that adapter over a real loopback server that plays the provider::

    def test_price(pyea_client, fake_provider):
        fake_provider.on("/v1/prices", {"ETH": {"usd": 3021.5}})
        assert node_request(pyea_client, {"base": "ETH", "quote": "USD"}).get_json()["result"] == 3021.5

Apps are built with the framework's real settings parsing, cache and background, in a fresh cache directory
per test, with the provider's rate limit off (tests make more calls than a free tier allows). Every test is also
checked for leaked secrets: a test fails when a secret it configured (``API_KEY``, anything named like a key,
password or token) appears in a response or a log line of an app ``pyea_app`` built for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.core.setting_specs import secret_values
from app.devkit.fake_http import FakeProvider
from app.devkit.fake_ws import FakeWebSocketProvider


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
    def open(self, *args: Any, **kwargs: Any) -> Any:
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
def pyea_outputs() -> Iterator[Outputs]:
    """Fails the test if a secret it configured left an app ``pyea_app`` built (responses, log lines)."""
    outputs = Outputs()
    yield outputs
    assert not outputs.leaks(), "secrets left pyea: " + "; ".join(outputs.leaks()[:5])


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A recording, scriptable HTTP provider on 127.0.0.1 (``on(path, answer)``, ``calls``, ``delay_s``)."""
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake_ws_provider() -> Iterator[FakeWebSocketProvider]:
    """A scriptable websocket provider on 127.0.0.1 (``on_message(fn)``, ``push``, ``drop``, ``received``)."""
    with FakeWebSocketProvider() as fake:
        yield fake


def adapter_of(test_file: Path) -> str | None:
    """``adapters/<name>/…/test_x.py`` → ``<name>``: an adapter's tests serve that adapter by default."""
    parts = test_file.resolve().parts
    for index in range(len(parts) - 2, 0, -1):
        if parts[index - 1] == "adapters":
            return parts[index]
    return None


@pytest.fixture
def pyea_app(request: pytest.FixtureRequest, fake_provider: FakeProvider, tmp_path: Path,
             pyea_outputs: Outputs) -> Iterator[Callable[..., Flask]]:
    """``pyea_app(**env)`` builds an app over ``fake_provider`` (its ``API_ENDPOINT``); ``ADAPTERS`` defaults to
    the adapter whose folder the test lives in. Every app built is closed after the test."""
    from app.hosting.factory import close_app, create_app

    built: list[Flask] = []
    default_adapter = adapter_of(Path(str(request.node.fspath)))

    def build(**env: str) -> Flask:
        settings = {"API_ENDPOINT": fake_provider.url, "CACHE_DIR": str(tmp_path / f"pyea-cache{len(built)}"),
                    "LOG_LEVEL": "error", "RATE_LIMIT_ENABLED": "false", **env}
        if default_adapter and "ADAPTERS" not in env:
            settings["ADAPTERS"] = default_adapter
        app = create_app(env=settings)
        pyea_outputs.watch_app(app, env)
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app)


@pytest.fixture
def pyea_client(pyea_app: Callable[..., Flask]) -> FlaskClient:
    """A test client of ``pyea_app()`` with the default settings."""
    return pyea_app().test_client()

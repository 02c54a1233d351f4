"""pytest fixtures for adapter tests, installed with pyea (a ``pytest11`` entry point): nothing to import.

An adapter's tests in ``adapters/<name>/tests/`` ask for ``pyea_client`` and ``fake_provider`` and get an app
serving that adapter over a real loopback server that plays the provider::

    def test_price(pyea_client, fake_provider):
        fake_provider.on("/v1/prices", {"ETH": {"usd": 3021.5}})
        assert node_request(pyea_client, {"base": "ETH", "quote": "USD"}).get_json()["result"] == 3021.5

Apps are built with the framework's real settings parsing, cache and background, in a fresh cache directory
per test, with the provider's rate limit off (tests make more calls than a free tier allows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.testing import FakeProvider, FakeWebSocketProvider


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
def pyea_app(request: pytest.FixtureRequest, fake_provider: FakeProvider,
             tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """``pyea_app(**env)`` builds an app over ``fake_provider`` (its ``API_ENDPOINT``); ``ADAPTERS`` defaults to
    the adapter whose folder the test lives in. Every app built is closed after the test."""
    from app import close_app, create_app

    built: list[Flask] = []
    default_adapter = adapter_of(Path(str(request.node.fspath)))

    def build(**env: str) -> Flask:
        settings = {"API_ENDPOINT": fake_provider.url, "CACHE_DIR": str(tmp_path / f"pyea-cache{len(built)}"),
                    "LOG_LEVEL": "error", "RATE_LIMIT_ENABLED": "false", **env}
        if default_adapter and "ADAPTERS" not in env:
            settings["ADAPTERS"] = default_adapter
        app = create_app(env=settings)
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app)


@pytest.fixture
def pyea_client(pyea_app: Callable[..., Flask]) -> FlaskClient:
    """A test client of ``pyea_app()`` with the default settings."""
    return pyea_app().test_client()

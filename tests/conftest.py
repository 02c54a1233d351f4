"""Fixtures: a fake provider on loopback, and apps built with per-test settings over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from app import close_app, create_app
from app.testing import FakeProvider


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def make_app(provider: FakeProvider, tmp_path) -> Iterator[Callable[..., Flask]]:
    """``make_app(CACHE_MAX_AGE="1000", ...)`` builds an app over the fake provider with a fresh cache; the
    provider's rate limit is off unless a test turns it on (tests make far more calls than a free tier allows)."""
    built: list[Flask] = []

    def build(**env: str) -> Flask:
        settings = {"API_ENDPOINT": provider.url, "CACHE_DIR": str(tmp_path / f"cache{len(built)}"),
                    "LOG_LEVEL": "error", "RATE_LIMIT_ENABLED": "false", **env}
        app = create_app(env=settings)
        built.append(app)
        return app

    yield build
    for app in built:
        close_app(app)


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def node_request(client, data: dict | None = None, **body):
    """POST the way a Chainlink bridge task does."""
    payload = {"id": "1", "data": data if data is not None else {"base": "ETH", "quote": "USD"}, **body}
    return client.post("/", json=payload)

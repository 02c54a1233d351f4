"""Everything an adapter author imports, from one place: ``from app.sdk import HttpTransport, Adapter, …``.

An adapter package (``adapters/<name>/``) and its tests use only this module, so the framework can move its
rooms around without breaking an adapter. The declarations and the transport contract are imported at once
(they are light: no I/O, no Flask); the test kit (fake providers, node requests, a real gunicorn) only when a
test first asks for it, so serving an adapter never loads it.

What to implement is documented on each class: ``HttpTransport.prepare_requests`` and ``parse_response`` for a
polled provider, ``WebSocketTransport`` or ``SseTransport`` for a streaming one; docs/adapters.md walks through
a whole adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.core.adapter import Adapter, Endpoint
from app.core.errors import (
    AdapterError,
    AdapterInputError,
    ConnectionFailedError,
    DataProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from app.core.setting_specs import SettingsError, Spec
from app.core.transports import (
    FeedOutcome,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    Sender,
    Success,
    Transport,
    now_ms,
)
from app.core.transports.http import HttpTransport
from app.core.transports.sse import SseTransport
from app.core.transports.stream import StreamingTransport
from app.core.transports.values import is_number, iso_ms, unix_s_ms
from app.core.transports.websocket import WebSocketTransport

if TYPE_CHECKING:
    from app.config import load_config
    from app.devkit.fake_http import Call, FakeHermes, FakeProvider, Reply, free_port
    from app.devkit.fake_ws import FakeTickerStream, FakeWebSocketProvider
    from app.devkit.testing import GunicornProcess, node_request, provider_sender, wait_for

#: The test kit, imported on first use (``from app.sdk import FakeProvider`` in a test).
_TEST_KIT = {
    **dict.fromkeys(("Call", "FakeHermes", "FakeProvider", "Reply", "free_port"), "app.devkit.fake_http"),
    **dict.fromkeys(("FakeTickerStream", "FakeWebSocketProvider"), "app.devkit.fake_ws"),
    **dict.fromkeys(("GunicornProcess", "node_request", "provider_sender", "wait_for"), "app.devkit.testing"),
    "load_config": "app.config",
}

__all__ = [
    "Adapter", "AdapterError", "AdapterInputError", "Call", "ConnectionFailedError", "DataProviderError",
    "Endpoint", "FakeHermes", "FakeProvider", "FakeTickerStream", "FakeWebSocketProvider", "FeedOutcome",
    "GunicornProcess", "HttpTransport", "Outcome", "Params", "ProviderRequest", "ProviderResponse",
    "ProviderTimeoutError", "RateLimitError", "Reply", "Sender", "ServiceUnavailableError", "SettingsError", "Spec",
    "SseTransport", "StreamingTransport", "Success", "Transport", "UnauthorizedError", "WebSocketTransport",
    "free_port", "is_number", "iso_ms", "load_config", "node_request", "now_ms", "provider_sender", "unix_s_ms",
    "wait_for",
]


def __getattr__(name: str) -> Any:
    module = _TEST_KIT.get(name)
    if module is None:
        raise AttributeError(f"module 'app.sdk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

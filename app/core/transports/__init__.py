"""The contract between the framework and the code that talks to a provider.

A transport turns a list of normalised request parameters into one outcome per parameter set: a ``Success`` or
an ``AdapterError``. The framework owns everything around that call (cache, coalescing, retries, timeouts), so
the foreground path and the background warmer can share one implementation.

The types a transport sends and receives live here too (``ProviderRequest``, ``ProviderResponse``, ``Sender``):
they are plain data, so a transport can be written and tested without the framework's HTTP client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from app.core.errors import AdapterError, DataProviderError
from app.core.messages import redacted_url, snippet
from app.core.strict_json import strict_json_loads


def now_ms() -> int:
    """Wall-clock milliseconds, as the node's ``timestamps`` carry them."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ProviderRequest:
    """One outbound call and the feeds (normalised params) whose values it will carry.

    Built by a transport (``HttpTransport.prepare_requests``); the framework sends it with the adapter's
    timeout, retries and rate limit, and joins identical requests in flight. Immutable, so safe to share between
    threads. ``params`` is the query string, ``json`` the body (sent as JSON when not None)."""

    params_list: tuple[Mapping[str, Any], ...]
    url: str
    method: str = "GET"
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None

    def key(self) -> str:
        """Identical requests (same method, URL, query and body) share one key, and so one call."""
        query = urlencode(sorted((self.params or {}).items()), doseq=True)
        body = "" if self.json is None else json.dumps(self.json, sort_keys=True)
        return f"{self.method} {self.url}?{query} {body}"

    def where(self) -> str:
        """Provider host and path for messages, without the query string (it may hold a key)."""
        return redacted_url(self.url)


@dataclass(frozen=True)
class ProviderResponse:
    """A provider's complete answer, read within ``API_TIMEOUT``; ``requested_ms`` and ``received_ms`` become the
    answer's ``providerDataRequestedUnixMs`` and ``providerDataReceivedUnixMs``."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]
    requested_ms: int
    received_ms: int

    def json(self) -> Any:
        """The body as JSON, refusing NaN, Infinity and overflowing numbers (the node cannot parse them back).

        Raises ``DataProviderError`` (502, quoting the start of the body) when the body is not JSON."""
        try:
            return strict_json_loads(self.content)
        except ValueError:
            raise DataProviderError(
                f"provider answered HTTP {self.status_code} with invalid JSON: {snippet(self.content)}",
                provider_status_code=self.status_code) from None


class Sender(Protocol):
    """What transports send through: the requester behind an adapter's rate limit."""

    def send(self, request: ProviderRequest) -> ProviderResponse:
        """Send ``request`` and return the provider's answer, whatever its status (a transport decides what a
        4xx means). Raises ``AdapterError``: 429 when the quota is spent, 504 on timeout, 502 when the provider
        cannot be reached or keeps failing after the retries. Safe to call from many threads at once."""


Params = Mapping[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Success:
    """A provider value for one feed. ``data`` is the provider's answer for that feed: shown beside ``result``
    with ``API_VERBOSE``, or, when ``result`` is None (an endpoint whose value is not one number, such as a coin
    list or a price history), the answer's ``data`` itself, always. ``provider_indicated_ms`` is the provider's
    own timestamp, when it gives one."""

    result: Any
    data: Mapping[str, Any] | Sequence[Any] | None = None
    provider_indicated_ms: int | None = None


Outcome = Success | AdapterError


@dataclass(frozen=True)
class FeedOutcome:
    params: Params
    outcome: Outcome
    provider_status_code: int | None
    requested_ms: int
    received_ms: int


class Transport:
    """Base class of every transport; ``kind`` is shown in ``/status``."""

    kind = "custom"
    #: False for transports whose values only ever arrive through the background (streams, or a provider too
    #: expensive to call per request): a cold request then waits for the cache instead of calling out.
    fetches_in_foreground = True
    #: The most feeds one call to ``fetch`` carries (one provider call, for a batching provider).
    max_batch_size = 1

    def batches(self, feeds: Sequence[T]) -> list[Sequence[T]]:
        """``feeds`` in groups of at most ``max_batch_size``, in order: how the framework calls ``fetch``."""
        size = max(1, self.max_batch_size)
        return [feeds[start:start + size] for start in range(0, len(feeds), size)]

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        """Values for ``params_list`` (feeds of one endpoint, normalised and validated), one ``FeedOutcome`` per
        feed in any order. ``config`` is the adapter's settings by name; ``requester`` is how to call the
        provider. Called from request threads and the background at once: keep no per-call state on ``self``.
        An exception that is not an ``AdapterError`` is answered as a 500 for every feed of the call."""
        raise NotImplementedError

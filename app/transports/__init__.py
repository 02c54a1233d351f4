"""The contract between the framework and the code that talks to a provider.

A transport turns a list of normalised request parameters into one outcome per parameter set: a ``Success`` or
an ``AdapterError``. The framework owns everything around that call (cache, coalescing, retries, timeouts), so
the foreground path and the background warmer can share one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import AdapterError

if TYPE_CHECKING:
    from app.requester import Sender

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Success:
    """A provider value for one feed. ``data`` is the provider's answer for that feed (shown with
    ``API_VERBOSE``); ``provider_indicated_ms`` is the provider's own timestamp, when it gives one."""

    result: Any
    data: Mapping[str, Any] | None = None
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
    """Base class; ``kind`` is shown in ``/status``."""

    kind = "custom"
    #: False for transports whose values only ever arrive through the background (streams, or a provider too
    #: expensive to call per request): a cold request then waits for the cache instead of calling out.
    fetches_in_foreground = True

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        raise NotImplementedError

"""What every streaming transport shares: feeds named on the stream, values only through the background, and
an optional HTTP fallback for the same feeds (used while ``WS_ENABLED`` is off and while the stream is down)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import ServiceUnavailableError
from app.core.transports import FeedOutcome, Params, Sender, Transport, now_ms
from app.core.transports.http import HttpTransport


class StreamingTransport(Transport):
    """Base of ``WebSocketTransport`` and ``SseTransport``. ``fallback``: an ``HttpTransport`` for the same
    feeds, polled while the stream is off or down (None: those requests are answered 503)."""

    fetches_in_foreground = False
    streamed = True
    #: The adapter setting holding the stream URL (a comma-separated list: the others are failovers).
    url_setting = ""

    def __init__(self, fallback: HttpTransport | None = None) -> None:
        self.fallback = fallback

    @property
    def max_batch_size(self) -> int:  # type: ignore[override]
        """The fallback's batch size, for the warmer when it polls the fallback."""
        return self.fallback.max_batch_size if self.fallback is not None else 1

    def stream_urls(self, config: Mapping[str, Any]) -> list[str]:
        """The URLs to connect to, the first preferred, the others failovers tried in turn after a failure:
        by default the comma-separated ``url_setting``. Override it to add a path per endpoint or a second
        setting. Called when the stream starts."""
        return [url.strip() for url in str(config.get(self.url_setting) or "").split(",") if url.strip()]

    def stream_id(self, params: Params, config: Mapping[str, Any]) -> str:
        """The feed's name on the stream (e.g. ``ETH-USD``); messages are matched to feeds by it. Called for
        every subscribed feed whenever the wanted set is computed: pure and fast. Raise ``AdapterInputError``
        for a feed the stream cannot carry."""
        raise NotImplementedError

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        """The HTTP fallback's answer, for when the stream cannot serve."""
        if self.fallback is not None:
            return self.fallback.fetch(params_list, config, requester)
        at = now_ms()
        error = ServiceUnavailableError("this feed is only streamed, and the stream is not available")
        return [FeedOutcome(p, error, None, at, at) for p in params_list]

"""HTTP polling transport: the adapter says how to build provider requests and how to read the answers.

Batching is declared with ``max_batch_size``: the framework hands ``prepare_requests`` up to that many
parameter sets and the adapter may cover them with one provider call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import AdapterError, DataProviderError
from app.core.transports import (
    FeedOutcome,
    Outcome,
    Params,
    ProviderRequest,
    ProviderResponse,
    Sender,
    Transport,
    now_ms,
)

log = logging.getLogger("pyea.transport")


class HttpTransport(Transport):
    """A provider polled over HTTP. Subclass it and implement ``prepare_requests`` and ``parse_response`` (and
    ``refuse`` when some feeds can be turned away without a call); set ``max_batch_size`` when one call can
    answer many feeds. Instances are shared by all request threads and the background: keep no per-call state
    on ``self``."""

    kind = "http"

    def refuse(self, params: Params, config: Mapping[str, Any]) -> AdapterError | None:
        """An error for a feed that must not cost a provider call (a missing key, an input the provider cannot
        answer), so one bad feed never fails the batch it would have joined. Called once per feed before
        ``prepare_requests``; return None to let the feed through."""
        return None

    def prepare_requests(self, params_list: Sequence[Params],
                         config: Mapping[str, Any]) -> list[ProviderRequest]:
        """The provider calls that answer ``params_list`` (1 to ``max_batch_size`` feeds, normalised: aliases
        resolved, defaults filled, symbol overrides applied). Each ``ProviderRequest`` names in ``params_list``
        the feeds it carries; together they must cover every feed. ``config`` is the adapter's settings by name
        (``config["API_KEY"]`` …). Pure: no I/O here, the framework sends the requests."""
        raise NotImplementedError

    def parse_response(self, params_list: Sequence[Params], response: ProviderResponse,
                       config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        """One ``(params, Success or AdapterError)`` per feed the answer covers, where ``params`` is the very
        object from ``params_list`` (the request's feeds). Called with every answer, whatever its status.
        A feed left out is answered as a 502 ("did not include this feed"); ``KeyError``, ``IndexError``,
        ``TypeError``, ``ValueError`` or ``AttributeError`` raised here mean an unexpected answer shape and
        become a 502 for all of the request's feeds; an ``AdapterError`` raised fails them with that error."""
        raise NotImplementedError

    def fetch(self, params_list: Sequence[Params], config: Mapping[str, Any],
              requester: Sender) -> list[FeedOutcome]:
        outcomes: list[FeedOutcome] = []
        askable = []
        for params in params_list:
            error = self.refuse(params, config)
            if error is None:
                askable.append(params)
            else:
                at = now_ms()
                outcomes.append(FeedOutcome(params, error, None, at, at))
        for request in self.prepare_requests(askable, config) if askable else []:
            requested_ms = now_ms()
            try:
                response = requester.send(request)
            except AdapterError as exc:
                received_ms = now_ms()
                outcomes.extend(FeedOutcome(p, exc, exc.provider_status_code, requested_ms, received_ms)
                                for p in request.params_list)
                continue
            outcomes.extend(FeedOutcome(p, outcome, response.status_code, response.requested_ms,
                                        response.received_ms)
                            for p, outcome in self._parse(request, response, config))
        return outcomes

    def _parse(self, request: ProviderRequest, response: ProviderResponse,
               config: Mapping[str, Any]) -> list[tuple[Params, Outcome]]:
        """Run the adapter's parser; a crash there means the provider sent a shape we did not expect,
        which the node should see as a provider error (502), not as a bug in pyea (500)."""
        try:
            parsed = self.parse_response(request.params_list, response, config)
        except AdapterError as exc:
            return [(p, exc) for p in request.params_list]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            log.warning("unexpected provider answer shape: %r", exc)
            error = DataProviderError(f"provider answer has an unexpected shape ({type(exc).__name__}: {exc})",
                                      provider_status_code=response.status_code)
            return [(p, error) for p in request.params_list]
        answered = {id(p) for p, _ in parsed}
        missing = DataProviderError("provider answer did not include this feed",
                                    provider_status_code=response.status_code)
        return parsed + [(p, missing) for p in request.params_list if id(p) not in answered]


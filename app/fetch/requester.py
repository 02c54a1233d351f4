"""The one way pyea talks to providers: a pooled session, timeouts, retries, and deduplication.

Errors come out as ``AdapterError`` subclasses with the status the node should see (502 provider error,
504 timeout), and their messages never carry the request URL's query string or a secret, because both can hold
API keys.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from app.core.errors import ConnectionFailedError, DataProviderError, ProviderTimeoutError, RateLimitError
from app.core.messages import snippet
from app.core.retry_timing import capped_backoff_s, retry_after_s
from app.core.transports import ProviderRequest, ProviderResponse, now_ms
from app.fetch.batching import waiting
from app.fetch.coalescing import SingleFlight
from app.fetch.rate_limit import RateLimiter, describe

if TYPE_CHECKING:
    from app.observe.metrics import Metrics

log = logging.getLogger("pyea.requester")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Between retries of a failed provider request: 100 ms doubling up to 2 s, less up to half of it.
BACKOFF_BASE_MS = 100
BACKOFF_CAP_MS = 2000
#: Largest provider answer read; a bigger one is a provider error, not a worker out of memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
#: Longest Retry-After a request waits out itself before retrying; a longer one fails it with a 429 at once.
RETRY_AFTER_WAIT_MAX_S = 5.0


class Requester:
    """Per process: a ``requests.Session`` is not fork-safe, so each gunicorn worker builds its own."""

    def __init__(self, *, timeout_ms: int, retries: int, pool_size: int, secrets: Iterable[str] = (),
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.timeout_s = timeout_ms / 1000
        self.retries = retries
        self.secrets = tuple(s for s in secrets if s)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._flights = SingleFlight()
        #: Provider host → when it may be called again, from its Retry-After (per process).
        self._cooldowns: dict[str, float] = {}

    def send(self, request: ProviderRequest, gate: Callable[[], None] | None = None) -> ProviderResponse:
        """Send, or join an identical request already in flight in this process. ``gate`` runs before every
        attempt (retries cost credits too) and raises to refuse it."""
        return self._flights.run(request.key(), lambda: self._send_with_retries(request, gate))

    def close(self) -> None:
        self.session.close()

    def _send_with_retries(self, request: ProviderRequest, gate: Callable[[], None] | None) -> ProviderResponse:
        attempt = 0
        while True:
            self._refuse_while_cooling_down(request)
            if gate is not None:
                gate()
            try:
                response = self._send_once(request)
            except ConnectionFailedError:
                if attempt >= self.retries:
                    raise
            else:
                if response.status_code < 400:
                    return response
                wait = retry_after_s(response.headers) if response.status_code in (429, 503) else None
                if wait is not None:
                    # The provider said when to come back: nobody in this process calls it before then.
                    self._cooldowns[_host(request)] = time.monotonic() + wait
                    if attempt >= self.retries or wait > min(RETRY_AFTER_WAIT_MAX_S, self.timeout_s):
                        raise RateLimitError(f"provider {request.where()} answered HTTP {response.status_code} "
                                             f"and asked to wait {wait:.0f} s (Retry-After)",
                                             provider_status_code=response.status_code)
                elif response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    raise DataProviderError(
                        self._censor(f"provider {request.where()} answered HTTP {response.status_code}: "
                                     f"{snippet(response.content)}"),
                        provider_status_code=response.status_code)
            attempt += 1
            log.info("retrying provider request to %s (attempt %d of %d)", request.where(), attempt + 1,
                     self.retries + 1)
            cooldown = self._cooldowns.get(_host(request))
            if cooldown is not None:  # exactly as long as the provider asked
                time.sleep(max(0.0, cooldown - time.monotonic()))
            else:
                time.sleep(capped_backoff_s(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, 0.5))

    def _refuse_while_cooling_down(self, request: ProviderRequest) -> None:
        until = self._cooldowns.get(_host(request))
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            self._cooldowns.pop(_host(request), None)
            return
        raise RateLimitError(f"provider {request.where()} asked to wait (Retry-After); retry in {math.ceil(left)} s")

    def _send_once(self, request: ProviderRequest) -> ProviderResponse:
        requested = now_ms()
        try:
            response = self._request(request, requested)
        except (ConnectionFailedError, ProviderTimeoutError, DataProviderError):
            self._observe(request, 0, requested)
            raise
        self._observe(request, response.status_code, requested)
        return response

    def _observe(self, request: ProviderRequest, status: int, requested_ms: int) -> None:
        if self.metrics is not None:
            labels = self.metrics.labels
            self.metrics.provider_requests.labels(request.method, str(status), *labels).inc()
            self.metrics.provider_duration.labels(*labels).observe((now_ms() - requested_ms) / 1000)
            self.metrics.credits.labels(*labels).inc()

    def _request(self, request: ProviderRequest, requested: int) -> ProviderResponse:
        deadline = time.monotonic() + self.timeout_s
        try:
            response = self.session.request(request.method, request.url, params=request.params,
                                            headers=dict(request.headers), json=request.json,
                                            timeout=self.timeout_s, stream=True)
            with response:
                content = self._read_body(request, response, deadline)
        except requests.ConnectTimeout:
            raise ConnectionFailedError(
                f"could not connect to provider {request.where()} within {self.timeout_s * 1000:.0f} ms"
            ) from None
        except requests.Timeout:
            raise ProviderTimeoutError(
                f"provider {request.where()} did not answer within API_TIMEOUT "
                f"({self.timeout_s * 1000:.0f} ms)") from None
        except requests.ConnectionError as exc:
            raise ConnectionFailedError(
                self._censor(f"could not reach provider {request.where()}: {_reason(exc)}")) from None
        except requests.RequestException as exc:
            raise DataProviderError(
                self._censor(f"provider {request.where()} sent a broken answer: {_reason(exc)}")) from None
        return ProviderResponse(response.status_code, content, response.headers, requested, now_ms())

    def _read_body(self, request: ProviderRequest, response: requests.Response, deadline: float) -> bytes:
        """The whole body within API_TIMEOUT of the request, and no larger than MAX_RESPONSE_BYTES: a read
        timeout alone would let a provider trickling a byte at a time hold the request for ever, and a huge
        answer would take the worker's memory."""
        chunks, size = [], 0
        for chunk in _timed_out_as_timeout(_as_it_arrives(response)):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise DataProviderError(f"provider {request.where()} answered more than {MAX_RESPONSE_BYTES} bytes",
                                        provider_status_code=response.status_code)
            if time.monotonic() > deadline:
                raise ProviderTimeoutError(f"provider {request.where()} did not finish its answer within API_TIMEOUT "
                                           f"({self.timeout_s * 1000:.0f} ms)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _censor(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


def _as_it_arrives(response: requests.Response) -> Iterator[bytes]:
    """The body in whatever pieces the network delivers (urllib3's ``read1``): a fixed-size read would block
    until the piece is full, and the deadline could not be checked while a provider trickles."""
    while chunk := response.raw.read1(READ_CHUNK_BYTES, decode_content=True):
        yield chunk


def _timed_out_as_timeout(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """urllib3's errors while reading the body, as the requests errors the caller maps to 504 and 502."""
    try:
        yield from chunks
    except ReadTimeoutError as exc:
        raise requests.ReadTimeout(str(exc)) from None
    except (ProtocolError, DecodeError) as exc:  # cut off mid-body, or a body that will not decompress
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from None


def _host(request: ProviderRequest) -> str:
    return urlsplit(request.url).netloc


class LimitedSender:
    """Spends one slot of the provider's quota per attempt, waiting up to ``wait_s`` for it (a 429 naming the
    limit and when to retry when none comes in time). The background yields the last slots of each window to
    requests a node waits for. ``prepaid``: the first attempt's slot was taken already (a foreground batch takes
    it before it closes, see ``app/fetch/batching.py``): a prepaid sender serves that one call."""

    def __init__(self, requester: Requester, limiter: RateLimiter | None, background: bool, wait_s: float,
                 prepaid: bool = False) -> None:
        self.requester = requester
        self.limiter = limiter
        self.background = background
        self.wait_s = wait_s
        self._prepaid = prepaid

    def send(self, request: ProviderRequest) -> ProviderResponse:
        return self.requester.send(request, self._gate if self.limiter is not None else None)

    def _gate(self) -> None:
        if self._prepaid:
            self._prepaid = False
            return
        with waiting():
            wait = self.limiter.wait_for_slot(self.wait_s, background=self.background)
        if wait:
            raise RateLimitError(describe(self.limiter.limit, wait))


class RefusedSender:
    """Answers every call with ``error`` and makes none: a batch the quota had no slot for in time."""

    def __init__(self, error: RateLimitError) -> None:
        self.error = error

    def send(self, request: ProviderRequest) -> ProviderResponse:
        raise self.error


def _reason(exc: Exception) -> str:
    """The underlying cause in a few words, without the URL (and so without a key in its query string)."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the real cause
    return str(reason).rsplit(": ", 1)[-1][:200] or type(exc).__name__

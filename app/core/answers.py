"""What the node is sent, as bytes: a cached value with its ``jobRunID`` and ``meta``, an error, or "pending".

Answers are built by splicing text around the cached body rather than by parsing and re-encoding it, which is
most of what makes a cache hit cheap. Everything here is pure (no Flask, no I/O), so the request path, the
asynchronous responder and the tests build answers the same way.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple, Protocol

from app.core.entries import CacheEntry
from app.core.errors import AdapterError, DataProviderError

JSON_MIMETYPE = "application/json"
#: Sent with every 401, as RFC 9110 asks.
CHALLENGE = (("WWW-Authenticate", 'Bearer realm="pyea"'),)
#: Sent with a pending answer to an asynchronous request.
PENDING = (("X-Chainlink-Pending", "true"),)


class Answer(NamedTuple):
    """What the node is sent: always JSON."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def pending_answer(job_run_id: Any) -> Answer:
    """The node suspends the run on this, until the value is PATCHed to its responseURL."""
    body = json.dumps({"jobRunID": job_run_id, "pending": True, "statusCode": 200}, separators=(",", ":"))
    return Answer(200, body.encode(), PENDING)


def render(entry: CacheEntry, hit: bool, stale: bool, job_run_id: Any, meta_prefix: str,
           inverse: bool = False) -> Answer:
    """Splice ``jobRunID`` and ``meta`` around the stored text: the cached bytes are never parsed or mutated.
    ``stale``: a last good value served because its refresh failed (CACHE_STALE_MAX_AGE); ``meta_prefix``: the
    endpoint's ``"meta":{…,"cacheHit":`` text, built once per endpoint; ``inverse``: the request asked for the
    inverse of the pair stored (``app/core/includes.py``), so its value is ``1 / result``."""
    if inverse and entry.is_success:
        entry = inverted(entry)
    staleness = round(max(0.0, time.time() - entry.received_ms / 1000), 3)
    flag = ',"stale":true' if stale else ""
    text = (f'{{"jobRunID":{_json_scalar(job_run_id)},{entry.body[1:-1]},{meta_prefix}'
            f'{"true" if hit else "false"},"staleness":{staleness}{flag}}}}}')
    return Answer(entry.status_code, text.encode())


def inverted(entry: CacheEntry) -> CacheEntry:
    """The stored answer of a pair, as the answer of its inverse: ``result`` and ``data.result`` become
    ``1 / value``, everything else (timestamps, provider status) stays; a 502 when there is nothing to invert."""
    body = json.loads(entry.body)
    value = body.get("result")
    if isinstance(value, bool) or not isinstance(value, int | float) or value == 0:
        error = DataProviderError(f"cannot answer the inverse pair: the provider's value is {json.dumps(value)}, "
                                  "not a number other than 0", provider_status_code=body.get("providerStatusCode"))
        return CacheEntry(error.status_code, entry.received_ms,
                          json.dumps({**error.body(), "timestamps": body.get("timestamps")}, separators=(",", ":")))
    body["result"] = 1 / value
    if isinstance(body.get("data"), dict):
        body["data"]["result"] = body["result"]
    return CacheEntry(entry.status_code, entry.received_ms, json.dumps(body, separators=(",", ":")))


def _json_scalar(value: Any) -> str:
    """``json.dumps`` for the job id, without its per-call encoder set-up for the usual string id."""
    return encode_basestring_ascii(value) if type(value) is str else json.dumps(value)


def render_error(exc: AdapterError, job_run_id: Any = "1") -> Answer:
    body = json.dumps({"jobRunID": job_run_id, **exc.body()}, separators=(",", ":")).encode()
    return Answer(exc.status_code, body, CHALLENGE if exc.status_code == 401 else ())


def unexpected_error(exc: Exception, debug: bool, job_run_id: Any = "1") -> Answer:
    """A 500 that says where to look; with DEBUG, the stack too (never in production: it can show internals)."""
    body = {"jobRunID": job_run_id, **AdapterError("unexpected error in the adapter; see its log").body()}
    if debug:
        body["error"]["stack"] = traceback.format_exception(exc)
    return Answer(500, json.dumps(body, separators=(",", ":")).encode())


def resume_body(answer: Answer) -> dict[str, Any]:
    """What the node's resume endpoint takes: the answer itself as ``value``, or ``"Name: message"``."""
    body = json.loads(answer.body)
    if answer.status == 200 and "error" not in body:
        return {"value": body}
    error = body.get("error") or {}
    return {"error": f"{error.get('name', 'AdapterError')}: {error.get('message', 'no value')}"}


class LateAnswers(Protocol):
    """Where an asynchronous endpoint's answers go once computed (``AsyncResponder`` in the background layer)."""

    def submit(self, url: str, produce: Callable[[], Answer]) -> None:
        """Compute ``produce()`` off the request thread and deliver it to ``url``; returns at once."""

"""``POST {BASE_URL}``: the whole request path, top to bottom.

envelope → endpoint → validated params → symbol overrides → cache key → cache hit? → subscription → (single-flight fetch
into the cache) → answer; or, for an endpoint marked asynchronous that misses, ``{"pending": true}`` now and the
answer PATCHed to the job's ``responseURL`` later (``app/background/async_responses.py``). Every failure is an
``AdapterError`` answered as JSON with its own status, so no bad input can reach the node as a 500 or an HTML page.

It works on the WSGI environ and returns an ``Answer`` (status and bytes), not Flask objects: ``app/web/wsgi.py``
serves it without Flask's request context and Response, which would cost more than the rest of a cache hit.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from app.core.answers import JSON_MIMETYPE, Answer, pending_answer, render, render_error, unexpected_error
from app.core.entries import CacheEntry
from app.core.errors import AdapterError, AdapterInputError, PayloadTooLargeError, ProviderTimeoutError, RateLimitError
from app.core.messages import json_type, short
from app.core.strict_json import strict_json_loads

if TYPE_CHECKING:
    from flask import Request, Response

    from app.fetch.runtime import AdapterRuntime, EndpointRuntime
    from app.web.remote import RemoteAdapter

log = logging.getLogger("pyea.request")


def handle(adapter: AdapterRuntime, environ: dict[str, Any]) -> Answer:
    started = time.perf_counter()
    job_run_id: Any = "1"
    feed_id = ""
    hit = False
    try:
        body = read_body(environ, adapter.settings.MAX_PAYLOAD_SIZE_LIMIT)
        job_run_id = job_run_id_of(body)
        args = query_args(environ) if environ.get("QUERY_STRING") else None
        data = read_data(body, args)
        endpoint = adapter.resolve_endpoint(body.get("endpoint") or data.get("endpoint")).routed(data.get("transport"))
        if args:
            data = coerce_query(endpoint, data, args)
        params, key, feed_id, inverse = endpoint.resolve(data)
        max_age = read_max_age(data.get("maxAge"), adapter)

        entry = adapter.cached(key, max_age)
        hit = entry is not None
        if hit:
            adapter.metrics.cache_hit(feed_id, entry.received_ms)
        adapter.subscribe(endpoint, key, params, missed=not hit)
        url = response_url(body) if endpoint.endpoint.asynchronous else None
        if entry is None and url is not None:
            adapter.responder.submit(url, lambda: answer_later(adapter, endpoint, params, key, max_age, job_run_id,
                                                                   inverse))
            answer = pending_answer(job_run_id)
        else:
            stale = False
            if entry is None:
                entry, hit, stale = fill(adapter, endpoint, params, key, max_age)
            elif not entry.is_success:  # a remembered failure (CACHE_ERROR_MAX_AGE)
                entry, stale = or_last_good(adapter, key, entry)
            answer = render(entry, hit, stale, job_run_id, endpoint.meta_prefix, inverse)
    except AdapterError as exc:
        if exc.status_code >= 500:
            log.warning("request failed: %s %s", exc.name, exc.message)
        answer, hit = render_error(exc, job_run_id), False
    except Exception as exc:  # a bug (ours or an adapter's) is still answered as JSON, and counted
        log.exception("unexpected error on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
        answer, hit = unexpected_error(exc, adapter.settings.DEBUG, job_run_id), False
    adapter.metrics.request(environ["REQUEST_METHOD"], answer.status, hit, feed_id, time.perf_counter() - started)
    return answer


def fill(adapter: AdapterRuntime, endpoint: EndpointRuntime, params: dict[str, Any], key: str, max_age: int,
         ) -> tuple[CacheEntry, bool, bool]:
    """The value for a feed the cache did not have: ``(entry, answered from cache, stale)``."""
    if not adapter.fetches_in_foreground(endpoint):
        try:
            return wait_for_background(adapter, key), True, False
        except ProviderTimeoutError:
            entry = adapter.stale(key)
            if entry is None:
                raise
            return entry, True, True
    ttl_ms = max_age if max_age and max_age > 0 else adapter.settings.CACHE_MAX_AGE
    entry = adapter.fetch(endpoint, params, key, ttl_ms, max_age)
    if entry.status_code == RateLimitError.status_code:
        # Out of provider quota: a value older than this request asked for beats no value at all.
        cached = adapter.cached(key, 0)
        if cached is not None and cached.is_success:
            return cached, True, False
    served, stale = or_last_good(adapter, key, entry)
    return served, stale, stale


def or_last_good(adapter: AdapterRuntime, key: str, entry: CacheEntry) -> tuple[CacheEntry, bool]:
    """A failed refresh (5xx, 429) is answered with the last good value while that is young enough
    (CACHE_STALE_MAX_AGE), flagged stale; ``(entry to serve, stale)``."""
    if entry.status_code >= 500 or entry.status_code == RateLimitError.status_code:
        last_good = adapter.stale(key)
        if last_good is not None:
            return last_good, True
    return entry, False


def answer_later(adapter: AdapterRuntime, endpoint: EndpointRuntime, params: dict[str, Any], key: str,
                 max_age: int, job_run_id: Any, inverse: bool) -> Answer:
    """An asynchronous endpoint's answer, computed on the responder's thread once the request was answered
    pending."""
    try:
        return render(*fill(adapter, endpoint, params, key, max_age), job_run_id, endpoint.meta_prefix, inverse)
    except AdapterError as exc:
        return render_error(exc, job_run_id)


def response_url(body: dict[str, Any]) -> str | None:
    """The job's ``responseURL``. The node sends an empty one when its BridgeResponseURL is unset, which means
    "answer synchronously"."""
    value = body.get("responseURL")
    if value is None or value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise AdapterInputError(f"responseURL: must be an http:// or https:// URL, got {json_type(value)} "
                                f"{short(value)}")
    return value


def handle_remote(remote: RemoteAdapter, request: Request) -> Response:
    """An out-of-process adapter's request (through Flask: it is forwarded, never a local cache hit): the size
    limit is the host's to enforce, the rest the worker's."""
    job_run_id: Any = "1"
    try:
        raw = read_raw(request.environ, remote.max_payload)
        try:
            body = strict_json_loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            body = None  # the worker explains what is wrong with it
        if isinstance(body, dict):
            job_run_id = job_run_id_of(body)
        return remote.forward(request, raw)
    except AdapterError as exc:
        log.warning("request to adapter %s failed: %s %s", remote.name, exc.name, exc.message)
        return to_response(render_error(exc, job_run_id))


def read_body(environ: dict[str, Any], limit: int) -> dict[str, Any]:
    """The JSON object in the body."""
    raw = read_raw(environ, limit)
    if not raw.strip():
        return {}  # a bare POST or GET with a query string
    content_type = environ.get("CONTENT_TYPE", "")
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype != JSON_MIMETYPE and not mimetype.endswith("+json"):
        raise AdapterInputError(f"Content-Type must be {JSON_MIMETYPE}, got {content_type or 'none'}")
    try:
        body = strict_json_loads(raw)
    except (ValueError, RecursionError) as exc:
        raise AdapterInputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AdapterInputError(f"request body must be a JSON object like {{\"data\": {{...}}}}, "
                                f"got {json_type(body)}")
    return body


def read_raw(environ: dict[str, Any], limit: int) -> bytes:
    """The body, read straight from the WSGI environ: werkzeug's stream wrapper costs more than the rest of a
    cache hit, and it silently truncates a chunked body at the limit instead of refusing it."""
    length = _content_length(environ.get("CONTENT_LENGTH"))
    if length is not None and length > limit:
        raise _too_large(limit)
    raw = b""
    try:
        if length:
            raw = environ["wsgi.input"].read(length)
        elif length is None and environ.get("wsgi.input_terminated"):
            raw = environ["wsgi.input"].read(limit + 1)  # chunked: one byte past the limit shows it is too large
    except Exception as exc:  # whatever the server raises for a broken or cut-off body, it is the client's
        raise AdapterInputError(f"could not read the request body ({type(exc).__name__})") from None
    if len(raw) > limit:
        raise _too_large(limit)
    if length and len(raw) < length:
        raise AdapterInputError(f"request body ended after {len(raw)} of {length} bytes (Content-Length)")
    return raw


def _content_length(header: str | None) -> int | None:
    if not header:
        return None
    try:
        return max(0, int(header))
    except ValueError:
        raise AdapterInputError(f"Content-Length is not a number: {short(header)}") from None


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body is larger than MAX_PAYLOAD_SIZE_LIMIT ({limit} bytes)")


def job_run_id_of(body: dict[str, Any]) -> Any:
    """Echo the job's id as given (the node only logs it); "1" when absent, as v2 did."""
    value = body.get("id")
    if value is None:
        return "1"
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else short(value)


def query_args(environ: dict[str, Any]) -> dict[str, str]:
    """The query string's parameters, first value of each, decoded as werkzeug's ``request.args`` would."""
    text = environ["QUERY_STRING"].encode("latin-1", "replace").decode("utf-8", "replace")
    args: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
        args.setdefault(name, value)
    return args


def read_data(body: dict[str, Any], args: dict[str, str] | None) -> dict[str, Any]:
    """``data`` with the query string merged in (v2 behaviour, for humans with curl)."""
    data = body.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise AdapterInputError(f"data: must be an object of request parameters, got {json_type(data)}")
    return {**data, **args} if args else data


def coerce_query(endpoint: EndpointRuntime, data: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    """Query values arrive as text: typed as the endpoint's schema says, so ``?amount=5`` is the number 5."""
    coerced = dict(data)
    for name in args:
        if name == "maxAge":
            coerced[name] = _number_or_text(data[name])
        else:
            coerced[name] = endpoint.schema.coerce_query(name, data[name])
    return coerced


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def read_max_age(value: Any, adapter: AdapterRuntime) -> int:
    """Per-request freshness in ms: < 0 bypasses the cache read, 0 means the default; clamped otherwise."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdapterInputError(f"data.maxAge: must be a number of milliseconds, got {json_type(value)} "
                                f"{short(value)}")
    if value <= 0:
        return -1 if value < 0 else 0
    settings = adapter.settings
    return int(min(max(value, settings.CACHE_MIN_AGE), settings.CACHE_MAX_AGE))


def wait_for_background(adapter: AdapterRuntime, key: str) -> CacheEntry:
    """For background-only transports: the request has subscribed the feed; give the background
    ``CACHE_POLLING_MAX_RETRIES`` x ``CACHE_POLLING_SLEEP_MS`` to deliver its first value."""
    settings = adapter.settings
    for _ in range(settings.CACHE_POLLING_MAX_RETRIES):
        time.sleep(settings.CACHE_POLLING_SLEEP_MS / 1000)
        entry = adapter.cache.get(key)
        if entry is not None:
            return entry
    waited = settings.CACHE_POLLING_MAX_RETRIES * settings.CACHE_POLLING_SLEEP_MS
    raise ProviderTimeoutError(f"no value for this feed has arrived from the background within {waited} ms; it is "
                               "subscribed now, so retry shortly")


def to_response(answer: Answer) -> Response:
    """For the routes Flask serves."""
    from flask import Response

    return Response(answer.body, status=answer.status, headers=answer.headers, mimetype=JSON_MIMETYPE)

"""Answers delivered later: for an endpoint marked asynchronous, a request whose value is not cached is answered
``{"pending": true}`` at once and the value is PATCHed to the job's ``responseURL`` when it arrives.

This is the node's async bridge contract: the task suspends on a pending answer and resumes on ``PATCH
<responseURL>`` with exactly one of ``{"value": ...}`` or ``{"error": "..."}``. The value sent is the same JSON
object a synchronous answer would have carried, so the job's ``jsonparse`` path (``data,result``) is unchanged.
Deliveries run on a small thread pool of their own, never on gunicorn's request threads, and are retried with
capped back-off while the node is unreachable or answers 5xx/429 (a 4xx means the run is gone or the body was
refused: retrying cannot help).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from app.core.answers import Answer, resume_body
from app.core.messages import redacted_url
from app.core.retry_timing import capped_backoff_s

log = logging.getLogger("pyea.async")


class AsyncResponder:
    """One per process: a bounded pool that computes late answers and delivers them to the node."""

    def __init__(self, workers: int, timeout_ms: int, retries: int, backoff_ms: int) -> None:
        self.timeout_s = timeout_ms / 1000
        self.retries = retries
        self.backoff_ms = backoff_ms
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyea-async")
        self._session = requests.Session()
        self._closing = threading.Event()

    def submit(self, url: str, produce: Callable[[], Answer]) -> None:
        """``produce`` computes the answer (the fetch happens there, off the request thread)."""
        self._pool.submit(self._run, url, produce)

    def _run(self, url: str, produce: Callable[[], Answer]) -> None:
        try:
            body = resume_body(produce())
        except Exception:  # a bug must still resume the run, or it would hang until the node's timeout
            log.exception("computing the asynchronous answer for %s failed", redacted_url(url))
            body = {"error": "AdapterError: unexpected error in the adapter; see its log"}
        self.deliver(url, body)

    def deliver(self, url: str, body: dict[str, Any]) -> bool:
        """PATCH ``body`` to ``url``; True once the node took it."""
        for attempt in range(self.retries + 1):
            if attempt and self._closing.wait(capped_backoff_s(attempt, self.backoff_ms, 30000, 0.2)):
                break
            try:
                response = self._session.patch(url, json=body, timeout=self.timeout_s)
            except requests.RequestException as exc:
                log.warning("asynchronous answer to %s not delivered (attempt %d): %s", redacted_url(url), attempt + 1,
                            type(exc).__name__)
                continue
            if response.status_code < 300:
                return True
            log.warning("asynchronous answer to %s refused with %d (attempt %d)", redacted_url(url),
                        response.status_code, attempt + 1)
            if response.status_code < 500 and response.status_code != 429:
                return False
        log.error("asynchronous answer to %s given up: the run stays pending until the node times it out",
                  redacted_url(url))
        return False

    def close(self) -> None:
        """Stop waiting between retries, and let deliveries in progress finish."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session.close()


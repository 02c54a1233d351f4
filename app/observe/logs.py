"""Log lines an operator's stack can ingest: one JSON object per line by default, readable text on request.

Known secret values are scrubbed from every formatted line, whatever code logged it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from app.core.setting_specs import REDACTED
from app.core.settings import Settings


class LineFormatter(logging.Formatter):
    """One JSON object (or one readable line) per record. Importable without Flask, so gunicorn's master can
    format its own lines the same way without loading the app."""

    def __init__(self, pretty: bool = False, secrets: Iterable[str] = (), correlation: bool = False) -> None:
        super().__init__()
        self.pretty = pretty
        self.secrets = tuple(s for s in secrets if s)
        self.correlation = correlation

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        correlation_id = request_correlation_id() if self.correlation else None
        if self.pretty:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            tag = f" [{correlation_id}]" if correlation_id else ""
            line = f"{stamp} {record.levelname:<7} {record.name}{tag}: {message}"
        else:
            entry = {"level": record.levelname.lower(),
                     "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                     + f".{int(record.msecs):03d}Z",
                     "logger": record.name, "message": message}
            if correlation_id:
                entry["correlationId"] = correlation_id
            line = json.dumps(entry, ensure_ascii=False)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


#: The WSGI environ of the request being served in this thread, set by the app's entry point (``app/web/wsgi.py``)
#: for every route, so lines logged while serving it can name it.
current_environ: ContextVar[dict[str, Any] | None] = ContextVar("pyea_current_environ", default=None)


def request_correlation_id() -> str | None:
    """The caller's ``x-correlation-id``, else one made up on first use: only requests that log pay for it."""
    environ = current_environ.get()
    if environ is None:
        return None
    correlation_id = environ.get("pyea.correlation_id")
    if correlation_id is None:
        correlation_id = environ["pyea.correlation_id"] = environ.get("HTTP_X_CORRELATION_ID") or uuid.uuid4().hex
    return correlation_id


def configure_logging(settings: Settings, secrets: Iterable[str]) -> logging.Logger:
    """(Re)configure the ``pyea`` logger; idempotent so tests can build many apps in one process."""
    logger = logging.getLogger("pyea")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter(settings.LOG_FORMAT == "pretty", secrets, settings.CORRELATION_ID_ENABLED))
    logger.addHandler(handler)
    level = "WARNING" if settings.LOG_LEVEL == "warn" else settings.LOG_LEVEL.upper()
    logger.setLevel(level)
    logger.propagate = False
    # APScheduler reports every job run at INFO; only its warnings (missed or failed jobs) matter to operators.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return logger


class LogThrottle:
    """At most one line per ``every_s`` seconds for one kind of trouble: a failure that repeats on every request
    or message would otherwise flood the log. Thread-safe; one per kind of line."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = float("-inf")
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True when a line may be written now (and the next not before ``every_s`` from now)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every_s:
                return False
            self._last = now
            return True

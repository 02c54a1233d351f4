"""The floor for the hit benchmarks: a plain WSGI callable under the same gunicorn, answering with pyea's bytes.

No framework at all: it reads the request body (as any server-side code must) and returns the body read once
per worker from ``BARE_BODY_FILE``. What pyea spends beyond this is everything above gunicorn itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.bare_app import BODY_FILE_ENV, JSON_MIMETYPE


def create_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    body = Path(os.environ[BODY_FILE_ENV]).read_bytes()
    headers = [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(body)))]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        start_response("200 OK", list(headers))
        return [body]

    return app

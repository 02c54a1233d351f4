"""The baseline for ``cache_hit.py``: Flask under the same gunicorn, answering with pyea's own bytes.

Whatever pyea costs on a cache hit beyond this route (envelope parsing, validation, cache key, the diskcache
read, rendering) is the framework's overhead; gunicorn, Flask and Werkzeug are the floor neither can go below.
The body is read from the file named by ``BARE_BODY_FILE`` once per worker, so serving it costs nothing but
Flask's request and response handling.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response

BODY_FILE_ENV = "BARE_BODY_FILE"
JSON_MIMETYPE = "application/json"


def create_app() -> Flask:
    """Factory form, as pyea is started (``bench.bare_app:create_app()``), so both boot the same way in a worker."""
    body = Path(os.environ[BODY_FILE_ENV]).read_bytes()
    app = Flask("bare")

    @app.post("/")
    def answer() -> Response:
        # A new Response per request, as pyea builds one: reusing one object would skip work pyea must do.
        return Response(body, mimetype=JSON_MIMETYPE)

    @app.get("/health")
    def health() -> Response:
        """Readiness probe for the bench's process runner; never on the measured path."""
        return Response(b'{"message":"OK"}', mimetype=JSON_MIMETYPE)

    return app

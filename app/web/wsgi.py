"""The WSGI entry point: adapter requests go straight to the request path, everything else through Flask.

A cache hit is nearly everything a node asks for, and Flask's request context, URL matching and Response object
cost more than the hit itself. So the adapter routes (``GET``/``POST`` on ``{BASE_URL}`` and
``{BASE_URL}<adapter>/``) are answered here from the environ, after the same access check Flask's routes get;
``/health``, ``/status``, metrics, other methods and every URL not known here are Flask's. It is installed as
the Flask app's ``wsgi_app`` (Flask's own middleware hook), so the test client and gunicorn both go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from app.core.answers import JSON_MIMETYPE, Answer, render_error
from app.core.errors import AdapterError
from app.fetch.runtime import AdapterRuntime
from app.observe.logs import current_environ
from app.web.request_path import handle

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
SERVED_METHODS = frozenset({"GET", "POST"})


class AdapterRoutes:
    def __init__(self, flask_wsgi: WsgiApp, routes: Mapping[str, AdapterRuntime],
                 check: Callable[[dict[str, Any]], AdapterError | None] | None) -> None:
        self.flask_wsgi = flask_wsgi
        self.routes = dict(routes)
        self.check = check

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        token = current_environ.set(environ)
        try:
            served = self.routes.get(environ.get("PATH_INFO", ""))
            if served is None or environ.get("REQUEST_METHOD") not in SERVED_METHODS:
                return self.flask_wsgi(environ, start_response)
            refused = self.check(environ) if self.check is not None else None
            answer = handle(served, environ) if refused is None else render_error(refused)
            return send(answer, start_response)
        finally:
            current_environ.reset(token)


def send(answer: Answer, start_response: Callable[..., Any]) -> list[bytes]:
    start_response(STATUS_LINES.get(answer.status, f"{answer.status} Unknown"),
                   [("Content-Type", JSON_MIMETYPE), ("Content-Length", str(len(answer.body))), *answer.headers])
    return [answer.body]

"""The application factory: ``create_app()`` builds everything one process serves with; importing it does no work,
so tests can build many apps with different settings in one process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(wsgi_environ: Mapping[str, Any] | None = None, start_response: Callable | None = None, /, *,
               env: Mapping[str, str] | None = None) -> Any:
    """Build the Flask app from the environment (or ``env``).

    ``gunicorn app:create_app`` hands gunicorn this function itself as the WSGI callable, so when called with
    ``(environ, start_response)`` it serves the request from an app built once per process.
    """
    if start_response is not None:
        return _process_app()(wsgi_environ, start_response)
    from flask import Flask

    from app.config import load_config
    from app.core.version import __version__
    from app.hosting.host import Host
    from app.hosting.routes import register_routes
    from app.observe.logs import configure_logging

    config = load_config(env)
    configure_logging(config.settings, config.secrets())
    host = Host(config)
    flask_app = Flask("pyea")
    flask_app.json.sort_keys = False
    flask_app.extensions["pyea"] = host
    register_routes(flask_app, host, __version__)
    host.metrics.start()
    host.start_background()
    return flask_app


# The WSGI-callable form needs somewhere to keep the app it builds on first use; this is the only state kept
# outside an app object, and only that form touches it.
_process: dict[str, Flask] = {}
_process_lock = threading.Lock()


def _process_app() -> Flask:
    app = _process.get("app")
    if app is None:
        with _process_lock:
            app = _process.get("app") or _process.setdefault("app", create_app())
    return app


def close_app(app: Flask) -> None:
    """Release the cache and the provider sessions (gunicorn's worker_exit hook and tests call this)."""
    host = app.extensions.get("pyea")
    if host is not None:
        host.close()


"""URL map: the adapter endpoints, ``/health`` and ``/status``, and JSON for every error Flask itself raises."""

from __future__ import annotations

import json
import logging
import platform
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from app.background.warmer import over_budget_message
from app.config import endpoint_summary
from app.core.answers import render_error, unexpected_error
from app.core.errors import AdapterError, ServiceUnavailableError
from app.core.messages import short
from app.fetch.runtime import AdapterRuntime
from app.hosting.host import Host
from app.hosting.supervisor import read_state
from app.web.access import access_check
from app.web.discovery import discovery_groups
from app.web.openapi import openapi_document
from app.web.remote import RemoteAdapter
from app.web.request_path import handle, handle_remote, to_response
from app.web.wsgi import AdapterRoutes

log = logging.getLogger("pyea.http")


def register_routes(app: Flask, host: Host, version: str) -> None:
    base = host.settings.BASE_URL
    check = access_check(host.settings)
    if check is not None:
        @app.before_request
        def refuse_unless_allowed() -> Response | None:
            error = check(request.environ)
            return None if error is None else error_response(error)

    # GET and POST on the in-process adapters' routes never reach Flask (app/web/wsgi.py); the rules below answer
    # their other methods (HEAD, OPTIONS, 405) and the out-of-process adapters.
    writer = host.settings.EA_MODE == "writer"
    direct: dict[str, AdapterRuntime] = {}
    if not writer and isinstance(host.default, AdapterRuntime):
        direct[base] = host.default
    app.add_url_rule(base, "adapter", _writer_view if writer else _adapter_view(host.default),
                     methods=["GET", "POST"])
    for name, served in [*host.adapters.items(), *host.remotes.items()]:
        app.add_url_rule(f"{base}{name}/", f"adapter_{name}", _writer_view if writer else _adapter_view(served),
                         methods=["GET", "POST"], strict_slashes=False)
        if not writer and isinstance(served, AdapterRuntime):
            direct[f"{base}{name}/"] = direct[f"{base}{name}"] = served
    app.wsgi_app = AdapterRoutes(app.wsgi_app, direct, check)  # type: ignore[method-assign]

    def health() -> Response:
        if request.args.get("deep") in ("1", "true"):
            try:
                host.cache.ping()
            except Exception as exc:
                log.warning("deep health check failed: %s", exc)
                return error_response(ServiceUnavailableError(f"cache backend is not working: {exc}"))
            if host.background is not None and host.background.lease.holder() is None:
                return error_response(ServiceUnavailableError("no process holds the background lease: feeds are "
                                                            "not being refreshed"))
            for remote in host.remotes.values():
                problem = remote.health(timeout_s=0.5)
                if problem is not None:
                    return error_response(problem)
            degraded = [f"{name}: monthly credits: {credits['warning']}" for name, runtime in host.adapters.items()
                        if (credits := _credit_status(runtime)) is not None and credits["warning"]]
            if degraded:  # still serving: up, but not for the whole month at this pace
                return jsonify(message="DEGRADED", version=version, degraded=degraded)
        return jsonify(message="OK", version=version)

    def status() -> Response:
        return jsonify(
            version=version,
            uptimeSeconds=round(time.time() - host.started, 1),
            defaultAdapter=host.default.name,
            adapters=[_adapter_status(rt) for rt in host.adapters.values()] + _remote_status(host),
            configuration=host.settings.redacted(),
            runtime={"python": platform.python_version(), "platform": platform.platform(),
                     "hostname": socket.gethostname()},
            metrics=_metrics_status(host))

    def metrics() -> Response:
        return Response(host.metrics.render(), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        content_type=CONTENT_TYPE_LATEST)

    # The targets never change while the app lives: encoded once, like the OpenAPI document.
    targets = json.dumps(discovery_groups(host.settings, list(host.adapters), list(host.remotes)))

    def discovery() -> Response:
        return Response(targets, content_type="application/json")

    def plugin_metrics(name: str) -> Response:
        remote = host.remotes.get(name.lower())
        if remote is None:
            where = ("runs in the host; its metrics are part of the host's own" if name.lower() in host.adapters
                     else "is not served by this host")
            return error_response(AdapterError(f"adapter {short(name)} {where}", status_code=404,
                                             name="AdapterNotFoundError"))
        try:
            return remote.metrics(request)
        except AdapterError as exc:
            log.warning("metrics of adapter %s: %s", remote.name, exc.message)
            return error_response(exc)

    document = openapi_document(host.config, version)

    def openapi() -> Response:
        return jsonify(document)

    app.add_url_rule(f"{base}health", "health", health)
    if not writer:  # a writer answers /health and metrics only
        app.add_url_rule(f"{base}openapi.json", "openapi", openapi)
        app.add_url_rule(f"{base}status", "status", status)
        app.add_url_rule(f"{base}discovery", "discovery", discovery)
        app.add_url_rule(f"{base}plugins/<name>/metrics", "plugin_metrics", plugin_metrics)
    if host.settings.metrics_enabled and host.settings.METRICS_USE_BASE_URL:
        app.add_url_rule(f"{base}metrics", "metrics", metrics)
    _register_error_handlers(app, host.settings.DEBUG)


def _metrics_status(host: Host) -> dict:
    settings = host.settings
    if not settings.metrics_enabled:
        return {"enabled": False}
    if settings.METRICS_USE_BASE_URL:
        return {"enabled": True, "endpoint": f"{settings.BASE_URL}metrics"}
    return {"enabled": True, "port": settings.METRICS_PORT, "endpoint": "/metrics"}


def _adapter_view(served: AdapterRuntime | RemoteAdapter) -> Callable[[], Response]:
    if isinstance(served, RemoteAdapter):
        return lambda: handle_remote(served, request)
    return lambda: to_response(handle(served, request.environ))


def error_response(exc: AdapterError) -> Response:
    return to_response(render_error(exc))


def _writer_view() -> Response:
    return error_response(AdapterError("this instance runs with EA_MODE=writer: it keeps the shared cache fresh and "
                                     "answers no requests; send them to a reader", status_code=404,
                                     name="AdapterWriterOnlyError"))


def _remote_status(host: Host) -> list[dict]:
    processes = read_state(host.settings.CACHE_DIR)
    return [{"name": name, "outOfProcess": True, "port": remote.port, "process": processes.get(name)}
            for name, remote in host.remotes.items()]


def _adapter_status(runtime: AdapterRuntime) -> dict:
    cfg = runtime.config
    limit = cfg.rate_limit
    return {
        "name": runtime.name,
        "outOfProcess": False,
        "defaultEndpoint": cfg.adapter.default_endpoint or "",
        "endpoints": [endpoint_summary(rt.endpoint, rt.schema) for rt in runtime.declared.values()],
        "settings": [{"name": spec.name, "value": "[REDACTED]" if spec.is_secret and runtime.values[spec.name]
                      else runtime.values[spec.name], "description": spec.description}
                     for spec in cfg.adapter.settings],
        "rateLimit": None if limit is None else {"perSecond": limit.per_second, "perMinute": limit.per_minute,
                                                 "perHour": limit.per_hour, "source": limit.source,
                                                 "callsInWindow": runtime.limiter.usage()},
        "credits": _credit_status(runtime),
    }


def _credit_status(runtime: AdapterRuntime) -> dict | None:
    """This month's provider credits: used, projected at warming's pace, and when they run out if they do."""
    credit_plan = runtime.credit_plan()
    if credit_plan is None:
        return None
    limit = runtime.limiter.limit
    return {"month": credit_plan.month, "budget": credit_plan.budget, "source": limit.budget_source,
            "used": credit_plan.used, "projected": credit_plan.projected,
            "callsPerRefresh": credit_plan.calls_per_refresh, "refreshPeriodMs": credit_plan.period_ms,
            "lastsTheMonth": credit_plan.fits,
            "runsOut": None if credit_plan.runs_out_ms is None else
            datetime.fromtimestamp(credit_plan.runs_out_ms / 1000, tz=UTC).isoformat(timespec="seconds"),
            "warning": None if credit_plan.fits else over_budget_message(credit_plan, limit.budget_source)}


def _register_error_handlers(app: Flask, debug: bool) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        name = "".join(part.capitalize() for part in (exc.name or "Error").split())
        return error_response(AdapterError(f"{request.method} {request.path}: {exc.description}",
                                         status_code=exc.code or 500, name=name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return to_response(unexpected_error(exc, debug))

"""``GET /discovery``: the host and its out-of-process adapters as Prometheus ``http_sd_configs`` targets.

Prometheus rejects the whole list for one unknown key or bad label name and tells groups apart by position,
so the shape is exact and the order stable: the host's own metrics first, then adapters sorted by name. Every
group carries a plain ``adapter`` label: targets that share an address would otherwise share their ``up``
series.
"""

from __future__ import annotations

import socket

from app.core.settings import Settings

WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


def discovery_groups(settings: Settings, in_process: list[str], out_of_process: list[str]) -> list[dict]:
    if not settings.metrics_enabled:
        return []  # the workers inherit the setting: nothing anywhere to scrape
    host = published_host(settings)
    base = settings.BASE_URL
    if settings.METRICS_USE_BASE_URL:
        own = {"targets": [f"{host}:{settings.EA_PORT}"], "labels": {"__metrics_path__": f"{base}metrics"}}
    else:
        own = {"targets": [f"{host}:{settings.METRICS_PORT}"], "labels": {"__metrics_path__": "/metrics"}}
    own["labels"]["adapter"] = ",".join(in_process) or "host"
    return [own] + [{"targets": [f"{host}:{settings.EA_PORT}"],
                     "labels": {"__metrics_path__": f"{base}plugins/{name}/metrics", "adapter": name}}
                    for name in sorted(out_of_process)]


def published_host(settings: Settings) -> str:
    """Where Prometheus can reach this host: the operator's choice, else the one address gunicorn binds to
    (the machine's hostname would not reach a loopback-only host), else the hostname."""
    host = settings.EA_DISCOVERY_HOSTNAME or (
        settings.EA_HOST if settings.EA_HOST not in WILDCARD_HOSTS else socket.gethostname())
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

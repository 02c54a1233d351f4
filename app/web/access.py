"""Who may call: a bearer token (``EA_AUTH_TOKEN``) and client address ranges (``EA_ALLOWED_IPS``).

Checked before anything else on every route except ``/health`` (load balancers and the out-of-process
supervisor must reach it without credentials). A refusal never says which part was wrong: a missing header, a
malformed one and a wrong token all get the same 401. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from app.core.errors import AdapterError, ForbiddenError, UnauthorizedError
from app.core.settings import Settings

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def access_check(settings: Settings) -> Callable[[dict[str, Any]], AdapterError | None] | None:
    """The check of a request's WSGI environ for this configuration, or None when everyone may call (nothing to
    pay per request)."""
    token = settings.EA_AUTH_TOKEN.encode()
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.EA_ALLOWED_IPS]
    open_path = f"{settings.BASE_URL}health"
    if not token and not networks:
        return None

    def check(environ: dict[str, Any]) -> AdapterError | None:
        if environ.get("PATH_INFO") == open_path:
            return None
        if networks and not _allowed(environ.get("REMOTE_ADDR"), networks):
            return ForbiddenError("this client address is not allowed (EA_ALLOWED_IPS)")
        if token:
            scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
            if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)):
                return UnauthorizedError("a valid token is required: Authorization: Bearer <EA_AUTH_TOKEN>")
        return None

    return check


def _allowed(address: str | None, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def exposed_without_protection(settings: Settings) -> bool:
    """Bound beyond loopback with neither a token nor an address list: worth a warning at startup."""
    return (settings.EA_HOST not in LOOPBACK_HOSTS and not settings.EA_HOST.startswith("127.")
            and not settings.EA_AUTH_TOKEN and not settings.EA_ALLOWED_IPS)

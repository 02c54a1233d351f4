"""Pieces of error and log messages that quote what someone else sent: short, typed, and without secrets.

A message names the field and shows the offending value, but never a whole provider body, never a URL's query
string (it may carry an API key) and never a value long enough to flood a log line.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

#: Characters of a provider's body quoted in an error message.
SNIPPET_CHARS = 200


def snippet(content: bytes) -> str:
    """The start of a body, as a quoted one-line string."""
    text = content[:SNIPPET_CHARS].decode("utf-8", errors="replace").replace("\n", " ")
    return repr(text) + ("…" if len(content) > SNIPPET_CHARS else "")


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}


def json_type(value: Any) -> str:
    """The JSON name of a value's type (``object``, ``array``, ``string`` …), as a caller would say it."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def short(value: Any, limit: int = 60) -> str:
    """A value as JSON, cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def redacted_url(url: str) -> str:
    """Scheme, host, port and path of a URL, for messages and logs: never its query string or user info,
    either of which may carry a key or a token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else f"{host}{parts.path}"

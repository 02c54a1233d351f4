"""What an adapter author declares: an adapter, its endpoints and the transport behind each endpoint.

Declarations are plain data. Nothing here loads files or opens connections: ``create_app`` turns them into
runtime objects, so one adapter package can be served by many apps with different settings (and tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.setting_specs import Spec
from app.core.transports import Transport


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: requests name it (or one of its ``aliases``, case-insensitive) in ``endpoint``, its input
    schema is ``schemas/<adapter>/<name>.json``, and ``transport`` fetches its values. Immutable: one
    declaration serves every app and thread."""

    name: str
    transport: Transport
    aliases: Sequence[str] = ()
    #: Input parameters that symbol overrides (built-in file, then ``data.overrides``) apply to.
    override_params: Sequence[str] = ("base",)
    description: str = ""
    #: For slow providers: a request that misses the cache and carries the node's ``responseURL`` is answered
    #: ``{"pending": true}`` at once, and its value PATCHed to that URL when it arrives.
    asynchronous: bool = False
    #: Answers inverse pairs (``base``/``quote``) from the pair the provider quotes: the adapter's
    #: ``includes.json`` and a request's ``data.includes`` say which (``app/core/includes.py``).
    includes: bool = False
    #: Transports a request may choose with ``data.transport`` (case-insensitive), by name, the default
    #: ``transport`` among them: ``{"ws": stream, "rest": rest}``. Each is cached and kept fresh on its own.
    routes: Mapping[str, Transport] = field(default_factory=dict)

    def route_of(self, transport: Transport) -> str | None:
        """The name ``routes`` gives ``transport``."""
        return next((name for name, t in self.routes.items() if t is transport), None)


@dataclass(frozen=True)
class Adapter:
    """A data provider's adapter, declared as ``adapter = Adapter(...)`` in ``adapters/<name>/__init__.py``.

    ``name`` is its route (``POST /<name>``) and the ``ADAPTERS`` value that serves it; ``default_endpoint``
    answers requests that name none. ``settings`` are read as ``<NAME>_<SETTING>``, or plain ``<SETTING>`` for
    the host's default adapter (so a single-adapter deployment uses the familiar ``API_KEY``)."""

    name: str
    endpoints: Sequence[Endpoint]
    default_endpoint: str | None = None
    settings: Sequence[Spec] = field(default_factory=tuple)
    description: str = ""
    #: The limits.json tier to assume while RATE_LIMIT_API_TIER is unset, from the adapter's parsed settings
    #: (CoinGecko: a pro key means a paid plan); None for the provider's first listed tier.
    default_tier: Callable[[Mapping[str, Any]], str | None] | None = None

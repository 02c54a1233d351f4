"""pyea: a Chainlink External Adapter framework and host.

``gunicorn app:create_app`` serves it. The package is layered (``docs/architecture.md``); this top re-exports
the application factory, and adapter authors import ``app.sdk``. Importing it does no work.
"""

from app.core.version import __version__
from app.hosting.factory import close_app, create_app

__all__ = ["__version__", "close_app", "create_app"]
